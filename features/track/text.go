package track

import (
	"bytes"
	"unicode"
	"unicode/utf8"

	"github.com/smtpgate/smtpgate/features/internal/htmlscan"
)

// RewriteText rewrites the http:// and https:// URLs of a text/plain part
// (UTF-8) into tracking links and returns the result with the number of
// URLs rewritten.
//
// A URL starts at a scheme not glued to a preceding letter, digit, '+', '-'
// or '.' ("xhttp://" is not one) and runs to whitespace (ASCII or Unicode),
// a control character, invalid UTF-8,
// '<', '>' or '"', so "<https://x>" keeps its brackets. Trailing . , ; : ! ?
// ' and * are not part of it, nor is a trailing ')' or ']' without a matching
// opener inside the URL, so "(see https://en.wikipedia.org/wiki/Go_(game))."
// keeps "_(game)". The same rules as in RewriteHTML leave a URL alone
// (placeholders, already on PublicURL, bad host), and "https+notrack://"
// becomes "https://" untracked. o.PreventScam does not apply: in plain text
// the reader sees the tracking URL itself, so there is no text/target
// mismatch to hide.
//
// No line breaks are added: a long tracking URL makes a long line, which the
// MIME layer's quoted-printable encoding wraps with soft breaks. The error is
// non-nil only for a misconfigured Rewriter.
func (r *Rewriter) RewriteText(in []byte, o Options) (out []byte, n int, err error) {
	j, err := r.newJob(o, bytes.Count(in, []byte("://")))
	if err != nil {
		return nil, 0, err
	}
	i := 0
	for i < len(in) {
		k := bytes.Index(in[i:], []byte("://"))
		if k < 0 {
			break
		}
		k += i
		s := k
		for s > i && isSchemeByte(in[s-1]) {
			s--
		}
		if !isTextScheme(in[s:k]) {
			i = k + 3
			continue
		}
		e := urlEnd(in, s, k+3)
		u := string(in[s:e])
		i = e
		if plain, ok := notrackScheme(u); ok {
			j.edits = append(j.edits, edit{s, e, []byte(plain)})
			continue
		}
		if cu, ok := j.click(u, 0); ok {
			j.edits = append(j.edits, edit{s, e, cu})
			n++
		}
	}
	return splice(in, j.edits), n, nil
}

func isSchemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

func isTextScheme(s []byte) bool {
	for _, v := range [...]string{"http", "https", "http+notrack", "https+notrack"} {
		if htmlscan.EqualFold(s, v) {
			return true
		}
	}
	return false
}

// urlEnd returns the end of the URL that starts at s and whose authority
// starts at from, with trailing punctuation excluded.
func urlEnd(in []byte, s, from int) int {
	e := from
	for e < len(in) {
		c := in[e]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"' {
				break
			}
			e++
			continue
		}
		r, size := utf8.DecodeRune(in[e:])
		if r == utf8.RuneError && size == 1 || unicode.IsSpace(r) || unicode.IsControl(r) {
			break
		}
		e += size
	}
	for e > from {
		switch in[e-1] {
		case '.', ',', ';', ':', '!', '?', '\'', '*':
			e--
			continue
		case ')':
			if bytes.Count(in[s:e], []byte("(")) < bytes.Count(in[s:e], []byte(")")) {
				e--
				continue
			}
		case ']':
			if bytes.Count(in[s:e], []byte("[")) < bytes.Count(in[s:e], []byte("]")) {
				e--
				continue
			}
		}
		break
	}
	return e
}
