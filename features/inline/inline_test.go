package inline

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/andybalholm/cascadia"
	"golang.org/x/net/html"
)

func inline(t *testing.T, opts Options, in string) string {
	t.Helper()
	out, err := New(opts).Inline([]byte(in))
	if err != nil {
		t.Fatalf("Inline(%q): %v", in, err)
	}
	return string(out)
}

// TestNoStyleUnchanged: without a <style> element the input comes back as
// is (the same slice), conditional comments, entities and all.
func TestNoStyleUnchanged(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "no_style.html"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := New(Options{}).Inline(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) || &out[0] != &in[0] {
		t.Errorf("output is not the input itself")
	}
	// A <style> only inside a conditional comment or a textarea changes
	// nothing either.
	for _, s := range []string{
		`<!--[if mso]><style>p{color:red}</style><![endif]--><p>x</p>`,
		`<textarea><style>p{color:red}</style></textarea><p>x</p>`,
		`<style data-inline="false">p{color:red}</style><p>x</p>`,
		`<p>a &lt;style&gt; in text</p>`,
	} {
		if got := inline(t, Options{}, s); got != s {
			t.Errorf("Inline(%q) = %q, want it unchanged", s, got)
		}
	}
}

func TestTooLarge(t *testing.T) {
	in := New(Options{MaxInputBytes: 100})
	if _, err := in.Inline(bytes.Repeat([]byte("x"), 100)); err != nil {
		t.Errorf("100 bytes at limit 100: %v", err)
	}
	_, err := in.Inline(bytes.Repeat([]byte("x"), 101))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("101 bytes at limit 100: err = %v, want ErrTooLarge", err)
	}
	if New(Options{}).opts.MaxInputBytes != DefaultMaxInputBytes {
		t.Errorf("default limit not applied")
	}
}

// TestTooDeep: markup nested deeper than the HTML parser accepts is an
// error, not a panic and not a half-done rewrite.
func TestTooDeep(t *testing.T) {
	in := "<style>div{color:red}</style>" + strings.Repeat("<div>", 600)
	out, err := New(Options{}).Inline([]byte(in))
	if err == nil || out != nil {
		t.Fatalf("Inline of 600 nested divs = %d bytes, %v; want an error", len(out), err)
	}
}

// TestSpecificityTuple: eleven classes lose to one id, whatever the
// source order (douceur's weighted sum got this wrong).
func TestSpecificityTuple(t *testing.T) {
	classes := ".c1.c2.c3.c4.c5.c6.c7.c8.c9.c10.c11"
	attr := "c1 c2 c3 c4 c5 c6 c7 c8 c9 c10 c11"
	for _, css := range []string{
		"#x{color:orange}" + classes + "{color:purple}",
		classes + "{color:purple}#x{color:orange}",
	} {
		got := inline(t, Options{}, "<style>"+css+`</style><p id="x" class="`+attr+`">x</p>`)
		if !strings.Contains(got, `style="color: orange"`) {
			t.Errorf("%s: got %s", css, got)
		}
	}
	a := entry{level: levelSheet, spec: cascadia.Specificity{0, 11, 0}}
	b := entry{level: levelSheet, spec: cascadia.Specificity{1, 0, 0}}
	if compareEntries(a, b) >= 0 || compareEntries(b, a) <= 0 {
		t.Errorf("(0,11,0) must sort before (1,0,0)")
	}
	imp := entry{level: levelSheetImportant}
	inl := entry{level: levelInline, order: inlineOrder}
	if compareEntries(inl, imp) >= 0 {
		t.Errorf("inline normal must sort before sheet !important")
	}
}

// TestImportantStripping covers rule 3 on small inputs.
func TestImportantStripping(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`<style>p{color:red!important}</style><p>x</p>`, `<p style="color: red">x</p>`},
		{`<style>p{color:red}</style><p style="color:blue!important">x</p>`, `<p style="color:blue!important">x</p>`},
		{`<style>p{margin:0}</style><p style="color:blue!important">x</p>`, `<p style="margin: 0; color: blue !important">x</p>`},
		{`<style>p{color:red}@media(max-width:1px){p{color:blue!important}}</style><p>x</p>`,
			`<style>@media(max-width:1px){p{color:blue!important}}</style><p style="color: red">x</p>`},
	} {
		if got := inline(t, Options{}, c.in); got != c.want {
			t.Errorf("Inline(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

// TestGroups covers rule 5: selector lists are split; a list with an
// invalid member is dropped whole by browsers and so kept whole here.
func TestGroups(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`<style>a:hover, .b, p::before{color:red}</style><p class="b">x</p>`,
			`<style>a:hover, p::before{color:red}</style><p class="b" style="color: red">x</p>`},
		{`<style>.b, p:unknown-thing{color:red}</style><p class="b">x</p>`,
			`<style>.b, p:unknown-thing{color:red}</style><p class="b">x</p>`},
		{`<style>.b, ::-moz-selection{color:red}</style><p class="b">x</p>`,
			`<style>.b, ::-moz-selection{color:red}</style><p class="b">x</p>`},
		{`<style>.b,{color:red}</style><p class="b">x</p>`,
			`<style>.b,{color:red}</style><p class="b">x</p>`},
		{`<style>.b, p:contains(x){color:red}</style><p class="b">x</p>`,
			`<style>.b, p:contains(x){color:red}</style><p class="b">x</p>`},
		{`<style>.b, p[a!=b]{color:red}</style><p class="b">x</p>`,
			`<style>.b, p[a!=b]{color:red}</style><p class="b">x</p>`},
		{`<style>p:not(:hover){color:red}</style><p>x</p>`,
			`<style>p:not(:hover){color:red}</style><p>x</p>`},
		{`<style>a:link{color:red}</style><a href="#">x</a>`,
			`<style>a:link{color:red}</style><a href="#">x</a>`},
		{`<style>.b, .b.c{color:red}.c{color:blue}</style><p class="b c">x</p>`,
			`<p class="b c" style="color: red">x</p>`},
	} {
		if got := inline(t, Options{}, c.in); got != c.want {
			t.Errorf("Inline(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

// TestStyleAttributeEscaping covers rule 8.
func TestStyleAttributeEscaping(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`<style>p{font-family:"A B",x}</style><p>x</p>`, `<p style="font-family: 'A B',x">x</p>`},
		{`<style>p{content:"it's"}</style><p>x</p>`, `<p style="content: &quot;it's&quot;">x</p>`},
		{`<style>p{background:url(a?b=1&c=2)}</style><p>x</p>`, `<p style="background: url(a?b=1&amp;c=2)">x</p>`},
		{`<style>p{margin:0}</style><p style='font-family: "X"'>x</p>`, `<p style="margin: 0; font-family: 'X'">x</p>`},
		{`<style>p{margin:0}</style><p style="content: '&quot;'">x</p>`, `<p style="margin: 0; content: '&quot;'">x</p>`},
		{`<style>p{margin:0}</style><p style="a:b&amp;c">x</p>`, `<p style="margin: 0; a: b&amp;c">x</p>`},
		{"<style>p{margin:0 /* c */ auto;\n color :\n red}</style><p>x</p>", `<p style="margin: 0 auto; color: red">x</p>`},
	} {
		got := inline(t, Options{}, c.in)
		if got != c.want {
			t.Errorf("Inline(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
		// The attribute must decode to CSS that keeps its meaning.
		doc, err := html.Parse(strings.NewReader(got))
		if err != nil {
			t.Fatal(err)
		}
		if p := cascadia.MustCompile("p").MatchFirst(doc); p == nil {
			t.Errorf("%q: no p", got)
		}
	}
}

// TestInsertionPoint: a new style attribute goes after the last attribute,
// and never where it would become part of another attribute.
func TestInsertionPoint(t *testing.T) {
	for _, c := range []struct{ sel, in, want string }{
		{"img", `<img src=a/>`, `<img src=a/ style="margin: 0">`},
		{"img", `<img src="a" />`, `<img src="a" style="margin: 0" />`},
		{"br", `<br/>`, `<br style="margin: 0"/>`},
		{"div", `<div a= >`, `<div style="margin: 0" a= >`},
		{"p", `<p/ class=x>`, `<p/ class=x style="margin: 0">`},
		{"div", `<div style>`, `<div style="margin: 0">`},
		{"div", `<div style=>`, `<div style="margin: 0">`},
		{"div", `<div STYLE = 'color:red' style="x:y">`, `<div STYLE="margin: 0; color: red" style="x:y">`},
	} {
		got := inline(t, Options{}, "<style>"+c.sel+"{margin:0}</style>"+c.in)
		if got != c.want {
			t.Errorf("Inline(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

// TestElementMapping: elements the parser creates or clones get nothing,
// and the rules that match them stay in <style>; inert and foreign
// content is handled.
func TestElementMapping(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		// Implicit html/body: the rule matching them stays.
		{`<style>body{margin:0}p{color:red}</style><p>x</p>`, `<style>body{margin:0}</style><p style="color: red">x</p>`},
		// Explicit body gets it.
		{`<style>body{margin:0}</style><body>x</body>`, `<body style="margin: 0">x</body>`},
		// Implicit tbody.
		{`<style>tbody{color:red}td{color:blue}</style><table><tr><td>x</td></tr></table>`,
			`<style>tbody{color:red}</style><table><tr><td style="color: blue">x</td></tr></table>`},
		// A stray </p> makes an empty <p> with no start tag.
		{`<style>p{color:red}</style><div>a</p></div>`, `<style>p{color:red}</style><div>a</p></div>`},
		// The adoption agency clones <b>; the original gets the style,
		// the rule stays for the clone.
		{`<style>b{color:red}</style><b>1<p>2</b>3</p>`, `<style>b{color:red}</style><b style="color: red">1<p>2</b>3</p>`},
		// Template content is inert.
		{`<style>.t{color:red}</style><template><p class="t">x</p></template>`,
			`<style>.t{color:red}</style><template><p class="t">x</p></template>`},
		// A second <body> tag merges into the first.
		{`<style>body{margin:0}</style><body class=a><body class=b>x`, `<body class=a style="margin: 0"><body class=b>x`},
		// An implicit body takes the attributes of a later <body> tag.
		// A selector naming a marker-like attribute moves the marker
		// prefix, so it sees only the author's attributes.
		{`<style>body{margin:0}body:not([x-sg-3]){color:red}</style><p>a</p><body style="padding:0"><body class=b>x`,
			`<p>a</p><body style="margin: 0; color: red; padding: 0"><body class=b>x`},
		// SVG elements take style attributes; the svg <style> is left.
		{`<style>rect{fill:red}</style><svg><style>rect{fill:blue}</style><rect/></svg>`,
			`<svg><style>rect{fill:blue}</style><rect style="fill: red"/></svg>`},
		// <image> becomes <img> in the parser: no start tag of that name.
		{`<style>img{border:0}</style><image src=x>`, `<style>img{border:0}</style><image src=x>`},
		// Removing the element would glue "<" to what follows.
		{`a<<style>p{color:red}</style>b><p>x</p>`, `a<<style></style>b><p style="color: red">x</p>`},
	} {
		if got := inline(t, Options{}, c.in); got != c.want {
			t.Errorf("Inline(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

// TestMarkerCollision: attributes of the author that look like the
// internal markers cannot tie an element to another start tag.
func TestMarkerCollision(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`<style>p{color:red}</style><b x-sg-2>1</b><p X-SG-1>2</p>`, `<b x-sg-2>1</b><p X-SG-1 style="color: red">2</p>`},
		{`<style>p{color:red}</style><a x-sg-3 href=#><p>2</p></a>`, `<a x-sg-3 href=#><p style="color: red">2</p></a>`},
	} {
		if got := inline(t, Options{}, c.in); got != c.want {
			t.Errorf("Inline(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
	// With every candidate prefix taken, nothing is inlined.
	in := `<style>p{color:red}</style><p>x</p><!-- x-sg- x-sg0- x-sg00- x-sg000- x-sg0000- x-sg00000- x-sg000000- x-sg0000000- -->`
	if got := inline(t, Options{}, in); got != in {
		t.Errorf("all prefixes taken: got %q", got)
	}
}

// TestQuirksMode: without a standards DOCTYPE, class and id selectors
// ignore case, as in a browser.
func TestQuirksMode(t *testing.T) {
	for _, c := range []struct {
		doctype string
		quirks  bool
	}{
		{"", true},
		{"<!DOCTYPE html>", false},
		{"<!doctype HTML>", false},
		{`<!DOCTYPE html SYSTEM "about:legacy-compat">`, false},
		{`<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">`, false},
		{`<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">`, true},
		{`<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" "http://www.w3.org/TR/html4/loose.dtd">`, false},
		{`<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">`, true},
		{"<!DOCTYPE foo>", true},
		{"<!DOCTYPE>", true},
		{`<!DOCTYPE html PUBLIC "unterminated>`, true},
		{"<!-- c -->\n<!DOCTYPE html>", false},
		{"<p>x</p><!DOCTYPE html>", true},
		{"\ufeff<!DOCTYPE html>", false},
	} {
		d := newDocument([]byte(c.doctype + "<style></style>"))
		if got := quirksDoctype(d.scan.doctype); got != c.quirks {
			t.Errorf("%q: quirks = %v, want %v", c.doctype, got, c.quirks)
		}
		got := inline(t, Options{}, c.doctype+`<style>.Foo{color:red}#Bar{margin:0}</style><p class="foo" id="bar">x</p>`)
		if inlined := strings.Contains(got, `style="color: red; margin: 0"`); inlined != c.quirks {
			t.Errorf("%q: case-insensitive match = %v, want %v: %s", c.doctype, inlined, c.quirks, got)
		}
	}
}

// TestKeepStyleTags: the option keeps the emptied element and its comments.
func TestKeepStyleTags(t *testing.T) {
	in := "<style>\n/* c */\np{color:red}\n</style><p>x</p>"
	if got, want := inline(t, Options{KeepStyleTags: true}, in), "<style>\n/* c */\n</style><p style=\"color: red\">x</p>"; got != want {
		t.Errorf("KeepStyleTags: got %q, want %q", got, want)
	}
	if got, want := inline(t, Options{}, in), `<p style="color: red">x</p>`; got != want {
		t.Errorf("default: got %q, want %q", got, want)
	}
}

// TestUnmatchedRulesStay: a rule that matches nothing may be for Outlook's
// conditional markup: it is kept.
func TestUnmatchedRulesStay(t *testing.T) {
	in := `<style>.mso{color:red}p{margin:0}</style><!--[if mso]><p class="mso">o</p><![endif]--><p>x</p>`
	want := `<style>.mso{color:red}</style><!--[if mso]><p class="mso">o</p><![endif]--><p style="margin: 0">x</p>`
	if got := inline(t, Options{}, in); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestLexPartition: the CSS tokens cover their input exactly.
func TestLexPartition(t *testing.T) {
	for _, s := range []string{"", "a{b:c}", "/* unclosed", "'unclosed\n", "url(a b)", "\x00x{}", "@media x{y{z:1}}", "\\"} {
		var b []byte
		for _, tk := range lexCSS([]byte(s), nil) {
			b = append(b, s[tk.start:tk.end]...)
		}
		if string(b) != s {
			t.Errorf("lexCSS(%q) covers %q", s, b)
		}
	}
}

// TestConcurrent runs one Inliner from many goroutines (go test -race).
func TestConcurrent(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "receipt.html"))
	if err != nil {
		t.Fatal(err)
	}
	il := New(Options{})
	want, err := il.Inline(in)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				got, err := il.Inline(in)
				if err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("concurrent result differs (err %v)", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCostlySelectorsOnWideDocuments: on a document with more element
// siblings than wideLimit, sibling-counting selectors stay in <style>.
func TestCostlySelectorsOnWideDocuments(t *testing.T) {
	in := "<style>tr:nth-child(even){color:red}td{margin:0}</style><table>" + strings.Repeat("<tr><td>x</td></tr>", wideLimit+1) + "</table>"
	got := inline(t, Options{}, in)
	if !strings.HasPrefix(got, "<style>tr:nth-child(even){color:red}</style>") || strings.Contains(got, "color: red") {
		t.Errorf("nth-child on a wide document: got %.200q", got)
	}
}
