package inline

import (
	"bytes"

	"github.com/andybalholm/cascadia"
	"github.com/tdewolff/parse/v2"
	"github.com/tdewolff/parse/v2/css"
)

// tok is one CSS token: its type and its span in the text it came from.
type tok struct {
	tt         css.TokenType
	start, end int
}

// lexCSS appends the tokens of src to buf. The tokens partition src.
func lexCSS(src []byte, buf []tok) []tok {
	if len(src) == 0 {
		return buf
	}
	// The full slice expression makes parse.NewInputBytes copy src instead
	// of writing its NUL sentinel into the byte after it.
	if want := len(buf) + len(src)/3 + 8; cap(buf) < want {
		buf = append(make([]tok, 0, want), buf...)
	}
	l := css.NewLexer(parse.NewInputBytes(src[:len(src):len(src)]))
	off := 0
	for {
		tt, data := l.Next()
		if tt == css.ErrorToken {
			break
		}
		buf = append(buf, tok{tt: tt, start: off, end: off + len(data)})
		off += len(data)
	}
	return buf
}

// ruleKind tells the top-level constructs of a style sheet apart.
type ruleKind uint8

const (
	atRule    ruleKind = iota // @media, @import, ...: always kept
	styleRule                 // selector list { declarations }
	junkRule                  // a prelude with no block: ignored by browsers
)

// rule is one top-level construct of a style sheet.
type rule struct {
	kind       ruleKind
	sheet      int // index of its sheet in document.sheets
	start, end int // its span in the sheet text
	// For style rules:
	preludeStart, preludeEnd int // the selector list, trimmed
	members                  []member
	decls                    []decl
	// verbatim: the rule is kept exactly as written and nothing of it is
	// inlined (an invalid or uncertain selector member: a browser may drop
	// the whole rule).
	verbatim bool
	// nested: the block holds nested rules or at-rules. Its own
	// declarations are inlined, but the rule stays as written.
	nested bool
	order  int // position in the document's cascade order
}

// decl is one valid declaration.
type decl struct {
	name      string // lower case, except custom properties (--x)
	id        int    // name interned by cssParser.intern
	value     []byte // as written, comments dropped, white space collapsed
	important bool
}

// memberClass classifies one selector of a selector list.
type memberClass uint8

const (
	memberInline    memberClass = iota // can be evaluated and inlined
	memberKeep                         // valid but dynamic: stays in <style>
	memberUncertain                    // vendor-prefixed pseudo: may invalidate the rule
	memberInvalid                      // invalid: a browser drops the whole rule
)

// member is one selector of a rule's selector list.
type member struct {
	start, end int // trimmed span in the sheet text
	class      memberClass
	sel        cascadia.Sel // for memberInline
	spec       cascadia.Specificity
	bucket     bucket
	// index numbers the members of all the rules of a sheetSet, for the
	// per-document flags (document.flags).
	index int
}

// isTrivia reports whether tt is white space or a comment.
func isTrivia(tt css.TokenType) bool {
	return tt == css.WhitespaceToken || tt == css.CommentToken
}

// closerOf returns the token that closes a block opened by tt, or
// css.ErrorToken when tt opens nothing.
func closerOf(tt css.TokenType) css.TokenType {
	switch tt {
	case css.LeftParenthesisToken, css.FunctionToken:
		return css.RightParenthesisToken
	case css.LeftBracketToken:
		return css.RightBracketToken
	case css.LeftBraceToken:
		return css.RightBraceToken
	}
	return css.ErrorToken
}

// cssParser holds scratch space reused across sheets of one document.
type cssParser struct {
	toks   []tok
	stack  []css.TokenType
	quirks bool // the document is in quirks mode: lower-case class and id selectors
	// base interns the property names of the compiled sheets (shared and
	// read-only); names those of the declarations parsed since, numbered
	// after them.
	base  map[string]int
	names map[string]int
}

// intern returns the small integer standing for the property name.
func (p *cssParser) intern(name string) int {
	if id, ok := p.base[name]; ok {
		return id
	}
	id, ok := p.names[name]
	if !ok {
		if p.names == nil {
			p.names = map[string]int{}
		}
		id = len(p.base) + len(p.names)
		p.names[name] = id
	}
	return id
}

// nameCount returns the number of interned property names.
func (p *cssParser) nameCount() int { return len(p.base) + len(p.names) }

// skipBlock returns the index after the token that closes the block opened
// by t[i], and whether it was closed before hi (CSS Syntax "consume a simple
// block": a closer of another kind inside is an ordinary token).
func (p *cssParser) skipBlock(t []tok, i, hi int) (int, bool) {
	st := append(p.stack[:0], closerOf(t[i].tt))
	for i++; i < hi; i++ {
		tt := t[i].tt
		if c := closerOf(tt); c != css.ErrorToken {
			st = append(st, c)
			continue
		}
		if tt == st[len(st)-1] {
			st = st[:len(st)-1]
			if len(st) == 0 {
				p.stack = st
				return i + 1, true
			}
		}
	}
	p.stack = st
	return hi, false
}

// parseSheet appends the top-level constructs of the style sheet src to
// rules, following CSS Syntax Level 3 "consume a list of rules".
func (p *cssParser) parseSheet(src []byte, sheet int, rules []rule) []rule {
	t := lexCSS(src, p.toks[:0])
	p.toks = t
	n := len(t)
	for i := 0; i < n; {
		switch t[i].tt {
		case css.WhitespaceToken, css.CommentToken, css.CDOToken, css.CDCToken:
			i++
			continue
		case css.AtKeywordToken:
			j := p.skipAtRule(t, i, n)
			rules = append(rules, rule{kind: atRule, sheet: sheet, start: t[i].start, end: t[j-1].end})
			i = j
			continue
		}
		// A qualified rule: the prelude runs to the first "{" outside
		// blocks; a stray "}" or ";" is part of it (and spoils it).
		j := i
		for j < n && t[j].tt != css.LeftBraceToken {
			if closerOf(t[j].tt) != css.ErrorToken {
				j, _ = p.skipBlock(t, j, n)
			} else {
				j++
			}
		}
		if j >= n {
			rules = append(rules, rule{kind: junkRule, sheet: sheet, start: t[i].start, end: len(src)})
			break
		}
		end, closed := p.skipBlock(t, j, n)
		r := rule{kind: styleRule, sheet: sheet, start: t[i].start, end: t[end-1].end}
		pe := j
		for pe > i && isTrivia(t[pe-1].tt) {
			pe--
		}
		if pe > i {
			r.preludeStart, r.preludeEnd = t[i].start, t[pe-1].end
			r.members = p.splitMembers(src, t[i:pe])
		} else { // "{...}" with no selector: dropped by browsers
			r.preludeStart, r.preludeEnd = t[i].start, t[i].start
			r.members = []member{{class: memberInvalid}}
		}
		blockEnd := end
		if closed {
			blockEnd = end - 1
		}
		r.decls, r.nested = p.parseDecls(src, t, j+1, blockEnd, nil)
		for _, m := range r.members {
			if m.class == memberInvalid || m.class == memberUncertain {
				r.verbatim = true
			}
		}
		rules = append(rules, r)
		i = end
	}
	return rules
}

// skipAtRule returns the index after the at-rule starting at t[i]: after its
// ";" or its block, or hi.
func (p *cssParser) skipAtRule(t []tok, i, hi int) int {
	for j := i + 1; j < hi; {
		switch tt := t[j].tt; {
		case tt == css.SemicolonToken:
			return j + 1
		case tt == css.LeftBraceToken:
			j, _ = p.skipBlock(t, j, hi)
			return j
		case closerOf(tt) != css.ErrorToken:
			j, _ = p.skipBlock(t, j, hi)
		default:
			j++
		}
	}
	return hi
}

// parseDecls appends the valid declarations of the declaration list
// t[lo:hi] (the inside of a block, or a style attribute) to out. nested
// reports an at-rule or a nested style rule in the list.
func (p *cssParser) parseDecls(src []byte, t []tok, lo, hi int, out []decl) (decls []decl, nested bool) {
	for i := lo; i < hi; {
		switch t[i].tt {
		case css.WhitespaceToken, css.CommentToken, css.SemicolonToken:
			i++
			continue
		case css.AtKeywordToken:
			nested = true
			i = p.skipAtRule(t, i, hi)
			continue
		}
		custom := t[i].tt == css.CustomPropertyNameToken
		j, block := i, false
		for j < hi && t[j].tt != css.SemicolonToken {
			if t[j].tt == css.LeftBraceToken && !custom {
				j, _ = p.skipBlock(t, j, hi)
				block = true
				break
			}
			if closerOf(t[j].tt) != css.ErrorToken {
				j, _ = p.skipBlock(t, j, hi)
			} else {
				j++
			}
		}
		if block {
			nested = true // "div { ... }" or "&:hover { ... }" inside a rule
		} else if t[i].tt == css.IdentToken || custom {
			if d, ok := parseDecl(src, t[i:j]); ok {
				d.id = p.intern(d.name)
				out = append(out, d)
			}
		}
		i = j
	}
	return out, nested
}

// parseDecl parses "name : value [!important]"; ok is false for anything a
// browser would drop.
func parseDecl(src []byte, t []tok) (decl, bool) {
	var d decl
	name := src[t[0].start:t[0].end]
	custom := t[0].tt == css.CustomPropertyNameToken
	if custom {
		d.name = string(name)
	} else {
		d.name = lowerString(name)
	}
	k := 1
	for k < len(t) && isTrivia(t[k].tt) {
		k++
	}
	if k >= len(t) || t[k].tt != css.ColonToken {
		return d, false
	}
	v := t[k+1:]
	for len(v) > 0 && isTrivia(v[0].tt) {
		v = v[1:]
	}
	for len(v) > 0 && isTrivia(v[len(v)-1].tt) {
		v = v[:len(v)-1]
	}
	if n := len(v); n >= 2 && v[n-1].tt == css.IdentToken && equalFoldASCII(src[v[n-1].start:v[n-1].end], "important") {
		b := n - 2
		for b >= 0 && isTrivia(v[b].tt) {
			b--
		}
		if b >= 0 && v[b].tt == css.DelimToken && src[v[b].start] == '!' {
			d.important = true
			v = v[:b]
			for len(v) > 0 && isTrivia(v[len(v)-1].tt) {
				v = v[:len(v)-1]
			}
		}
	}
	if len(v) == 0 {
		return d, custom
	}
	if !custom {
		for _, x := range v {
			switch x.tt {
			case css.BadStringToken, css.BadURLToken, css.LeftBraceToken, css.RightBraceToken:
				return d, false
			case css.DelimToken:
				if src[x.start] == '!' {
					return d, false
				}
			}
		}
	}
	d.value = cleanValue(src, v)
	return d, true
}

// cleanValue returns the text of the value tokens v: comments become white
// space and every run of white space becomes one space. It returns a slice
// of src when nothing needs changing.
func cleanValue(src []byte, v []tok) []byte {
	simple := true
	for _, x := range v {
		if x.tt == css.CommentToken || x.tt == css.WhitespaceToken && (x.end-x.start != 1 || src[x.start] != ' ') {
			simple = false
			break
		}
	}
	if simple {
		return src[v[0].start:v[len(v)-1].end]
	}
	out := make([]byte, 0, v[len(v)-1].end-v[0].start)
	space := false
	for _, x := range v {
		if isTrivia(x.tt) {
			space = true
			continue
		}
		if space {
			out = append(out, ' ')
			space = false
		}
		out = append(out, src[x.start:x.end]...)
	}
	return out
}

// splitMembers splits a selector list at its top-level commas and classifies
// each member.
func (p *cssParser) splitMembers(src []byte, t []tok) []member {
	var out []member
	depth, from := 0, 0
	for i := 0; i <= len(t); i++ {
		if i < len(t) {
			switch t[i].tt {
			case css.LeftParenthesisToken, css.FunctionToken, css.LeftBracketToken, css.LeftBraceToken:
				depth++
				continue
			case css.RightParenthesisToken, css.RightBracketToken, css.RightBraceToken:
				depth--
				continue
			case css.CommaToken:
				if depth == 0 {
					break
				}
				continue
			default:
				continue
			}
		}
		m := t[from:i]
		for len(m) > 0 && isTrivia(m[0].tt) {
			m = m[1:]
		}
		for len(m) > 0 && isTrivia(m[len(m)-1].tt) {
			m = m[:len(m)-1]
		}
		if len(m) == 0 {
			out = append(out, member{class: memberInvalid})
		} else {
			out = append(out, p.newMember(src, m))
		}
		from = i + 1
	}
	return out
}

// newMember classifies the selector t and compiles it when it can be
// inlined; a selector cascadia rejects is invalid.
func (p *cssParser) newMember(src []byte, t []tok) member {
	m := member{start: t[0].start, end: t[len(t)-1].end, class: classifySelector(src, t)}
	if m.class != memberInline {
		return m
	}
	text := string(src[m.start:m.end])
	if p.quirks {
		text = quirksSelector(src, t)
	}
	sel, err := cascadia.Parse(text)
	if err != nil || sel.PseudoElement() != "" {
		m.class = memberInvalid
		return m
	}
	m.sel, m.spec, m.bucket = sel, sel.Specificity(), bucketOf(src, t)
	if p.quirks && m.bucket.kind != 't' {
		m.bucket.key = lowerString([]byte(m.bucket.key))
	}
	return m
}

// quirksSelector returns the selector t with its class and id names in
// lower case, to match the lower-cased class and id attributes of a
// quirks-mode document.
func quirksSelector(src []byte, t []tok) string {
	var b []byte
	for i, x := range t {
		v := src[x.start:x.end]
		if x.tt == css.HashToken || x.tt == css.IdentToken && i > 0 && t[i-1].tt == css.DelimToken && src[t[i-1].start] == '.' {
			b = append(b, lowerString(v)...)
		} else {
			b = append(b, v...)
		}
	}
	return string(b)
}

// lowerString returns b with ASCII letters in lower case, as a string;
// other bytes, valid UTF-8 or not, are kept.
func lowerString(b []byte) string {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			l := bytes.Clone(b)
			for j := i; j < len(l); j++ {
				if c := l[j]; 'A' <= c && c <= 'Z' {
					l[j] = c + 'a' - 'A'
				}
			}
			return string(l)
		}
	}
	return string(b)
}
