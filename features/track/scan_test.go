package track

import (
	"bytes"
	"fmt"

	xhtml "golang.org/x/net/html"

	"github.com/smtpgate/smtpgate/features/internal/htmlscan"
)

// refToken is a token as x/net/html reports it, with offsets recovered from
// the lengths of Raw().
type refToken struct {
	kind       htmlscan.Kind
	start, end int
	attrs      []xhtml.Attribute // start tags only
}

func (t refToken) String() string { return fmt.Sprintf("%d[%d:%d]", t.kind, t.start, t.end) }

// referenceTokens tokenizes in with x/net/html, the oracle for the
// rewritten documents.
func referenceTokens(in []byte) []refToken {
	z := xhtml.NewTokenizer(bytes.NewReader(in))
	var out []refToken
	pos := 0
	for {
		tt := z.Next()
		n := len(z.Raw())
		t := refToken{start: pos, end: pos + n}
		pos += n
		switch tt {
		case xhtml.ErrorToken:
			return out
		case xhtml.TextToken:
			t.kind = htmlscan.Text
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			t.kind = htmlscan.StartTag
			t.attrs = z.Token().Attr
		case xhtml.EndTagToken:
			t.kind = htmlscan.EndTag
		case xhtml.CommentToken:
			t.kind = htmlscan.Comment
		case xhtml.DoctypeToken:
			t.kind = htmlscan.Doctype
		}
		out = append(out, t)
	}
}

// asciiLower returns a lower-cased copy of b (ASCII letters only).
func asciiLower(b []byte) []byte {
	out := bytes.Clone(b)
	for i, c := range out {
		if 'A' <= c && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return out
}
