package inline

import (
	"bytes"
	"slices"
	"strconv"

	"golang.org/x/net/html"

	"github.com/smtpgate/smtpgate/features/internal/htmlscan"
)

// markPrefix starts the name of the attribute added right after the tag
// name of every start tag of the copy of the input given to the HTML
// parser: the rest of the name is the index of the start tag in
// scanResult.tags, which ties each element of the parse tree to its bytes.
// The index is in the name, not in a value, because the parser allocates
// for every non-empty attribute value. When the input itself contains the
// prefix, in any case, zeros are added to it until it does not, so that no
// attribute of the author can pass for a marker.
const markPrefix = "x-sg-"

// tagRec is one start tag of the original input.
type tagRec struct {
	start, end int        // the whole tag, from "<" to after ">"
	nameEnd    int        // end of the tag name, which starts at start+1
	node       *html.Node // the element parsed from it, if any
}

// styleRec is one <style> element as the tokenizer sees it in the input.
type styleRec struct {
	tag       int // index of its start tag in scanResult.tags
	textStart int // its raw text ...
	textEnd   int
	end       int // end of its end tag (textEnd when there is none)
	// revealed: inside a downlevel-revealed conditional comment
	// (<![if !mso]> ... <![endif]> or <!--[if !mso]><!--> ... <!--<![endif]-->),
	// a sheet meant for other clients than the ones the condition hides
	// it from: it is left alone.
	revealed bool
}

// scanResult is what the tokenizer pass learns about the input.
type scanResult struct {
	tags   []tagRec
	styles []styleRec
	marked []byte // the input with a marker attribute in every start tag
	prefix string // the marker prefix used, or "" when none was found
	// doctype is the DOCTYPE token, when it is the first token that is
	// not white space or a comment (the only place where it counts).
	doctype []byte

	attrs []htmlscan.Attr // scratch for the tokenizer
	keep  attrKeeper      // scratch for scanInto
}

// reset empties r, keeping its buffers, and forgets what points into a
// document.
func (r *scanResult) reset() {
	clear(r.tags)
	*r = scanResult{tags: r.tags[:0], styles: r.styles[:0], marked: r.marked[:0], attrs: r.attrs[:0], keep: attrKeeper{names: r.keep.names[:0], buf: r.keep.buf[:0]}}
}

// scanHTML tokenizes src once, recording the offsets of start tags and of
// <style> elements, and builds the marked copy. The tokenizer
// (features/internal/htmlscan) splits the input exactly as the parser's
// html.Tokenizer does, so every start tag gets its marker. Text and
// comments of the marked copy are shortened where that cannot change the
// tree (see shortToken).
func scanHTML(src []byte) scanResult {
	var r scanResult
	r.scanInto(src)
	return r
}

// scanInto is scanHTML into r, whose buffers it reuses.
func (r *scanResult) scanInto(src []byte) {
	// In a document with a CDATA section the parser's tokens may differ
	// from this pass's (it reads CDATA in foreign content): nothing is
	// shortened there.
	if !hasCDATA(src) {
		r.keep.read(src)
		if r.scanMarked(src, true, &r.keep) {
			return
		}
		r.reset()
	}
	r.scanMarked(src, false, nil)
}

// hasCDATA reports whether src contains "<![CDATA[". It looks for the
// rare "[CDATA[" rather than for the frequent "<".
func hasCDATA(src []byte) bool {
	for i := 0; ; {
		j := bytes.Index(src[i:], []byte("[CDATA["))
		if j < 0 {
			return false
		}
		i += j
		if i >= 2 && src[i-2] == '<' && src[i-1] == '!' {
			return true
		}
		i++
	}
}

// scanMarked is scanHTML, shortening text and comments when shorten is set
// and leaving out the attributes keep does not keep when it is not nil.
// With shorten set, it gives up (ok false) on a start tag whose first
// attribute name starts with "=": the marker put before it takes it as its
// value, so the parser's tokens differ from this pass's there.
func (r *scanResult) scanMarked(src []byte, shorten bool, keep *attrKeeper) (ok bool) {
	r.prefix = markerPrefix(src)
	if r.prefix == "" {
		return true
	}
	tags := bytes.Count(src, []byte{'<'})
	r.tags = slices.Grow(r.tags[:0], tags)
	r.marked = slices.Grow(r.marked[:0], len(src)+tags*(len(markPrefix)+5))
	z := htmlscan.Scanner{In: src, Attrs: r.attrs[:0]}
	defer func() { r.attrs = z.Attrs[:0] }()
	if shorten || keep != nil {
		z.WantAttrs = func([]byte) bool { return true }
	}
	copied, open, revealed, started := 0, -1, 0, false
	for {
		tt := z.Next()
		if tt == htmlscan.EOF {
			break
		}
		off, n := z.Start, z.End-z.Start
		if !started {
			switch tt {
			case htmlscan.Doctype:
				r.doctype, started = src[off:off+n], true
			case htmlscan.Comment:
			case htmlscan.Text:
				text := src[off : off+n]
				if off == 0 {
					text = bytes.TrimPrefix(text, []byte("\ufeff")) // a browser drops the BOM
				}
				started = len(bytes.Trim(text, htmlSpace)) > 0
			default:
				started = true
			}
		}
		if open >= 0 {
			s := &r.styles[open]
			switch tt {
			case htmlscan.Text:
				s.textEnd, s.end = off+n, off+n
			case htmlscan.EndTag:
				s.end = off + n
				open = -1
			default:
				open = -1
			}
		}
		if tt == htmlscan.StartTag {
			if shorten && len(z.Attrs) > 0 && z.Attrs[0].KeyStart < z.Attrs[0].KeyEnd && src[z.Attrs[0].KeyStart] == '=' {
				return false
			}
			nameEnd := z.NameEnd
			idx := len(r.tags)
			r.tags = append(r.tags, tagRec{start: off, end: off + n, nameEnd: nameEnd})
			r.marked = append(r.marked, src[copied:nameEnd]...)
			r.marked = append(r.marked, ' ')
			r.marked = append(r.marked, r.prefix...)
			r.marked = strconv.AppendInt(r.marked, int64(idx), 10)
			copied = nameEnd
			if keep != nil {
				copied = keep.strip(&r.marked, src, off+n, nameEnd, z.Attrs)
			}
			if equalFoldASCII(src[off+1:nameEnd], "style") {
				r.styles = append(r.styles, styleRec{tag: idx, textStart: off + n, textEnd: off + n, end: off + n, revealed: revealed > 0})
				open = len(r.styles) - 1
			}
		}
		if tt == htmlscan.Comment {
			revealed = max(0, revealed+conditionalDepth(src[off:off+n]))
		}
		if shorten && (tt == htmlscan.Text || tt == htmlscan.Comment) {
			if keep, short, ok := shortToken(tt, src[off:off+n]); ok {
				r.marked = append(r.marked, src[copied:off+keep]...)
				r.marked = append(r.marked, short...)
				copied = off + n
			}
		}
	}
	r.marked = append(r.marked, src[copied:]...)
	return true
}

// attrKeeper decides which attributes the parse tree needs: those that
// selectors, the tree builder or this package read. The others are left
// out of the copy given to the parser, which saves their tokenizing and
// allocation. Every start tag keeps its unique marker, so formatting
// elements never look identical to the tree builder (the Noah's Ark
// clause) with or without the others.
type attrKeeper struct {
	// names are the lower-case names after a "[" anywhere in the
	// document, a superset of the attributes selectors test, as spans of
	// buf.
	names [][2]int
	buf   []byte
	// all: keep every attribute (a "[" is followed by something whose
	// name cannot be read simply: an escape, a comment, a namespace).
	all bool
}

// newAttrKeeper returns the attrKeeper of src.
func newAttrKeeper(src []byte) *attrKeeper {
	k := &attrKeeper{}
	k.read(src)
	return k
}

// read sets k to keep the names after every "[" of src.
func (k *attrKeeper) read(src []byte) {
	k.names, k.buf, k.all = k.names[:0], k.buf[:0], false
	for i := 0; ; {
		j := bytes.IndexByte(src[i:], '[')
		if j < 0 {
			return
		}
		i += j + 1
		for i < len(src) && isCSSSpace(src[i]) {
			i++
		}
		start := i
		for i < len(src) && isNameByte(src[i]) {
			i++
		}
		if i < len(src) {
			switch c := src[i]; {
			case c == '\\' || c == '/' || c == '*' && i == start:
				k.all = true
				return
			case c == '|' && (i+1 >= len(src) || src[i+1] != '='):
				k.all = true // [ns|attr]
				return
			}
		}
		if i > start {
			from := len(k.buf)
			for _, c := range src[start:i] {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				k.buf = append(k.buf, c)
			}
			k.names = append(k.names, [2]int{from, len(k.buf)})
		}
	}
}

// isCSSSpace reports whether c is CSS white space.
func isCSSSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

// isNameByte reports whether c may be part of a CSS identifier without
// escapes.
func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c >= 0x80
}

// keeps reports whether the attribute name (as written) stays.
func (k *attrKeeper) keeps(name []byte) bool {
	if k.all || bytes.IndexByte(name, ':') >= 0 || !plainName(name) {
		// Foreign attributes (xml:lang, xlink:href) lose their prefix in
		// the tree; NUL becomes U+FFFD there.
		return true
	}
	var buf [16]byte
	if len(name) > len(buf) {
		return k.listed(bytes.ToLower(name))
	}
	l := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		l[i] = c
	}
	switch string(l) {
	case "class", "id", "style", // selectors, quirks mode, the cascade
		"lang",                                       // :lang()
		"media", "type", "data-inline", "data-embed", // which <style> elements count; <input type=hidden> in tables
		"color", "face", "size", // <font> ends foreign content
		"encoding": // <annotation-xml> is an HTML integration point
		return true
	}
	return k.listed(l)
}

// plainName reports whether name is printable ASCII.
func plainName(name []byte) bool {
	for _, c := range name {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// listed reports whether the lower-case name follows a "[".
func (k *attrKeeper) listed(name []byte) bool {
	for _, n := range k.names {
		if bytes.Equal(k.buf[n[0]:n[1]], name) {
			return true
		}
	}
	return false
}

// strip appends to marked the start tag src[nameEnd:end] (its attributes
// attrs) without the attributes k does not keep, and returns end; it
// appends nothing and returns nameEnd when nothing is left out, when an
// attribute name starts with "=", or when leaving attributes out would
// change whether the tag reads as self-closing.
func (k *attrKeeper) strip(marked *[]byte, src []byte, end, nameEnd int, attrs []htmlscan.Attr) int {
	drop := false
	for _, a := range attrs {
		if a.KeyStart < a.KeyEnd && src[a.KeyStart] == '=' {
			// A name that starts with "=" would become the value of
			// whatever ends up before it (the marker, or a kept name).
			return nameEnd
		}
		if !k.keeps(src[a.KeyStart:a.KeyEnd]) {
			drop = true
		}
	}
	if !drop {
		return nameEnd
	}
	b := *marked
	mark := len(b)
	pos := nameEnd
	for _, a := range attrs {
		if a.KeyStart == a.KeyEnd || k.keeps(src[a.KeyStart:a.KeyEnd]) {
			continue
		}
		b = append(b, src[pos:a.KeyStart]...)
		pos = a.End
	}
	b = append(b, src[pos:end]...)
	if (b[len(b)-2] == '/') != (src[end-2] == '/') {
		*marked = b[:mark]
		return nameEnd
	}
	*marked = b
	return end
}

// shortToken returns a shorter token that builds the same element tree as
// the text or comment token raw, for the copy given to the parser:
// raw[:keep] followed by short; ok is false when raw stays. The parser and
// the selectors never look inside a comment (":empty" skips comments), so
// one becomes "<!---->". Of a text token they look only at its leading HTML
// white space (whether there is any, whether it starts with a newline and
// whether more follows: the first newline of a <pre> is dropped), whether
// anything follows that white space (in a table, in the head, for
// :empty), NUL characters and character references (text with those
// stays). So white space keeps its first two characters (a CR LF counts as
// one), and text with a printable ASCII character after its leading white
// space, non-blank to every such test, becomes that white space so cut and
// "x".
func shortToken(tt htmlscan.Kind, raw []byte) (keep int, short string, ok bool) {
	const shortComment = "<!---->"
	if tt == htmlscan.Comment {
		if len(raw) > len(shortComment) && bytes.HasPrefix(raw, []byte("<!--")) {
			return 0, shortComment, true
		}
		return 0, "", false
	}
	ws := 0
	for ws < len(raw) && isHTMLSpace(raw[ws]) {
		ws++
	}
	// The tokenizer turns CR LF and a lone CR into LF: a kept CR LF is
	// one character, and the cut never splits one.
	first := 1
	if ws >= 2 && raw[0] == '\r' && raw[1] == '\n' {
		first = 2
	}
	keep = min(ws, first+1)
	if keep == first+1 && raw[first] == '\r' && keep < len(raw) && raw[keep] == '\n' {
		keep++
	}
	if ws == len(raw) {
		return keep, "", keep < len(raw)
	}
	printable := false
	for _, c := range raw[ws:] {
		switch {
		case c == '<' || c == '&' || c == 0:
			return 0, "", false
		case '!' <= c && c <= '~':
			printable = true
		}
	}
	return keep, "x", printable && keep+1 < len(raw)
}

// markerPrefix returns markPrefix, lengthened with zeros until src does not
// contain it in any letter case, or "" after a few tries.
func markerPrefix(src []byte) string {
	if !containsFold(src, []byte(markPrefix)) {
		return markPrefix
	}
	p := []byte(markPrefix)
	for range 8 {
		if !containsFold(src, p) {
			return string(p)
		}
		p = append(p[:len(p)-1], '0', '-')
	}
	return ""
}

// containsFold reports whether b contains the lower-case ASCII string s,
// ignoring ASCII case. s must start with a letter. It jumps between the
// occurrences of the first byte of s that has no case (the "-" of a
// marker prefix), falling back to trying every offset when there is none.
func containsFold(b, s []byte) bool {
	anchor := -1
	for i, c := range s {
		if c < 'a' || c > 'z' {
			anchor = i
			break
		}
	}
	if anchor < 0 {
		return containsFoldSlow(b, s)
	}
	for i := anchor; i < len(b); {
		j := bytes.IndexByte(b[i:], s[anchor])
		if j < 0 {
			return false
		}
		i += j
		if p := i - anchor; p+len(s) <= len(b) && equalFoldBytes(b[p:p+len(s)], s) {
			return true
		}
		i++
	}
	return false
}

// containsFoldSlow is containsFold trying every offset.
func containsFoldSlow(b, s []byte) bool {
	up := s[0] - ('a' - 'A')
	for i := 0; i+len(s) <= len(b); i++ {
		if (b[i] == s[0] || b[i] == up) && equalFoldBytes(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}

// conditionalDepth tells whether the comment token raw opens (+1) or closes
// (-1) a downlevel-revealed conditional block, whose content every client
// but the ones named in the condition renders.
func conditionalDepth(raw []byte) int {
	switch {
	case hasPrefixFold(raw, "<![if"):
		return 1
	case hasPrefixFold(raw, "<![endif"), hasPrefixFold(raw, "<!--<![endif"):
		return -1
	case hasPrefixFold(raw, "<!--[if") && !bytes.Contains(raw, []byte("<![endif")):
		return 1
	}
	return 0
}

// hasPrefixFold reports whether b starts with the lower-case ASCII prefix,
// ignoring case.
func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && equalFoldASCII(b[:len(prefix)], prefix)
}

// rawAttr is the position of one attribute inside a start tag.
type rawAttr struct {
	keyStart, keyEnd int
	valStart, valEnd int // the value, without quotes
	end              int // where the attribute ends (after a closing quote)
	dup              bool
	// dangling: "name=" with nothing after the "=" but white space and
	// ">": an attribute written after it would become its value.
	dangling bool
}

// scanAttrs lists the attributes of the start tag src[start:end] whose name
// ends at nameEnd. It mirrors html.Tokenizer.readTag byte for byte, so that
// the attribute found here is the one the parser saw; dup marks the repeated
// names the tokenizer drops.
func scanAttrs(src []byte, start, end, nameEnd int, out []rawAttr) []rawAttr {
	s := src[:end]
	i := nameEnd
	if i < end && isHTMLSpace(s[i]) {
		i++ // the tokenizer consumed the space that ended the name
	}
	i = skipHTMLSpace(s, i)
	first := len(out)
	for i < end && s[i] != '>' {
		a := rawAttr{keyStart: i}
		// readTagAttrKey
		for i < end {
			c := s[i]
			if c == '=' && i == a.keyStart {
				i++
				continue
			}
			if c == '=' || isHTMLSpace(c) || c == '/' || c == '>' {
				break
			}
			i++
		}
		a.keyEnd = i
		a.valStart, a.valEnd, a.end = i, i, i
		// readTagAttrVal
		j := skipHTMLSpace(s, i)
		switch {
		case j >= end:
			i = j
		case s[j] == '/':
			i = j + 1
		case s[j] != '=':
			i = j
		default:
			j = skipHTMLSpace(s, j+1)
			switch {
			case j >= end, s[j] == '>':
				i, a.end, a.dangling = j, j, true
			case s[j] == '"' || s[j] == '\'':
				q := s[j]
				a.valStart = j + 1
				k := a.valStart
				for k < end && s[k] != q {
					k++
				}
				a.valEnd = k
				if k < end {
					k++
				}
				i, a.end = k, k
			default:
				a.valStart = j
				k := j + 1
				for k < end && !isHTMLSpace(s[k]) && s[k] != '>' {
					k++
				}
				a.valEnd, a.end = k, k
				i = k
				if k < end && s[k] != '>' {
					i++ // the space that ended the value
				}
			}
		}
		if a.keyStart == a.keyEnd {
			a.dup = true // an empty name is dropped by the tokenizer
		} else {
			for _, b := range out[first:] {
				if !b.dup && equalFoldBytes(s[b.keyStart:b.keyEnd], s[a.keyStart:a.keyEnd]) {
					a.dup = true
					break
				}
			}
		}
		out = append(out, a)
		i = skipHTMLSpace(s, i)
	}
	return out
}

// isHTMLSpace reports whether c is HTML white space as the tokenizer sees it.
func isHTMLSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f'
}

// skipHTMLSpace returns the index of the first byte at or after i in s that
// is not HTML white space.
func skipHTMLSpace(s []byte, i int) int {
	for i < len(s) && isHTMLSpace(s[i]) {
		i++
	}
	return i
}

// equalFoldBytes compares two byte strings ignoring ASCII case.
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
