package web

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tdewolff/parse/v2"
	"github.com/tdewolff/parse/v2/css"
)

// cssFunctions are the CSS functions kept: colours, maths, gradients,
// transforms, filters and the pseudo-class functions of selectors. Any
// other function (expression(), image-set(), element(), paint()...) is
// removed with its arguments, which makes the declaration invalid, so the
// browser drops it.
var cssFunctions = setOf(
	"rgb", "rgba", "hsl", "hsla", "hwb", "lab", "lch", "oklab", "oklch", "color", "color-mix",
	"calc", "min", "max", "clamp", "var", "env",
	"linear-gradient", "radial-gradient", "conic-gradient", "repeating-linear-gradient",
	"repeating-radial-gradient", "repeating-conic-gradient",
	"-webkit-linear-gradient", "-webkit-radial-gradient", "-moz-linear-gradient", "-moz-radial-gradient",
	"translate", "translatex", "translatey", "translatez", "translate3d", "scale", "scalex", "scaley",
	"scalez", "scale3d", "rotate", "rotatex", "rotatey", "rotatez", "rotate3d", "skew", "skewx",
	"skewy", "matrix", "matrix3d", "perspective", "cubic-bezier", "steps",
	"blur", "brightness", "contrast", "drop-shadow", "grayscale", "hue-rotate", "invert", "opacity",
	"saturate", "sepia", "minmax", "repeat", "fit-content", "counter", "counters", "local", "format",
	"not", "is", "where", "has", "nth-child", "nth-last-child", "nth-of-type", "nth-last-of-type",
	"lang", "dir",
)

// cssAtRules are the at-rules kept (after a vendor prefix is removed); any
// other, notably @import, is removed with its prelude and block.
var cssAtRules = setOf("media", "supports", "font-face", "keyframes", "page", "layer", "container")

// cssPropertiesDropped load code in old browsers; they are renamed.
var cssPropertiesDropped = setOf("behavior", "-ms-behavior", "-moz-binding")

// sanitizeCSS filters a style sheet or a style attribute token by token:
// it removes url()s that are not images in data: or cid: (a cid: is turned
// into a data: URL when resolve knows it), functions and at-rules off the
// lists above, comments, and every "<", so the result can sit inside a
// <style> element.
func sanitizeCSS(src string, resolve cidResolver) string {
	s := sanitizer{resolve: resolve}
	return s.css(src)
}

// css is sanitizeCSS with the image rules of s (remote images kept when
// s.remote is set).
func (s *sanitizer) css(src string) string {
	l := css.NewLexer(parse.NewInputString(src))
	var b strings.Builder
	for {
		tt, data := l.Next()
		switch tt {
		case css.ErrorToken:
			// No "<" may survive, whatever token it hid in (a string, an
			// escaped identifier like a\<b): with one, the text could close
			// its <style> element. CSS reads \3c as "<" where it matters.
			return strings.ReplaceAll(b.String(), "<", `\3c `)
		case css.CommentToken, css.CDOToken, css.CDCToken:
			b.WriteByte(' ')
		case css.BadStringToken, css.BadURLToken:
			// dropped: the declaration becomes invalid
		case css.StringToken:
			if closedString(data) {
				b.Write(data)
			}
		case css.URLToken:
			writeCSSURL(&b, s, urlTokenValue(data))
		case css.FunctionToken:
			name := strings.ToLower(cssUnescape(string(data[:len(data)-1])))
			switch {
			case name == "url":
				// url written with an escape (u\72l(): read the argument
				// tokens; only a single string is a URL we can judge.
				arg, ok := functionArgument(l)
				if !ok {
					b.WriteString("none")
					continue
				}
				writeCSSURL(&b, s, arg)
			case cssFunctions[name]:
				b.WriteString(name)
				b.WriteByte('(')
			default:
				skipFunction(l)
			}
		case css.AtKeywordToken:
			name := strings.ToLower(cssUnescape(string(data[1:])))
			base := name
			if strings.HasPrefix(base, "-") {
				if i := strings.IndexByte(base[1:], '-'); i >= 0 {
					base = base[i+2:]
				}
			}
			if cssAtRules[base] {
				b.WriteString("@" + name)
			} else {
				skipAtRule(l)
			}
		case css.IdentToken:
			if cssPropertiesDropped[strings.ToLower(cssUnescape(string(data)))] {
				b.WriteString("smtpgate-blocked")
			} else {
				b.Write(data)
			}
		case css.DelimToken:
			if data[0] != '<' && data[0] != 0 {
				b.Write(data)
			}
		default:
			b.Write(data)
		}
	}
}

// writeCSSURL writes url("u") when u is an acceptable image, else none.
func writeCSSURL(b *strings.Builder, s *sanitizer, u string) {
	v, ok := s.imageURL(u)
	if !ok {
		b.WriteString("none")
		return
	}
	b.WriteString(`url("`)
	for _, r := range v {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("+/=;,:._-@%?&#!*~$", r)) {
			b.WriteRune(r)
		} else {
			b.WriteString(`\` + strconv.FormatInt(int64(r), 16) + " ")
		}
	}
	b.WriteString(`")`)
}

// urlTokenValue returns the URL of a url(...) token, quotes and escapes
// removed.
func urlTokenValue(tok []byte) string {
	s := string(tok)
	i := strings.IndexByte(s, '(')
	if i < 0 || !strings.HasSuffix(s, ")") {
		return ""
	}
	s = strings.TrimSpace(s[i+1 : len(s)-1])
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') {
		return cssUnquote(s)
	}
	return cssUnescape(s)
}

// functionArgument reads the arguments of a function up to its closing
// parenthesis and returns them when they are exactly one string.
func functionArgument(l *css.Lexer) (string, bool) {
	var arg string
	n := 0
	depth := 1
	for {
		tt, data := l.Next()
		switch tt {
		case css.ErrorToken:
			return "", false
		case css.WhitespaceToken, css.CommentToken:
			continue
		case css.FunctionToken, css.LeftParenthesisToken:
			depth++
		case css.RightParenthesisToken:
			depth--
			if depth == 0 {
				return arg, n == 1 && arg != ""
			}
		case css.StringToken:
			arg = cssUnquote(string(data))
		}
		n++
	}
}

// skipAtRule consumes the rest of an at-rule: its prelude up to a ";", or
// up to and including its {} block.
func skipAtRule(l *css.Lexer) {
	depth := 0
	for {
		tt, _ := l.Next()
		switch tt {
		case css.ErrorToken:
			return
		case css.SemicolonToken:
			if depth == 0 {
				return
			}
		case css.LeftBraceToken:
			depth++
		case css.RightBraceToken:
			depth--
			if depth <= 0 {
				return
			}
		}
	}
}

// closedString reports whether a string token ends with its (unescaped)
// closing quote; a string cut short by the end of the input is not.
func closedString(tok []byte) bool {
	if len(tok) < 2 || tok[len(tok)-1] != tok[0] {
		return false
	}
	backslashes := 0
	for i := len(tok) - 2; i > 0 && tok[i] == '\\'; i-- {
		backslashes++
	}
	return backslashes%2 == 0
}

// skipFunction consumes the arguments of a function up to its closing
// parenthesis.
func skipFunction(l *css.Lexer) {
	for depth := 1; depth > 0; {
		tt, _ := l.Next()
		switch tt {
		case css.ErrorToken:
			return
		case css.FunctionToken, css.LeftParenthesisToken, css.URLToken:
			if tt != css.URLToken {
				depth++
			}
		case css.RightParenthesisToken:
			depth--
		}
	}
}

// cssUnquote removes the quotes of a CSS string token and decodes its
// escapes.
func cssUnquote(s string) string {
	if len(s) < 2 {
		return ""
	}
	q := s[0]
	s = s[1:]
	if strings.HasSuffix(s, string(q)) && !strings.HasSuffix(s, `\`+string(q)) {
		s = s[:len(s)-1]
	}
	return cssUnescape(s)
}

// cssUnescape decodes CSS escapes: \ followed by up to six hex digits and
// one optional white space, an escaped newline (removed), or any other
// escaped character.
func cssUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		j := i
		for j < len(s) && j-i < 6 && isHexDigit(s[j]) {
			j++
		}
		if j > i {
			n, _ := strconv.ParseUint(s[i:j], 16, 32)
			r := rune(n)
			if r == 0 || r > utf8.MaxRune || (r >= 0xd800 && r <= 0xdfff) {
				r = utf8.RuneError
			}
			b.WriteRune(r)
			if j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r' || s[j] == '\f') {
				j++
			}
			i = j - 1
			continue
		}
		if s[i] == '\n' {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
