package pipeline

import (
	"bytes"
	"mime"
	"regexp"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// field is one header field as written: its name line and continuation
// lines, line breaks included. A line that is not a field (no colon, or a
// continuation line with nothing to continue) is kept as a field with an
// empty name, so that every byte of a header survives.
type field struct {
	raw     []byte
	name    string // lower case, without surrounding white space; "" if not a field
	deleted bool
	edited  bool // raw was replaced
}

// header is the header block of an entity, split into fields without
// losing a byte. Splitting never fails.
type header struct {
	fields []field
	end    []byte // the empty line that ends the header; nil when there is none
}

// parseHeader splits the header block at the start of b and returns it
// with its length in b (including the empty line that ends it). A header
// without an empty line runs to the end of b.
func parseHeader(b []byte) (header, int) {
	var h header
	i, start, name := 0, -1, "" // the named field being read (start -1: none)
	closeField := func(end int) {
		if start >= 0 {
			h.fields = append(h.fields, field{raw: b[start:end:end], name: name})
			start = -1
		}
	}
	for i < len(b) {
		lineEnd := len(b)
		if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
			lineEnd = i + j + 1
		}
		line := b[i:lineEnd]
		if isBlankLine(line) {
			closeField(i)
			h.end = line
			return h, lineEnd
		}
		if (line[0] == ' ' || line[0] == '\t') && start >= 0 {
			// A continuation line: the field grows.
			i = lineEnd
			continue
		}
		closeField(i)
		if n := fieldName(line); n != "" {
			start, name = i, n
		} else {
			h.fields = append(h.fields, field{raw: line[:len(line):len(line)]})
		}
		i = lineEnd
	}
	closeField(len(b))
	return h, len(b)
}

// isBlankLine reports whether line is "\n" or "\r\n".
func isBlankLine(line []byte) bool {
	return len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n'
}

// fieldName returns the lower-case name of a field line, or "" when the
// line is not a field.
func fieldName(line []byte) string {
	if line[0] == ' ' || line[0] == '\t' {
		return ""
	}
	c := bytes.IndexByte(line, ':')
	if c <= 0 {
		return ""
	}
	name := bytes.TrimRight(line[:c], " \t")
	if len(name) == 0 {
		return ""
	}
	for _, ch := range name {
		if ch < 33 || ch > 126 {
			return ""
		}
	}
	return strings.ToLower(string(name))
}

// value returns the unfolded value of a field: everything after the colon,
// line breaks removed, trimmed.
func (f *field) value() string {
	v := f.raw[bytes.IndexByte(f.raw, ':')+1:]
	if bytes.IndexByte(v, '\n') < 0 {
		return string(bytes.TrimSpace(v))
	}
	var b strings.Builder
	b.Grow(len(v))
	for _, c := range v {
		if c != '\r' && c != '\n' {
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}

// get returns the value of the first live field called name (lower case)
// and how many live fields have that name.
func (h *header) get(name string) (string, int) {
	v, n := "", 0
	for i := range h.fields {
		f := &h.fields[i]
		if f.deleted || f.name != name {
			continue
		}
		if n == 0 {
			v = f.value()
		}
		n++
	}
	return v, n
}

// find returns the first live field called name, or nil.
func (h *header) find(name string) *field {
	for i := range h.fields {
		if f := &h.fields[i]; !f.deleted && f.name == name {
			return f
		}
	}
	return nil
}

// dirty reports whether the header differs from its input bytes.
func (h *header) dirty() bool {
	for i := range h.fields {
		if h.fields[i].deleted || h.fields[i].edited {
			return true
		}
	}
	return false
}

// appendTo writes the header, empty line included.
func (h *header) appendTo(buf *bytes.Buffer) {
	for i := range h.fields {
		if !h.fields[i].deleted {
			buf.Write(h.fields[i].raw)
		}
	}
	buf.Write(h.end)
}

// setField replaces the first field called name with "Name: value", keeping
// the name as written, or adds it at the end of the header.
func (h *header) setField(name, canonical, value, nl string) {
	if f := h.find(name); f != nil {
		written := string(bytes.TrimRight(f.raw[:bytes.IndexByte(f.raw, ':')], " \t"))
		f.raw = []byte(written + ": " + value + nl)
		f.edited = true
		return
	}
	h.add(canonical + ": " + value + nl)
}

// add appends a field (given with its line break) at the end of the header.
func (h *header) add(raw string) {
	h.fields = append(h.fields, field{raw: []byte(raw), name: fieldName([]byte(raw)), edited: true})
	if h.end == nil {
		// A header that ran to the end of the entity now needs its
		// empty line: there is no body to separate, but a parser expects it.
		h.end = []byte(raw[len(strings.TrimRight(raw, "\r\n")):])
	}
}

// charsetParam finds a plain charset parameter (not RFC 2231) in a raw
// Content-Type field; group 2 is its value, quoted or not.
var charsetParam = regexp.MustCompile(`(?i)(;\s*charset\s*=\s*)("[^"\r\n]*"|[^;\s"]*)`)

// setCharsetUTF8 labels the Content-Type of h charset=utf-8, changing only
// the charset parameter of the field as written when it can.
func (h *header) setCharsetUTF8(mediaType string, params map[string]string, nl string) {
	f := h.find("content-type")
	if f == nil {
		h.add("Content-Type: " + mime.FormatMediaType(mediaType, map[string]string{"charset": "utf-8"}) + nl)
		return
	}
	if loc := charsetParam.FindSubmatchIndex(f.raw); loc != nil {
		raw := make([]byte, 0, len(f.raw)+8)
		raw = append(raw, f.raw[:loc[4]]...)
		raw = append(raw, "utf-8"...)
		f.raw = append(raw, f.raw[loc[5]:]...)
		f.edited = true
		return
	}
	if _, ok := params["charset"]; ok {
		// An RFC 2231 charset*= (or similar): write the field anew.
		p := make(map[string]string, len(params))
		for k, v := range params {
			p[k] = v
		}
		p["charset"] = "utf-8"
		h.setField("content-type", "Content-Type", mime.FormatMediaType(mediaType, p), nl)
		return
	}
	// No charset yet: append one to the field's last line.
	body := bytes.TrimRight(f.raw, "\r\n")
	brk := f.raw[len(body):]
	body = bytes.TrimRight(body, " \t;")
	lastLine := len(body) - bytes.LastIndexByte(body, '\n') - 1
	sep := "; "
	if lastLine+len("; charset=utf-8") > 76 {
		sep = ";" + nl + "\t"
	}
	raw := make([]byte, 0, len(f.raw)+24)
	raw = append(raw, body...)
	raw = append(raw, sep...)
	raw = append(raw, "charset=utf-8"...)
	if len(brk) == 0 {
		brk = []byte(nl)
	}
	f.raw = append(raw, brk...)
	f.edited = true
}

// textprotoHeader builds a go-message header holding the fields of h (the
// same byte slices, so that fields deleted from it can be told apart).
func (h *header) textprotoHeader() textproto.Header {
	var th textproto.Header
	// AddRaw inserts at the top: add the fields bottom up.
	for i := len(h.fields) - 1; i >= 0; i-- {
		if f := &h.fields[i]; f.name != "" && !f.deleted {
			th.AddRaw(f.raw)
		}
	}
	return th
}

// syncDeleted marks deleted every field of h that is no longer in th.
func (h *header) syncDeleted(th *textproto.Header) {
	kept := make(map[*byte]bool, len(h.fields))
	for f := th.Fields(); f.Next(); {
		if raw, err := f.Raw(); err == nil && len(raw) > 0 {
			kept[&raw[0]] = true
		}
	}
	for i := range h.fields {
		if f := &h.fields[i]; f.name != "" && !f.deleted && !kept[&f.raw[0]] {
			f.deleted = true
		}
	}
}
