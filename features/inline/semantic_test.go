package inline

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/cascadia"
	"golang.org/x/net/html"
)

// effective computes, the way a browser applies one style attribute, the
// value of the longhand property prop: declarations apply in order, an
// !important one can only be replaced by a later !important one, and the
// margin and padding shorthands set their four sides. It is independent of
// the package's own CSS code.
func effective(style, prop string) (value string, important, ok bool) {
	for _, d := range splitDecls(style) {
		name, val, found := strings.Cut(d, ":")
		if !found {
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.TrimSpace(val)
		imp := false
		if i := strings.LastIndex(val, "!"); i >= 0 && strings.EqualFold(strings.TrimSpace(val[i+1:]), "important") {
			imp, val = true, strings.TrimSpace(val[:i])
		}
		v, sets := longhand(name, val, prop)
		if !sets || (important && !imp) {
			continue
		}
		value, important, ok = v, imp, true
	}
	return value, important, ok
}

// longhand returns the value declaration name: val gives to prop.
func longhand(name, val, prop string) (string, bool) {
	if name == prop {
		return val, true
	}
	for _, box := range []string{"margin", "padding"} {
		if name != box || !strings.HasPrefix(prop, box+"-") {
			continue
		}
		f := strings.Fields(val)
		side := map[string]int{"top": 0, "right": 1, "bottom": 2, "left": 3}[strings.TrimPrefix(prop, box+"-")]
		idx := [5][4]int{{}, {0, 0, 0, 0}, {0, 1, 0, 1}, {0, 1, 2, 1}, {0, 1, 2, 3}}
		if len(f) < 1 || len(f) > 4 {
			return "", false
		}
		return f[idx[len(f)][side]], true
	}
	return "", false
}

// splitDecls splits a style attribute at the semicolons outside quotes and
// parentheses.
func splitDecls(s string) []string {
	var out []string
	depth, quote, from := 0, byte(0), 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ';' && depth == 0:
			out = append(out, s[from:i])
			from = i + 1
		}
	}
	return append(out, s[from:])
}

// TestEffective checks the helper itself.
func TestEffective(t *testing.T) {
	for _, c := range []struct {
		style, prop, want string
		imp               bool
	}{
		{"padding-left: 2px; padding: 20px", "padding-left", "20px", false},
		{"padding: 20px; padding-left: 2px", "padding-left", "2px", false},
		{"margin: 0 auto; margin-top: 5px", "margin-left", "auto", false},
		{"color: red !important; color: blue", "color", "red", true},
		{"color: red !important; color: blue ! IMPORTANT", "color", "blue", true},
		{"font-family: 'a;b'; color: x", "font-family", "'a;b'", false},
	} {
		got, imp, ok := effective(c.style, c.prop)
		if !ok || got != c.want || imp != c.imp {
			t.Errorf("effective(%q, %q) = %q, %v, %v; want %q, %v", c.style, c.prop, got, imp, ok, c.want, c.imp)
		}
	}
}

// semanticCase is one expectation on the output of a testdata email: the
// element selected by sel has the effective value want for prop.
type semanticCase struct {
	file, sel, prop, want string
	important             bool
}

var semanticCases = []semanticCase{
	// Rule 1: cascade levels and specificity tuples.
	{"important_matrix", "#m1", "color", "blue", false},
	{"important_matrix", "#m2", "color", "green", false},
	{"important_matrix", "#m3", "color", "blue", true},
	{"important_matrix", "#m4", "color", "maroon", false},
	{"important_matrix", "#m5", "color", "blue", false},
	{"important_matrix", "#m6", "color", "green", false},
	{"important_matrix", "#m7", "color", "black", false},
	{"important_matrix", "#m8", "color", "green", false},
	{"receipt", "#orange", "color", "purple", false},
	{"receipt", "#eleven", "color", "orange", false},
	{"receipt", "#grand", "color", "maroon", false},
	{"specificity", "#one", "color", "orange", false},
	{"specificity", "#sz", "font-size", "13px", false},
	{"specificity", "#kind", "background-color", "pink", false},
	{"specificity", "#deco", "text-decoration", "none", false},
	{"specificity", "#li1", "color", "gray", false},
	{"specificity", "#only", "color", "black", false},
	{"newsletter", "#special", "color", "red", false},
	{"newsletter", "tr.footer td", "color", "#999999", false},
	{"newsletter", "#header h1", "color", "#0a66c2", false},
	// Rule 2: shorthand and longhand in cascade order.
	{"receipt", "#box", "padding-left", "20px", false},
	{"shorthand", "#s1", "padding-left", "20px", false},
	{"shorthand", "#s2", "padding-top", "10px", false},
	{"shorthand", "#s3", "margin-top", "0", false},
	{"shorthand", "#s3", "margin-left", "auto", false},
	{"shorthand", "#s6", "font-size", "14px", false},
	{"shorthand", "#s7", "width", "-webkit-fill-available", false},
	{"receipt", "p.note.strong", "margin-top", "0", false},
	{"style_in_body", "#first", "margin-bottom", "4px", false}, // the later sheet wins
	// Rule 3: !important kept only where the author wrote it inline.
	{"receipt", "p.note.strong", "font-weight", "bold", true},
	{"existing_inline", "#e2", "color", "yellow", true},
	{"uppercase", "td.Price", "font-weight", "BOLD", false},
	// Rule 6: broken CSS read like a browser.
	{"broken_css", ".a", "font-weight", "bold", false},
	{"broken_css", ".a", "color", "#333", false},
	{"broken_css", ".f", "color", "green", false},
	{"broken_css", ".g", "border", "1px solid red", false},
	{"broken_css", ".h", "color", "#333", false}, // a stray "}" spoils the next rule
	{"broken_css", ".j", "color", "#333", false}, // so does a stray ";"
	{"broken_css", ".l", "color", "navy", false},
	{"broken_css", ".n", "color", "silver", false},
	{"uppercase", "p.NOTE", "font-style", "Italic", false},
	{"promo", "h2", "font-size", "22PX", false},
	{"promo", "a.cta", "background", "var(--brand, #e4002b)", false},
	{"promo", "p.legal", "mso-line-height-rule", "exactly", false},
}

// TestSemantics checks effective values in the outputs, independently of
// the golden files.
func TestSemantics(t *testing.T) {
	docs := map[string]*html.Node{}
	for _, c := range semanticCases {
		doc, ok := docs[c.file]
		if !ok {
			in, err := os.ReadFile(filepath.Join("testdata", c.file+".html"))
			if err != nil {
				t.Fatal(err)
			}
			out, err := New(Options{}).Inline(in)
			if err != nil {
				t.Fatal(err)
			}
			if doc, err = html.Parse(bytes.NewReader(out)); err != nil {
				t.Fatal(err)
			}
			docs[c.file] = doc
		}
		n := cascadia.MustCompile(c.sel).MatchFirst(doc)
		if n == nil {
			t.Errorf("%s: no element %s", c.file, c.sel)
			continue
		}
		style, _ := attrValue(n, "style")
		got, imp, ok := effective(style, c.prop)
		if !ok || !strings.EqualFold(got, c.want) || imp != c.important {
			t.Errorf("%s %s: %s = %q (important %v, set %v), want %q (important %v); style=%q",
				c.file, c.sel, c.prop, got, imp, ok, c.want, c.important, style)
		}
	}
}

// TestKeptRules checks what stays in <style> and what leaves it.
func TestKeptRules(t *testing.T) {
	for _, c := range []struct {
		file       string
		kept, gone []string
	}{
		{"newsletter", []string{"@media only screen and (max-width: 620px)", "h1 { font-size: 20px !important; }", "a.button:hover", "a:hover", "<!--[if mso]><style type=\"text/css\">body, table, td { font-family: Arial, sans-serif !important; }</style><![endif]-->"},
			[]string{".highlight {", "#special {", "#header h1 {"}},
		{"receipt", []string{"::selection { background: #ffe08a; }", ".btn:focus", "a:visited { color: #0a66c2; }"},
			[]string{"a.ok", "#eleven", ".note {", "tr:nth-child(even) td {"}},
		{"promo", []string{"@import url(", "@font-face {", "@supports (display: grid)", ".price::after", "p.lead::after { letter-spacing: .5px; }"},
			[]string{":root {", "H2 {", ".cta {"}},
		{"transactional", []string{".btn:visited {", ".btn:hover, .btn:focus {"}, []string{".btn, "}},
		{"broken_css", []string{"}\n  .h { color: purple }", ";\n  .j { color: teal }", "@foo bar baz;", "div..k { color: red }", ".l { color: navy; @nested { x: y } }", ".m { color: maroon; .child { color: red } }"},
			[]string{".n {", ".a {", "p { color"}},
		{"mailchimp", []string{".ExternalClass,", "#outlook a{padding:0;}", "a[x-apple-data-detectors]", "h2, h3, h4, h5, h6{display:block;", "@media only screen and (max-width: 480px)"},
			[]string{"p{margin:10px 0;padding:0;}", ".mcnPreviewText{"}},
		{"nasty_markup", []string{"p { color: #111; }", "b { font-weight: 800; }", "template p, .tpl { color: red; }", "<style>rect { stroke: red }</style>", "<textarea><style>.x{color:red}</style></textarea>"},
			[]string{"td { border", "span.x {"}},
		{"conditional", []string{".mso-only { color: red; }", "<![if !mso]>\n<style>\n  .hide-mso { max-height: none; }\n</style>\n<![endif]>"},
			[]string{".btn {", ".fallback { font-family: 'Lato'"}},
		{"multiple_styles", []string{"<style data-inline=\"false\">\n  .t { text-transform: uppercase; }", "<style data-embed>", "<style media=\"print\">", "<style type=\"text/less\">"},
			[]string{"<style media=\"screen\">", ".t { color: blue; }"}},
	} {
		in, err := os.ReadFile(filepath.Join("testdata", c.file+".html"))
		if err != nil {
			t.Fatal(err)
		}
		out, err := New(Options{}).Inline(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range c.kept {
			if !bytes.Contains(out, []byte(s)) {
				t.Errorf("%s: output lost %q", c.file, s)
			}
		}
		for _, s := range c.gone {
			if bytes.Contains(out, []byte(s)) {
				t.Errorf("%s: output still has %q", c.file, s)
			}
		}
	}
}
