package summary

import (
	"crypto/md5"
	"encoding/hex"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
)

// Parse builds the Summary of a raw RFC 5322 message. Header values are
// decoded (RFC 2047 encoded words, any charset) to UTF-8, and every MIME part
// is visited (nested multiparts, quoted-printable and base64) to list the
// attachments and the links of the text and HTML bodies.
//
// Parse is lenient: a malformed address list keeps the addresses that parse,
// an unparsable date is left zero, and broken MIME structure yields what can
// be read. It fails only when the message has no readable header. At most
// MaxParts parts and MaxLinks links are considered.
func Parse(raw []byte) (Summary, error) {
	return parse(raw, nil)
}

// parse is Parse, also feeding the decoded body parts to text when it is
// not nil.
func parse(raw []byte, text *textCollector) (Summary, error) {
	hdr, body := splitHeader(raw, true)
	h, err := readHeader(hdr)
	if err != nil {
		return Summary{}, err
	}
	if h.Len() == 0 {
		return Summary{}, ErrNoHeader
	}
	s := headerSummary(&h)
	p := parser{s: &s, text: text}
	w := walker{visit: p.leaf}
	w.entity(&h, body, 0)
	if p.links.list != nil {
		s.Links = p.links.list
	}
	return s, nil
}

// headerSummary fills in the fields of a Summary that come from the header.
func headerSummary(h *textproto.Header) Summary {
	s := Summary{
		From:        addressList(h, "From"),
		To:          addressList(h, "To"),
		Cc:          addressList(h, "Cc"),
		Bcc:         addressList(h, "Bcc"),
		ReplyTo:     addressList(h, "Reply-To"),
		Subject:     decodeWords(h.Get("Subject")),
		MessageID:   messageID(h.Get("Message-Id")),
		Attachments: []Attachment{},
		Links:       []string{},
	}
	s.Date = parseDate(h.Get("Date"))
	return s
}

// parseDate parses a Date header value, trying the usual RFC 5322 form
// before net/mail's lenient parser. It returns the zero time when the value
// is absent or unparsable, and UTC otherwise.
func parseDate(v string) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	for _, layout := range []string{"Mon, 2 Jan 2006 15:04:05 -0700", "2 Jan 2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC()
		}
	}
	if t, err := mail.ParseDate(v); err == nil {
		return t.UTC()
	}
	return time.Time{}
}

// messageID returns the id inside the first pair of angle brackets, or the
// trimmed value when there are none.
func messageID(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			v = v[i+1 : i+j]
		}
	}
	return validUTF8(strings.TrimSpace(v))
}

// parser is the walker's visitor for Parse.
type parser struct {
	s       *Summary
	links   linkSet
	scratch []byte         // reused decode buffer
	text    *textCollector // nil unless ParseText
}

func (p *parser) leaf(l *leaf) {
	enc := l.header.Get("Content-Transfer-Encoding")
	data := transferDecode(p.scratch[:0], l.encoded, enc)
	if isEncoded(enc) {
		p.scratch = data[:0] // data is only used within this call
	}
	if l.attachment {
		p.s.Attachments = append(p.s.Attachments, describe(l, data))
		return
	}
	text := convertCharset(data, l.params["charset"])
	switch l.mediaType {
	case "text/html":
		p.s.HasHTML = true
		if p.text != nil {
			p.links.scanHTML(text, p.text.htmlText())
		} else {
			p.links.htmlLinks(text)
		}
	default:
		p.s.HasText = true
		if p.text != nil {
			p.text.add(text)
		}
		p.links.textLinks(text)
	}
}

// describe makes the Attachment record of a part with its decoded bytes.
func describe(l *leaf, data []byte) Attachment {
	sum := md5.Sum(data)
	return Attachment{
		Filename:    l.filename,
		ContentType: l.mediaType,
		ContentID:   l.contentID,
		Size:        int64(len(data)),
		MD5:         hex.EncodeToString(sum[:]),
		Inline:      l.disposition == "inline" || (l.disposition == "" && l.contentID != ""),
	}
}
