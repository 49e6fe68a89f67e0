package summary

import (
	"bytes"
	"reflect"
	"testing"
)

// textLinksByteByByte is textLinks as it was before it jumped from "://" to
// "://": it looks at every 'h'. The fuzz target below keeps the two equal.
func (s *linkSet) textLinksByteByByte(text []byte) {
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != 'h' && c != 'H' {
			continue
		}
		rest := text[i:]
		var n int
		switch {
		case len(rest) > 7 && bytes.EqualFold(rest[:7], []byte("http://")):
			n = 7
		case len(rest) > 8 && bytes.EqualFold(rest[:8], []byte("https://")):
			n = 8
		default:
			continue
		}
		if i > 0 && isWordByte(text[i-1]) {
			continue // "xhttp://" is not a URL
		}
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
		i += end - 1
	}
}

func FuzzTextLinksMatchesByteByByte(f *testing.F) {
	for _, s := range []string{"see https://a.example/x.", "xhttp://no https:// http:///p", "hhttps://a https://b://c http://d",
		"HTTPS://X.EXAMPLE/(a)]", "http://", "https://a.example https://a.example", "a://b http://c"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		var got, want linkSet
		got.textLinks(text)
		want.textLinksByteByByte(text)
		if !reflect.DeepEqual(got.list, want.list) {
			t.Errorf("textLinks(%q) = %q, byte by byte %q", text, got.list, want.list)
		}
	})
}
