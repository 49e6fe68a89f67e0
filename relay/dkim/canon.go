package dkim

import (
	"hash"
	"strings"
)

// relaxedBody hashes a message body in the relaxed canonical form of RFC
// 6376 section 3.4.4, exactly as go-msgauth's verifier computes it: white
// space (SP, HTAB) at the end of a line is dropped, a run of white space
// inside a line becomes one SP, empty lines at the end of the body are
// dropped, and a non-empty body ends with CRLF. Line breaks are passed as
// they come; the signer feeds it CRLF-normalised bodies only. It works on
// runs of ordinary bytes, so a body costs about one pass and its hash.
type relaxedBody struct {
	h       hash.Hash
	eol     []byte // line-break bytes held until something follows them
	wsp     bool   // white space held until something follows it
	written bool   // anything was hashed
	buf     [2048]byte
	n       int // bytes of buf waiting for h
}

func newRelaxedBody(h hash.Hash) *relaxedBody { return &relaxedBody{h: h} }

// emit queues p for the hash; a long run goes to it directly.
func (c *relaxedBody) emit(p []byte) {
	c.written = true
	if len(p) >= len(c.buf)/4 {
		c.h.Write(c.buf[:c.n])
		c.n = 0
		c.h.Write(p)
		return
	}
	if c.n+len(p) > len(c.buf) {
		c.h.Write(c.buf[:c.n])
		c.n = 0
	}
	c.n += copy(c.buf[c.n:], p)
}

// Write implements io.Writer; it never fails.
func (c *relaxedBody) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		// The run at the start of p that canonicalization leaves as it
		// is: ordinary bytes, and after one of them a single SP or a CRLF
		// followed by another ordinary byte.
		i := 0
	run:
		for i < len(p) {
			switch {
			case !special[p[i]]:
				i++
			case i == 0:
				break run
			case p[i] == ' ' && i+1 < len(p) && !special[p[i+1]]:
				i += 2
			case p[i] == '\r' && i+2 < len(p) && p[i+1] == '\n' && !special[p[i+2]]:
				i += 3
			default:
				break run
			}
		}
		if i > 0 {
			if len(c.eol) > 0 {
				c.emit(c.eol)
				c.eol = c.eol[:0]
			}
			if c.wsp {
				c.emit(space)
				c.wsp = false
			}
			c.emit(p[:i])
			p = p[i:]
			continue
		}
		switch b := p[0]; b {
		case ' ', '\t':
			c.wsp = true
		default: // CR, LF
			c.wsp = false
			c.eol = append(c.eol, b)
		}
		p = p[1:]
	}
	return n, nil
}

var space = []byte{' '}

// sum finishes the body (the final CRLF of a non-empty body) and appends
// its hash to dst.
func (c *relaxedBody) sum(dst []byte) []byte {
	if c.written {
		c.emit([]byte("\r\n"))
	}
	c.h.Write(c.buf[:c.n])
	c.n = 0
	return c.h.Sum(dst)
}

// special marks the bytes that relaxed body canonicalization looks at.
var special = [256]bool{' ': true, '\t': true, '\r': true, '\n': true}

// appendRelaxedHeader appends the relaxed canonical form (RFC 6376 section
// 3.4.2) of the header field named key with value v (the text after the
// colon, folded or not) to dst, with its CRLF: the name lower-cased and
// trimmed, the value unfolded, every run of white space made one SP, and
// the white space at its ends dropped. It is what go-msgauth computes.
func appendRelaxedHeader(dst []byte, key, v string) []byte {
	if isASCII(key) {
		key = strings.TrimSpace(key)
	} else {
		key = strings.TrimSpace(strings.ToLower(key)) // as go-msgauth does it
	}
	for i := 0; i < len(key); i++ {
		b := key[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		dst = append(dst, b)
	}
	dst = append(dst, ':')
	first := true
	for i := 0; i < len(v); {
		if special[v[i]] {
			i++
			continue
		}
		j := i
		for j < len(v) && !special[v[j]] {
			j++
		}
		if !first {
			dst = append(dst, ' ')
		}
		first = false
		dst = append(dst, v[i:j]...)
		i = j
	}
	return append(dst, '\r', '\n')
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
