package inline

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// streamItem is one token of an HTML stream, reduced to what the inliner
// must preserve.
type streamItem struct {
	tt   html.TokenType
	raw  string           // text (white space removed), comments, end tags
	name string           // start tags
	attr []html.Attribute // start tags, without style
}

// preservedStream tokenizes b and drops what the inliner may change: the
// <style> elements and the style attributes. Adjacent text is merged and
// its white space dropped (removing a <style> line removes a newline).
func preservedStream(b []byte) []streamItem {
	var out []streamItem
	z := html.NewTokenizer(bytes.NewReader(b))
	inStyle := false
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return out
		}
		raw := string(z.Raw())
		if inStyle {
			if tt == html.TextToken {
				continue
			}
			inStyle = false
			if tt == html.EndTagToken {
				continue
			}
		}
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			if tok.Data == "style" {
				inStyle = true
				continue
			}
			attr := slices.DeleteFunc(tok.Attr, func(a html.Attribute) bool { return a.Key == "style" })
			out = append(out, streamItem{tt: tt, name: tok.Data, attr: attr})
		case html.TextToken:
			txt := strings.Join(strings.Fields(raw), "")
			if n := len(out); n > 0 && out[n-1].tt == html.TextToken {
				out[n-1].raw += txt
			} else if txt != "" {
				out = append(out, streamItem{tt: tt, raw: txt})
			}
		default:
			out = append(out, streamItem{tt: tt, raw: raw})
		}
	}
}

// checkPreserved reports how out differs from in beyond style attributes
// and <style> elements.
func checkPreserved(in, out []byte) error {
	a, b := preservedStream(in), preservedStream(out)
	for i := range min(len(a), len(b)) {
		x, y := a[i], b[i]
		if x.tt != y.tt || x.raw != y.raw || x.name != y.name || !slices.Equal(x.attr, y.attr) {
			return fmt.Errorf("token %d differs:\n in: %+v\nout: %+v", i, x, y)
		}
	}
	if len(a) != len(b) {
		return fmt.Errorf("%d tokens in, %d out", len(a), len(b))
	}
	return nil
}

// TestOnlyStylesChange checks, for every testdata email, that everything
// but style attributes and <style> elements comes out byte for byte, and
// that every conditional comment is untouched.
func TestOnlyStylesChange(t *testing.T) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*.html"))
	for _, path := range inputs {
		if strings.HasSuffix(path, ".golden.html") {
			continue
		}
		in, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out, err := New(Options{}).Inline(in)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkPreserved(in, out); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		for _, c := range conditionalComments(in) {
			if !bytes.Contains(out, c) {
				t.Errorf("%s: conditional comment changed: %q", path, c)
			}
		}
	}
}

// conditionalComments returns the raw conditional comments of b.
func conditionalComments(b []byte) [][]byte {
	var out [][]byte
	z := html.NewTokenizer(bytes.NewReader(b))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return out
		}
		raw := z.Raw()
		if tt == html.CommentToken && (bytes.HasPrefix(raw, []byte("<!--[if")) || bytes.HasPrefix(raw, []byte("<![")) || bytes.Contains(raw, []byte("<![endif]"))) {
			out = append(out, bytes.Clone(raw))
		}
	}
}
