package summary

import (
	"bytes"
	"reflect"
	"testing"

	"golang.org/x/net/html"
)

// htmlTextSeparatePass and htmlLinksSeparatePass are the text and link
// extraction as they were before scanHTML did both in one pass; the fuzz
// target keeps scanHTML equal to them.

func htmlTextSeparatePass(src []byte) []byte {
	if len(src) == 0 {
		return nil
	}
	z := html.NewTokenizer(bytes.NewReader(src))
	var out []byte
	skip := 0 // depth inside script, style, head, title
	for len(out) < MaxText {
		switch z.Next() {
		case html.ErrorToken:
			return out
		case html.StartTagToken:
			if name, _ := z.TagName(); skipText(name) {
				skip++
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); skipText(name) && skip > 0 {
				skip--
			}
		case html.TextToken:
			if skip > 0 {
				continue
			}
			for _, w := range bytes.Fields(z.Text()) {
				if len(out) > 0 {
					out = append(out, ' ')
				}
				out = append(out, w...)
			}
		}
	}
	return out
}

func (s *linkSet) htmlLinksSeparatePass(doc []byte) {
	z := html.NewTokenizer(bytes.NewReader(doc))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return
		case html.StartTagToken, html.SelfClosingTagToken:
			// Look at the raw bytes first: TagName copies, and most tags
			// are not <a>.
			if raw := z.Raw(); len(raw) < 3 || raw[1]|0x20 != 'a' || !isTagNameEnd(raw[2]) {
				continue
			}
			name, more := z.TagName()
			if !more || len(name) != 1 || name[0] != 'a' {
				continue
			}
			for more {
				var key, val []byte
				key, val, more = z.TagAttr()
				if string(key) != "href" {
					continue
				}
				if !s.add(cleanHref(val)) {
					return
				}
				break
			}
		}
	}
}

func FuzzScanHTMLMatchesSeparatePasses(f *testing.F) {
	for _, s := range []string{
		`<html><head><title>T</title><style>p{}</style></head><body><p>Hello <b>world</b></p><a href=" https://a.example/x ">a</a><script>x()</script> tail</body></html>`,
		`<STYLE>a</STYLE>b<Script/>c<noscript>d</noscript>e<template>f</template><a HREF='h'>g</a>`,
		`<s>strike</s><h1>head</h1><table><tr><td>t</td></tr></table><nav>n</nav>`,
		`</style>x<style>y`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var a, b linkSet
		var text []byte
		a.scanHTML(doc, &text)
		b.htmlLinksSeparatePass(doc)
		want := htmlTextSeparatePass(doc)
		if !bytes.Equal(text, want) || !reflect.DeepEqual(a.list, b.list) {
			t.Errorf("scanHTML(%q) = %q, %q; separate passes %q, %q", doc, text, a.list, want, b.list)
		}
		var c linkSet
		c.htmlLinks(doc)
		if !reflect.DeepEqual(c.list, b.list) {
			t.Errorf("htmlLinks(%q) = %q; separate pass %q", doc, c.list, b.list)
		}
	})
}
