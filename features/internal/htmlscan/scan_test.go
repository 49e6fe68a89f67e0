package htmlscan

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"

	"github.com/smtpgate/smtpgate/features/internal/htmlscan/htmlscantest"
)

// kindOf is the Kind of an x/net/html token type.
func kindOf(tt xhtml.TokenType) Kind {
	switch tt {
	case xhtml.TextToken:
		return Text
	case xhtml.StartTagToken:
		return StartTag
	case xhtml.EndTagToken:
		return EndTag
	case xhtml.CommentToken:
		return Comment
	case xhtml.DoctypeToken:
		return Doctype
	}
	return EOF
}

// checkScanner fails t unless Scanner splits in exactly like x/net/html,
// finds the same attribute names and decodes the same values.
func checkScanner(t *testing.T, in []byte) {
	t.Helper()
	ref := htmlscantest.Reference(in)
	s := Scanner{In: in, WantAttrs: func([]byte) bool { return true }}
	for i := 0; ; i++ {
		k := s.Next()
		if k == EOF {
			if i != len(ref) {
				t.Fatalf("scanner ended after %d tokens, x/net/html has %d (next %v) in %q", i, len(ref), ref[i], in)
			}
			return
		}
		if i >= len(ref) {
			t.Fatalf("scanner has extra token %d[%d:%d] in %q", k, s.Start, s.End, in)
		}
		r := ref[i]
		if k != kindOf(r.Type) || s.Start != r.Start || s.End != r.End {
			t.Fatalf("token %d: scanner %d[%d:%d] %q, x/net/html %v %q, in %q", i, k, s.Start, s.End, in[s.Start:s.End], r, in[r.Start:r.End], in)
		}
		if k != StartTag {
			continue
		}
		var got []xhtml.Attribute
		for _, a := range s.Attrs {
			if a.Saved {
				key := strings.ReplaceAll(string(asciiLower(in[a.KeyStart:a.KeyEnd])), "\x00", "\ufffd")
				got = append(got, xhtml.Attribute{Key: key, Val: UnescapeAttr(in[a.ValStart:a.ValEnd])})
			}
		}
		if len(got) != len(r.Attrs) {
			t.Fatalf("token %d %q: scanner attributes %q, x/net/html %q", i, in[r.Start:r.End], got, r.Attrs)
		}
		for j := range got {
			if got[j].Key != r.Attrs[j].Key || got[j].Val != r.Attrs[j].Val {
				t.Fatalf("token %d %q attribute %d: scanner %q=%q, x/net/html %q=%q", i, in[r.Start:r.End], j, got[j].Key, got[j].Val, r.Attrs[j].Key, r.Attrs[j].Val)
			}
		}
	}
}

// FuzzScanner checks the Scanner against x/net/html on arbitrary input:
// same token boundaries and kinds, same attributes and decoded values.
// Seeds: testdata/fuzz/FuzzScanner and the HTML test inputs of click
// tracking.
func FuzzScanner(f *testing.F) {
	for _, dir := range []string{"../../track/testdata/html", "../../track/testdata/pixel"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.html"))
		if err != nil || len(files) == 0 {
			f.Fatalf("no seeds in %s (%v)", dir, err)
		}
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkScanner(t, in)
	})
}

// asciiLower returns a lower-cased copy of b (ASCII letters only).
func asciiLower(b []byte) []byte {
	out := bytes.Clone(b)
	for i, c := range out {
		if 'A' <= c && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return out
}

func TestScannerMatchesXNetHTML(t *testing.T) {
	cases := []string{
		"", "plain", "<", "a<", "<<", "</", "</>", "</ >", "</1>", "<?xml?>", "<!", "<!>", "<!->", "<!-", "<!--", "<!---->",
		"<!-->x", "<!--->x", "<!-- a -- b -->", "<!-- a --!>x", "<!-- a --!", "<!-- --!-x-->", "<!DOCTYPE html>", "<!doctype", "<!DOC", "<!DOCX>",
		"<a", "<a ", "<a href", `<a href="x`, `<a href='x'`, "<a href=x", "<a href=x>", "<a/>", "<a/href=x>", "<a =x>", "<a ==x>", "<a x/y>",
		`<a x = "1" y= '2' z =3 w>`, `<a HREF=1 href=2 Href=3>`, "<a x=>", "<a x= >", `<a x="a>b">`, "<A\tB\nC\fD\rE>",
		"<a href=\"&amp;&lt&copy=1&copy;&notit;&notit&#x41;&#65&#xZ;&#;&fjlig;&semi;&nvlt;&\">",
		"<a href=\"&#0A0&#9x&#9&#1;&#65&#x9&#xA;&#128&#55296&#x110000\">", "<a href=&#9>",
		"<a x=\"\r\n\r\x00\">", "<a\x00 b\x00=c\x00>", "<a &amp>",
		"<style>a</style>", "<style>a</styl</style>", "<STYLE>x</Style >y", "<style>x</style", "<style>x</", "<style></style>",
		"<title>&amp;</title>", "<textarea><a href=x></textarea>", "<xmp><a></xmp>", "<plaintext><a href=x></plaintext>",
		"<iframe><a></iframe><a>", "<noscript><a href=x></noscript>", "<style/>x</style>",
		"<script>a</script>", "<script><!--</script>", "<script><!-- <script> </script> --></script>x</script>",
		"<script><!-- <script></script>", "<script><!--<script>-->x</script>", "<script><!-- -- ></script>",
		"<script><!-- <scrip", "<script><!-- <script", "<script><!-- <script>", "<script><!-- <script> </scri", "<script><!-- <SCRIPT/>--></script>",
		"<script><!-</script>", "<script><!", "<script><!-", "<script></scriptx></script>",
		"<!--[if mso]><a href=\"https://x\">x</a><![endif]-->", "<![if !mso]><a href=x>y</a><![endif]>",
		"<![CDATA[<a href=x>]]>", "<p>a &nbsp; b</p>",
	}
	for _, c := range cases {
		checkScanner(t, []byte(c))
	}
}
