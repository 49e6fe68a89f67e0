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
				if plain, ok := notrackScheme(trimURL(orig)); ok {
					want = plain
				}
				if got != want {
					t.Errorf("%s link %d: untracked href changed from %q to %q", path, i, orig, got)
				}
				continue
			}
			tracked++
			want := trimURL(orig)
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
