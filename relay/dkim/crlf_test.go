package dkim

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/text/transform"
)

// runTransform drives crlfTransformer by hand with src fed srcChunk bytes at
// a time and a dst of dstSize bytes, to reach every short-buffer path.
func runTransform(t *testing.T, in []byte, srcChunk, dstSize int) []byte {
	t.Helper()
	tr := &crlfTransformer{}
	dst := make([]byte, dstSize)
	var out, src []byte
	pos := 0
	for stuck := 0; stuck < 3; {
		if pos < len(in) && (len(src) == 0 || stuck > 0) {
			take := min(srcChunk, len(in)-pos)
			src = append(src, in[pos:pos+take]...)
			pos += take
		}
		atEOF := pos == len(in)
		nDst, nSrc, err := tr.Transform(dst, src, atEOF)
		out = append(out, dst[:nDst]...)
		src = src[nSrc:]
		switch {
		case err == nil && atEOF:
			if len(src) != 0 {
				t.Fatalf("Transform left %d bytes at EOF", len(src))
			}
			return out
		case err == nil, errors.Is(err, transform.ErrShortSrc):
			if atEOF {
				t.Fatalf("Transform asked for more input at EOF")
			}
			stuck = 0
			if nDst == 0 && nSrc == 0 {
				stuck = 1 // must feed more
			}
		case errors.Is(err, transform.ErrShortDst):
			if nDst == 0 && nSrc == 0 {
				stuck++
			} else {
				stuck = 0
			}
		default:
			t.Fatalf("Transform: %v", err)
		}
	}
	t.Fatalf("Transform made no progress on %q (srcChunk %d, dst %d)", in, srcChunk, dstSize)
	return nil
}

func checkCRLF(t *testing.T, in []byte) {
	t.Helper()
	want := normalize(in)
	for _, sc := range []int{1, 2, 3, 64} {
		for _, ds := range []int{2, 3, 5, 4096} {
			if got := runTransform(t, in, sc, ds); !bytes.Equal(got, want) {
				t.Fatalf("src chunks %d, dst %d: %q -> %q, want %q", sc, ds, in, got, want)
			}
		}
	}
	got, err := io.ReadAll(transform.NewReader(iotest.OneByteReader(bytes.NewReader(in)), &crlfTransformer{}))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("transform.Reader: %q -> %q, %v; want %q", in, got, err, want)
	}
}

func TestCRLF(t *testing.T) {
	for _, in := range []string{
		"", "a", "\r", "\n", "\r\n", "\n\r", "\r\r\n", "\n\n", "\r\r",
		"a\r\nb\r\n", "a\nb\n", "a\rb\r", "a\r\n\nb", "a\n\r\nb", "a\r\r\nb",
		"no final newline", "trailing CR\r", "mixed\r\n\n\r\r\n\n",
		strings.Repeat("x", 5000) + "\r\n" + strings.Repeat("y", 4095) + "\r\n",
		strings.Repeat("z", 4095) + "\n" + strings.Repeat("w", 4097) + "\r",
	} {
		checkCRLF(t, []byte(in))
	}
}

func FuzzCRLF(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		checkCRLF(t, in)
	})
}
