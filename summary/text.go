package summary

import (
	"bytes"
	"strings"
	"unicode/utf8"
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

// textCollector keeps the text of the body parts: text/plain as decoded,
// HTML as its visible text, which the parser extracts in the same pass as
// the links (linkSet.scanHTML).
type textCollector struct {
	plain []byte
	html  []byte
}

// add keeps a decoded text/plain part (data may be reused by the caller).
func (t *textCollector) add(data []byte) {
	if len(t.plain) < MaxText {
		t.plain = append(t.plain, data[:min(len(data), MaxText-len(t.plain))]...)
		t.plain = append(t.plain, '\n')
	}
}

// htmlText is where the parser appends an HTML part's visible text, or nil
// once there is enough.
func (t *textCollector) htmlText() *[]byte {
	if len(t.html) >= MaxText {
		return nil
	}
	return &t.html
}

func (t *textCollector) readable() string {
	text := t.plain
	if len(bytes.TrimSpace(text)) == 0 {
		text = t.html
	}
	return capText(strings.TrimSpace(string(text)))
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
