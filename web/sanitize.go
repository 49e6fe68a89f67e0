package web

import (
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// The HTML sanitiser behind /api/body. It parses the message's HTML into a
// tree with golang.org/x/net/html (so what it checks is what a browser will
// build), copies only allowlisted elements and attributes into a fresh
// document, and renders that, so every text and attribute value is escaped
// on the way out. What it removes:
//
//   - scripts, and everything that can carry or load active content or
//     navigate: iframe/frame, object/embed/applet, form controls, svg and
//     math (foreign content, the home of mutation XSS), template, noscript,
//     meta/link/base, media elements, comments;
//   - every attribute not on the list, so all event handlers, id and name;
//   - links whose scheme is not http, https, mailto or tel;
//   - images that are not data:image/* or cid: URLs: like Mailsac, the
//     sanitised body never loads remote images, so viewing a captured
//     message cannot fire its open-tracking pixel;
//   - in CSS (<style> and style=""), url()s that are not images in data: or
//     cid:, @import and other unknown at-rules, and functions off a list
//     (expression() and friends).
//
// <form> and unknown elements are unwrapped: their content stays. cid:
// images are replaced by data: URLs when the message carries the part.

// maxSanitizeDepth bounds the element nesting copied into the output; deeper
// elements are unwrapped, their text kept.
const maxSanitizeDepth = 256

// elementsDropped are removed together with everything inside them.
var elementsDropped = setOf(
	"script", "noscript", "template", "iframe", "frame", "frameset", "object", "embed", "applet",
	"param", "svg", "math", "title", "textarea", "select", "option", "optgroup", "datalist", "button",
	"input", "keygen", "xmp", "noembed", "noframes", "plaintext", "video", "audio", "source", "track",
	"canvas", "map", "area", "base", "link", "meta", "head", "dialog", "portal", "slot", "picture",
	"frame", "output",
)

// elementsKept are copied with their allowed attributes.
var elementsKept = setOf(
	"a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo", "big", "blockquote",
	"br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div",
	"dl", "dt", "em", "figcaption", "figure", "font", "footer", "h1", "h2", "h3", "h4", "h5", "h6",
	"header", "hgroup", "hr", "i", "img", "ins", "kbd", "label", "li", "main", "mark", "nav", "ol", "p",
	"pre", "q", "rp", "rt", "ruby", "s", "samp", "section", "small", "span", "strike", "strong", "sub",
	"summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul",
	"var", "wbr",
)

// voidElements never have children.
var voidElements = setOf("br", "col", "hr", "img", "wbr")

// attributesKept are presentational attributes allowed on any kept element.
var attributesKept = setOf(
	"abbr", "align", "alt", "axis", "bgcolor", "border", "bordercolor", "cellpadding", "cellspacing",
	"char", "charoff", "class", "clear", "color", "cols", "colspan", "compact", "datetime", "dir",
	"face", "frame", "headers", "height", "hspace", "lang", "leftmargin", "marginheight",
	"marginwidth", "noshade", "nowrap", "open", "reversed", "rows", "rowspan", "rules", "scope",
	"size", "span", "start", "summary", "title", "topmargin", "type", "valign", "value", "vspace",
	"width",
)

// hrefSchemes are the link schemes kept in <a href>.
var hrefSchemes = setOf("http", "https", "mailto", "tel")

// dataImage matches the data: URLs kept as images (no SVG: it is a document).
var dataImage = regexp.MustCompile(`(?i)^data:image/(png|gif|jpe?g|webp|bmp|x-icon|vnd\.microsoft\.icon)(;[a-z0-9=._+-]*)*,`)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// cidResolver returns the data: URL of the inline part with a Content-ID,
// and false when the message has no such image.
type cidResolver func(cid string) (dataURL string, ok bool)

// sanitizeHTML returns a complete, safe HTML document with the content of
// src. resolve may be nil.
func sanitizeHTML(src string, resolve cidResolver) string {
	return sanitizeHTMLImages(src, resolve, false)
}

// sanitizeHTMLImages is sanitizeHTML that, when remote is true, also keeps
// http and https images (in <img>, background= and CSS url()): the "load
// images" view of a message, served with a policy that allows them.
func sanitizeHTMLImages(src string, resolve cidResolver, remote bool) string {
	doc, err := html.Parse(strings.NewReader(src))
	s := sanitizer{resolve: resolve, remote: remote}
	root := element(atom.Html, nil)
	head := element(atom.Head, nil)
	head.AppendChild(element(atom.Meta, []html.Attribute{{Key: "charset", Val: "utf-8"}}))
	body := element(atom.Body, nil)
	root.AppendChild(head)
	root.AppendChild(body)
	if err == nil {
		for top := range doc.ChildNodes() {
			if top.Type != html.ElementNode || top.DataAtom != atom.Html {
				continue
			}
			for n := range top.ChildNodes() {
				switch {
				case n.Type != html.ElementNode:
				case n.DataAtom == atom.Head:
					for c := range n.ChildNodes() {
						if c.Type == html.ElementNode && c.DataAtom == atom.Style {
							if st := s.style(c); st != nil {
								head.AppendChild(st)
							}
						}
					}
				case n.DataAtom == atom.Body:
					body.Attr = s.attrs(n)
					for c := range n.ChildNodes() {
						s.copy(body, c, 1)
					}
				}
			}
		}
	}
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n")
	if err := html.Render(&b, root); err != nil {
		return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"/></head><body></body></html>"
	}
	return b.String()
}

func element(a atom.Atom, attrs []html.Attribute) *html.Node {
	return &html.Node{Type: html.ElementNode, DataAtom: a, Data: a.String(), Attr: attrs}
}

type sanitizer struct {
	resolve cidResolver
	remote  bool // keep http(s) images
}

// copy appends the safe part of n to parent.
func (s *sanitizer) copy(parent, n *html.Node, depth int) {
	switch n.Type {
	case html.TextNode:
		parent.AppendChild(&html.Node{Type: html.TextNode, Data: n.Data})
		return
	case html.ElementNode:
	default: // comments, doctypes, stray documents
		return
	}
	name := n.Data
	switch {
	case n.Namespace != "" || elementsDropped[name]:
		return
	case name == "style":
		if st := s.style(n); st != nil {
			parent.AppendChild(st)
		}
		return
	case !elementsKept[name] || depth > maxSanitizeDepth:
		for c := range n.ChildNodes() {
			s.copy(parent, c, depth)
		}
		return
	}
	out := &html.Node{Type: html.ElementNode, DataAtom: n.DataAtom, Data: name, Attr: s.attrs(n)}
	switch n.DataAtom {
	case atom.Img:
		if !hasAttr(out, "src") {
			return // a remote, scripted or missing image: nothing to show
		}
	case atom.A:
		if href, ok := attrValue(out, "href"); ok && !strings.HasPrefix(href, "#") {
			out.Attr = append(out.Attr,
				html.Attribute{Key: "rel", Val: "noopener noreferrer nofollow"},
				html.Attribute{Key: "target", Val: "_blank"})
		}
	}
	parent.AppendChild(out)
	if voidElements[name] {
		return
	}
	for c := range n.ChildNodes() {
		s.copy(out, c, depth+1)
	}
}

// attrs returns the allowed attributes of n with safe values, in source
// order.
func (s *sanitizer) attrs(n *html.Node) []html.Attribute {
	var out []html.Attribute
	for _, a := range n.Attr {
		if a.Namespace != "" {
			continue
		}
		key := strings.ToLower(a.Key)
		val := a.Val
		switch {
		case key == "style":
			if val = s.css(val); strings.TrimSpace(val) == "" {
				continue
			}
		case key == "href" && n.DataAtom == atom.A:
			var ok bool
			if val, ok = safeHref(val); !ok {
				continue
			}
		case key == "src" && n.DataAtom == atom.Img, key == "background":
			var ok bool
			if val, ok = s.imageURL(val); !ok {
				continue
			}
		case !attributesKept[key]:
			continue
		}
		out = append(out, html.Attribute{Key: key, Val: val})
	}
	return out
}

// style returns a <style> element with the sanitised CSS of n, or nil when
// nothing is left.
func (s *sanitizer) style(n *html.Node) *html.Node {
	var b strings.Builder
	for c := range n.ChildNodes() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	css := strings.TrimSpace(s.css(b.String()))
	if css == "" {
		return nil
	}
	st := element(atom.Style, nil)
	st.AppendChild(&html.Node{Type: html.TextNode, Data: css})
	return st
}

func hasAttr(n *html.Node, key string) bool {
	_, ok := attrValue(n, key)
	return ok
}

func attrValue(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// stripURLSpace removes what browsers ignore in URLs: leading and trailing
// C0 controls and spaces, and tabs and newlines anywhere ("java\tscript:").
func stripURLSpace(v string) string {
	v = strings.TrimFunc(v, func(r rune) bool { return r <= ' ' })
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, v)
}

// safeHref returns v when it is a link with an allowed scheme or a fragment.
func safeHref(v string) (string, bool) {
	v = stripURLSpace(v)
	if strings.HasPrefix(v, "#") {
		return v, true
	}
	u, err := url.Parse(v)
	if err != nil || !hrefSchemes[strings.ToLower(u.Scheme)] {
		return "", false
	}
	if strings.HasPrefix(strings.ToLower(u.Scheme), "http") && u.Host == "" {
		return "", false
	}
	return v, true
}

// imageURL returns the URL to use for an image source v: a data: image as
// is, a cid: reference resolved to a data: URL when possible (or kept), and
// with remote set an http(s) URL as is, and false for anything else.
func (s *sanitizer) imageURL(v string) (string, bool) {
	v = stripURLSpace(v)
	lower := strings.ToLower(v)
	switch {
	case strings.HasPrefix(lower, "cid:"):
		if s.resolve != nil {
			if d, ok := s.resolve(v[len("cid:"):]); ok {
				return d, true
			}
		}
		return v, true
	case dataImage.MatchString(v):
		return v, true
	case s.remote && (strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://")):
		if u, err := url.Parse(v); err == nil && u.Host != "" {
			return v, true
		}
	}
	return "", false
}
