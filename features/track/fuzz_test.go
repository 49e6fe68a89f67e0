package track

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"

	"github.com/smtpgate/smtpgate/features/internal/htmlscan"
	"github.com/smtpgate/smtpgate/features/internal/htmlscan/htmlscantest"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/; the functions below add
// the golden-file inputs too. `go test` runs every seed; fuzz by hand with
// e.g. go test -run XXX -fuzz FuzzRewriteHTML -fuzztime 20s.

func addFiles(f *testing.F, dir, ext string, extra ...any) {
	f.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range files {
		if !strings.HasSuffix(e.Name(), ext) {
			continue
		}
		b, err := os.ReadFile(dir + "/" + e.Name())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]any{b}, extra...)...)
	}
}

// FuzzCodecOpen: Open never panics, fails only with ErrBadToken, and a token
// that opens is exactly what Seal makes of its content (one spelling per
// token, so nothing about a token can be changed without breaking it).
func FuzzCodecOpen(f *testing.F) {
	c := newTestCodec(f)
	for _, k := range []Kind{KindClick, KindOpen, KindBounce} {
		f.Add(byte(k), c.Seal(Token{Kind: k, MessageID: "m", Recipient: "r@example.com", URL: "https://x.example/", Issued: testIssued}))
	}
	f.Fuzz(func(t *testing.T, kind byte, s string) {
		tok, err := c.Open(Kind(kind), s)
		if err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("Open error %v is not ErrBadToken", err)
			}
			return
		}
		if tok.Kind != Kind(kind) {
			t.Fatalf("Open(%d) returned kind %d", kind, tok.Kind)
		}
		if again := c.Seal(tok); again != s {
			t.Fatalf("token %q opens but seals back as %q", s, again)
		}
	})
}

// FuzzRewriteHTML: never panics; without an <a> tag the output is the input
// byte for byte; otherwise x/net/html sees the same tokens in both, except
// that in <a> tags opt-out attributes are gone and a tracked href is a
// tracking URL whose token holds the original URL.
func FuzzRewriteHTML(f *testing.F) {
	addFiles(f, "testdata/html", ".html", false)
	addFiles(f, "testdata/html", ".html", true)
	r := newTestRewriter(f)
	f.Fuzz(func(t *testing.T, in []byte, preventScam bool) {
		o := testOpts
		o.PreventScam = preventScam
		out, n, err := r.RewriteHTML(in, o)
		if err != nil {
			t.Fatal(err)
		}
		checkOpenPixelOption(t, r, in, o)
		if !containsFold(in, "<a") {
			if !bytes.Equal(out, in) || n != 0 {
				t.Fatalf("input without <a> changed: %q -> %q", in, out)
			}
			return
		}
		checkRewrite(t, r.Codec, in, out, n)
	})
}

// checkRewrite compares the x/net/html token streams of in and out.
func checkRewrite(t *testing.T, c *Codec, in, out []byte, n int) {
	t.Helper()
	a, b := htmlscantest.Reference(in), htmlscantest.Reference(out)
	if len(a) != len(b) {
		t.Fatalf("%d tokens before, %d after:\n in %q\nout %q", len(a), len(b), in, out)
	}
	tracked := 0
	for i := range a {
		x, y := a[i], b[i]
		if x.Type != y.Type {
			t.Fatalf("token %d: type %v became %v", i, x.Type, y.Type)
		}
		if x.Type != xhtml.StartTagToken || !htmlscan.EqualFold(in[x.Start+1:htmlscan.TagNameEnd(in, x.Start+2)], "a") {
			if !bytes.Equal(in[x.Start:x.End], out[y.Start:y.End]) {
				t.Fatalf("token %d changed: %q -> %q", i, in[x.Start:x.End], out[y.Start:y.End])
			}
			continue
		}
		var want []xhtml.Attribute
		for _, at := range x.Attrs {
			if _, drop := optOut([]byte(at.Key)); !drop {
				want = append(want, at)
			}
		}
		if len(want) != len(y.Attrs) {
			t.Fatalf("token %d: attributes %q became %q:\n in %q\nout %q", i, x.Attrs, y.Attrs, in, out)
		}
		for k := range want {
			w, g := want[k], y.Attrs[k]
			if w.Key != g.Key {
				t.Fatalf("token %d: attribute %q became %q", i, w.Key, g.Key)
			}
			if w.Val == g.Val {
				continue
			}
			if w.Key != "href" {
				t.Fatalf("token %d: %s=%q became %q", i, w.Key, w.Val, g.Val)
			}
			if plain, ok := notrackScheme(cleanURL(w.Val)); ok && g.Val == plain {
				continue
			}
			tok, err := c.Open(KindClick, strings.TrimPrefix(g.Val, testBase+"/c/"))
			if !strings.HasPrefix(g.Val, testBase+"/c/") || err != nil || tok.URL != cleanURL(w.Val) {
				t.Fatalf("token %d: href %q became %q (token %+v, %v)", i, w.Val, g.Val, tok, err)
			}
			tracked++
		}
	}
	if tracked != n {
		t.Fatalf("%d hrefs tracked, RewriteHTML said %d: %q -> %q", tracked, n, in, out)
	}
}

var clickRE = regexp.MustCompile(`https://t\.example\.com/c/[A-Za-z0-9_-]+`)

// FuzzRewriteText: never panics; replacing every tracking URL in the output
// by the URL in its token gives back the input exactly.
func FuzzRewriteText(f *testing.F) {
	addFiles(f, "testdata/text", ".txt")
	r := newTestRewriter(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		out, n, err := r.RewriteText(in, testOpts)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(in, []byte("://")) {
			if !bytes.Equal(out, in) || n != 0 {
				t.Fatalf("input without a URL changed: %q -> %q", in, out)
			}
			return
		}
		if containsFold(in, "+notrack") || containsFold(in, "t.example.com") {
			return // such input is changed on purpose or already tracked
		}
		links := 0
		back := clickRE.ReplaceAllFunc(out, func(m []byte) []byte {
			tok, err := r.Codec.Open(KindClick, string(m[len(testBase)+3:]))
			if err != nil {
				t.Fatalf("unopenable tracking URL %q in %q", m, out)
			}
			links++
			return []byte(tok.URL)
		})
		if !bytes.Equal(back, in) || links != n {
			t.Fatalf("RewriteText(%q) = %q (n=%d); decoded back: %q (%d links)", in, out, n, back, links)
		}
	})
}
