package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/features/bounce"
	"github.com/smtpgate/smtpgate/features/directives"
	"github.com/smtpgate/smtpgate/features/inline"
	"github.com/smtpgate/smtpgate/features/track"
)

// The fixed configuration of every test: tokens are deterministic because
// the secret and the rewriter's clock are fixed.
const (
	testSecret    = "pipeline-test-secret-0123456789abcdef"
	testPublicURL = "https://t.example.com"
	testBounceDom = "bounces.example.com"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// corpusDir holds the golden corpus.
var corpusDir = filepath.Join("testdata", "corpus")

// testCase is one NAME.case file: the policy side of a corpus message.
//
//	# what the case shows (first comment line)
//	base: inline_css, track_clicks         features the login has
//	overridable: *                         features a header may change
//	vendors: mailgun, postmark             vendor directives read and stripped
//	prefixes: X-Smtpgate-, X-Smtpeter-     own directive prefixes (default)
//	reject_malformed: true                 on_error = "reject"
//	message_id: 01jq...                    smtpgate's message id
//	recipients: a@example.net, b@...       envelope recipients
//	mail_from: bounces@example.com         envelope sender
type testCase struct {
	name            string
	doc             string
	base            features.Set
	overridable     []string
	vendors         []string
	prefixes        []string
	rejectMalformed bool
	messageID       string
	recipients      []string
	mailFrom        string
	raw             []byte
}

// list splits a comma or space separated value.
func list(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

// readCase reads NAME.case and NAME.eml.
func readCase(t testing.TB, name string) testCase {
	t.Helper()
	tc := testCase{name: name}
	f, err := os.Open(filepath.Join(corpusDir, name+".case"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if tc.doc == "" {
				tc.doc = strings.TrimSpace(strings.TrimPrefix(line, "#"))
			}
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s.case:%d: want key: value", name, n)
		}
		val = strings.TrimSpace(val)
		switch strings.TrimSpace(key) {
		case "base":
			for _, fn := range list(val) {
				var known bool
				if tc.base, known = tc.base.With(fn, true); !known {
					t.Fatalf("%s.case:%d: unknown feature %q", name, n, fn)
				}
			}
		case "overridable":
			tc.overridable = list(val)
		case "vendors":
			tc.vendors = list(val)
		case "prefixes":
			tc.prefixes = list(val)
		case "reject_malformed":
			tc.rejectMalformed = val == "true"
		case "message_id":
			tc.messageID = val
		case "recipients":
			tc.recipients = list(val)
		case "mail_from":
			tc.mailFrom = val
		default:
			t.Fatalf("%s.case:%d: unknown key %q", name, n, key)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if tc.raw, err = os.ReadFile(filepath.Join(corpusDir, name+".eml")); err != nil {
		t.Fatal(err)
	}
	return tc
}

// corpusNames lists the corpus messages.
func corpusNames(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(corpusDir, "*.case"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".case"))
	}
	slices.Sort(names)
	return names
}

// config returns the directives configuration of the case.
func (tc testCase) config() directives.Config {
	return directives.Config{Prefixes: tc.prefixes, Vendors: tc.vendors, RejectMalformed: tc.rejectMalformed}
}

// input returns the pipeline input of the case.
func (tc testCase) input() Input {
	return Input{
		Raw:         tc.raw,
		Base:        tc.base,
		Overridable: tc.overridable,
		MessageID:   tc.messageID,
		MailFrom:    tc.mailFrom,
		Recipients:  tc.recipients,
	}
}

// testKit is a pipeline with every transform and the codec to redeem its
// tokens.
type testKit struct {
	codec *track.Codec
	inl   *inline.Inliner
	rw    *track.Rewriter
	vc    *bounce.Codec
}

func newKit(t testing.TB) *testKit {
	t.Helper()
	codec, err := track.NewCodec([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	rw, err := track.NewRewriter(codec, testPublicURL)
	if err != nil {
		t.Fatal(err)
	}
	rw.Now = func() time.Time { return testNow }
	vc, err := bounce.NewCodec([]byte(testSecret), testBounceDom)
	if err != nil {
		t.Fatal(err)
	}
	return &testKit{codec: codec, inl: inline.New(inline.Options{}), rw: rw, vc: vc}
}

// pipeline returns a Pipeline with every transform and cfg.
func (k *testKit) pipeline(cfg directives.Config) *Pipeline {
	return &Pipeline{Inliner: k.inl, Tracker: k.rw, Bounce: k.vc, Directives: cfg}
}

// recorder keeps the events the tracking handler records.
type recorder struct {
	mu     sync.Mutex
	events []track.Event
}

func (r *recorder) Record(_ context.Context, e track.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

// take returns the recorded events and forgets them.
func (r *recorder) take() []track.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

// lines splits b into lines without their line breaks.
func lines(b []byte) [][]byte {
	ls := bytes.Split(b, []byte("\n"))
	for i, l := range ls {
		ls[i] = bytes.TrimSuffix(l, []byte("\r"))
	}
	return ls
}

// quote shortens b for a failure message.
func quote(b []byte) string {
	if len(b) > 200 {
		return fmt.Sprintf("%q... (%d bytes)", b[:200], len(b))
	}
	return fmt.Sprintf("%q", b)
}
