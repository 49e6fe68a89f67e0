package summary_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/smtpgate/smtpgate/summary"
)

var md5Hex = regexp.MustCompile(`^[0-9a-f]{32}$`)

// FuzzParse checks that Parse never panics and that whatever it returns is
// well formed. The seed corpus in testdata/fuzz/FuzzParse holds the testdata
// messages and variants of them.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := summary.Parse(raw)
		if err != nil {
			return
		}
		if len(s.Links) > summary.MaxLinks || len(s.Attachments) > summary.MaxParts {
			t.Fatalf("limits exceeded: %d links, %d attachments", len(s.Links), len(s.Attachments))
		}
		seen := map[string]bool{}
		for _, l := range s.Links {
			low := strings.ToLower(l)
			if !strings.HasPrefix(low, "http://") && !strings.HasPrefix(low, "https://") {
				t.Fatalf("link %q is not http(s)", l)
			}
			if seen[l] {
				t.Fatalf("link %q listed twice", l)
			}
			seen[l] = true
			if !utf8.ValidString(l) {
				t.Fatalf("link %q is not UTF-8", l)
			}
		}
		for _, a := range s.Attachments {
			if !md5Hex.MatchString(a.MD5) || a.Size < 0 || a.Size > int64(len(raw)) {
				t.Fatalf("bad attachment %+v", a)
			}
		}
		for _, str := range []string{s.Subject, s.MessageID} {
			if !utf8.ValidString(str) {
				t.Fatalf("%q is not UTF-8", str)
			}
		}
		for _, l := range [][]summary.Address{s.From, s.To, s.Cc, s.Bcc, s.ReplyTo} {
			for _, a := range l {
				if !utf8.ValidString(a.Name) || !utf8.ValidString(a.Address) {
					t.Fatalf("address %+v is not UTF-8", a)
				}
			}
		}
	})
}

// FuzzExtract checks that Extract never panics, agrees with Parse on
// success and on the attachments, and returns valid UTF-8.
func FuzzExtract(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := summary.Extract(raw)
		s, perr := summary.Parse(raw)
		if (err == nil) != (perr == nil) {
			t.Fatalf("Extract error %v, Parse error %v", err, perr)
		}
		if err != nil {
			return
		}
		checkConsistent(t, "fuzz", s, c)
	})
}
