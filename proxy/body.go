package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-smtp"
)

// bodyBufSize is the size of the raw buffer under a bodyReader. go-smtp's
// DATA reader fills a buffer completely unless the message ends first, so
// this is also the step at which a large body is streamed to the Handler.
const bodyBufSize = 32 << 10

// bodyReader is the io.Reader a Handler gets. It reads the dot-unstuffed
// body from go-smtp and
//
//   - normalises line endings, Postfix style ("smtpd_forbid_bare_newline =
//     normalize"): a bare LF and a bare CR each become CRLF, CRLF stays
//     CRLF. go-smtp passes bare CR and LF through verbatim, and only
//     <CRLF>.<CRLF> ends DATA, so a client may hide "\n.\n" or "\r.\r\n" in a
//     body. Normalised, such a sequence is an ordinary line consisting of a
//     dot, which every correct SMTP client dot-stuffs when it relays the
//     message: it can never end a message downstream, and no later stage has
//     to guess what a lone CR or LF meant. Rejecting such mail (Postfix's
//     "reject" mode) would refuse the many generators that emit bare LF.
//     go-smtp's unstuffing treats a dot after CRLF as stuffing even when a
//     bare CR or LF follows it, so "\r\n.\n" arrives here as "\r\n\n": that
//     dot is lost, the rest of the text is kept.
//   - cuts the body off past max bytes (counted after normalisation) with an
//     error wrapping ErrTooLarge, and turns go-smtp's own size error into it.
//
// A bodyReader reads one message; its buffer comes from the Server's pool.
type bodyReader struct {
	src    io.Reader
	buf    []byte
	r, w   int
	max    int64
	n      int64 // bytes handed out
	prevCR bool  // the last input byte was a CR (already emitted as CRLF)
	pendLF bool  // a CRLF was split by a short p: the LF is still owed
	srcErr error // from src, returned once buf is drained
	err    error // sticky: io.EOF or the error the reader ended with
}

// newBodyReader returns a reader of the message in src, normalised into buf.
func newBodyReader(src io.Reader, buf []byte, max int64) *bodyReader {
	return &bodyReader{src: src, buf: buf, max: max}
}

// Read implements io.Reader.
func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n := 0
	if b.pendLF && len(p) > 0 {
		p[0] = '\n'
		n, b.pendLF = 1, false
	}
	for n < len(p) {
		if b.r == b.w {
			if b.srcErr != nil || n > 0 {
				break
			}
			m, err := b.src.Read(b.buf)
			b.r, b.w = 0, m
			if err != nil {
				b.srcErr = err
			}
			continue
		}
		in := b.buf[b.r:b.w]
		if room := len(p) - n; len(in) > room {
			in = in[:room]
		}
		i := lineBreak(in)
		if i != 0 {
			if i < 0 {
				i = len(in)
			}
			copy(p[n:], in[:i])
			n += i
			b.r += i
			b.prevCR = false
			continue
		}
		c := in[0]
		b.r++
		if c == '\n' && b.prevCR {
			b.prevCR = false // the LF of a CRLF whose CR was emitted as CRLF
			continue
		}
		b.prevCR = c == '\r'
		p[n] = '\r'
		n++
		if n < len(p) {
			p[n] = '\n'
			n++
		} else {
			b.pendLF = true
		}
	}
	b.n += int64(n)
	if b.max > 0 && b.n > b.max {
		n -= int(b.n - b.max)
		b.n = b.max
		b.err = fmt.Errorf("%w (%d bytes)", ErrTooLarge, b.max)
		return n, b.err
	}
	if n == 0 && b.r == b.w && !b.pendLF && b.srcErr != nil {
		b.err = b.mapSrcErr(b.srcErr)
		return 0, b.err
	}
	return n, nil
}

func (b *bodyReader) mapSrcErr(err error) error {
	switch {
	case err == io.EOF:
		return io.EOF
	case err == smtp.ErrDataTooLarge:
		return fmt.Errorf("%w (%d bytes)", ErrTooLarge, b.max)
	default:
		return fmt.Errorf("proxy: reading the message: %w", err)
	}
}

// complete reports whether the whole message was read without error.
func (b *bodyReader) complete() bool { return b.err == io.EOF }

// failed returns the error the body ended with, or nil when it is not over
// or ended normally.
func (b *bodyReader) failed() error {
	if b.err == nil || b.err == io.EOF {
		return nil
	}
	return b.err
}

// lineBreak returns the index of the first CR or LF in s, or -1.
func lineBreak(s []byte) int {
	i := bytes.IndexByte(s, '\n')
	if i < 0 {
		i = len(s)
	}
	if j := bytes.IndexByte(s[:i], '\r'); j >= 0 {
		return j
	}
	if i == len(s) {
		return -1
	}
	return i
}

// isTooLarge reports whether err means the message was over the size limit.
func isTooLarge(err error) bool {
	return errors.Is(err, ErrTooLarge) || errors.Is(err, smtp.ErrDataTooLarge)
}
