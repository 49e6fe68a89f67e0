package track

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// Fixed inputs so golden files are stable.
var (
	testSecret = []byte("smtpgate-test-secret-0123456789abcdef")
	testIssued = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	testOpts   = Options{MessageID: "01jd3k5q9x2v7m4n8p6r0s1t2w", Recipient: "alice@example.com"}
)

const testBase = "https://t.example.com"

func newTestCodec(t testing.TB) *Codec {
	t.Helper()
	c, err := NewCodec(testSecret)
	if err != nil {
		t.Fatalf("NewCodec: %v", err)
	}
	return c
}

func newTestRewriter(t testing.TB) *Rewriter {
	t.Helper()
	r, err := NewRewriter(newTestCodec(t), testBase)
	if err != nil {
		t.Fatalf("NewRewriter: %v", err)
	}
	r.Now = func() time.Time { return testIssued }
	return r
}

var trackRE = regexp.MustCompile(`https://t\.example\.com/([co])/([A-Za-z0-9_-]+)`)

// readable replaces every tracking URL in s by [[click:URL]] or [[open]]
// after checking that its token opens and carries o's message id and
// recipient and the fixed issue time; tokens that do not open are left as
// they are.
func readable(t testing.TB, c *Codec, s string, o Options) string {
	t.Helper()
	return trackRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := trackRE.FindStringSubmatch(m)
		kind := KindClick
		if sub[1] == "o" {
			kind = KindOpen
		}
		tok, err := c.Open(kind, sub[2])
		if err != nil {
			return m
		}
		if tok.MessageID != o.MessageID || tok.Recipient != o.Recipient || !tok.Issued.Equal(testIssued) {
			t.Errorf("token %s carries %+v, want message %q recipient %q issued %v", sub[2], tok, o.MessageID, o.Recipient, testIssued)
		}
		if kind == KindOpen {
			return "[[open]]"
		}
		return "[[click:" + tok.URL + "]]"
	})
}

// isSubstr is strings.Contains with the arguments in assertion order.
func isSubstr(s, sub string) bool { return strings.Contains(s, sub) }
