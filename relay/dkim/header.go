package dkim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// MaxHeaderBytes bounds the header block Sign holds in memory.
const MaxHeaderBytes = 1 << 20

// ErrNoSigningDomain is wrapped by Sign's error when the message has no
// usable From address and no domain override was given.
var ErrNoSigningDomain = errors.New("dkim: no signing domain")

// header is a message header block as read from CRLF-normalised input.
type header struct {
	raw    []byte   // the bytes read, including the blank line that ends them
	keys   []string // field names, in order, as go-msgauth parses them
	values []string // unfolded field values, parallel to keys
}

// readHeader reads the header block from br, which yields CRLF lines. A
// message that ends inside its header gets the blank line that separates an
// (empty) body, so the output is well-formed.
func readHeader(br *bufio.Reader, max int) (*header, error) {
	var raw []byte
	lineStart := 0
	for {
		chunk, err := br.ReadSlice('\n')
		raw = append(raw, chunk...)
		if len(raw) > max {
			return nil, fmt.Errorf("dkim: header block larger than %d bytes", max)
		}
		if lineStart == 0 && len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\t') {
			// Below a prepended DKIM-Signature it would read as part of it.
			return nil, errors.New("dkim: malformed header: the first line starts with white space")
		}
		switch {
		case err == nil:
			if len(raw)-lineStart == 2 { // "\r\n": end of the header
				return parseHeader(raw), nil
			}
			lineStart = len(raw)
		case errors.Is(err, bufio.ErrBufferFull):
			// A long line: keep reading it.
		case errors.Is(err, io.EOF):
			if len(raw) == 0 {
				return nil, errors.New("dkim: empty message")
			}
			return parseHeader(append(raw, "\r\n"...)), nil
		default:
			return nil, fmt.Errorf("dkim: read header: %w", err)
		}
	}
}

// parseHeader splits raw into fields the way go-msgauth does: a line starting
// with space or tab continues the previous field; the name is what precedes
// the first colon, trimmed.
func parseHeader(raw []byte) *header {
	h := &header{raw: raw}
	body := raw[:len(raw)-2] // drop the terminating blank line
	for len(body) > 0 {
		line, rest, _ := bytes.Cut(body, []byte("\r\n"))
		body = rest
		if len(h.keys) > 0 && len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			h.values[len(h.values)-1] += string(line)
			continue
		}
		k, v, _ := strings.Cut(string(line), ":")
		h.keys = append(h.keys, strings.TrimSpace(k))
		h.values = append(h.values, v)
	}
	return h
}

// count returns how many fields are named key (case-insensitively).
func (h *header) count(key string) int {
	n := 0
	for _, k := range h.keys {
		if strings.EqualFold(k, key) {
			n++
		}
	}
	return n
}

// fromDomain returns the domain of the first address of the single From
// field, in normalised form.
func (h *header) fromDomain() (string, error) {
	var from []string
	for i, k := range h.keys {
		if strings.EqualFold(k, "From") {
			from = append(from, h.values[i])
		}
	}
	if len(from) != 1 {
		return "", fmt.Errorf("%w: the message has %d From fields, want 1", ErrNoSigningDomain, len(from))
	}
	// Only the domain matters, so encoded display names in any charset are
	// accepted undecoded instead of failing the parse.
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, input io.Reader) (io.Reader, error) { return input, nil },
	}}
	addrs, err := p.ParseList(from[0])
	if err != nil {
		return "", fmt.Errorf("%w: From %q: %w", ErrNoSigningDomain, strings.TrimSpace(from[0]), err)
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("%w: From has no address", ErrNoSigningDomain)
	}
	at := strings.LastIndexByte(addrs[0].Address, '@')
	d, err := normalizeDomain(addrs[0].Address[at+1:])
	if at < 0 || err != nil {
		return "", fmt.Errorf("%w: From address %q has no valid domain", ErrNoSigningDomain, addrs[0].Address)
	}
	return d, nil
}
