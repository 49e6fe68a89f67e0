package inline

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/cascadia"
	"golang.org/x/net/html"
)

// FuzzShortTokens checks that shortening text and comments in the copy
// given to the parser never changes what inlining sees: the same elements
// with the same attributes in the same places, and the same elements
// matching :empty. Seeds: the testdata emails, the FuzzInline corpus and
// the cases below.
func FuzzShortTokens(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*.html"))
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzInline", "*"))
	for _, path := range append(inputs, seeds...) {
		if strings.HasSuffix(path, ".golden.html") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		if filepath.Dir(path) != "testdata" {
			// A go test fuzz v1 file: the input is the quoted []byte line.
			b = corpusInput(f, b)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"<pre>\n\nab</pre><b>x<p>y",
		"<pre>\nab</pre>",
		"<A =\">\">0",
		"<pre>\r\n</pre><pre>\r\n\r\n</pre><pre>\r\r</pre><pre>\r</pre><pre>\r\nab\r\n</pre><b>q<p>\r\n  \r\n<pre>\n\r\n</pre>",
		"<table>\r\n  <tr>\r\n<td>x\r\ny</td></tr>\r\n z\r\n</table><style>\r\np{margin:0}\r\n</style>\r\n",
		"<p =x>y</p>",
		"<p><b>x</p>   <p>y</p><pre>\n\n\n</pre><b>z<pre>\n</pre><pre>\n  \n</pre><pre>  \n x</pre><listing>\n\n</listing>",
		"<table>\n\n   <tr>\t\t\t<td>x</td>   </tr>\n   \n</table><select>   <option>   </select>",
		"<head>   \n  <title>t</title>   </head>   \n  <body>  <frameset>   </frameset>",
		"<table>  ab  <tr><td>x</td></tr>text</table>",
		"<table><tr> \t </tr> x</table>",
		"<html><head>  <title>t</title> some text <meta name=a></head><body>",
		"  lead <!DOCTYPE html><p>",
		"<frameset> a b <frame></frameset> c",
		"<p>\u00a0</p><p>\v</p><p> \v x</p><p>\u2003</p><div>  .  </div>",
		"<select> opt <option>x</select>",
		"<table><colgroup> x <col></colgroup></table>",
		"<svg><![CDATA[ > <!-- ]]><p class=x> --></svg>",
		"<svg><style> a <p> b</style></svg><p>x",
		"<noscript> <p>x</p> </noscript><textarea>\nab</textarea>",
		"<b><i>a</b> text <p>x</i>y",
		"<!--x--><html><!-- y --><head></head><!-- z --><body><!--> -- ! -->--!> a<!-",
		"text\x00 more<p>\x00</p><table>\x00<tr>",
		"<p>a&amp;b</p><p>&#32;</p><p>&nbsp;</p><p>\r\n x</p>",
		"<style>p:empty{color:red}</style><p>  </p><p> x </p><p><!-- c --></p>",
		"<a x /y>a</a><a /x>b</a><a/x>c</a><svg><g x=1/><g x=1 /></g></svg><a =y x=\"1\"=z>",
		"<a k x=\"1\"=z>a</a><a x=\"1\"=z>b</a><a x=\"1\"/=z>c</a>",
		"<b href=1>x<b href=1>y<b href=1>z<b href=1>w<p>q",
		"<table><input type=hidden x=1><input TYPE=HIDDEN><input type=text></table>",
		"<svg><font color=red>x</font><font COLOR=red></svg><math><annotation-xml encoding=text/html><p>y",
		"<html lang=en x=1><body a=1><body b=2 class=c><html id=h y=2>",
		"<svg><a xlink:href=x xml:lang=fr>t</a></svg><p x\x00y=1 \xc3\xa9=2>",
		"<style>[data-x],[ href ],[title~=a],[a|=b]{margin:0}</style><p data-x=1 href=2 title=a a=b c=d>",
		"<style>[data\\-x]{margin:0}</style><p data-x=1 b=2>",
		"<style>[*|href]{margin:0}</style><p href=1 b=2>",
		"<style>[/**/href]{margin:0}</style><p href=1 b=2>",
	} {
		f.Add([]byte(s))
	}
	empty := cascadia.MustCompile(":empty")
	f.Fuzz(func(t *testing.T, src []byte) {
		var long scanResult
		long.scanMarked(src, false, nil)
		short := scanHTML(src)
		keep := func(html.Attribute) bool { return true }
		if !bytes.Contains(src, []byte("<![CDATA[")) {
			k := newAttrKeeper(src)
			keep = func(a html.Attribute) bool {
				return a.Namespace != "" || strings.HasPrefix(a.Key, long.prefix) || k.keeps([]byte(a.Key))
			}
		}
		if long.prefix != short.prefix || len(long.tags) != len(short.tags) || len(long.styles) != len(short.styles) {
			t.Fatalf("scans differ in tags or styles")
		}
		a, errA := html.Parse(bytes.NewReader(long.marked))
		b, errB := html.Parse(bytes.NewReader(short.marked))
		if (errA == nil) != (errB == nil) {
			t.Fatalf("parse errors differ: %v / %v\n in: %q", errA, errB, src)
		}
		if errA != nil {
			return
		}
		if err := sameElements(a, b, empty, keep); err != nil {
			t.Fatalf("%v\n   in: %q\nshort: %q", err, src, short.marked)
		}
	})
}

// corpusInput returns the []byte value of a "go test fuzz v1" file.
func corpusInput(t testing.TB, file []byte) []byte {
	t.Helper()
	var v []byte
	for _, line := range strings.Split(string(file), "\n") {
		if q, ok := strings.CutPrefix(line, "[]byte("); ok {
			if _, err := fmt.Sscanf(strings.TrimSuffix(q, ")"), "%q", &v); err != nil {
				t.Fatalf("corpus line %q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("no []byte in corpus file %q", file)
	return nil
}

// sameElements compares the element trees under a and b: element names,
// namespaces, the attributes keep keeps, and :empty, child by child.
func sameElements(a, b *html.Node, empty cascadia.Selector, keep func(html.Attribute) bool) error {
	ca, cb := elementChildren(a), elementChildren(b)
	if len(ca) != len(cb) {
		return fmt.Errorf("<%s> has %d element children, %d when shortened", a.Data, len(ca), len(cb))
	}
	for i := range ca {
		x, y := ca[i], cb[i]
		kx, ky := keptAttrs(x.Attr, keep), keptAttrs(y.Attr, keep)
		if x.Data != y.Data || x.Namespace != y.Namespace || kx != ky {
			return fmt.Errorf("element %d of <%s>: %s %q %v became %s %q %v", i, a.Data, x.Namespace, x.Data, kx, y.Namespace, y.Data, ky)
		}
		if empty.Match(x) != empty.Match(y) {
			return fmt.Errorf("<%s %v>: :empty %v became %v", x.Data, x.Attr, empty.Match(x), empty.Match(y))
		}
		if err := sameElements(x, y, empty, keep); err != nil {
			return err
		}
	}
	return nil
}

// keptAttrs prints the attributes that keep keeps.
func keptAttrs(attrs []html.Attribute, keep func(html.Attribute) bool) string {
	var kept []html.Attribute
	for _, a := range attrs {
		if keep(a) {
			kept = append(kept, a)
		}
	}
	return fmt.Sprint(kept)
}

func elementChildren(n *html.Node) []*html.Node {
	var out []*html.Node
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode {
			out = append(out, c)
		}
	}
	return out
}
