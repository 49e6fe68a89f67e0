package summary

import (
	"bytes"
	"strings"

	"golang.org/x/net/html"
)

// linkSet collects distinct http(s) URLs in first-seen order, up to MaxLinks.
type linkSet struct {
	list []string
	seen map[string]struct{}
}

// add records u if it is a new http(s) URL. It reports false once the set is
// full.
func (s *linkSet) add(u string) bool {
	if len(s.list) >= MaxLinks {
		return false
	}
	if !isHTTPURL(u) {
		return true
	}
	if s.seen == nil {
		// A linear scan is cheaper than a map for the usual handful.
		for _, v := range s.list {
			if v == u {
				return true
			}
		}
		if len(s.list) < 16 {
			s.list = append(s.list, u)
			return true
		}
		s.seen = make(map[string]struct{}, 64)
		for _, v := range s.list {
			s.seen[v] = struct{}{}
		}
	}
	if _, dup := s.seen[u]; dup {
		return true
	}
	s.seen[u] = struct{}{}
	s.list = append(s.list, u)
	return true
}

// isHTTPURL reports whether u starts with http:// or https:// (any case) and
// has something after the scheme.
func isHTTPURL(u string) bool {
	var n int
	switch {
	case len(u) > 7 && strings.EqualFold(u[:7], "http://"):
		n = 7
	case len(u) > 8 && strings.EqualFold(u[:8], "https://"):
		n = 8
	default:
		return false
	}
	return u[n] != '/' && u[n] != '?' && u[n] != '#'
}

// htmlLinks adds the href of every <a> element in an HTML document, entity
// decoded, with surrounding white space and embedded tabs and newlines removed
// as a browser does.
func (s *linkSet) htmlLinks(doc []byte) { s.scanHTML(doc, nil) }

// scanHTML adds the links of an HTML document as htmlLinks does and, when
// text is not nil, appends the document's visible text to *text in the same
// pass: words separated by one space (white space collapsed), nothing
// inside script, style, head, title, noscript or template, and no more once
// *text holds MaxText bytes.
func (s *linkSet) scanHTML(doc []byte, text *[]byte) {
	z := html.NewTokenizer(bytes.NewReader(doc))
	links := true // false once the link list is full
	skip := 0     // depth inside elements whose text is not shown
	for links || text != nil {
		switch tt := z.Next(); tt {
		case html.ErrorToken:
			return
		case html.StartTagToken, html.SelfClosingTagToken:
			raw := z.Raw()
			if text != nil && tt == html.StartTagToken && len(raw) > 2 {
				// A skipped element starts with one of these letters.
				switch raw[1] | 0x20 {
				case 's', 'h', 't', 'n':
					if name, _ := z.TagName(); skipText(name) {
						skip++
					}
					continue // none of these is <a>
				}
			}
			// Look at the raw bytes first: TagName copies, and most tags
			// are not <a>.
			if !links || len(raw) < 3 || raw[1]|0x20 != 'a' || !isTagNameEnd(raw[2]) {
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
				links = s.add(cleanHref(val))
				break
			}
		case html.EndTagToken:
			if text != nil && skip > 0 {
				if name, _ := z.TagName(); skipText(name) {
					skip--
				}
			}
		case html.TextToken:
			if text == nil || skip > 0 {
				continue
			}
			if len(*text) >= MaxText {
				text = nil
				continue
			}
			for _, w := range bytes.Fields(z.Text()) {
				if len(*text) > 0 {
					*text = append(*text, ' ')
				}
				*text = append(*text, w...)
			}
		}
	}
}

// isTagNameEnd reports whether c ends a tag name in raw HTML.
func isTagNameEnd(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '/' || c == '>'
}

// cleanHref trims an href value and removes ASCII tabs and newlines.
func cleanHref(v []byte) string {
	v = bytes.TrimSpace(v)
	if bytes.ContainsAny(v, "\t\r\n") {
		out := make([]byte, 0, len(v))
		for _, c := range v {
			if c != '\t' && c != '\r' && c != '\n' {
				out = append(out, c)
			}
		}
		v = out
	}
	return validUTF8(string(v))
}

// textLinks adds every http(s) URL found in plain text. A URL ends at white
// space, a control character or one of <>"; trailing punctuation that
// usually ends a sentence, and a closing bracket without an opening one, are
// not part of it. It jumps from "://" to "://" (most text has none) and
// looks back for the scheme.
func (s *linkSet) textLinks(text []byte) {
	minStart := 0 // URLs do not overlap: the next starts after the last one
	for pos := 0; ; {
		j := bytes.Index(text[pos:], []byte("://"))
		if j < 0 {
			return
		}
		k := pos + j // the colon
		pos = k + 3  // a scheme ending later starts after this "://"
		var i int
		switch {
		case k >= 5 && bytes.EqualFold(text[k-5:k], []byte("https")):
			i = k - 5
		case k >= 4 && bytes.EqualFold(text[k-4:k], []byte("http")):
			i = k - 4
		default:
			continue
		}
		if i < minStart || k+3 >= len(text) {
			continue
		}
		if i > 0 && isWordByte(text[i-1]) {
			continue // "xhttp://" is not a URL
		}
		n := k + 3 - i
		rest := text[i:]
		end := n
		for end < len(rest) && !isURLStop(rest[end]) {
			end++
		}
		u := trimURLTail(rest[:end])
		if len(u) > n {
			if !s.add(validUTF8(string(u))) {
				return
			}
		}
		minStart = i + end
		pos = max(pos, minStart)
	}
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isURLStop(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"'
}

// trimURLTail removes sentence punctuation and unbalanced closing brackets
// from the end of a URL found in text.
func trimURLTail(u []byte) []byte {
	// Unbalanced closers: count each bracket kind once, then trim.
	var open, closed [3]int
	for _, c := range u {
		switch c {
		case '(':
			open[0]++
		case '[':
			open[1]++
		case '{':
			open[2]++
		case ')':
			closed[0]++
		case ']':
			closed[1]++
		case '}':
			closed[2]++
		}
	}
	for len(u) > 0 {
		c := u[len(u)-1]
		switch c {
		case '.', ',', ';', ':', '!', '?', '\'', '*':
			u = u[:len(u)-1]
			continue
		case ')', ']', '}':
			k := strings.IndexByte(")]}", c)
			if open[k] < closed[k] {
				closed[k]--
				u = u[:len(u)-1]
				continue
			}
		}
		return u
	}
	return u
}
