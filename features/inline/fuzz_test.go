package inline

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// FuzzInline checks that Inline never panics, that its output parses, that
// only style attributes and <style> elements change, that an input
// without "<style" comes back unchanged, and that the output is the same
// with and without the caches (the fuzzer's inputs share sheets and
// markup, so the shared Inliner's plans get reused). Seeds: testdata/fuzz/FuzzInline
// and the testdata emails.
func FuzzInline(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*.html"))
	for _, path := range inputs {
		if strings.HasSuffix(path, ".golden.html") || strings.Contains(path, "40kb") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	in := New(Options{MaxInputBytes: 1 << 20})
	cold := New(Options{MaxInputBytes: 1 << 20, SheetCache: -1, PlanCache: -1})
	f.Fuzz(func(t *testing.T, src []byte) {
		out, err := in.Inline(src)
		want, coldErr := cold.Inline(bytes.Clone(src))
		if (err == nil) != (coldErr == nil) || !bytes.Equal(out, want) {
			t.Fatalf("with caches %q, %v; without %q, %v\n in: %q", out, err, want, coldErr, src)
		}
		if err != nil {
			if len(src) > 1<<20 {
				return
			}
			// The only other error: markup nested deeper than the
			// parser's limit.
			if _, perr := html.Parse(bytes.NewReader(src)); perr == nil {
				t.Fatalf("Inline failed on input html.Parse accepts: %v", err)
			}
			return
		}
		if !hasStyleTag(src) && !bytes.Equal(out, src) {
			t.Fatalf("input without <style> changed:\n in: %q\nout: %q", src, out)
		}
		if _, err := html.Parse(bytes.NewReader(out)); err != nil {
			if _, perr := html.Parse(bytes.NewReader(src)); perr == nil {
				t.Fatalf("output does not parse: %v\n in: %q\nout: %q", err, src, out)
			}
		}
		if err := checkPreserved(src, out); err != nil {
			t.Fatalf("%v\n in: %q\nout: %q", err, src, out)
		}
	})
}

// FuzzScanAttrs checks that scanAttrs finds the attributes html.Tokenizer
// finds, so that a rewritten style attribute is the one the parser read.
func FuzzScanAttrs(f *testing.F) {
	for _, s := range []string{
		`<a href="x" style="color:red">`, `<p/ class=x>`, `<br/>`, `<img src=a/>`,
		`<td style>`, `<td style=>`, `<td =a b= c = "d" e='f'>`, `<p a b/c>`, `<x STYLE=1 style=2>`,
		"<p\tstyle\n=\f'x'>", `<rect x="1"/>`, `<i class="self"/>`, `<a"b=c>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		z := html.NewTokenizer(bytes.NewReader(src))
		off := 0
		for {
			tt := z.Next()
			if tt == html.ErrorToken {
				return
			}
			n := len(z.Raw())
			if tt == html.StartTagToken || tt == html.SelfClosingTagToken {
				tok := z.Token()
				nameEnd := tagNameEnd(src, off, off+n)
				var got []html.Attribute
				for _, a := range scanAttrs(src, off, off+n, nameEnd, nil) {
					if a.dup {
						continue
					}
					got = append(got, html.Attribute{Key: strings.ReplaceAll(lowerString(src[a.keyStart:a.keyEnd]), "\x00", "\ufffd")})
				}
				if len(got) != len(tok.Attr) {
					t.Fatalf("%q: scanAttrs %q, tokenizer %q", src[off:off+n], got, tok.Attr)
				}
				for i := range got {
					if got[i].Key != tok.Attr[i].Key {
						t.Fatalf("%q: attribute %d: scanAttrs %q, tokenizer %q", src[off:off+n], i, got[i], tok.Attr[i])
					}
				}
			}
			off += n
		}
	})
}

// tagNameEnd returns the end of the name of the start tag src[start:end],
// exactly as html.Tokenizer delimits it.
func tagNameEnd(src []byte, start, end int) int {
	for i := start + 2; i < end; i++ {
		switch src[i] {
		case ' ', '\n', '\r', '\t', '\f', '/', '>':
			return i
		}
	}
	return end
}
