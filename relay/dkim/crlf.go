package dkim

import (
	"bytes"

	"golang.org/x/text/transform"
)

// crlfTransformer rewrites every line ending (CRLF, bare LF, bare CR) as CRLF
// and ends non-empty output with CRLF. These are the bytes go-smtp's client
// puts on the wire for the normalised message (its DotWriter turns bare LF
// into CRLF and terminates the last line), so the signed bytes are the sent
// bytes. Bare CR, which the DotWriter would pass through, becomes CRLF too,
// because receivers disagree on what a bare CR means.
type crlfTransformer struct {
	open bool // the output so far is non-empty and does not end with LF
}

// Reset implements transform.Transformer.
func (t *crlfTransformer) Reset() { t.open = false }

// Transform implements transform.Transformer.
func (t *crlfTransformer) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
	for nSrc < len(src) {
		seg := src[nSrc:]
		lf := bytes.IndexByte(seg, '\n')
		line := seg
		if lf >= 0 {
			line = seg[:lf+1]
		}
		// keep: bytes copied verbatim; consume: input bytes used up by keep
		// plus one rewritten line ending; eol: whether to write CRLF.
		keep, consume, eol := len(line), len(line), false
		switch cr := bytes.IndexByte(line, '\r'); {
		case cr >= 0 && cr == lf-1:
			// A proper CRLF line: copy it as is.
		case cr >= 0 && cr == len(seg)-1 && !atEOF:
			// A CR at the end of the input: its LF may be in the next read.
			keep, consume = cr, cr
			if keep == 0 {
				return nDst, nSrc, transform.ErrShortSrc
			}
		case cr >= 0:
			// A bare CR.
			keep, consume, eol = cr, cr+1, true
		case lf >= 0:
			// A bare LF.
			keep, consume, eol = lf, lf+1, true
		}
		need := keep
		if eol {
			need += 2
		}
		if avail := len(dst) - nDst; avail < need {
			// Copy what fits so that long lines make progress, but never
			// split a CRLF pair across two calls.
			n := min(avail, keep)
			if n > 0 && seg[n-1] == '\r' {
				n--
			}
			if n == 0 {
				return nDst, nSrc, transform.ErrShortDst
			}
			keep, consume, eol = n, n, false
		}
		nDst += copy(dst[nDst:], seg[:keep])
		if eol {
			dst[nDst], dst[nDst+1] = '\r', '\n'
			nDst += 2
		}
		nSrc += consume
		if nDst > 0 {
			t.open = dst[nDst-1] != '\n'
		}
	}
	if atEOF && t.open {
		if len(dst)-nDst < 2 {
			return nDst, nSrc, transform.ErrShortDst
		}
		dst[nDst], dst[nDst+1] = '\r', '\n'
		nDst += 2
		t.open = false
	}
	return nDst, nSrc, nil
}
