package inline

import (
	"bytes"

	"github.com/tdewolff/parse/v2/css"
)

// classifySelector decides, from its tokens, what to do with one selector.
// cascadia parses :hover and friends as never-matching, :link as a[href],
// and accepts non-standard syntax (:contains, [a!=b]), so the pseudo-classes
// are checked here first, against the list of those that depend only on the
// document tree.
func classifySelector(src []byte, t []tok) memberClass {
	class := memberInline
	worse := func(c memberClass) {
		if c > class {
			class = c
		}
	}
	for i := 0; i < len(t); i++ {
		switch t[i].tt {
		case css.ColonToken:
			pseudoElement := false
			if i+1 < len(t) && t[i+1].tt == css.ColonToken {
				pseudoElement = true
				i++
			}
			if i+1 >= len(t) || t[i+1].tt != css.IdentToken && t[i+1].tt != css.FunctionToken {
				return memberInvalid
			}
			i++
			name := src[t[i].start:t[i].end]
			name = bytes.TrimSuffix(name, []byte("("))
			worse(classifyPseudo(name, pseudoElement))
		case css.DelimToken:
			switch src[t[i].start] {
			case '!', '#', '&', '\\', '/', '<', '?', '@', ';', '%', '{', '}':
				return memberInvalid
			}
		case css.IdentToken, css.HashToken, css.StringToken, css.NumberToken,
			css.DimensionToken, css.PercentageToken, css.WhitespaceToken, css.CommentToken,
			css.CommaToken, css.FunctionToken, css.LeftParenthesisToken, css.RightParenthesisToken,
			css.LeftBracketToken, css.RightBracketToken, css.IncludeMatchToken, css.DashMatchToken,
			css.PrefixMatchToken, css.SuffixMatchToken, css.SubstringMatchToken:
		default:
			// braces, semicolons, at-keywords, bad strings, CDO/CDC, ...
			return memberInvalid
		}
	}
	return class
}

// classifyPseudo classifies one pseudo-class or pseudo-element name.
func classifyPseudo(name []byte, element bool) memberClass {
	if len(name) > 0 && name[0] == '-' {
		return memberUncertain
	}
	var buf [24]byte
	if len(name) > len(buf) {
		return memberInvalid
	}
	n := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		n[i] = c
	}
	if !element {
		switch string(n) {
		// Structural pseudo-classes, evaluated on the document tree.
		case "first-child", "last-child", "only-child", "first-of-type", "last-of-type",
			"only-of-type", "nth-child", "nth-last-child", "nth-of-type", "nth-last-of-type",
			"empty", "root", "not", "has", "lang":
			return memberInline
		// Dynamic, state or otherwise unevaluated pseudo-classes.
		case "hover", "focus", "focus-within", "focus-visible", "active", "visited", "link",
			"any-link", "local-link", "target", "target-within", "checked", "enabled",
			"disabled", "indeterminate", "default", "valid", "invalid", "in-range",
			"out-of-range", "required", "optional", "read-only", "read-write",
			"placeholder-shown", "autofill", "user-valid", "user-invalid", "blank",
			"current", "past", "future", "playing", "paused", "fullscreen", "modal",
			"popover-open", "picture-in-picture", "scope", "defined", "host", "host-context",
			"is", "where", "matches", "any", "dir", "nth-col", "nth-last-col", "state",
			"open", "closed":
			return memberKeep
		// CSS2 pseudo-elements with one colon.
		case "before", "after", "first-line", "first-letter":
			return memberKeep
		}
		return memberInvalid
	}
	switch string(n) {
	case "before", "after", "first-line", "first-letter", "selection", "placeholder",
		"marker", "backdrop", "cue", "cue-region", "file-selector-button", "spelling-error",
		"grammar-error", "target-text", "highlight", "part", "slotted", "details-content":
		return memberKeep
	}
	return memberInvalid
}

// bucket is the key of the right-most compound selector used to pick the
// candidate selectors of an element without trying them all.
type bucket struct {
	kind byte   // 'i' id, 'c' class, 't' tag, 0 universal
	key  string // case as matched by cascadia: ids and classes as written, tags lower case
}

// bucketOf returns the most selective plain id, class or type selector of
// the right-most compound of the selector t. Anything with an escape lands
// in the universal bucket, which is always tried.
func bucketOf(src []byte, t []tok) bucket {
	// Find the start of the last compound: after the last top-level
	// combinator (white space, >, +, ~).
	start, depth := 0, 0
	for i := 0; i < len(t); i++ {
		switch t[i].tt {
		case css.LeftParenthesisToken, css.FunctionToken, css.LeftBracketToken:
			depth++
		case css.RightParenthesisToken, css.RightBracketToken:
			depth--
		case css.WhitespaceToken, css.CommentToken:
			if depth == 0 {
				start = i + 1
			}
		case css.DelimToken:
			if c := src[t[i].start]; depth == 0 && (c == '>' || c == '+' || c == '~') {
				start = i + 1
			}
		}
	}
	var id, class, tag []byte
	depth = 0
	for i := start; i < len(t); i++ {
		x := t[i]
		switch x.tt {
		case css.LeftParenthesisToken, css.FunctionToken, css.LeftBracketToken:
			depth++
		case css.RightParenthesisToken, css.RightBracketToken:
			depth--
		}
		if depth != 0 {
			continue
		}
		switch x.tt {
		case css.HashToken:
			if id == nil {
				id = src[x.start+1 : x.end]
			}
		case css.DelimToken:
			if src[x.start] == '.' && i+1 < len(t) && t[i+1].tt == css.IdentToken && class == nil {
				class = src[t[i+1].start:t[i+1].end]
			}
		case css.IdentToken:
			if i == start {
				tag = src[x.start:x.end]
			}
		}
	}
	plain := func(b []byte) bool { return len(b) > 0 && bytes.IndexByte(b, '\\') < 0 }
	switch {
	case plain(id):
		return bucket{'i', string(id)}
	case plain(class):
		return bucket{'c', string(class)}
	case plain(tag):
		return bucket{'t', lowerString(tag)}
	}
	return bucket{}
}
