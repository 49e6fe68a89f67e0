// Package htmlscantest is the reference that the htmlscan tokenizer, and the
// byte-splicing rewriters built on it, are tested against: x/net/html's own
// tokenizer, with each token's byte offsets in the input.
package htmlscantest

import (
	"bytes"
	"fmt"

	"golang.org/x/net/html"
)

// Token is one token as x/net/html reports it. Start and End are recovered
// from the lengths of Raw(); a self-closing tag is a StartTagToken.
type Token struct {
	Type       html.TokenType
	Start, End int
	Attrs      []html.Attribute // start tags only
}

func (t Token) String() string { return fmt.Sprintf("%v[%d:%d]", t.Type, t.Start, t.End) }

// Reference tokenizes in with x/net/html.
func Reference(in []byte) []Token {
	z := html.NewTokenizer(bytes.NewReader(in))
	var out []Token
	pos := 0
	for {
		tt := z.Next()
		n := len(z.Raw())
		t := Token{Type: tt, Start: pos, End: pos + n}
		pos += n
		switch tt {
		case html.ErrorToken:
			return out
		case html.StartTagToken, html.SelfClosingTagToken:
			t.Type = html.StartTagToken
			t.Attrs = z.Token().Attr
		}
		out = append(out, t)
	}
}
