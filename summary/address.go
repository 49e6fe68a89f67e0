package summary

import (
	"mime"
	"net/mail"
	"strings"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// addressList parses every field named key as an address list and returns
// the mailboxes, never nil. A malformed list keeps what parses: the list is
// split at top-level commas and each piece is parsed on its own, and a piece
// that still fails yields its <addr-spec> or bare user@domain if it has one.
func addressList(h *textproto.Header, key string) []Address {
	out := []Address{}
	fields := h.FieldsByKey(key)
	for fields.Next() {
		v := validUTF8(fields.Value())
		if strings.TrimSpace(v) == "" {
			continue
		}
		out = appendAddresses(out, v)
	}
	return out
}

func appendAddresses(out []Address, v string) []Address {
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader}}
	if list, err := p.ParseList(v); err == nil {
		for _, a := range list {
			out = append(out, Address{Address: validUTF8(a.Address), Name: validUTF8(a.Name)})
		}
		return out
	}
	for _, piece := range splitAddressList(v) {
		piece = strings.TrimSpace(piece)
		if piece == "" {
			continue
		}
		if a, err := p.Parse(piece); err == nil {
			out = append(out, Address{Address: validUTF8(a.Address), Name: validUTF8(a.Name)})
			continue
		}
		if a, ok := salvageAddress(piece); ok {
			out = append(out, a)
		}
	}
	return out
}

// splitAddressList splits an address list at commas outside quotes, angle
// brackets and comments. A group's "name:" prefix and ";" suffix are dropped.
func splitAddressList(v string) []string {
	parts, ok := splitList(v, true)
	if !ok {
		// An unclosed quote would swallow the rest of the list.
		parts, _ = splitList(v, false)
	}
	return parts
}

// splitList does the work of splitAddressList; with quotes false, double
// quotes are ordinary characters. It reports false when a quote is left open.
func splitList(v string, quotes bool) ([]string, bool) {
	var parts []string
	depth, angle, quoted, start := 0, false, false, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quoted:
			if c == '\\' {
				i++
			} else if c == '"' {
				quoted = false
			}
		case c == '"' && quotes:
			quoted = true
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == '<':
			angle = true
		case c == '>':
			angle = false
		case c == ':' && !angle:
			start = i + 1 // group display name
		case (c == ',' || c == ';') && !angle:
			parts = append(parts, v[start:i])
			start = i + 1
		}
	}
	return append(parts, v[start:]), !quoted
}

// salvageAddress finds an address in a piece that net/mail rejects: the text
// in angle brackets, or else the first word containing "@".
func salvageAddress(piece string) (Address, bool) {
	if i := strings.LastIndexByte(piece, '<'); i >= 0 {
		if j := strings.IndexByte(piece[i:], '>'); j > 0 {
			addr := strings.TrimSpace(piece[i+1 : i+j])
			if strings.Contains(addr, "@") && !strings.ContainsAny(addr, " \t") {
				name := strings.Trim(strings.TrimSpace(piece[:i]), `"'<> `)
				return Address{Address: addr, Name: decodeWords(name)}, true
			}
		}
	}
	for _, w := range strings.Fields(piece) {
		w = strings.Trim(w, `"'<>(),;`)
		if at := strings.IndexByte(w, '@'); at > 0 && at < len(w)-1 {
			return Address{Address: w}, true
		}
	}
	return Address{}, false
}
