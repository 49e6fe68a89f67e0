package summary

import (
	"bytes"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// Header is one header field with its value decoded to UTF-8.
type Header struct {
	Key   string `json:"key"`   // the field name as written in the message
	Value string `json:"value"` // unfolded, RFC 2047 words decoded
}

// Part is an attachment with its decoded bytes.
type Part struct {
	Attachment
	Data []byte `json:"-"`
}

// Content is the readable content of a message, for the APIs that show a
// body, the headers or an attachment.
type Content struct {
	// Text is the text/plain body decoded to UTF-8; when a message has
	// several text bodies they are joined by a blank line.
	Text string
	// HTML is the first text/html body decoded to UTF-8, unsanitised.
	HTML string
	// Headers are the top-level header fields in message order.
	Headers []Header
	// Attachments are the attachments and inline files in message order,
	// the same list and order as Summary.Attachments.
	Attachments []Part
}

// Extract decodes the bodies, header fields and attachments of a raw
// message. It is as lenient as Parse and fails only when the message has no
// readable header.
func Extract(raw []byte) (*Content, error) {
	hdr, body := splitHeader(raw, true)
	h, err := readHeader(hdr)
	if err != nil {
		return nil, err
	}
	if h.Len() == 0 {
		return nil, ErrNoHeader
	}
	c := &Content{Headers: headers(&h), Attachments: []Part{}}
	var texts []string
	haveHTML := false
	w := walker{visit: func(l *leaf) {
		enc := l.header.Get("Content-Transfer-Encoding")
		data := transferDecode(nil, l.encoded, enc)
		switch {
		case l.attachment:
			if !isEncoded(enc) {
				data = bytes.Clone(data) // do not alias raw
			}
			c.Attachments = append(c.Attachments, Part{Attachment: describe(l, data), Data: data})
		case l.mediaType == "text/html":
			if !haveHTML {
				c.HTML, haveHTML = toUTF8(data, l.params["charset"]), true
			}
		default:
			texts = append(texts, toUTF8(data, l.params["charset"]))
		}
	}}
	w.entity(&h, body, 0)
	c.Text = strings.Join(texts, "\n\n")
	return c, nil
}

// headers lists the fields of h in order with decoded values, keeping each
// field name as it is spelled in the message.
func headers(h *textproto.Header) []Header {
	out := make([]Header, 0, h.Len())
	fields := h.Fields()
	for fields.Next() {
		key := fields.Key()
		if raw, err := fields.Raw(); err == nil {
			if i := bytes.IndexByte(raw, ':'); i > 0 {
				key = string(bytes.TrimSpace(raw[:i]))
			}
		}
		out = append(out, Header{Key: validUTF8(key), Value: decodeWords(fields.Value())})
	}
	return out
}
