package pipeline

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
)

// maxLine is the longest line RFC 5322 allows, without its CRLF.
const maxLine = 998

// decoded is the text of a part, transfer-decoded and in UTF-8.
type decoded struct {
	text      []byte
	cte       string // the transfer encoding as declared, lower case ("" if none)
	converted bool   // text was converted from another charset to UTF-8
}

// decodePart undoes the transfer encoding of body and converts its charset
// to UTF-8. For HTML without a charset parameter the <meta> charset of the
// document is used, as a browser would.
func decodePart(p *part, body []byte) (decoded, error) {
	cte, n := p.hdr.get("content-transfer-encoding")
	if n > 1 {
		return decoded{}, errors.New("more than one Content-Transfer-Encoding")
	}
	d := decoded{cte: strings.ToLower(cte)}
	switch d.cte {
	case "", "7bit", "8bit", "binary":
		d.text = body
	case "quoted-printable":
		t, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err != nil {
			return decoded{}, fmt.Errorf("quoted-printable: %w", err)
		}
		d.text = t
	case "base64":
		t, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, &skipSpace{r: bytes.NewReader(body)}))
		if err != nil {
			return decoded{}, fmt.Errorf("base64: %w", err)
		}
		d.text = t
	default:
		return decoded{}, fmt.Errorf("unknown Content-Transfer-Encoding %q", cte)
	}

	label := strings.ToLower(strings.TrimSpace(p.params["charset"]))
	if _, has := p.params["charset"]; !has && p.kind == kindHTML {
		if loc := metaCharset.FindSubmatchIndex(htmlHead(d.text)); loc != nil {
			label = strings.ToLower(string(d.text[loc[4]:loc[5]]))
		}
	}
	if isUTF8Label(label) {
		return d, nil
	}
	decode, err := charsetDecoder(label)
	if err != nil {
		return decoded{}, err
	}
	t, err := decode(d.text)
	if err != nil {
		return decoded{}, fmt.Errorf("charset %q: %w", label, err)
	}
	// A conversion that changed nothing (ASCII text in an ASCII-compatible
	// charset) needs no new label either.
	d.converted = !bytes.Equal(t, d.text)
	d.text = t
	return d, nil
}

// isUTF8Label reports whether a charset label needs no conversion: UTF-8,
// US-ASCII (a subset of it) or none (RFC 2045's default is US-ASCII; the
// bytes are kept as they are).
func isUTF8Label(l string) bool {
	switch l {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968":
		return true
	}
	return false
}

// charsetDecoder finds a decoder for a charset label: the WHATWG names
// first (iso-8859-1 is read as windows-1252, as browsers and mail clients
// do), then the IANA names go-message knows. The WHATWG "replacement"
// encoding, which would turn the whole text into U+FFFD, counts as unknown.
func charsetDecoder(label string) (func([]byte) ([]byte, error), error) {
	if enc, err := htmlindex.Get(label); err == nil {
		if enc == encoding.Replacement {
			return nil, fmt.Errorf("unknown charset %q", label)
		}
		return enc.NewDecoder().Bytes, nil
	}
	if _, err := charset.Reader(label, bytes.NewReader(nil)); err != nil {
		return nil, fmt.Errorf("unknown charset %q", label)
	}
	return func(b []byte) ([]byte, error) {
		r, err := charset.Reader(label, bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}, nil
}

// skipSpace drops the line breaks, spaces and tabs inside base64 text.
type skipSpace struct{ r io.Reader }

func (s *skipSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// encodePart encodes text for a part that was declared with transfer
// encoding cte: base64 stays base64, quoted-printable stays quoted-printable,
// and 7bit, 8bit and binary stay as they are while the text still fits
// them (every line at most 998 bytes, no NUL or lone CR, ASCII for 7bit);
// otherwise the text becomes quoted-printable. Lines end in nl.
func encodePart(text []byte, cte, nl string) ([]byte, string) {
	switch cte {
	case "base64":
		return encodeBase64(text, nl), cte
	case "quoted-printable":
	default:
		if fitsIdentity(text, cte == "" || cte == "7bit") {
			return text, cte
		}
	}
	return encodeQP(text, nl), "quoted-printable"
}

const upperHex = "0123456789ABCDEF"

// encodeQP returns text in quoted-printable (RFC 2045 §6.7): line breaks
// (CRLF or LF) become nl, lines are at most 76 characters with soft breaks,
// '=', controls (a lone CR too), bytes over 126, and a space or tab before a
// line break or at the end are escaped.
func encodeQP(text []byte, nl string) []byte {
	out := make([]byte, 0, len(text)+len(text)/6+16)
	col := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '\n' || c == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			if c == '\r' {
				i++
			}
			out = append(out, nl...)
			col = 0
			continue
		}
		escape := c < ' ' && c != '\t' || c > '~' || c == '='
		if c == ' ' || c == '\t' {
			next := i + 1
			escape = next == len(text) || text[next] == '\n' || text[next] == '\r' && next+1 < len(text) && text[next+1] == '\n'
		}
		n := 1
		if escape {
			n = 3
		}
		if col+n > 75 {
			out = append(out, '=')
			out = append(out, nl...)
			col = 0
		}
		if escape {
			out = append(out, '=', upperHex[c>>4], upperHex[c&15])
		} else {
			out = append(out, c)
		}
		col += n
	}
	return out
}

// fitsIdentity reports whether text can be sent as it is: no line over
// maxLine bytes, no NUL, no CR outside a CRLF, and only ASCII if ascii.
func fitsIdentity(text []byte, ascii bool) bool {
	line := 0
	for i, c := range text {
		switch {
		case c == '\n':
			line = 0
			continue
		case c == '\r':
			if i+1 >= len(text) || text[i+1] != '\n' {
				return false
			}
			continue
		case c == 0:
			return false
		case c >= 0x80 && ascii:
			return false
		}
		line++
		if line > maxLine {
			return false
		}
	}
	return true
}

// encodeBase64 returns b in base64 lines of 76 characters.
func encodeBase64(b []byte, nl string) []byte {
	n := base64.StdEncoding.EncodedLen(len(b))
	enc := make([]byte, n)
	base64.StdEncoding.Encode(enc, b)
	out := make([]byte, 0, n+(n/76+1)*len(nl))
	for len(enc) > 76 {
		out = append(out, enc[:76]...)
		out = append(out, nl...)
		enc = enc[76:]
	}
	out = append(out, enc...)
	return append(out, nl...)
}

// metaCharset finds the charset of <meta charset="x"> and of
// <meta http-equiv="Content-Type" content="text/html; charset=x">; group 2
// is the label.
var metaCharset = regexp.MustCompile(`(?i)(<meta\b[^>]*?\bcharset\s*=\s*["']?\s*)([a-z0-9_.:-]+)`)

// maxHead bounds the search for <meta> charsets.
const maxHead = 64 << 10

// htmlHead returns the part of doc where a <meta> charset counts: up to the
// first <body (at most maxHead bytes).
func htmlHead(doc []byte) []byte {
	if len(doc) > maxHead {
		doc = doc[:maxHead]
	}
	if i := indexFold(doc, "<body"); i >= 0 {
		doc = doc[:i]
	}
	return doc
}

// indexFold returns the index of the first "<name" in b, ignoring the case
// of name (ASCII, lower case), or -1.
func indexFold(b []byte, tag string) int {
	t := []byte(tag)
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '<')
		if j < 0 {
			return -1
		}
		i += j
		if i+len(t) <= len(b) && bytes.EqualFold(b[i:i+len(t)], t) {
			return i
		}
		i++
	}
}

// relabelMeta makes every <meta> charset in the head of doc say utf-8.
func relabelMeta(doc []byte) []byte {
	head := htmlHead(doc)
	locs := metaCharset.FindAllSubmatchIndex(head, -1)
	if locs == nil {
		return doc
	}
	out := make([]byte, 0, len(doc)+8*len(locs))
	prev := 0
	for _, loc := range locs {
		if strings.EqualFold(string(head[loc[4]:loc[5]]), "utf-8") {
			continue
		}
		out = append(out, doc[prev:loc[4]]...)
		out = append(out, "utf-8"...)
		prev = loc[5]
	}
	return append(out, doc[prev:]...)
}

// isASCII reports whether b is 7-bit.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
