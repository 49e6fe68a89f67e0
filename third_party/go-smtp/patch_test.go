package smtp

// Tests of smtpgate's patches (see PATCHES.md): the patched dataReader and
// lineLimitReader must give exactly what the upstream byte-at-a-time code
// gives, for any input, however the input arrives and however it is read.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
)

// refDataRead is upstream v0.25.1's dataReader.Read, unchanged.
func refDataRead(r *dataReader, b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}
	const (
		stateBeginLine = iota
		stateDot
		stateDotCR
		stateCR
		stateData
		stateEOF
	)
	for n < len(b) && r.state != stateEOF {
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			r.state = stateData
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}
	if r.limited {
		r.n -= int64(n)
	}
	return
}

// refLineLimitRead is upstream v0.25.1's lineLimitReader.Read, unchanged.
func refLineLimitRead(r *lineLimitReader, b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, ErrTooLongLine
	}
	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}
	if r.LineLimit == 0 {
		return n, nil
	}
	for _, chr := range b[:n] {
		if chr == '\n' {
			r.curLineLength = 0
		}
		r.curLineLength++
		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
	}
	return n, nil
}

// chunkReader hands out its input in the chunk sizes of sizes, in turn.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := c.sizes[c.i%len(c.sizes)]
	c.i++
	if n > len(p) {
		n = len(p)
	}
	if n > len(c.data) {
		n = len(c.data)
	}
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// readAll reads r with reads of the sizes in sizes, in turn, and records
// every result.
func readAll(read func([]byte) (int, error), sizes []int) (out []byte, errs []error) {
	for i := 0; i < 100000; i++ {
		b := make([]byte, sizes[i%len(sizes)])
		n, err := read(b)
		out = append(out, b[:n]...)
		if err != nil {
			return out, append(errs, err)
		}
	}
	return out, errs
}

// same reports whether the patched and the reference readers give the same
// bytes, errors and leftover input for data.
func checkData(t *testing.T, data []byte, chunks, reads []int, limit int64, lineLimit int) {
	t.Helper()
	run := func(ref bool) ([]byte, []error, []byte, int) {
		ll := &lineLimitReader{R: &chunkReader{data: data, sizes: chunks}, LineLimit: lineLimit}
		llRead := ll.Read
		if ref {
			llRead = func(b []byte) (int, error) { return refLineLimitRead(ll, b) }
		}
		br := bufio.NewReaderSize(readerFunc(llRead), 16)
		dr := &dataReader{r: br, limited: limit > 0, n: limit}
		read := dr.Read
		if ref {
			read = func(b []byte) (int, error) { return refDataRead(dr, b) }
		}
		out, errs := readAll(read, reads)
		rest, _ := io.ReadAll(br) // what the next command would read
		return out, errs, rest, ll.curLineLength
	}
	gotOut, gotErrs, gotRest, gotLine := run(false)
	wantOut, wantErrs, wantRest, wantLine := run(true)
	if !bytes.Equal(gotOut, wantOut) || !bytes.Equal(gotRest, wantRest) || gotLine != wantLine ||
		len(gotErrs) != len(wantErrs) || (len(gotErrs) > 0 && !errors.Is(gotErrs[0], wantErrs[0]) && gotErrs[0].Error() != wantErrs[0].Error()) {
		t.Fatalf("input %q chunks %v reads %v limit %d lineLimit %d:\npatched %q %v rest %q line %d\nupstream %q %v rest %q line %d",
			data, chunks, reads, limit, lineLimit, gotOut, gotErrs, gotRest, gotLine, wantOut, wantErrs, wantRest, wantLine)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestPatchedReadersMatchUpstream(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	alphabet := []byte("ab.\r\n")
	for i := 0; i < 20000; i++ {
		data := make([]byte, rng.Intn(200))
		for j := range data {
			data[j] = alphabet[rng.Intn(len(alphabet))]
		}
		if rng.Intn(2) == 0 {
			data = append(data, "\r\n.\r\nNEXT\r\n"...)
		}
		chunks := []int{1 + rng.Intn(40), 1 + rng.Intn(7)}
		reads := []int{1 + rng.Intn(64), 1 + rng.Intn(5)}
		limit := int64(0)
		if rng.Intn(3) == 0 {
			limit = int64(1 + rng.Intn(150))
		}
		lineLimit := 0
		if rng.Intn(2) == 0 {
			lineLimit = 1 + rng.Intn(30)
		}
		checkData(t, data, chunks, reads, limit, lineLimit)
	}
}

func FuzzPatchedReadersMatchUpstream(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\n..dot\r\nline\r\n.\r\nQUIT\r\n"), uint8(3), uint8(5), uint16(0), uint8(0))
	f.Add([]byte("a\rb\nc\r\r\n.\r\r\n.\r\n"), uint8(1), uint8(1), uint16(7), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, chunk, read uint8, limit uint16, lineLimit uint8) {
		checkData(t, data, []int{1 + int(chunk)%64, 1 + int(chunk)%5}, []int{1 + int(read), 1 + int(read)%3}, int64(limit), int(lineLimit))
	})
}
