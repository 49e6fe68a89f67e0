package track

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"
)

// TestRoundTrip rewrites every HTML test document, parses the original and
// the result with x/net/html, and pairs their <a> elements in document
// order. Each rewritten link, fetched from a real server running
// NewHandler, must answer 302 to exactly the original URL (GET records a
// click, HEAD does not); each link left alone must be byte-for-byte the
// original href.
func TestRoundTrip(t *testing.T) {
	rec := &memRecorder{}
	srv, c := newTestServer(t, rec, nil)
	r, err := NewRewriter(c, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// Location of the non-ASCII URLs of the corpus: IDNA host, %-encoded rest.
	nonASCII := map[string]string{
		"https://café.example/menu/crème-brûlée?lang=fr": "https://xn--caf-dma.example/menu/cr%C3%A8me-br%C3%BBl%C3%A9e?lang=fr",
		"https://shop.example.com/a b":                   "https://shop.example.com/a%20b",
	}
	docs := goldenInputs(t, "html", ".html")
	docs = append(docs, "bench:newsletter")
	clicks := 0
	for _, path := range docs {
		var in []byte
		if path == "bench:newsletter" {
			in = newsletter(8, 20)
		} else if in, err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
		o := goldenOptions(path)
		out, n, err := r.RewriteHTML(in, o)
		if err != nil {
			t.Fatal(err)
		}
		before, after := anchorHrefs(t, in), anchorHrefs(t, out)
		if len(before) != len(after) {
			t.Fatalf("%s: %d links before, %d after", path, len(before), len(after))
		}
		tracked := 0
		for i, orig := range before {
			got := after[i]
			if !strings.HasPrefix(got, srv.URL+"/c/") {
				want := orig
				if plain, ok := notrackScheme(cleanURL(orig)); ok {
					want = plain
				}
				if got != want {
					t.Errorf("%s link %d: untracked href changed from %q to %q", path, i, orig, got)
				}
				continue
			}
			tracked++
			want := cleanURL(orig)
			if loc, ok := nonASCII[want]; ok {
				want = loc
			} else if !isPlainASCII(want) {
				t.Fatalf("%s link %d: add the expected Location of %q to the test", path, i, want)
			}
			for _, method := range []string{http.MethodHead, http.MethodGet} {
				resp, _ := do(t, method, got, nil)
				if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
					t.Errorf("%s link %d (%q): %s answers %d to %q, want 302 to %q", path, i, orig, method, resp.StatusCode, resp.Header.Get("Location"), want)
				}
			}
		}
		// The parser may clone an unclosed <a> into following blocks, so
		// count tracking URLs in the bytes, not in the tree.
		if c := strings.Count(string(out), srv.URL+"/c/"); c != n || n == 0 || tracked < n {
			t.Errorf("%s: %d tracking URLs in the output (%d in the tree), RewriteHTML said %d", path, c, tracked, n)
		}
		clicks += tracked
	}
	if ev := rec.list(); len(ev) != clicks {
		t.Errorf("recorded %d clicks, want %d (one per GET, none per HEAD)", len(ev), clicks)
	}
}

// anchorHrefs parses doc as a browser would and lists the href of every <a>
// element (or "<none>") in document order.
func anchorHrefs(t *testing.T, doc []byte) []string {
	t.Helper()
	root, err := xhtml.Parse(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	var hrefs []string
	for n := range root.Descendants() {
		if n.Type != xhtml.ElementNode || n.Data != "a" {
			continue
		}
		h := "<none>"
		for _, a := range n.Attr {
			if a.Key == "href" && a.Namespace == "" {
				h = a.Val
				break
			}
		}
		hrefs = append(hrefs, h)
	}
	return hrefs
}

// TestRoundTripHrefLineBreaks rewrites hrefs broken by tabs and line breaks
// (raw or as character references), follows each tracking link on a real
// server running NewHandler and checks that the token, the Location and the
// recorded click all name the URL a browser opens for the original href:
// the href with every tab, CR and LF removed (WHATWG URL parsing).
func TestRoundTripHrefLineBreaks(t *testing.T) {
	cases := []struct {
		href string
		url  string // the URL in the token and the event
		loc  string // the Location header, when it differs from url
	}{
		{"https://x.example/a\r\nb?c=1", "https://x.example/ab?c=1", ""},
		{"https://x.example/a\nb", "https://x.example/ab", ""},
		{"https://x.example/a\rb", "https://x.example/ab", ""},
		{"https://x.example/a\tb", "https://x.example/ab", ""},
		{"\r\n  https://x.example/p?q=1&amp;r=2\r\n", "https://x.example/p?q=1&r=2", ""},
		{"https://x.example/a&#13;&#10;b&Tab;c", "https://x.example/abc", ""},
		{"ht\r\ntps://x.exa\r\nmple/p", "https://x.example/p", ""},
		// A quoted-printable soft break left undecoded: the browser keeps '='.
		{"https://news.example.com/2026/03/a-very-long-article-slug-that-a-generator-fol=\r\nded-at-76?utm_source=mail", "https://news.example.com/2026/03/a-very-long-article-slug-that-a-generator-fol=ded-at-76?utm_source=mail", ""},
		// The space of a folded continuation line stays, like in a browser,
		// which requests it percent-encoded.
		{"https://x.example/a\r\n b", "https://x.example/a b", "https://x.example/a%20b"},
	}
	rec := &memRecorder{}
	srv, c := newTestServer(t, rec, nil)
	r, err := NewRewriter(c, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range cases {
		in := []byte("<p><a href=\"" + tc.href + "\">x</a></p>")
		out, n, err := r.RewriteHTML(in, testOpts)
		if err != nil {
			t.Fatal(err)
		}
		hrefs := anchorHrefs(t, out)
		if n != 1 || len(hrefs) != 1 || !strings.HasPrefix(hrefs[0], srv.URL+"/c/") {
			t.Errorf("href %q: not tracked (n=%d): %q", tc.href, n, out)
			continue
		}
		tok, err := c.Open(KindClick, strings.TrimPrefix(hrefs[0], srv.URL+"/c/"))
		if err != nil {
			t.Fatal(err)
		}
		if tok.URL != tc.url {
			t.Errorf("href %q: token URL %q, want %q", tc.href, tok.URL, tc.url)
		}
		loc := tc.loc
		if loc == "" {
			loc = tc.url
		}
		resp, _ := do(t, http.MethodGet, hrefs[0], nil)
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || got != loc {
			t.Errorf("href %q: GET answers %d to %q, want 302 to %q", tc.href, resp.StatusCode, got, loc)
		}
		ev := rec.list()
		if len(ev) != i+1 || ev[i].URL != tc.url {
			t.Errorf("href %q: events %+v, want click %d on %q", tc.href, ev, i+1, tc.url)
		}
	}
}
