package dkim

// Tests of smtpgate's patches (see ../PATCHES.md): the patched crlfFixer and
// relaxed body canonicalizer give exactly what upstream v0.7.0's byte-by-byte
// code gives, for any input cut into any writes.

import (
	"bytes"
	"math/rand"
	"testing"
)

// refFix is upstream's crlfFixer.Fix.
func refFix(cf *crlfFixer, b []byte) []byte {
	res := make([]byte, 0, len(b))
	for _, ch := range b {
		prevCR := cf.cr
		cf.cr = false
		switch ch {
		case '\r':
			cf.cr = true
		case '\n':
			if !prevCR {
				res = append(res, '\r')
			}
		}
		res = append(res, ch)
	}
	return res
}

// refRelaxed is upstream's relaxedBodyCanonicalizer.
type refRelaxed struct {
	w         *bytes.Buffer
	crlfBuf   []byte
	wsp       bool
	written   bool
	crlfFixer crlfFixer
}

func (c *refRelaxed) Write(b []byte) {
	b = refFix(&c.crlfFixer, b)
	canonical := make([]byte, 0, len(b))
	for _, ch := range b {
		if ch == ' ' || ch == '\t' {
			c.wsp = true
		} else if ch == '\r' || ch == '\n' {
			c.wsp = false
			c.crlfBuf = append(c.crlfBuf, ch)
		} else {
			if len(c.crlfBuf) > 0 {
				canonical = append(canonical, c.crlfBuf...)
				c.crlfBuf = c.crlfBuf[:0]
			}
			if c.wsp {
				canonical = append(canonical, ' ')
				c.wsp = false
			}
			canonical = append(canonical, ch)
		}
	}
	if !c.written && len(canonical) > 0 {
		c.written = true
	}
	c.w.Write(canonical)
}

func (c *refRelaxed) Close() {
	if c.written {
		c.w.WriteString(crlf)
	}
}

// checkCanon writes data in pieces of the given sizes to both versions of
// the fixer and of the relaxed body canonicalizer, and to the simple one.
func checkCanon(t *testing.T, data []byte, sizes []int) {
	t.Helper()
	var gotFix, wantFix []byte
	var cf, rcf crlfFixer
	var got, want, gotSimple bytes.Buffer
	pc := (&relaxedCanonicalizer{}).CanonicalizeBody(&got)
	rc := &refRelaxed{w: &want}
	sc := (&simpleCanonicalizer{}).CanonicalizeBody(&gotSimple)
	rest := data
	for i := 0; len(rest) > 0; i++ {
		n := sizes[i%len(sizes)]
		if n > len(rest) {
			n = len(rest)
		}
		piece := rest[:n]
		rest = rest[n:]
		gotFix = append(gotFix, cf.Fix(piece)...)
		wantFix = append(wantFix, refFix(&rcf, piece)...)
		pc.Write(piece)
		rc.Write(piece)
		sc.Write(piece)
	}
	pc.Close()
	rc.Close()
	sc.Close()
	if !bytes.Equal(gotFix, wantFix) || cf.cr != rcf.cr {
		t.Fatalf("Fix(%q in %v) = %q (cr %v), upstream %q (cr %v)", data, sizes, gotFix, cf.cr, wantFix, rcf.cr)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("relaxed body of %q in %v = %q, upstream %q", data, sizes, got.Bytes(), want.Bytes())
	}
	// The simple canonicalizer's only patched part is the fixer, checked
	// above; it must still end its output with CRLF.
	if !bytes.HasSuffix(gotSimple.Bytes(), []byte("\r\n")) {
		t.Fatalf("simple body of %q in %v = %q: no final CRLF", data, sizes, gotSimple.Bytes())
	}
}

func TestPatchedCanonicalizersMatchUpstream(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	alphabet := []byte("ab \t\r\n")
	for i := 0; i < 20000; i++ {
		data := make([]byte, rng.Intn(120))
		for j := range data {
			data[j] = alphabet[rng.Intn(len(alphabet))]
		}
		checkCanon(t, data, []int{1 + rng.Intn(30), 1 + rng.Intn(4)})
	}
}

func FuzzPatchedCanonicalizersMatchUpstream(f *testing.F) {
	f.Add([]byte("Hello  world \r\n\r\n\tx\n\ny \r\r\n"), uint8(3))
	f.Add([]byte("\n\r\n \t \r"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, size uint8) {
		checkCanon(t, data, []int{1 + int(size), 1 + int(size)%3})
	})
}
