package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// errClosed ends go-smtp's command loop without a further reply: go-smtp
// returns quietly from a read error that is net.ErrClosed.
var errClosed = fmt.Errorf("proxy: connection finished: %w", net.ErrClosed)

// conn is the net.Conn go-smtp serves: directly on a STARTTLS listener (and
// under the crypto/tls connection STARTTLS creates), under tls.Server on an
// implicit TLS listener. It carries what go-smtp has no place for:
//
//   - the plaintext gate of a STARTTLS submission listener (gate.go); on a
//     bounces listener, where STARTTLS is optional and has no gate, the
//     STARTTLS reply is recognised as it is written instead, so that a
//     failed handshake ends the connection there too;
//   - read deadlines during a message: go-smtp sets one deadline per command
//     line, so on its own the whole DATA body would have to arrive within the
//     command timeout. While a body streams, every read slides the deadline
//     to now+CommandTimeout, never past the start of the transfer plus
//     DataTimeout;
//   - the end of the connection: after a read timeout or a reply that
//     announces the close (421), exactly one more write goes out and every
//     later read returns errClosed, so go-smtp cannot read the rest of a
//     timed-out body as commands and cannot answer pipelined commands after
//     a 421;
//   - the per-connection counters (messages, AUTH failures) and the limiter
//     slot, released on Close.
//
// Under conn lies a flushConn (flush.go), which holds the replies written
// until the connection reads again; conn still sees each reply line as one
// Write.
type conn struct {
	net.Conn // sock

	sock *flushConn // over the accepted socket or a *proxyproto.Conn

	srv    *Server
	lis    *listener
	remote net.Addr   // the client (from the PROXY header when there is one)
	ip     netip.Addr // remote's IP: the per-IP limit's key
	idle   time.Duration
	opened time.Time

	// Used only by the connection's goroutine.
	gate         *gate // plaintext phase of a STARTTLS submission listener, nil afterwards
	optionalTLS  bool  // a bounces listener: STARTTLS without a gate
	tlsPending   bool  // STARTTLS went through the gate; its 220 is not written yet
	upgraded     bool  // the STARTTLS 220 is out: only TLS records may follow
	authFailures int
	refusals     int    // AUTH attempts and refused recipients on a bounces listener
	login        string // the last authenticated login, for the session log
	reason       string // why the connection ended, for the session log

	// Shared with Shutdown and with the goroutine go-smtp runs
	// Session.Data in for BDAT.
	messages  atomic.Int64
	streaming atomic.Bool  // a message body is being read: deadlines slide
	xferUntil atomic.Int64 // UnixNano end of the DATA/BDAT transfer, 0 outside one
	inTxn     atomic.Bool  // between an accepted MAIL and the end of its message
	stopping  atomic.Bool  // the server is shutting down
	timedOut  atomic.Bool  // a read timed out: every later read fails at once
	lastReply atomic.Bool  // the next write is the connection's last
	dead      atomic.Bool  // nothing more is read or written

	closeOnce sync.Once
}

// Read implements net.Conn.
func (c *conn) Read(p []byte) (int, error) {
	switch {
	case c.dead.Load():
		return 0, errClosed
	case c.timedOut.Load():
		return 0, os.ErrDeadlineExceeded
	case c.stopping.Load() && !c.inTxn.Load():
		// Shutting down and idle: go-smtp answers the timeout with
		// "421 4.4.2" and closes.
		c.end("shutdown")
		return 0, c.timeout()
	}
	if c.gate != nil {
		return c.gateRead(p)
	}
	if c.streaming.Load() {
		c.slideDeadline()
	}
	n, err := c.Conn.Read(p)
	if err != nil {
		err = c.readFailed(err)
	}
	return n, err
}

// readFailed handles an error from the socket's Read and returns the one
// to give go-smtp. A reply that could not be written (it is written when
// the connection reads) ends the connection without a further word: the
// client is not reading or is gone. A read timeout makes go-smtp answer
// with a 421.
func (c *conn) readFailed(err error) error {
	switch {
	case c.sock.writeErr() != nil:
		c.end("write failed")
		c.dead.Store(true)
		return errClosed
	case isTimeout(err):
		c.end(c.timeoutReason())
		c.timeout()
	}
	return err
}

// Write implements net.Conn.
func (c *conn) Write(p []byte) (int, error) {
	if c.dead.Load() {
		return 0, errClosed
	}
	switch {
	case c.tlsPending:
		// go-smtp's "220 Ready to start TLS".
		c.tlsPending, c.upgraded = false, true
	case c.optionalTLS && !c.upgraded && string(p) == startTLSReply:
		// No gate saw the command: the reply is the one sign of it. A
		// client cannot make go-smtp write these bytes any other way
		// (no reply echoes the client's words at its start).
		c.upgraded = true
	case c.upgraded && !isTLSRecord(p):
		// After a failed STARTTLS handshake go-smtp says "550 Handshake
		// error" in plaintext and would carry on without TLS: make that
		// the last reply.
		c.end("tls handshake failed")
		c.lastReply.Store(true)
	}
	n, err := c.Conn.Write(p)
	switch {
	case err != nil:
		// Held bytes that could not be written: the client is gone or
		// does not read. Nothing more is read either.
		c.end("write failed")
		c.dead.Store(true)
	case c.lastReply.Load():
		c.dead.Store(true)
	}
	return n, err
}

// SetReadDeadline implements net.Conn. go-smtp calls it before reading each
// command line, so it also marks the end of a streamed body. Inside a BDAT
// transfer the deadline never goes past the transfer's end.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.streaming.Store(false)
	if u := c.xferUntil.Load(); u != 0 && (t.IsZero() || t.UnixNano() > u) {
		t = time.Unix(0, u)
	}
	return c.Conn.SetReadDeadline(t)
}

// Close implements net.Conn. The first call releases the limiter slot and
// logs the session.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		reason := c.reason
		if reason == "" {
			reason = "closed"
		}
		c.srv.log.Info("smtp session",
			zap.String("listener", c.lis.cfg.Name),
			zap.Stringer("remote", c.remote),
			zap.String("login", c.login),
			zap.Int64("messages", c.messages.Load()),
			zap.Int("auth_failures", c.authFailures),
			zap.String("result", reason),
			zap.Duration("duration", time.Since(c.opened)))
		// Released after the last log line (Shutdown waits for it) and
		// before the socket closes (a client that sees the close may
		// connect again at once).
		c.srv.release(c)
	})
	return c.Conn.Close()
}

// RemoteAddr implements net.Conn: the client's address, from the PROXY
// header when the listener uses the PROXY protocol.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// closeAfterReply makes the next reply the connection's last.
func (c *conn) closeAfterReply(reason string) {
	c.end(reason)
	c.lastReply.Store(true)
}

// end records why the connection ends; the first reason wins.
func (c *conn) end(reason string) {
	if c.reason == "" {
		c.reason = reason
	}
}

// timeout marks the connection as timed out and returns the error to give
// go-smtp: a net.Error whose Timeout() is true, which go-smtp answers with
// "421 4.4.2" in its command loop.
func (c *conn) timeout() error {
	c.timedOut.Store(true)
	c.lastReply.Store(true)
	return os.ErrDeadlineExceeded
}

// timeoutReason names a read timeout for the session log: Shutdown wakes
// idle connections with one.
func (c *conn) timeoutReason() string {
	if c.stopping.Load() {
		return "shutdown"
	}
	return "timeout"
}

// slideDeadline moves the read deadline while a body streams.
func (c *conn) slideDeadline() {
	dl := time.Now().Add(c.idle)
	if u := c.xferUntil.Load(); u != 0 && dl.UnixNano() > u {
		dl = time.Unix(0, u)
	}
	_ = c.Conn.SetReadDeadline(dl) // a failure shows up as a read error
}

// beginBody starts the deadline window of a DATA or BDAT transfer.
func (c *conn) beginBody(now time.Time, window time.Duration) {
	c.xferUntil.Store(now.Add(window).UnixNano())
	c.streaming.Store(true)
}

// endTransaction is called when a transaction is over (reset, new EHLO,
// end of message, logout).
func (c *conn) endTransaction() {
	c.inTxn.Store(false)
	c.xferUntil.Store(0)
}

// beginShutdown asks the connection to finish: an idle connection is woken
// from its read and closed with a 421; one in a transaction may finish its
// message first.
func (c *conn) beginShutdown() {
	c.stopping.Store(true)
	if !c.inTxn.Load() {
		_ = c.Conn.SetReadDeadline(time.Now())
	}
}

// startTLSReply is go-smtp's reply to a STARTTLS that goes ahead.
const startTLSReply = "220 2.0.0 Ready to start TLS\r\n"

// isTLSRecord reports whether p starts with a TLS record content type
// (change_cipher_spec, alert, handshake, application_data, heartbeat); an
// SMTP reply starts with a digit.
func isTLSRecord(p []byte) bool {
	return len(p) > 0 && p[0] >= 20 && p[0] <= 24
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
