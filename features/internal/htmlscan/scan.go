// Package htmlscan is an allocation-free HTML tokenizer that reports token
// boundaries as offsets into the input. It mirrors the state machine of
// golang.org/x/net/html's Tokenizer (v0.62.0, token.go: Next, readStartTag,
// readTag, readTagAttrKey/Val, readRawOrRCDATA, readScript, readComment,
// readMarkupDeclaration, readDoctype, readUntilCloseAngle) step by step, so
// it splits any input into exactly the tokens x/net/html would; FuzzScanner
// checks that against x/net/html on every input. It exists because x/net/html
// allocates for every attribute of every tag and reads byte by byte through a
// buffer, which made a 40 KB newsletter cost ~200 µs per pass before any
// rewriting; this Scanner jumps from '<' to '<'. Click tracking and CSS
// inlining both tokenize with it.
//
// Differences from x/net/html, none of which move a token boundary: no
// entity decoding of text, self-closing start tags are reported as start
// tags, and CDATA sections are never recognised (x/net only does with
// AllowCDATA, which is off by default).
package htmlscan

import (
	"bytes"
	"html"
	"strings"
	"unicode/utf8"
)

// Kind is the kind of a token.
type Kind uint8

// The token kinds.
const (
	EOF      Kind = iota // no more tokens (including an unterminated tag at the end)
	Text                 // text, or the content of a raw text element
	StartTag             // <name ...> or <name .../>
	EndTag               // </name ...>
	Comment              // <!--...-->, <!bogus>, <?...>, </>
	Doctype              // <!DOCTYPE ...>
)

// Attr is one attribute of a start tag, as offsets into the input.
type Attr struct {
	WSStart          int // start of the whitespace before the name (== KeyStart if none)
	KeyStart, KeyEnd int // the name
	ValStart, ValEnd int // the value without quotes (empty when there is none)
	End              int // end of the attribute: after the value, its closing quote or a bare '='

	Quote    byte // '"', '\'' or 0 for unquoted or missing values
	HasValue bool // there is an '=' and a value
	Saved    bool // x/net would report it: non-empty name, first of that name
}

// Scanner walks over In. After Next, Start and End delimit the token; for
// tags NameStart/NameEnd delimit the name, and for start tags selected by
// WantAttrs, Attrs lists the attributes.
type Scanner struct {
	In []byte // the document
	// WantAttrs says, for a start tag's name as written, whether to fill
	// Attrs; nil means never.
	WantAttrs func(name []byte) bool

	Start, End         int    // the current token
	NameStart, NameEnd int    // the name of the current tag
	Attrs              []Attr // the attributes of the current start tag, if wanted
	RawText            bool   // the current text token is raw text (script, style, …)

	pos    int
	rawTag string // the raw text element whose content comes next, or ""
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// Next scans the next token and returns its kind.
func (s *Scanner) Next() Kind {
	in, start := s.In, s.pos
	s.Start, s.RawText = start, false
	if start >= len(in) {
		s.End = start
		return EOF
	}
	if s.rawTag != "" {
		tag := s.rawTag
		s.rawTag = ""
		switch tag {
		case "plaintext":
			s.pos = len(in)
		case "script":
			s.pos = s.readScript(start)
		default:
			s.pos = s.readRaw(start, tag)
		}
		if s.pos > start {
			s.RawText = tag != "textarea" && tag != "title"
			return s.emit(Text, s.pos)
		}
	}
	i := start
	for {
		j := bytes.IndexByte(in[i:], '<')
		if j < 0 || i+j+1 >= len(in) {
			break // text up to the end, including a final '<'
		}
		lt := i + j
		c := in[lt+1]
		var k Kind
		switch {
		case isLetter(c):
			k = StartTag
		case c == '/':
			k = EndTag
		case c == '!' || c == '?':
			k = Comment
		default:
			i = lt + 1
			continue
		}
		if start < lt {
			s.pos = lt
			return s.emit(Text, lt)
		}
		i = lt + 2 // after "<x"
		switch k {
		case StartTag:
			return s.readStartTag(lt)
		case EndTag:
			if i >= len(in) {
				return s.emitText(len(in)) // "</" at the end is text
			}
			switch c := in[i]; {
			case c == '>':
				s.pos = i + 1
				return s.emit(Comment, i+1) // "</>"
			case isLetter(c):
				s.NameStart, s.NameEnd = i, TagNameEnd(in, i+1)
				end, ok := s.readTag(s.NameEnd, false)
				if !ok {
					return s.eof()
				}
				s.pos = end
				return s.emit(EndTag, end)
			}
			s.pos = closeAngle(in, i)
			return s.emit(Comment, s.pos)
		default: // comment, doctype or bogus comment
			if c == '!' {
				return s.readMarkupDeclaration(i)
			}
			s.pos = closeAngle(in, i-1)
			return s.emit(Comment, s.pos)
		}
	}
	return s.emitText(len(in))
}

func (s *Scanner) emit(k Kind, end int) Kind {
	s.End = end
	return k
}

func (s *Scanner) emitText(end int) Kind {
	s.pos = end
	if end == s.Start {
		return s.eof()
	}
	return s.emit(Text, end)
}

// eof ends the scan: the rest of the input is not a token (x/net returns
// ErrorToken for a tag cut off by the end of input).
func (s *Scanner) eof() Kind {
	s.pos = len(s.In)
	s.End = s.Start
	return EOF
}

// closeAngle returns the offset after the first '>' at or after i, or
// len(in) (readUntilCloseAngle).
func closeAngle(in []byte, i int) int {
	if j := bytes.IndexByte(in[i:], '>'); j >= 0 {
		return i + j + 1
	}
	return len(in)
}

// TagNameEnd returns the end of a tag name whose second byte is at i.
func TagNameEnd(in []byte, i int) int {
	for i < len(in) && !isSpace(in[i]) && in[i] != '/' && in[i] != '>' {
		i++
	}
	return i
}

// rawTag returns the lower-case name if name (any case) is an element
// whose content x/net/html reads as raw text, else "".
func rawTag(name []byte) string {
	for _, t := range [...]string{"iframe", "noembed", "noframes", "noscript", "plaintext", "script", "style", "textarea", "title", "xmp"} {
		if EqualFold(name, t) {
			return t
		}
	}
	return ""
}

// readStartTag reads a start tag whose '<' is at lt.
func (s *Scanner) readStartTag(lt int) Kind {
	in := s.In
	s.NameStart, s.NameEnd = lt+1, TagNameEnd(in, lt+2)
	name := in[s.NameStart:s.NameEnd]
	record := s.WantAttrs != nil && s.WantAttrs(name)
	end, ok := s.readTag(s.NameEnd, record)
	if !ok {
		return s.eof()
	}
	s.rawTag = rawTag(name)
	s.pos = end
	return s.emit(StartTag, end)
}

// readTag reads the attributes of a tag from i (just after its name) to the
// closing '>' and returns the offset after it; ok is false when the input
// ends first. With record, s.Attrs gets the attributes.
func (s *Scanner) readTag(i int, record bool) (end int, ok bool) {
	in := s.In
	n := len(in)
	if record {
		s.Attrs = s.Attrs[:0]
	}
	// readTagName stops after whitespace or before '/' or '>'.
	wsStart := i
	for i < n && isSpace(in[i]) {
		i++
	}
	for {
		if i >= n {
			return 0, false
		}
		if in[i] == '>' {
			return i + 1, true
		}
		a := Attr{WSStart: wsStart, KeyStart: i}
		// readTagAttrKey: a leading '=' belongs to the name.
		for i < n {
			c := in[i]
			if c == '=' && i > a.KeyStart || isSpace(c) || c == '/' || c == '>' {
				break
			}
			i++
		}
		a.KeyEnd, a.End = i, i
		a.ValStart, a.ValEnd = i, i
		// readTagAttrVal
		j := i
		for j < n && isSpace(in[j]) {
			j++
		}
		switch {
		case j < n && in[j] == '/':
			i = j + 1
		case j < n && in[j] == '=':
			j++
			for j < n && isSpace(in[j]) {
				j++
			}
			switch {
			case j >= n || in[j] == '>': // "name=" with no value
				a.End, i = j, j
			case in[j] == '"' || in[j] == '\'':
				q := in[j]
				a.Quote, a.HasValue, a.ValStart = q, true, j+1
				k := bytes.IndexByte(in[j+1:], q)
				if k < 0 {
					return 0, false
				}
				a.ValEnd, a.End = j+1+k, j+2+k
				i = a.End
			default:
				a.HasValue, a.ValStart = true, j
				for j < n && !isSpace(in[j]) && in[j] != '>' {
					j++
				}
				a.ValEnd, a.End, i = j, j, j
			}
		default:
			i = j
		}
		if record && a.KeyEnd > a.KeyStart {
			a.Saved = true
			key := in[a.KeyStart:a.KeyEnd]
			for _, b := range s.Attrs {
				if b.Saved && EqualFoldBytes(in[b.KeyStart:b.KeyEnd], key) {
					a.Saved = false
					break
				}
			}
		}
		if record {
			s.Attrs = append(s.Attrs, a)
		}
		wsStart = i
		for i < n && isSpace(in[i]) {
			i++
		}
	}
}

// readRaw returns the end of the raw text of element tag starting at p:
// the offset of the next "</tag" followed by whitespace, '/' or '>', any
// case, or len(in) (readRawOrRCDATA).
func (s *Scanner) readRaw(p int, tag string) int {
	in := s.In
	for {
		j := bytes.IndexByte(in[p:], '<')
		if j < 0 || p+j+1 >= len(in) {
			return len(in)
		}
		p += j + 1
		if in[p] != '/' {
			continue
		}
		next, match, eof := readRawEndTag(in, p+1, tag)
		if match || eof {
			return next
		}
		p = next
	}
}

// readScript returns the end of a script element's text starting at p. It
// is a literal transcription of x/net/html's readScript (the script data
// escape states of the HTML tokenizer): each readByte is "if p >= n { return
// n }; c = in[p]; p++" and each "z.raw.End--" is "p--". Scripts are rare in
// mail, so clarity of the mapping beats speed here.
func (s *Scanner) readScript(p int) int {
	in := s.In
	n := len(in)
	var (
		c          byte
		match, eof bool
	)

scriptData:
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	if c == '<' {
		goto scriptDataLessThanSign
	}
	goto scriptData

scriptDataLessThanSign:
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	switch c {
	case '/':
		goto scriptDataEndTagOpen
	case '!':
		goto scriptDataEscapeStart
	}
	p--
	goto scriptData

scriptDataEndTagOpen:
	if p, match, eof = readRawEndTag(in, p, "script"); match || eof {
		return p
	}
	goto scriptData

scriptDataEscapeStart:
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	if c == '-' {
		goto scriptDataEscapeStartDash
	}
	p--
	goto scriptData

scriptDataEscapeStartDash:
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	if c == '-' {
		goto scriptDataEscapedDashDash
	}
	p--
	goto scriptData

scriptDataEscaped:
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	switch c {
	case '-':
		goto scriptDataEscapedDash
	case '<':
		goto scriptDataEscapedLessThanSign
	}
	goto scriptDataEscaped

scriptDataEscapedDash:
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	switch c {
	case '-':
		goto scriptDataEscapedDashDash
	case '<':
		goto scriptDataEscapedLessThanSign
	}
	goto scriptDataEscaped

scriptDataEscapedDashDash:
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	switch c {
	case '-':
		goto scriptDataEscapedDashDash
	case '<':
		goto scriptDataEscapedLessThanSign
	case '>':
		goto scriptData
	}
	goto scriptDataEscaped

scriptDataEscapedLessThanSign:
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	if c == '/' {
		goto scriptDataEscapedEndTagOpen
	}
	if isLetter(c) {
		goto scriptDataDoubleEscapeStart
	}
	p--
	goto scriptData

scriptDataEscapedEndTagOpen:
	if p, match, eof = readRawEndTag(in, p, "script"); match || eof {
		return p
	}
	goto scriptDataEscaped

scriptDataDoubleEscapeStart:
	p--
	for i := 0; i < len("script"); i++ {
		if p >= n {
			return n
		}
		c, p = in[p], p+1
		if c != "script"[i] && c != "SCRIPT"[i] {
			p--
			goto scriptDataEscaped
		}
	}
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	switch c {
	case ' ', '\n', '\r', '\t', '\f', '/', '>':
		goto scriptDataDoubleEscaped
	}
	p--
	goto scriptDataEscaped

scriptDataDoubleEscaped:
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	switch c {
	case '-':
		goto scriptDataDoubleEscapedDash
	case '<':
		goto scriptDataDoubleEscapedLessThanSign
	}
	goto scriptDataDoubleEscaped

scriptDataDoubleEscapedDash:
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	switch c {
	case '-':
		goto scriptDataDoubleEscapedDashDash
	case '<':
		goto scriptDataDoubleEscapedLessThanSign
	}
	goto scriptDataDoubleEscaped

scriptDataDoubleEscapedDashDash:
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	switch c {
	case '-':
		goto scriptDataDoubleEscapedDashDash
	case '<':
		goto scriptDataDoubleEscapedLessThanSign
	case '>':
		goto scriptData
	}
	goto scriptDataDoubleEscaped

scriptDataDoubleEscapedLessThanSign:
	if p >= n {
		return n
	}
	c, p = in[p], p+1
	if c == '/' {
		goto scriptDataDoubleEscapeEnd
	}
	p--
	goto scriptDataDoubleEscaped

scriptDataDoubleEscapeEnd:
	if p, match, eof = readRawEndTag(in, p, "script"); match {
		p += len("</script>")
		goto scriptDataEscaped
	}
	if eof {
		return n
	}
	goto scriptDataDoubleEscaped
}

// readRawEndTag is x/net/html's readRawEndTag: p is just after "</". On a
// match ("</tag" plus whitespace, '/' or '>', any case) it returns the
// offset of the '<'; on a mismatch the offset of the mismatching byte (to be
// read again); eof says the input ended first (then p is len(in)).
func readRawEndTag(in []byte, p int, tag string) (next int, match, eof bool) {
	n := len(in)
	for i := 0; i < len(tag); i++ {
		if p >= n {
			return n, false, true
		}
		c := in[p]
		p++
		if c != tag[i] && c != tag[i]-('a'-'A') {
			return p - 1, false, false
		}
	}
	if p >= n {
		return n, false, true
	}
	c := in[p]
	p++
	switch c {
	case ' ', '\n', '\r', '\t', '\f', '/', '>':
		return p - (3 + len(tag)), true, false
	}
	return p - 1, false, false
}

// readMarkupDeclaration reads a token starting with "<!"; i is after "<!".
func (s *Scanner) readMarkupDeclaration(i int) Kind {
	in := s.In
	n := len(in)
	if i+2 > n {
		return s.emitTo(Comment, n) // bogus comment to the end
	}
	if in[i] == '-' && in[i+1] == '-' {
		return s.emitTo(Comment, readComment(in, i+2))
	}
	if i+7 <= n && EqualFold(in[i:i+7], "doctype") {
		return s.emitTo(Doctype, closeAngle(in, i+7))
	}
	return s.emitTo(Comment, closeAngle(in, i))
}

func (s *Scanner) emitTo(k Kind, end int) Kind {
	s.pos = end
	return s.emit(k, end)
}

// readComment returns the end of a comment whose "<!--" ends at i.
func readComment(in []byte, i int) int {
	n := len(in)
	dashes, beginning := 0, true
	for i < n {
		c := in[i]
		i++
		switch c {
		case '-':
			dashes++
			continue
		case '>':
			if dashes >= 2 || beginning {
				return i
			}
		case '!':
			if dashes >= 2 {
				if i >= n {
					return n
				}
				c = in[i]
				i++
				if c == '>' {
					return i
				}
				if c == '-' {
					dashes, beginning = 1, false
					continue
				}
			}
		}
		dashes, beginning = 0, false
	}
	return n
}

// EqualFold compares b with the lower-case ASCII string s without case.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// EqualFoldBytes compares two byte strings ignoring ASCII case.
func EqualFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
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

// UnescapeAttr decodes an attribute value as x/net/html's TagAttr does: NUL
// becomes U+FFFD, CR LF and CR become LF, and character references are
// decoded in attribute mode (a named reference without ';' followed by '='
// or an alphanumeric stays as is, so "?a=1&copy=2" keeps "&copy=2").
func UnescapeAttr(v []byte) string {
	if bytes.IndexByte(v, '&') < 0 && bytes.IndexByte(v, '\r') < 0 && bytes.IndexByte(v, 0) < 0 {
		return string(v)
	}
	s := string(v)
	if bytes.IndexByte(v, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\ufffd")
	}
	if bytes.IndexByte(v, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	amp := strings.IndexByte(s, '&')
	if amp < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for amp >= 0 {
		b.WriteString(s[:amp])
		s = s[amp:]
		r, n := attrEntity(s)
		b.WriteString(r)
		s = s[n:]
		amp = strings.IndexByte(s, '&')
	}
	b.WriteString(s)
	return b.String()
}

// attrEntity decodes the character reference at the start of s (s[0] is
// '&') in attribute mode and returns its replacement and length; "&" and 1
// when it is not one. The entity table is the standard library's (the same
// WHATWG list as x/net/html's), reached through html.UnescapeString, whose
// non-attribute mode differs only in also matching a legacy name that is a
// prefix of a longer run; such partial results are recognised and refused.
func attrEntity(s string) (string, int) {
	i := 1
	if i >= len(s) {
		return "&", 1
	}
	if strings.HasPrefix(s, "&amp;") { // by far the most common in URLs
		return "&", len("&amp;")
	}
	if s[i] == '#' { // numeric: the same in both modes
		i++
		hex := i < len(s) && (s[i] == 'x' || s[i] == 'X')
		if hex {
			i++
		}
		i0 := i
		for i < len(s) && (hex && isHex(s[i]) || '0' <= s[i] && s[i] <= '9') {
			i++
		}
		if i == i0 {
			return "&", 1
		}
		if i < len(s) && s[i] == ';' {
			i++
			return html.UnescapeString(s[:i]), i
		}
		// html.UnescapeString leaves a one-digit decimal reference without
		// ';' ("&#9x") as it is; x/net/html decodes it. With the ';' added
		// they agree on every numeric reference.
		return html.UnescapeString(s[:i] + ";"), i
	}
	for i < len(s) && (isLetter(s[i]) || '0' <= s[i] && s[i] <= '9') {
		i++
	}
	semi := i < len(s) && s[i] == ';'
	if semi {
		i++
	}
	name := s[1:i]
	switch {
	case name == "":
		return "&", 1
	case !semi && i < len(s) && s[i] == '=':
		return "&", 1
	}
	r := html.UnescapeString(s[:i])
	if r == s[:i] {
		return "&", 1
	}
	// A full match is one or two runes from the table; a partial (prefix)
	// match leaves the rest of the name, which ends in ';' when the name
	// did (only &semi; decodes to ";") and is more than one rune otherwise.
	if semi && strings.HasSuffix(r, ";") && name != "semi;" ||
		!semi && utf8.RuneCountInString(r) != 1 {
		return "&", 1
	}
	return r, i
}
