package track

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewCodecRejectsShortSecret(t *testing.T) {
	for _, n := range []int{0, 1, MinSecretLen - 1} {
		if _, err := NewCodec(make([]byte, n)); err == nil {
			t.Errorf("NewCodec(%d bytes) succeeded, want an error", n)
		}
	}
	if _, err := NewCodec(make([]byte, MinSecretLen)); err != nil {
		t.Errorf("NewCodec(%d bytes): %v", MinSecretLen, err)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	cases := []Token{
		{Kind: KindClick, MessageID: "m1", Recipient: "a@example.com", URL: "https://example.com/?a=1&b=2", Issued: testIssued},
		{Kind: KindClick, MessageID: "", Recipient: "", URL: "", Issued: time.Time{}},
		{Kind: KindClick, MessageID: "ü", Recipient: "\x00\xff", URL: "https://exämple.com/" + strings.Repeat("x", 1000), Issued: testIssued},
		{Kind: KindOpen, MessageID: "01jd3k5q9x2v7m4n8p6r0s1t2w", Recipient: "bob@example.org", Issued: testIssued},
		{Kind: KindBounce, MessageID: "01jd3k5q9x2v7m4n8p6r0s1t2w", Recipient: "bob@example.org", Issued: testIssued},
	}
	for _, want := range cases {
		s := c.Seal(want)
		if s == "" {
			t.Fatalf("Seal(%+v) = empty", want)
		}
		for i := 0; i < len(s); i++ {
			if !isTokenByte(s[i]) {
				t.Fatalf("Seal(%+v) = %q: byte %q is not URL-safe base64", want, s, s[i])
			}
		}
		got, err := c.Open(want.Kind, s)
		if err != nil {
			t.Fatalf("Open(Seal(%+v)): %v", want, err)
		}
		if got != want {
			t.Errorf("Open(Seal(x)) = %+v, want %+v", got, want)
		}
	}
}

func TestSealDropsURLOfNonClickAndSubSecondTime(t *testing.T) {
	c := newTestCodec(t)
	in := Token{Kind: KindOpen, MessageID: "m", Recipient: "r", URL: "https://ignored.example/", Issued: testIssued.Add(987 * time.Millisecond)}
	got, err := c.Open(KindOpen, c.Seal(in))
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != "" {
		t.Errorf("open token kept URL %q", got.URL)
	}
	if !got.Issued.Equal(testIssued) {
		t.Errorf("Issued = %v, want %v (second precision)", got.Issued, testIssued)
	}
	if got.Issued.Location() != time.UTC {
		t.Errorf("Issued location = %v, want UTC", got.Issued.Location())
	}
}

func TestSealIsDeterministic(t *testing.T) {
	c := newTestCodec(t)
	tok := Token{Kind: KindClick, MessageID: "m", Recipient: "r", URL: "https://x.example/", Issued: testIssued}
	if a, b := c.Seal(tok), c.Seal(tok); a != b {
		t.Errorf("Seal differs between calls: %q vs %q", a, b)
	}
	c2, err := NewCodec(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := c.Seal(tok), c2.Seal(tok); a != b {
		t.Errorf("Seal differs between codecs with the same secret: %q vs %q", a, b)
	}
}

func TestSealUnknownKind(t *testing.T) {
	c := newTestCodec(t)
	for _, k := range []Kind{0, 4, 255} {
		if s := c.Seal(Token{Kind: k, MessageID: "m"}); s != "" {
			t.Errorf("Seal(kind %d) = %q, want empty", k, s)
		}
		if _, err := c.Open(k, "AAAA"); !errors.Is(err, ErrBadToken) {
			t.Errorf("Open(kind %d) error = %v, want ErrBadToken", k, err)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	c := newTestCodec(t)
	click := c.Seal(Token{Kind: KindClick, MessageID: "m", Recipient: "r", URL: "https://x.example/", Issued: testIssued})
	open := c.Seal(Token{Kind: KindOpen, MessageID: "m", Recipient: "r", Issued: testIssued})
	other, err := NewCodec([]byte("another-secret-of-enough-length"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := other.Seal(Token{Kind: KindClick, MessageID: "m", Recipient: "r", URL: "https://x.example/", Issued: testIssued})
	cases := []struct {
		name string
		kind Kind
		tok  string
	}{
		{"empty", KindClick, ""},
		{"open token as click", KindClick, open},
		{"click token as open", KindOpen, click},
		{"click token as bounce", KindBounce, click},
		{"other secret", KindClick, foreign},
		{"truncated by one", KindClick, click[:len(click)-1]},
		{"truncated to tag", KindClick, click[len(click)-22:]},
		{"extended", KindClick, click + "A"},
		{"extended by a block", KindClick, click + "AAAA"},
		{"padding", KindClick, click + "="},
		{"standard alphabet", KindClick, strings.NewReplacer("-", "+", "_", "/").Replace(click) + "+"},
		{"newline inside", KindClick, click[:10] + "\n" + click[10:]},
		{"space", KindClick, " " + click},
		{"oversize", KindClick, strings.Repeat("A", MaxTokenLen+1)},
		{"garbage", KindClick, "not-a-token"},
	}
	for _, tc := range cases {
		if _, err := c.Open(tc.kind, tc.tok); !errors.Is(err, ErrBadToken) {
			t.Errorf("%s: Open error = %v, want ErrBadToken", tc.name, err)
		}
	}
}

// TestOpenRejectsEveryChange replaces each character of a token by every
// other character of the alphabet (and a few outside it): no variant opens.
// Strict decoding makes even the padding bits of the last character count.
func TestOpenRejectsEveryChange(t *testing.T) {
	c := newTestCodec(t)
	for _, tok := range []Token{
		{Kind: KindClick, MessageID: "m1", Recipient: "a@example.com", URL: "https://example.com/x", Issued: testIssued},
		{Kind: KindOpen, MessageID: "m1", Recipient: "a@example.com", Issued: testIssued},
	} {
		s := c.Seal(tok)
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.~%\n"
		for i := 0; i < len(s); i++ {
			for _, r := range []byte(alphabet) {
				if r == s[i] {
					continue
				}
				v := s[:i] + string(r) + s[i+1:]
				if got, err := c.Open(tok.Kind, v); err == nil {
					t.Fatalf("changing byte %d of %q to %q still opens: %+v", i, s, r, got)
				}
			}
		}
	}
}

func TestOpenAcceptsMaxTokenLen(t *testing.T) {
	c := newTestCodec(t)
	// Find the longest URL whose token fits exactly under the cap.
	tok := Token{Kind: KindClick, MessageID: "m", Recipient: "r", Issued: testIssued}
	tok.URL = "https://x.example/" + strings.Repeat("a", 3000)
	for len(c.Seal(tok)) < MaxTokenLen {
		tok.URL += "a"
	}
	for len(c.Seal(tok)) > MaxTokenLen {
		tok.URL = tok.URL[:len(tok.URL)-1]
	}
	s := c.Seal(tok)
	if _, err := c.Open(KindClick, s); err != nil {
		t.Errorf("Open of a %d-byte token: %v", len(s), err)
	}
	tok.URL += "aa"
	if s := c.Seal(tok); len(s) <= MaxTokenLen {
		t.Fatalf("token did not grow past the cap: %d", len(s))
	} else if _, err := c.Open(KindClick, s); !errors.Is(err, ErrBadToken) {
		t.Errorf("Open of a %d-byte token: %v, want ErrBadToken", len(s), err)
	}
}

func TestTokenLength(t *testing.T) {
	c := newTestCodec(t)
	s := c.Seal(Token{Kind: KindClick, MessageID: testOpts.MessageID, Recipient: testOpts.Recipient,
		URL: "https://shop.example.com/articles/42?utm_source=news&utm_campaign=w47", Issued: testIssued})
	// 1 kind + 5 time + 1+26 id + 1+17 recipient + 1+69 URL + 16 tag = 137 bytes -> 183 characters.
	if len(s) != 183 {
		t.Errorf("token length = %d, want 183", len(s))
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindClick: "click", KindOpen: "open", KindBounce: "bounce", 9: "kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

// TestCodecConcurrent seals and opens from many goroutines at once (run
// with -race): the pooled HMAC states must never be shared.
func TestCodecConcurrent(t *testing.T) {
	c := newTestCodec(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				want := Token{Kind: KindClick, MessageID: fmt.Sprint(g), Recipient: "r", URL: fmt.Sprintf("https://x.example/%d/%d", g, i), Issued: testIssued}
				got, err := c.Open(KindClick, c.Seal(want))
				if err != nil || got != want {
					t.Errorf("goroutine %d: Open(Seal(%+v)) = %+v, %v", g, want, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
