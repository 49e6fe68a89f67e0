package proxy

import (
	"net"
	"sync"
	"time"
)

const (
	// maxHeld is how many bytes flushConn holds before it writes them
	// without waiting for the next read.
	maxHeld = 4 << 10
	// closeFlushTimeout bounds the write of the held bytes in Close.
	closeFlushTimeout = 5 * time.Second
)

// flushConn is the socket under conn (and so under TLS): it holds what is
// written until the connection reads again, as RFC 2920 lets a server do.
//
// go-smtp flushes after every reply line, so a client that pipelines
// MAIL, RCPT... and DATA would get one TCP segment (one write system call,
// and one per TLS record) per reply. flushConn keeps the bytes and writes
// them in one go when the connection reads from the socket (its callers
// read only when their own buffered input is used up, that is when the
// server would wait for the client), when it closes, when a write deadline
// that has already passed is set, or once maxHeld bytes are held. A client
// that does not pipeline sees no difference: the server reads right after
// each reply.
//
// A failed write is kept: every later Write, Read and flush returns its
// error, and conn ends the connection on it.
type flushConn struct {
	net.Conn // the accepted socket, or a *proxyproto.Conn over it

	closeWait time.Duration // bound on the flush in Close

	mu  sync.Mutex // Write, flush, the write deadline and Close
	buf []byte     // held bytes
	wdl time.Time  // the write deadline last set
	err error      // the first failed write, or net.ErrClosed after Close
}

func newFlushConn(nc net.Conn) *flushConn {
	return &flushConn{Conn: nc, closeWait: closeFlushTimeout}
}

// Write implements net.Conn: p is held, not written, unless maxHeld bytes
// are held with it.
func (f *flushConn) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.err != nil:
		return 0, f.err
	case len(f.buf) == 0 && len(p) >= maxHeld:
		return f.write(p)
	}
	f.buf = append(f.buf, p...)
	if len(f.buf) >= maxHeld {
		if err := f.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Read implements net.Conn. It writes the held bytes first: the read may
// wait for the client, which may be waiting for them.
func (f *flushConn) Read(p []byte) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.Conn.Read(p)
}

// SetWriteDeadline implements net.Conn. The held bytes were written under
// the deadline in force then: one that has already passed would make them
// fail, so they are written first.
func (f *flushConn) SetWriteDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beforeDeadline(t)
	return f.Conn.SetWriteDeadline(t)
}

// SetDeadline implements net.Conn, as SetWriteDeadline for the write side.
func (f *flushConn) SetDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beforeDeadline(t)
	return f.Conn.SetDeadline(t)
}

// beforeDeadline writes the held bytes when t has passed, and records t.
// crypto/tls sets such a deadline right after its close_notify alert.
func (f *flushConn) beforeDeadline(t time.Time) {
	if len(f.buf) > 0 && !t.IsZero() && !t.After(time.Now()) {
		_ = f.flushLocked() // the error is kept for the next call
	}
	f.wdl = t
}

// Close implements net.Conn: it writes the held bytes, within the write
// deadline and at most closeWait, then closes the socket.
func (f *flushConn) Close() error {
	f.mu.Lock()
	if len(f.buf) > 0 && f.err == nil {
		if limit := time.Now().Add(f.closeWait); f.wdl.IsZero() || f.wdl.After(limit) {
			_ = f.Conn.SetWriteDeadline(limit)
		}
		_ = f.flushLocked()
	}
	f.buf = nil
	if f.err == nil {
		f.err = net.ErrClosed
	}
	f.mu.Unlock()
	return f.Conn.Close()
}

// abort closes the socket at once, without waiting for a write in
// progress (which it makes fail) and without writing the held bytes.
func (f *flushConn) abort() error { return f.Conn.Close() }

// writeErr returns the error of the write that failed, if one did.
func (f *flushConn) writeErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == net.ErrClosed {
		return nil
	}
	return f.err
}

// flush writes the held bytes.
func (f *flushConn) flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flushLocked()
}

func (f *flushConn) flushLocked() error {
	if f.err != nil {
		return f.err
	}
	if len(f.buf) == 0 {
		return nil
	}
	_, err := f.write(f.buf)
	f.buf = f.buf[:0]
	return err
}

// write writes p to the socket and keeps the error.
func (f *flushConn) write(p []byte) (int, error) {
	n, err := f.Conn.Write(p)
	if err != nil {
		f.err = err
	}
	return n, err
}
