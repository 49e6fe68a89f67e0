package web

import (
	"html/template"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// htmlToText renders an HTML body as plain text, for a message that has no
// text part: block elements start new lines, list items get a dash, links
// keep their URL after the text, and scripts, styles and the head vanish.
func htmlToText(src string) string {
	doc, err := html.Parse(strings.NewReader(src))
	if err != nil {
		return ""
	}
	t := textWriter{newline: true}
	t.node(doc, false)
	lines := strings.Split(t.b.String(), "\n")
	out := make([]string, 0, len(lines))
	blank := 0
	for _, l := range lines {
		l = strings.TrimRight(l, " \t\u00a0")
		if strings.TrimSpace(l) == "" {
			blank++
			if blank > 1 || len(out) == 0 {
				continue
			}
			l = ""
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n")) + "\n"
}

// textBlocks are the elements that sit on lines of their own.
var textBlocks = setOf(
	"address", "article", "aside", "blockquote", "caption", "center", "dd", "details", "div", "dl",
	"dt", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
	"hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tr", "ul",
)

// textGaps are the blocks followed by an empty line.
var textGaps = setOf("p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "ul", "ol")

type textWriter struct {
	b       strings.Builder
	space   bool // a collapsed white space is pending
	newline bool // the last byte written is a newline (or nothing was written)
}

func (t *textWriter) lineBreak() {
	t.b.WriteByte('\n')
	t.space, t.newline = false, true
}

func (t *textWriter) write(s string) {
	if s == "" {
		return
	}
	if t.space && !t.newline {
		t.b.WriteByte(' ')
	}
	t.b.WriteString(s)
	t.space, t.newline = false, strings.HasSuffix(s, "\n")
}

func (t *textWriter) text(s string, pre bool) {
	if pre {
		t.write(s)
		return
	}
	for s != "" {
		i := strings.IndexFunc(s, isHTMLSpace)
		if i < 0 {
			t.write(s)
			return
		}
		t.write(s[:i])
		t.space = true
		s = strings.TrimLeftFunc(s[i:], isHTMLSpace)
	}
}

func (t *textWriter) node(n *html.Node, pre bool) {
	switch n.Type {
	case html.TextNode:
		t.text(n.Data, pre)
		return
	case html.ElementNode:
		if n.Namespace != "" {
			return
		}
		switch n.DataAtom {
		case atom.Head, atom.Script, atom.Style, atom.Template, atom.Noscript, atom.Title:
			return
		case atom.Br:
			t.lineBreak()
			return
		case atom.Pre:
			pre = true
		}
	case html.DocumentNode:
	default:
		return
	}
	block := n.Type == html.ElementNode && textBlocks[n.Data]
	if block && !t.newline {
		t.lineBreak()
	}
	if n.DataAtom == atom.Li {
		t.write("- ")
	}
	start := t.b.Len()
	for c := range n.ChildNodes() {
		t.node(c, pre)
	}
	if n.DataAtom == atom.A {
		for _, a := range n.Attr {
			if a.Key == "href" && (strings.HasPrefix(a.Val, "http://") || strings.HasPrefix(a.Val, "https://")) &&
				!strings.Contains(t.b.String()[start:], a.Val) {
				t.space = true
				t.write("(" + a.Val + ")")
			}
		}
	}
	if block {
		if !t.newline {
			t.lineBreak()
		}
		if textGaps[n.Data] {
			t.lineBreak()
		}
	}
}

func isHTMLSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f'
}

// textToHTML wraps a plain-text body in a minimal HTML document, for a
// message that has no HTML part.
func textToHTML(text string) string {
	return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"/></head><body><pre style=\"white-space:pre-wrap\">" +
		template.HTMLEscapeString(text) + "</pre></body></html>\n"
}
