package dkim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
)

// spool holds a message while it is being signed: in memory up to limit
// bytes, then in an unlinked temporary file in dir.
type spool struct {
	dir   string
	limit int
	buf   bytes.Buffer
	f     *os.File
	name  string // set while the file still has a name to remove
}

// Write implements io.Writer.
func (s *spool) Write(p []byte) (int, error) {
	if s.f == nil && s.buf.Len()+len(p) <= s.limit {
		if s.buf.Cap() == 0 {
			s.buf.Grow(min(s.limit, 16<<10)) // one allocation for most messages
		}
		return s.buf.Write(p)
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "smtpgate-dkim-*.eml")
		if err != nil {
			return 0, fmt.Errorf("spool: %w", err)
		}
		s.f = f
		// Unlink at once so that a crash leaves nothing behind; where the
		// platform refuses, Close removes it.
		if os.Remove(f.Name()) != nil {
			s.name = f.Name()
		}
		if _, err := f.Write(s.buf.Bytes()); err != nil {
			return 0, fmt.Errorf("spool: %w", err)
		}
		s.buf = bytes.Buffer{}
	}
	n, err := s.f.Write(p)
	if err != nil {
		return n, fmt.Errorf("spool: %w", err)
	}
	return n, nil
}

// copyTo writes the spooled bytes to w.
func (s *spool) copyTo(ctx context.Context, w io.Writer) error {
	if s.f == nil {
		_, err := w.Write(s.buf.Bytes())
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err := io.Copy(w, ctxReader{ctx, s.f})
	return err
}

// Close releases the file, if any.
func (s *spool) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	if s.name != "" {
		if rerr := os.Remove(s.name); err == nil {
			err = rerr
		}
	}
	return err
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

// Read implements io.Reader.
func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
