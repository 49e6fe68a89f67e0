package postgres

import (
	"strings"
	"unicode/utf8"
)

// clean makes s storable as PostgreSQL text: invalid UTF-8 and NUL bytes
// become U+FFFD.
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// cleanAll applies clean to every element, never returning nil.
func cleanAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = clean(s)
	}
	return out
}

// cleanJSON makes JSON produced by encoding/json storable as jsonb, which
// refuses the escape \u0000: it becomes \ufffd. encoding/json already
// replaces invalid UTF-8. Every backslash in JSON text starts an escape
// inside a string, so walking escapes pairwise finds each \u0000 exactly.
func cleanJSON(b []byte) []byte {
	const nul = `\u0000`
	if !strings.Contains(string(b), nul) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if string(b[i:min(i+len(nul), len(b))]) == nul {
			out = append(out, `\ufffd`...)
			i += len(nul) - 1
			continue
		}
		out = append(out, b[i], b[i+1]) // any other escape, copied whole
		i++
	}
	return out
}

// likePattern returns an ILIKE pattern matching s as a substring.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(clean(s)) + "%"
}
