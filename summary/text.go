package summary

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// MaxText bounds the readable text ParseText returns.
const MaxText = 64 << 10

// ParseText is Parse that also returns the message's readable text, for
// full-text search: its text/plain bodies, or, when it has none, the
// visible text of its HTML bodies (tags dropped, scripts, styles and the
// head skipped, white space collapsed); at most MaxText bytes, cut at a
// character boundary. Attachments never contribute. The body parts are
// decoded once for both the summary and the text.
func ParseText(raw []byte) (Summary, string, error) {
	var t textCollector
	s, err := parse(raw, &t)
	if err != nil {
		return s, "", err
	}
	return s, t.readable(), nil
}

// textCollector keeps the decoded text of the body parts.
type textCollector struct {
	plain []byte
	html  []byte
}

// add keeps a decoded body part (data may be reused by the caller).
func (t *textCollector) add(mediaType string, data []byte) {
	if mediaType == "text/html" {
		if len(t.html) < 4*MaxText {
			t.html = append(t.html, data[:min(len(data), 4*MaxText-len(t.html))]...)
			t.html = append(t.html, '\n')
		}
		return
	}
	if len(t.plain) < MaxText {
		t.plain = append(t.plain, data[:min(len(data), MaxText-len(t.plain))]...)
		t.plain = append(t.plain, '\n')
	}
}

func (t *textCollector) readable() string {
	text := t.plain
	if len(bytes.TrimSpace(text)) == 0 {
		text = htmlText(t.html)
	}
	return capText(strings.TrimSpace(string(text)))
}

// htmlText returns the visible text of an HTML document with white space
// collapsed.
func htmlText(src []byte) []byte {
	if len(src) == 0 {
		return nil
	}
	z := html.NewTokenizer(bytes.NewReader(src))
	var out []byte
	skip := 0 // depth inside script, style, head, title
	for len(out) < MaxText {
		switch z.Next() {
		case html.ErrorToken:
			return out
		case html.StartTagToken:
			if name, _ := z.TagName(); skipText(name) {
				skip++
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); skipText(name) && skip > 0 {
				skip--
			}
		case html.TextToken:
			if skip > 0 {
				continue
			}
			for _, w := range bytes.Fields(z.Text()) {
				if len(out) > 0 {
					out = append(out, ' ')
				}
				out = append(out, w...)
			}
		}
	}
	return out
}

func skipText(tag []byte) bool {
	switch string(tag) {
	case "script", "style", "head", "title", "noscript", "template":
		return true
	}
	return false
}

// capText cuts s at MaxText bytes, on a character boundary, and drops an
// incomplete character left at its end by an earlier cut.
func capText(s string) string {
	if len(s) > MaxText {
		i := MaxText
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	for len(s) > 0 {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
