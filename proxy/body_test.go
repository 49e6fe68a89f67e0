package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-smtp"
)

// readAllSized reads r to the end with reads of n bytes.
func readAllSized(r io.Reader, n int) ([]byte, error) {
	var out []byte
	p := make([]byte, n)
	for {
		k, err := r.Read(p)
		out = append(out, p[:k]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// normaliseRef is the obvious byte-by-byte normalisation.
func normaliseRef(in []byte) []byte {
	var out []byte
	for i := 0; i < len(in); i++ {
		switch in[i] {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(in) && in[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, in[i])
		}
	}
	return out
}

func TestBodyReaderNormalises(t *testing.T) {
	f, err := os.Open("testdata/normalise.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	cases := 0
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || text[0] == '#' {
			continue
		}
		in, rest, err := cutQuoted(text)
		if err != nil {
			t.Fatalf("normalise.txt:%d: %v", line, err)
		}
		want, _, err := cutQuoted(strings.TrimSpace(rest))
		if err != nil {
			t.Fatalf("normalise.txt:%d: %v", line, err)
		}
		cases++
		// Every read size and every source chunking must give the same bytes.
		for _, src := range []int{1, 2, 3, 1 << 20} {
			for _, p := range []int{1, 2, 3, 64} {
				r := newBodyReader(chunked(in, src), make([]byte, 16), 0)
				got, err := readAllSized(r, p)
				if err != nil || string(got) != want {
					t.Errorf("normalise.txt:%d: src %d p %d: %q (%v), want %q", line, src, p, got, err, want)
				}
			}
		}
	}
	if cases == 0 {
		t.Fatal("no cases")
	}
}

// cutQuoted reads a Go quoted string at the start of s.
func cutQuoted(s string) (string, string, error) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", err
	}
	v, err := strconv.Unquote(q)
	return v, s[len(q):], err
}

// chunked returns a reader of s that returns at most n bytes per Read.
func chunked(s string, n int) io.Reader {
	return &chunkReader{s: s, n: n}
}

type chunkReader struct {
	s string
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.s) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.s)
	c.s = c.s[k:]
	return k, nil
}

func TestBodyReaderSizeLimit(t *testing.T) {
	body := "line one\nline two\n" // 20 bytes once normalised
	tests := []struct {
		max      int64
		tooLarge bool
	}{{0, false}, {20, false}, {21, false}, {19, true}, {1, true}}
	for _, tt := range tests {
		for _, p := range []int{1, 7, 4096} {
			r := newBodyReader(strings.NewReader(body), make([]byte, 8), tt.max)
			got, err := readAllSized(r, p)
			if tt.tooLarge {
				if !errors.Is(err, ErrTooLarge) || int64(len(got)) != tt.max {
					t.Errorf("max %d p %d: %d bytes, %v; want %d bytes and ErrTooLarge", tt.max, p, len(got), err, tt.max)
				}
				if _, again := r.Read(make([]byte, 8)); !errors.Is(again, ErrTooLarge) {
					t.Errorf("max %d: error not sticky: %v", tt.max, again)
				}
				continue
			}
			if err != nil || string(got) != "line one\r\nline two\r\n" {
				t.Errorf("max %d p %d: %q, %v", tt.max, p, got, err)
			}
		}
	}
}

func TestBodyReaderSourceErrors(t *testing.T) {
	// go-smtp's own size error becomes ErrTooLarge.
	r := newBodyReader(io.MultiReader(strings.NewReader("abc\n"), iotest.ErrReader(smtp.ErrDataTooLarge)), make([]byte, 64), 0)
	got, err := io.ReadAll(r)
	if string(got) != "abc\r\n" || !errors.Is(err, ErrTooLarge) {
		t.Errorf("got %q, %v; want the data, then ErrTooLarge", got, err)
	}
	// Others are wrapped and kept.
	r = newBodyReader(iotest.ErrReader(io.ErrUnexpectedEOF), make([]byte, 64), 0)
	if _, err := io.ReadAll(r); !errors.Is(err, io.ErrUnexpectedEOF) || r.complete() || r.failed() == nil {
		t.Errorf("got %v, complete %v", err, r.complete())
	}
	r = newBodyReader(strings.NewReader("x"), make([]byte, 64), 0)
	if _, err := io.ReadAll(r); err != nil || !r.complete() || r.failed() != nil {
		t.Errorf("clean end: %v, complete %v, failed %v", err, r.complete(), r.failed())
	}
}

func FuzzBodyReader(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nhello\r\n"), byte(5))
	f.Fuzz(func(t *testing.T, in []byte, chunk byte) {
		n := int(chunk%16) + 1
		r := newBodyReader(chunked(string(in), n), make([]byte, 7), 0)
		got, err := readAllSized(r, int(chunk%5)+1)
		if err != nil {
			t.Fatal(err)
		}
		if want := normaliseRef(in); !bytes.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		for i, c := range got {
			if c == '\r' && (i+1 == len(got) || got[i+1] != '\n') || c == '\n' && (i == 0 || got[i-1] != '\r') {
				t.Fatalf("bare CR or LF at %d in %q", i, got)
			}
		}
	})
}

func BenchmarkBodyReader5KB(b *testing.B) {
	line := strings.Repeat("x", 76) + "\r\n"
	body := strings.Repeat(line, 5000/len(line))
	buf := make([]byte, bodyBufSize)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := newBodyReader(strings.NewReader(body), buf, 0)
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}
