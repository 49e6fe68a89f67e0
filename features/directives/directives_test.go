package directives

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"

	"github.com/smtpgate/smtpgate/features"
)

var update = flag.Bool("update", os.Getenv("UPDATE_GOLDEN") != "", "rewrite the golden files (also UPDATE_GOLDEN=1)")

// testCase is one testdata/NAME.txt: a case header ("key: value" lines, "#"
// comments) up to a line "--", then the message header block.
//
//	base:        feature names that are on in the login's policy
//	overridable: feature names the login may change ("*" = all)
//	vendors:     vendor names to enable
//	prefixes:    own prefixes (default: DefaultPrefixes)
//	reject:      true = RejectMalformed
type testCase struct {
	cfg         Config
	base        features.Set
	overridable []string
	header      []byte
}

// golden is what NAME.golden.json holds.
type golden struct {
	Result Result   `json:"result"`
	Error  string   `json:"error,omitempty"`
	Header []string `json:"header"` // the remaining fields, raw
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func readCase(t testing.TB, path string) testCase {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(raw), "\r\n", "\n")
	head, block, ok := strings.Cut(text, "\n--\n")
	if !ok {
		t.Fatalf("%s: no \"--\" line after the case header", path)
	}
	var tc testCase
	for n, line := range strings.Split(head, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s:%d: want key: value", path, n+1)
		}
		switch strings.TrimSpace(k) {
		case "base":
			for _, name := range list(v) {
				var known bool
				if tc.base, known = tc.base.With(name, true); !known {
					t.Fatalf("%s:%d: unknown feature %q", path, n+1, name)
				}
			}
		case "overridable":
			tc.overridable = list(v)
		case "vendors":
			tc.cfg.Vendors = list(v)
		case "prefixes":
			tc.cfg.Prefixes = list(v)
		case "reject":
			tc.cfg.RejectMalformed, err = strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("%s:%d: %v", path, n+1, err)
			}
		default:
			t.Fatalf("%s:%d: unknown case key %q", path, n+1, k)
		}
	}
	if !strings.HasSuffix(block, "\n\n") {
		block = strings.TrimRight(block, "\n") + "\n\n"
	}
	tc.header = []byte(strings.ReplaceAll(block, "\n", "\r\n"))
	return tc
}

func readHeader(t testing.TB, b []byte) textproto.Header {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("reading header: %v", err)
	}
	return h
}

// rawFields lists the raw bytes of every field, in order.
func rawFields(t testing.TB, h *textproto.Header) []string {
	t.Helper()
	var out []string
	for f := h.Fields(); f.Next(); {
		raw, err := f.Raw()
		if err != nil {
			t.Fatalf("raw field %s: %v", f.Key(), err)
		}
		out = append(out, string(raw))
	}
	return out
}

// isDirective says, independently of classify, whether a field must be stripped.
func isDirective(field string, cfg Config) bool {
	name, _, _ := strings.Cut(field, ":")
	name = strings.ToLower(strings.TrimSpace(name))
	prefixes := cfg.Prefixes
	if len(prefixes) == 0 {
		prefixes = DefaultPrefixes
	}
	for _, p := range prefixes {
		if strings.HasPrefix(name, strings.ToLower(p)) {
			return true
		}
	}
	vendor := map[string]func(string) bool{
		Mailgun:     func(n string) bool { return strings.HasPrefix(n, "x-mailgun-") },
		Postmark:    func(n string) bool { return strings.HasPrefix(n, "x-pm-") },
		EmailEngine: func(n string) bool { return strings.HasPrefix(n, "x-ee-") },
		SendGrid:    func(n string) bool { return n == "x-smtpapi" },
	}
	for _, v := range cfg.Vendors {
		if vendor[v](name) {
			return true
		}
	}
	return false
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 25 {
		t.Fatalf("only %d cases in testdata", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			tc := readCase(t, file)
			h := readHeader(t, tc.header)
			before := rawFields(t, &h)

			res, err := Apply(&h, tc.cfg, tc.base, tc.overridable)
			got := golden{Result: res, Header: rawFields(t, &h)}
			if err != nil {
				got.Error = err.Error()
				var me *MalformedError
				if !tc.cfg.RejectMalformed || !errors.As(err, &me) {
					t.Fatalf("Apply: unexpected error %v", err)
				}
			}

			// Invariants that hold whatever the golden file says.
			var want []string
			stripped := 0
			for _, f := range before {
				if isDirective(f, tc.cfg) {
					stripped++
				} else {
					want = append(want, f)
				}
			}
			if !slices.Equal(got.Header, want) {
				t.Errorf("remaining header is not the input minus the directives, byte-exact:\n got %q\nwant %q", got.Header, want)
			}
			if len(res.Records) != stripped {
				t.Errorf("%d records for %d stripped headers", len(res.Records), stripped)
			}
			malformed := slices.ContainsFunc(res.Records, func(r Record) bool { return r.Outcome == Malformed })
			if tc.cfg.RejectMalformed && malformed != (err != nil) {
				t.Errorf("reject mode: malformed record %v but error %v", malformed, err)
			}
			for _, r := range res.Records {
				if r.Outcome == Refused && !strings.Contains(r.Reason, "is not overridable for this login") {
					t.Errorf("refused record without a reason naming the feature: %+v", r)
				}
			}
			if len(res.Tags) > MaxTags || len(res.Metadata) > MaxMetadataKeys {
				t.Errorf("caps exceeded: %d tags, %d metadata keys", len(res.Tags), len(res.Metadata))
			}

			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(got); err != nil {
				t.Fatal(err)
			}
			gotJSON := buf.Bytes()
			goldenPath := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(goldenPath, gotJSON, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantJSON, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
			}
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("result differs from %s:\n got %s\nwant %s", goldenPath, gotJSON, wantJSON)
			}
		})
	}
}
