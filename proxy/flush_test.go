package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); sc.Close() })
	return sc.(*net.TCPConn), cc.(*net.TCPConn)
}

// fill writes to c until the socket takes nothing more: the peer is not
// reading and every buffer on the way is full.
func fill(t *testing.T, c *net.TCPConn) {
	t.Helper()
	chunk := make([]byte, 64<<10)
	for {
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Write(chunk); err != nil {
			if !isTimeout(err) {
				t.Fatal(err)
			}
			break
		}
	}
	_ = c.SetWriteDeadline(time.Time{})
}

// readAvailable reads what the peer has sent within d.
func readAvailable(t *testing.T, c net.Conn, d time.Duration) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 64<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(d))
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if !isTimeout(err) && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			return string(got)
		}
	}
}

func TestFlushConnHoldsUntilRead(t *testing.T) {
	sc, cc := tcpPair(t)
	f := newFlushConn(sc)
	for _, s := range []string{"250 one\r\n", "250 two\r\n", "354 go\r\n"} {
		if n, err := f.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	if got := readAvailable(t, cc, 100*time.Millisecond); got != "" {
		t.Fatalf("the peer got %q before the server read", got)
	}
	go func() {
		_, _ = cc.Write([]byte("body\r\n"))
	}()
	buf := make([]byte, 16)
	_ = f.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := f.Read(buf); err != nil || string(buf[:n]) != "body\r\n" {
		t.Fatalf("Read: %q, %v", buf[:n], err)
	}
	if got := readAvailable(t, cc, 100*time.Millisecond); got != "250 one\r\n250 two\r\n354 go\r\n" {
		t.Fatalf("the peer got %q", got)
	}

	// Past maxHeld the bytes go out without a read.
	line := strings.Repeat("x", 98) + "\r\n"
	for range maxHeld / len(line) * 2 {
		if _, err := f.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAvailable(t, cc, 100*time.Millisecond); len(got) < maxHeld || len(got) > 2*maxHeld {
		t.Fatalf("the peer got %d bytes without a read, want maxHeld (%d) or so", len(got), maxHeld)
	}

	// A write deadline that has passed writes the held bytes first (as
	// crypto/tls does after its close_notify), and Close writes the rest.
	_ = f.SetWriteDeadline(time.Now().Add(time.Minute))
	f.Write([]byte("221 bye\r\n"))
	if err := f.SetWriteDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := readAvailable(t, cc, 100*time.Millisecond); !strings.HasSuffix(got, "221 bye\r\n") {
		t.Fatalf("after a deadline in the past the peer got %q", got)
	}
	_ = f.SetWriteDeadline(time.Time{})
	f.Write([]byte("421 last\r\n"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAvailable(t, cc, time.Second); got != "421 last\r\n" {
		t.Fatalf("after Close the peer got %q", got)
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

// A client that reads nothing cannot hold up Close for longer than the
// write deadline, nor closeWait when there is no deadline; and a failed
// write is reported by the next Read and Write.
func TestFlushConnStuckPeer(t *testing.T) {
	t.Run("Close", func(t *testing.T) {
		sc, cc := tcpPair(t)
		_ = cc.SetReadBuffer(4096)
		fill(t, sc)
		f := newFlushConn(sc)
		f.closeWait = 300 * time.Millisecond
		f.Write([]byte("221 bye\r\n"))
		start := time.Now()
		f.Close()
		if d := time.Since(start); d < f.closeWait/2 || d > 5*time.Second {
			t.Fatalf("Close took %v, want about %v", d, f.closeWait)
		}
	})
	t.Run("Close within the write deadline", func(t *testing.T) {
		sc, cc := tcpPair(t)
		_ = cc.SetReadBuffer(4096)
		fill(t, sc)
		f := newFlushConn(sc)
		_ = f.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		f.Write([]byte("221 bye\r\n"))
		start := time.Now()
		f.Close()
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Close took %v, want 200ms or so", d)
		}
	})
	t.Run("Read reports the failed write", func(t *testing.T) {
		sc, cc := tcpPair(t)
		_ = cc.SetReadBuffer(4096)
		fill(t, sc)
		f := newFlushConn(sc)
		_ = f.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := f.Write([]byte("250 ok\r\n")); err != nil {
			t.Fatalf("held Write: %v", err)
		}
		_ = f.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := f.Read(make([]byte, 10))
		if !isTimeout(err) || f.writeErr() == nil {
			t.Fatalf("Read: %v (write error %v), want the write's timeout", err, f.writeErr())
		}
		if _, err2 := f.Write([]byte("250 ok\r\n")); err2 != err {
			t.Fatalf("Write after a failed write: %v, want %v", err2, err)
		}
	})
}

// TestNonPipeliningClientNotDelayed: a client that waits for each reply
// gets it at once, whatever the listener and the command.
func TestNonPipeliningClientNotDelayed(t *testing.T) {
	const step = time.Second // far below CommandTimeout (10s): a held reply shows
	timed := func(t *testing.T, c *client, line, prefix string) {
		t.Helper()
		start := time.Now()
		if line != "" {
			c.Write(line)
		}
		c.Expect(prefix)
		if d := time.Since(start); d > step {
			t.Fatalf("reply to %q took %v", line, d)
		}
	}
	dialTimed := func(t *testing.T, ts *testServer, listener string) *client {
		start := time.Now()
		var c *client
		if listener == "smtps" {
			c = dialTLS(t, ts.addr(listener), ts.clientTLS)
		} else {
			c = dial(t, ts.addr(listener))
		}
		if d := time.Since(start); d > step {
			t.Fatalf("banner took %v", d)
		}
		return c
	}
	for _, listener := range []string{"submission", "smtps"} {
		t.Run(listener, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, nil)
			c := dialTimed(t, ts, listener)
			timed(t, c, "EHLO client.test\r\n", "250 ")
			if listener == "submission" {
				timed(t, c, "MAIL FROM:<alice@example.com>\r\n", "530 ")
				timed(t, c, "STARTTLS\r\n", "220 ")
				start := time.Now()
				c.Upgrade(ts.clientTLS)
				if d := time.Since(start); d > step {
					t.Fatalf("TLS handshake took %v", d)
				}
				timed(t, c, "EHLO client.test\r\n", "250 ")
			}
			timed(t, c, "AUTH LOGIN\r\n", "334 ")
			timed(t, c, b64("alice")+"\r\n", "334 ")
			timed(t, c, b64("secret")+"\r\n", "235 ")
			timed(t, c, "MAIL FROM:<alice@example.com>\r\n", "250 ")
			timed(t, c, "RCPT TO:<a@example.net>\r\n", "250 ")
			timed(t, c, "DATA\r\n", "354 ")
			timed(t, c, message("one", "x")+".\r\n", "250 2.0.0 queued as")
			timed(t, c, "MAIL FROM:<alice@example.com>\r\n", "250 ")
			timed(t, c, "RCPT TO:<a@example.net>\r\n", "250 ")
			timed(t, c, "BDAT 12\r\nSubject: b\r\n", "250 2.0.0 Continue")
			timed(t, c, "BDAT 5 LAST\r\n\r\nx\r\n", "250 2.0.0 queued as")
			timed(t, c, "NOOP\r\n", "250 ")
			timed(t, c, "QUIT\r\n", "221 ")
			c.ExpectClosed()
			if n := len(ts.handler.messages()); n != 2 {
				t.Fatalf("%d messages committed, want 2", n)
			}
		})
	}
	t.Run("bounces", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, nil)
		c := dialTimed(t, ts, "bounces")
		timed(t, c, "EHLO mta.test\r\n", "250 ")
		timed(t, c, "MAIL FROM:<>\r\n", "250 ")
		timed(t, c, "RCPT TO:<nobody@bounce.test>\r\n", "550 ")
		timed(t, c, "RCPT TO:<b+ok@bounce.test>\r\n", "250 ")
		timed(t, c, "DATA\r\n", "354 ")
		timed(t, c, message("dsn", "x")+".\r\n", "250 2.0.0 queued as")
		timed(t, c, "QUIT\r\n", "221 ")
		c.ExpectClosed()
	})
}

// TestStuckClientDropped: a client that pipelines commands and never reads
// the replies is dropped once a write of them times out, not kept for a
// write timeout per reply, and the session log says why.
func TestStuckClientDropped(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	ts := startServer(t, zap.New(core), withLimits(mergeTestLimits(Limits{CommandTimeout: 300 * time.Millisecond})))
	c := dial(t, ts.addr("bounces"))
	raw := c.Conn.(*net.TCPConn)
	_ = raw.SetReadBuffer(4096)
	// EHLO: some 200 bytes of reply for 8 bytes sent.
	chunk := []byte(strings.Repeat("EHLO x\r\n", 8<<10))
	start := time.Now()
	var err error
	for time.Since(start) < 20*time.Second {
		_ = raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err = raw.Write(chunk); err != nil {
			break
		}
	}
	if err == nil || isTimeout(err) {
		t.Fatalf("the server kept the connection for %v (last write: %v)", time.Since(start), err)
	}
	waitFor(t, func() bool { return logs.FilterMessage("smtp session").Len() > 0 })
	if s := logs.FilterMessage("smtp session").All()[0].ContextMap(); s["result"] != "write failed" {
		t.Errorf("session entry %v, want result \"write failed\"", s)
	}
}

// TestShutdownStuckClient: Shutdown's deadline closes a connection whose
// replies the client does not read, even while a write of them blocks.
func TestShutdownStuckClient(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.addr("bounces"))
	raw := c.Conn.(*net.TCPConn)
	_ = raw.SetReadBuffer(4096)
	go func() { // until the connection is closed
		chunk := []byte(strings.Repeat("EHLO x\r\n", 1<<10))
		for {
			_ = raw.SetWriteDeadline(time.Now().Add(time.Minute))
			if _, err := raw.Write(chunk); err != nil {
				return
			}
		}
	}()
	// The server is stuck once its write holds the flushConn for a while.
	stuck := func() bool {
		ts.mu.Lock()
		conns := ts.snapshotLocked()
		ts.mu.Unlock()
		if len(conns) != 1 {
			return false
		}
		for range 10 {
			if conns[0].sock.mu.TryLock() {
				conns[0].sock.mu.Unlock()
				return false
			}
			time.Sleep(30 * time.Millisecond)
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !stuck(); {
		if time.Now().After(deadline) {
			t.Fatal("the server never blocked writing replies")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := ts.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}
