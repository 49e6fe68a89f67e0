package summary

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// Limits on the work done for one message. They keep a hostile message from
// costing more than a bounded amount of CPU and memory.
const (
	// MaxParts is the largest number of MIME parts (all levels) visited.
	MaxParts = 1000
	// MaxLinks is the largest number of links listed.
	MaxLinks = 10000
	// maxDepth bounds multipart nesting.
	maxDepth = 16
)

// ErrNoHeader is returned when a message has no readable header field at all.
var ErrNoHeader = errors.New("summary: message has no header")

// leaf is one non-multipart part as the walker hands it to a visitor.
type leaf struct {
	header      *textproto.Header
	mediaType   string            // lower case, e.g. "text/plain"
	params      map[string]string // Content-Type parameters, decoded
	disposition string            // lower case, "" when absent
	filename    string
	contentID   string
	attachment  bool   // an attachment or inline file rather than a body
	encoded     []byte // the part body, still transfer-encoded
}

// walker walks the MIME tree of a message and calls visit for every leaf.
type walker struct {
	parts int
	visit func(*leaf)
}

// splitHeader splits raw into its header block and body. The header ends at
// the first empty line or, leniently (as Postfix does), at the first line
// that is neither a field nor a continuation. With mbox set, a leading mbox
// "From " line is skipped.
func splitHeader(raw []byte, mbox bool) (hdr, body []byte) {
	start := 0
	if mbox && bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			start = i + 1
		} else {
			return nil, nil
		}
	}
	pos := start
	for pos < len(raw) {
		end := bytes.IndexByte(raw[pos:], '\n')
		next := len(raw)
		line := raw[pos:]
		if end >= 0 {
			line = raw[pos : pos+end]
			next = pos + end + 1
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
			return raw[start:pos], raw[next:]
		case line[0] == ' ' || line[0] == '\t':
			if pos == start {
				return nil, raw[start:]
			}
		case !isFieldLine(line):
			return raw[start:pos], raw[pos:]
		}
		pos = next
	}
	return raw[start:], nil
}

// isFieldLine reports whether line starts with a valid "Name:".
func isFieldLine(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	key := bytes.TrimRight(line[:i], " \t")
	if len(key) == 0 {
		return false
	}
	for _, c := range key {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// readHeader parses a header block split off by splitHeader.
func readHeader(hdr []byte) (textproto.Header, error) {
	size := len(hdr) + 16
	if size > 64<<10 {
		size = 64 << 10
	}
	h, err := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(hdr), size))
	if err != nil && !errors.Is(err, io.EOF) {
		return h, fmt.Errorf("summary: read header: %w", err)
	}
	return h, nil
}

// mediaType parses a Content-Type or Content-Disposition value leniently: an
// unparsable parameter list still yields the type.
func mediaType(v string) (string, map[string]string) {
	if v == "" {
		return "", nil
	}
	t, params, err := mime.ParseMediaType(v)
	if err != nil && t == "" {
		t, _, _ = strings.Cut(v, ";")
		t = strings.ToLower(strings.TrimSpace(t))
	}
	for k, p := range params {
		if strings.Contains(p, "=?") {
			params[k] = decodeWords(p)
		}
	}
	return t, params
}

// entity walks one entity: h is its header, body its (encoded) body.
func (w *walker) entity(h *textproto.Header, body []byte, depth int) {
	if w.parts >= MaxParts {
		return
	}
	w.parts++
	mt, params := mediaType(h.Get("Content-Type"))
	if mt == "" || !strings.Contains(mt, "/") {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") && depth < maxDepth {
		if w.multipart(body, params["boundary"], depth) {
			return
		}
		// No part could be read: fall back to showing the body as text.
		mt, params = "text/plain", nil
	}
	l := leaf{header: h, mediaType: mt, params: params, encoded: body}
	disp, dparams := mediaType(h.Get("Content-Disposition"))
	l.disposition = disp
	l.filename = dparams["filename"]
	if l.filename == "" {
		l.filename = params["name"]
	}
	l.filename = validUTF8(strings.TrimSpace(l.filename))
	if cid := strings.TrimSpace(h.Get("Content-Id")); cid != "" {
		l.contentID = validUTF8(strings.TrimSuffix(strings.TrimPrefix(cid, "<"), ">"))
	}
	// Every part that is not a text or HTML body is listed as an
	// attachment, named or not; a body part with a file name or
	// "attachment" disposition is one too.
	isBody := mt == "text/plain" || mt == "text/html"
	l.attachment = !isBody || disp == "attachment" || l.filename != ""
	w.visit(&l)
}

// multipart walks the parts of a multipart body. It reports false when not a
// single part could be found (a missing or wrong boundary).
func (w *walker) multipart(body []byte, boundary string, depth int) bool {
	if boundary == "" {
		return false
	}
	n := splitMultipart(body, boundary, func(part []byte) bool {
		hdr, pbody := splitHeader(part, false)
		h, _ := readHeader(hdr) // a bad part header leaves the fields read so far
		w.entity(&h, pbody, depth+1)
		return w.parts < MaxParts
	})
	return n > 0
}

// splitMultipart calls visit with each part of a multipart body, without
// copying: the bytes between one delimiter line and the line break before
// the next. A delimiter line is "--boundary" at the start of a line,
// optionally followed by white space; "--boundary--" closes the body. The
// preamble and epilogue are skipped; a body that is cut off before its
// closing delimiter yields its last part up to the end. visit returns false
// to stop. splitMultipart returns the number of parts visited.
func splitMultipart(body []byte, boundary string, visit func(part []byte) bool) int {
	delim := []byte("--" + boundary)
	n, start, pos := 0, -1, 0
	for pos < len(body) {
		i := bytes.Index(body[pos:], delim)
		if i < 0 {
			break
		}
		i += pos
		pos = i + 1
		if i > 0 && body[i-1] != '\n' {
			continue // not at the start of a line
		}
		lineEnd, next := len(body), len(body)
		if j := bytes.IndexByte(body[i:], '\n'); j >= 0 {
			lineEnd, next = i+j, i+j+1
		}
		rest := body[i+len(delim) : lineEnd]
		closing := bytes.HasPrefix(rest, []byte("--"))
		if closing {
			rest = rest[2:]
		}
		if len(bytes.TrimRight(rest, " \t\r")) != 0 {
			continue // a longer boundary that starts with this one
		}
		if start >= 0 {
			n++
			if !visit(trimLineBreak(body[start:i])) {
				return n
			}
		}
		if closing {
			return n
		}
		start, pos = next, next
	}
	if start >= 0 && start <= len(body) {
		n++
		visit(body[start:])
	}
	return n
}

// trimLineBreak removes one trailing CRLF or LF: the line break before a
// delimiter belongs to the delimiter.
func trimLineBreak(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b[:len(b)-2]
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}

// isEncoded reports whether transferDecode decodes the encoding into dst
// rather than returning src.
func isEncoded(encoding string) bool {
	e := strings.ToLower(strings.TrimSpace(encoding))
	return e == "base64" || e == "quoted-printable"
}

// transferDecode undoes the Content-Transfer-Encoding of a part body,
// leniently: undecodable input yields what could be decoded. The result may
// alias src when no decoding is needed; dst is reused when large enough.
func transferDecode(dst, src []byte, encoding string) []byte {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "base64":
		return decodeBase64(dst, src)
	case "quoted-printable":
		return decodeQP(dst, src)
	default:
		return src
	}
}

// decodeBase64 decodes base64 ignoring anything outside the alphabet and
// stopping at the first padding character.
func decodeBase64(dst, src []byte) []byte {
	clean := make([]byte, 0, len(src))
	for _, c := range src {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		case c == '=':
			goto done
		}
	}
done:
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	n := base64.RawStdEncoding.DecodedLen(len(clean))
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	m, err := base64.RawStdEncoding.Decode(dst, clean)
	if err != nil {
		var cie base64.CorruptInputError
		if errors.As(err, &cie) {
			m = int(cie) / 4 * 3
		}
	}
	return dst[:m]
}

// decodeQP decodes quoted-printable leniently: an "=" not followed by two
// hex digits or a line break is kept literally; trailing white space on a
// line is dropped as RFC 2045 requires.
func decodeQP(dst, src []byte) []byte {
	if cap(dst) < len(src) {
		dst = make([]byte, 0, len(src))
	}
	dst = dst[:0]
	for len(src) > 0 {
		line := src
		rest := []byte(nil)
		nl := false
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			line, rest, nl = src[:i], src[i+1:], true
		}
		src = rest
		line = bytes.TrimRight(line, " \t\r")
		soft := false
		if len(line) > 0 && line[len(line)-1] == '=' {
			soft = true
			line = line[:len(line)-1]
		}
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c == '=' && i+2 < len(line) && isHex(line[i+1]) && isHex(line[i+2]) {
				dst = append(dst, unhex(line[i+1])<<4|unhex(line[i+2]))
				i += 2
				continue
			}
			dst = append(dst, c)
		}
		if nl && !soft {
			dst = append(dst, '\r', '\n')
		}
	}
	return dst
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// convertCharset converts decoded body bytes in the named charset to UTF-8,
// returning b itself for UTF-8, US-ASCII and unknown charsets. The result may
// still hold invalid UTF-8.
func convertCharset(b []byte, cs string) []byte {
	switch strings.ToLower(strings.TrimSpace(cs)) {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return b
	}
	r, err := charset.Reader(cs, bytes.NewReader(b))
	if err != nil {
		return b
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return b
	}
	return out
}

// toUTF8 converts decoded text in the named charset to a valid UTF-8 string.
// An unknown charset is treated as UTF-8, and bytes that are not valid UTF-8
// are read as ISO-8859-1.
func toUTF8(b []byte, cs string) string {
	return validUTF8(string(convertCharset(b, cs)))
}

// validUTF8 returns s unchanged when it is valid UTF-8. Otherwise, when s
// holds no valid multi-byte sequence at all, it is read as ISO-8859-1 (the
// usual meaning of raw 8-bit bytes in old mail); when it mixes valid UTF-8
// with stray bytes, those bytes become U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if n > 1 && r != utf8.RuneError {
			return strings.ToValidUTF8(s, "\uFFFD")
		}
		i += n
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/2)
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// decodeWords decodes RFC 2047 encoded words in a header value. A value that
// cannot be decoded is returned as it is.
func decodeWords(v string) string {
	if !strings.Contains(v, "=?") {
		return validUTF8(v)
	}
	d := mime.WordDecoder{CharsetReader: charset.Reader}
	out, err := d.DecodeHeader(v)
	if err != nil {
		return validUTF8(v)
	}
	return validUTF8(out)
}
