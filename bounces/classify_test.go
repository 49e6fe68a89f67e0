package bounces

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/smtpgate/smtpgate/features/bounce"
	"github.com/smtpgate/smtpgate/store"
)

// sampleDir holds the bounce samples of features/bounce.
var sampleDir = filepath.Join("..", "features", "bounce", "testdata", "dsn")

// classifyCase is one block of testdata/classify.txt.
type classifyCase struct {
	line                     int
	sample, rcpt             string
	typ, reply, detail       string
	noevent                  string
	hasType, hasReply, hasDt bool
}

func readClassifyCases(t *testing.T) []classifyCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "classify.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out []classifyCase
		cur *classifyCase
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
			continue
		case strings.TrimSpace(line) == "":
			cur = nil
			continue
		}
		if cur == nil {
			out = append(out, classifyCase{line: n})
			cur = &out[len(out)-1]
		}
		key, quoted, _ := strings.Cut(line, " ")
		v, err := strconv.Unquote(quoted)
		if err != nil {
			t.Fatalf("classify.txt:%d: %s: %v", n, quoted, err)
		}
		switch key {
		case "sample":
			cur.sample = v
		case "rcpt":
			cur.rcpt = v
		case "type":
			cur.typ, cur.hasType = v, true
		case "reply":
			cur.reply, cur.hasReply = v, true
		case "detail":
			cur.detail, cur.hasDt = v, true
		case "noevent":
			cur.noevent = v
		default:
			t.Fatalf("classify.txt:%d: unknown key %q", n, key)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClassifySamples(t *testing.T) {
	cases := readClassifyCases(t)
	if len(cases) < 10 {
		t.Fatalf("only %d cases in testdata/classify.txt", len(cases))
	}
	used := map[string]bool{}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.line)+"-"+c.sample, func(t *testing.T) {
			if c.sample == "" || c.rcpt == "" || c.noevent == "" && !(c.hasType && c.hasReply && c.hasDt) {
				t.Fatalf("classify.txt:%d: incomplete case %+v", c.line, c)
			}
			used[c.sample] = true
			raw, err := os.ReadFile(filepath.Join(sampleDir, c.sample))
			if err != nil {
				t.Fatal(err)
			}
			rep, perr := bounce.ParseDSN(raw)
			e, ok := Classify(rep, perr, c.rcpt)
			if c.noevent != "" {
				if ok {
					t.Fatalf("event %+v, want none (%s)", e, c.noevent)
				}
				return
			}
			if !ok {
				t.Fatal("no event")
			}
			if e.Type != c.typ || e.Reply != c.reply || e.Detail != c.detail {
				t.Errorf("event\n type   %q\n reply  %q\n detail %q\nwant\n type   %q\n reply  %q\n detail %q",
					e.Type, e.Reply, e.Detail, c.typ, c.reply, c.detail)
			}
		})
	}
	// Every sample is covered.
	all, err := filepath.Glob(filepath.Join(sampleDir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		if !used[filepath.Base(f)] {
			t.Errorf("sample %s has no case in testdata/classify.txt", filepath.Base(f))
		}
	}
}

func TestClassifyEdges(t *testing.T) {
	longText := "Subject: re\r\n\r\n" + strings.Repeat("line\r\n\r\n", 20)
	wide := "Subject: re\r\n\r\n" + strings.Repeat("é", 2*MaxDetail) + "\r\n"
	dsnNoRcpt := "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nSomething failed.\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n--b--\r\n"
	tests := []struct {
		name, raw  string
		typ        string
		detail     string // "" when checked otherwise
		wantDetail func(string) bool
	}{
		{"empty", "", store.EventReply, "unreadable message", nil},
		{"blank", " \r\n\r\n", store.EventReply, "unreadable message", nil},
		{"no text", "Subject: hi\r\n\r\n", store.EventReply, "no text", nil},
		{"five lines at most", longText, store.EventReply, "line\nline\nline\nline\nline", nil},
		{"capped on a rune boundary", wide, store.EventReply, "", func(d string) bool {
			return len(d) <= MaxDetail && len(d) > MaxDetail-2 && utf8.ValidString(d)
		}},
		{"dsn without recipients", dsnNoRcpt, store.EventReply, "dsn without per-recipient status: Something failed.", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, perr := bounce.ParseDSN([]byte(tt.raw))
			e, ok := Classify(rep, perr, "ann@example.org")
			if !ok {
				t.Fatal("no event")
			}
			if e.Type != tt.typ || e.Reply != "" {
				t.Errorf("type %q reply %q", e.Type, e.Reply)
			}
			if tt.wantDetail != nil {
				if !tt.wantDetail(e.Detail) {
					t.Errorf("detail %q (%d bytes)", e.Detail, len(e.Detail))
				}
			} else if e.Detail != tt.detail {
				t.Errorf("detail %q, want %q", e.Detail, tt.detail)
			}
		})
	}
}

// FuzzClassify: any input gives an event of a known type with bounded,
// valid text, or none; never a panic.
func FuzzClassify(f *testing.F) {
	all, err := filepath.Glob(filepath.Join(sampleDir, "*.eml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range all {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, "nobody@example.org")
	}
	f.Fuzz(func(t *testing.T, raw []byte, rcpt string) {
		rep, perr := bounce.ParseDSN(raw)
		e, ok := Classify(rep, perr, rcpt)
		if !ok {
			if perr != nil || rep == nil || len(rep.Recipients) == 0 {
				t.Fatalf("no event for a report without statuses")
			}
			return
		}
		switch e.Type {
		case store.EventBounced, store.EventDeferred:
		case store.EventReply:
			if e.Reply != "" {
				t.Fatalf("reply event with Reply %q", e.Reply)
			}
		default:
			t.Fatalf("event type %q", e.Type)
		}
		if len(e.Reply) > MaxReply || len(e.Detail) > MaxDetail || e.Detail == "" {
			t.Fatalf("reply %d bytes, detail %d bytes", len(e.Reply), len(e.Detail))
		}
	})
}
