package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/smtpgate/smtpgate/internal/testutil"
)

// sendBody runs MAIL, RCPT and DATA on a logged-in client and sends body
// (which must end with CRLF) and the final dot; it returns the reply.
func (c *client) sendBody(rcpt, body string) string {
	c.t.Helper()
	c.Do("MAIL FROM:<alice@example.com>", "250 ")
	c.Do("RCPT TO:<"+rcpt+">", "250 ")
	c.Do("DATA", "354 ")
	c.Write(body + ".\r\n")
	got, err := c.Reply()
	if err != nil {
		c.t.Fatalf("reply after DATA: %v", err)
	}
	return got
}

func TestSmugglingVariants(t *testing.T) {
	const (
		head     = "Subject: smuggle\r\n\r\nhello"
		injected = "MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n"
	)
	tests := []struct {
		name, sep string
		want      string // what sep becomes in the committed body
	}{
		{"LF.LF", "\n.\n", "\r\n.\r\n"},
		{"CRLF.LF", "\r\n.\n", "\r\n\r\n"}, // go-smtp takes the dot for stuffing
		{"LF.CRLF", "\n.\r\n", "\r\n.\r\n"},
		{"CR.CRLF", "\r.\r\n", "\r\n.\r\n"},
		{"CRLF.CR", "\r\n.\r", "\r\n"}, // go-smtp drops ".\r" after CRLF
	}
	ts := startServer(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(ts.handler.messages())
			c := dial(t, ts.addr("submission"))
			c.login(ts.clientTLS)
			reply := c.sendBody("rcpt@example.net", head+tt.sep+injected)
			if replyCode(reply) != 250 {
				t.Fatalf("reply %q", reply)
			}
			// Nothing else is pending: the next reply is QUIT's.
			c.Do("QUIT", "221 ")
			msgs := ts.handler.messages()
			if len(msgs) != before+1 {
				t.Fatalf("%d messages arrived, want exactly 1", len(msgs)-before)
			}
			got := msgs[len(msgs)-1]
			if want := head + tt.want + injected; got.body != want {
				t.Errorf("body\n%q\nwant\n%q", got.body, want)
			}
			if got.env.MailFrom != "alice@example.com" || len(got.env.Recipients) != 1 || got.env.Recipients[0] != "rcpt@example.net" {
				t.Errorf("envelope %q %q", got.env.MailFrom, got.env.Recipients)
			}
		})
	}
}

func TestLongLinesPass(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.addr("submission"))
	c.login(ts.clientTLS)
	for _, n := range []int{3000, 20000} {
		body := "Subject: long\r\nContent-Type: text/html\r\n\r\n<p>" + strings.Repeat("x", n) + "</p>\r\n"
		if reply := c.sendBody("rcpt@example.net", body); replyCode(reply) != 250 {
			t.Fatalf("%d-byte line: reply %q", n, reply)
		}
		msgs := ts.handler.messages()
		if got := msgs[len(msgs)-1].body; got != body {
			t.Fatalf("%d-byte line: body of %d bytes, want %d", n, len(got), len(body))
		}
	}
}

func TestOversizeData(t *testing.T) {
	ts := startServer(t, nil) // MaxMessageBytes 64 KiB
	ts.handler.results = make(chan error, 4)
	c := dial(t, ts.addr("submission"))
	c.login(ts.clientTLS)

	tests := []struct{ name, body string }{
		{"raw bytes", "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("y", 98)+"\r\n", 700)},
		// 60,000 bytes on the wire, 90,000 once bare LFs become CRLF.
		{"after normalisation", strings.Repeat("a\n", 30000) + "\r\n"},
	}
	for _, tt := range tests {
		reply := c.sendBody("rcpt@example.net", tt.body)
		if reply != "552 5.3.4 Message size exceeds fixed maximum message size" {
			t.Errorf("%s: reply %q", tt.name, reply)
		}
		if err := <-ts.handler.results; !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: Handler got %v, want ErrTooLarge", tt.name, err)
		}
		c.Do("NOOP", "250 ") // still in step with the client
	}
	if n := len(ts.handler.messages()); n != 0 {
		t.Fatalf("%d oversize messages committed", n)
	}
	if reply := c.sendBody("rcpt@example.net", message("small", "ok")); replyCode(reply) != 250 {
		t.Fatalf("small message after oversize ones: %q", reply)
	}
}

func TestDisconnectMidData(t *testing.T) {
	ts := startServer(t, nil)
	ts.handler.results = make(chan error, 1)
	c := dial(t, ts.addr("submission"))
	c.login(ts.clientTLS)
	c.Do("MAIL FROM:<alice@example.com>", "250 ")
	c.Do("RCPT TO:<rcpt@example.net>", "250 ")
	c.Do("DATA", "354 ")
	c.Write("Subject: cut\r\n\r\nthe first half of a message\r\nand no end")
	c.Conn.Close()

	err := <-ts.handler.results
	if err == nil {
		t.Fatal("Handler succeeded on a message cut off by a disconnect")
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Handler error %v, want io.ErrUnexpectedEOF", err)
	}
	if n := len(ts.handler.messages()); n != 0 {
		t.Fatalf("%d messages committed", n)
	}
	if n := len(ts.handler.abortedErrs()); n != 1 {
		t.Fatalf("%d aborted messages recorded, want 1", n)
	}
}

func TestGoSMTPClient(t *testing.T) {
	ts := startServer(t, nil)
	tests := []struct {
		name string
		sasl sasl.Client
		code int // 0: success
	}{
		{"PLAIN", sasl.NewPlainClient("", "alice", "secret"), 0},
		{"LOGIN", sasl.NewLoginClient("alice", "secret"), 0},
		{"PLAIN bad password", sasl.NewPlainClient("", "alice", "nope"), 535},
		{"LOGIN unknown user", sasl.NewLoginClient("mallory", "secret"), 535},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := smtp.DialStartTLS(ts.addr("submission"), ts.clientTLS)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Auth(tt.sasl)
			if tt.code != 0 {
				if se, ok := errors.AsType[*smtp.SMTPError](err); !ok || se.Code != tt.code {
					t.Fatalf("Auth: %v, want SMTP %d", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("Auth: %v", err)
			}
			body := message(tt.name, "via go-smtp")
			if err := c.SendMail("alice@example.com", []string{"x@example.net"}, strings.NewReader(body)); err != nil {
				t.Fatalf("SendMail: %v", err)
			}
			msgs := ts.handler.messages()
			if got := msgs[len(msgs)-1].body; got != body {
				t.Fatalf("body %q, want %q", got, body)
			}
			if err := c.Quit(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestImplicitTLSEnvelope(t *testing.T) {
	ts := startServer(t, nil)
	before := time.Now()
	c, err := smtp.DialTLS(ts.addr("smtps"), ts.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS advertised on an implicit TLS listener")
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "secret")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("alice@example.com", &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"a@example.net", "b@example.org"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, message("envelope", "x"))
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusText != "2.0.0 queued as MSG0001" {
		t.Errorf("DATA response %q", resp.StatusText)
	}
	msgs := ts.handler.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	env := msgs[0].env
	switch {
	case env.Login == nil || env.Login.Name() != "login-alice":
		t.Errorf("Login %v", env.Login)
	case env.MailFrom != "alice@example.com":
		t.Errorf("MailFrom %q", env.MailFrom)
	case strings.Join(env.Recipients, ",") != "a@example.net,b@example.org":
		t.Errorf("Recipients %q", env.Recipients)
	case env.Helo != "client.test":
		t.Errorf("Helo %q", env.Helo)
	case env.TLS == nil || env.TLS.Version < tls.VersionTLS12 || !env.TLS.HandshakeComplete:
		t.Errorf("TLS %+v", env.TLS)
	case env.Listener != "smtps":
		t.Errorf("Listener %q", env.Listener)
	case !env.UTF8:
		t.Error("UTF8 false after MAIL ... SMTPUTF8")
	case env.Received.Before(before) || env.Received.After(time.Now()):
		t.Errorf("Received %v", env.Received)
	}
	if ap := netip.MustParseAddrPort(env.RemoteAddr.String()); ap.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("RemoteAddr %v", env.RemoteAddr)
	}
	if !ts.auth.ctxOK {
		t.Error("Authenticator got a nil or canceled context")
	}
}

func TestConnectionLimits(t *testing.T) {
	t.Run("per IP", func(t *testing.T) {
		ts := startServer(t, nil, withLimits(mergeTestLimits(Limits{MaxConnectionsIP: 2})))
		a := dial(t, ts.addr("submission"))
		dialTLS(t, ts.addr("smtps"), ts.clientTLS) // the limit spans listeners
		over := dialRaw(t, ts.addr("submission"))
		over.Expect("421 4.7.0 Too many connections from your address")
		over.ExpectClosed()
		overTLS := dialRaw(t, ts.addr("smtps"))
		overTLS.Upgrade(ts.clientTLS) // refused inside TLS on an implicit listener
		overTLS.Expect("421 4.7.0 Too many connections")
		// A slot is free again once a connection is gone.
		a.Do("QUIT", "221 ")
		a.ExpectClosed()
		dial(t, ts.addr("submission")).Do("NOOP", "250 ")
	})
	t.Run("total", func(t *testing.T) {
		ts := startServer(t, nil, withLimits(mergeTestLimits(Limits{MaxConnections: 2})))
		dial(t, ts.addr("submission"))
		dial(t, ts.addr("submission"))
		over := dialRaw(t, ts.addr("submission"))
		over.Expect("421 4.7.0 Too many connections")
		over.ExpectClosed()
	})
}

func TestAuthFailureDelayDoubles(t *testing.T) {
	const delay = 30 * time.Millisecond
	ts := startServer(t, nil, withLimits(mergeTestLimits(Limits{AuthFailureDelay: delay, MaxAuthFailures: 3})))
	c := dial(t, ts.addr("submission"))
	c.Do("EHLO client.test", "250 ")
	c.StartTLS(ts.clientTLS)
	c.Do("EHLO client.test", "250 ")
	start := time.Now()
	c.Do("AUTH PLAIN "+plainIR("", "alice", "bad1"), "535 5.7.8")
	c.Do("AUTH PLAIN "+plainIR("", "alice", "bad2"), "535 5.7.8")
	c.Do("AUTH PLAIN "+plainIR("", "alice", "bad3"), "421 4.7.0")
	c.ExpectClosed()
	// A lower bound only: each failure waited at least its delay.
	if min := delay + 2*delay + 4*delay; time.Since(start) < min {
		t.Fatalf("three failures answered in %v, want at least %v", time.Since(start), min)
	}
}

func TestDataTimeouts(t *testing.T) {
	t.Run("slow but steady body outlives CommandTimeout", func(t *testing.T) {
		ts := startServer(t, nil, withLimits(mergeTestLimits(Limits{CommandTimeout: 800 * time.Millisecond, DataTimeout: 10 * time.Second})))
		c := dial(t, ts.addr("submission"))
		c.login(ts.clientTLS)
		c.Do("MAIL FROM:<alice@example.com>", "250 ")
		c.Do("RCPT TO:<rcpt@example.net>", "250 ")
		c.Do("DATA", "354 ")
		c.Write("Subject: slow\r\n\r\n")
		for i := range 7 { // 7 × 200 ms: far past one CommandTimeout in total
			time.Sleep(200 * time.Millisecond)
			c.Write(strings.Repeat(string(rune('a'+i)), 10) + "\r\n")
		}
		c.Write(".\r\n")
		c.Expect("250 2.0.0 queued as")
	})
	t.Run("stalled body hits CommandTimeout", func(t *testing.T) {
		ts := startServer(t, nil, withLimits(mergeTestLimits(Limits{CommandTimeout: 500 * time.Millisecond, DataTimeout: 10 * time.Second})))
		ts.handler.results = make(chan error, 1)
		c := dial(t, ts.addr("submission"))
		c.login(ts.clientTLS)
		c.Do("MAIL FROM:<alice@example.com>", "250 ")
		c.Do("RCPT TO:<rcpt@example.net>", "250 ")
		c.Do("DATA", "354 ")
		c.Write("Subject: stalled\r\n\r\nsome text\r\n")
		c.Expect("421 4.4.2 Timeout while receiving the message")
		c.ExpectClosed()
		if err := <-ts.handler.results; !isTimeout(err) {
			t.Errorf("Handler got %v, want a timeout", err)
		}
		if n := len(ts.handler.messages()); n != 0 {
			t.Errorf("%d messages committed", n)
		}
	})
	t.Run("whole transfer bounded by DataTimeout", func(t *testing.T) {
		ts := startServer(t, nil, withLimits(mergeTestLimits(Limits{CommandTimeout: time.Second, DataTimeout: 1500 * time.Millisecond})))
		c := dial(t, ts.addr("submission"))
		c.login(ts.clientTLS)
		c.Do("MAIL FROM:<alice@example.com>", "250 ")
		c.Do("RCPT TO:<rcpt@example.net>", "250 ")
		c.Do("DATA", "354 ")
		conn := c.Conn
		stop := make(chan struct{})
		defer close(stop)
		go func() { // a line every 100 ms, for ever
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := io.WriteString(conn, "more text\r\n"); err != nil {
					return
				}
			}
		}()
		c.Expect("421 4.4.2 Timeout while receiving the message")
		c.ExpectClosed()
		if n := len(ts.handler.messages()); n != 0 {
			t.Errorf("%d messages committed", n)
		}
	})
}

// proxyV2 builds a PROXY protocol v2 header for a TCP connection.
func proxyV2(src, dst netip.AddrPort) []byte {
	h := []byte("\r\n\r\n\x00\r\nQUIT\n")
	h = append(h, 0x21) // version 2, PROXY
	var addrs []byte
	if src.Addr().Is4() {
		h = append(h, 0x11) // TCP over IPv4
		addrs = append(append(addrs, src.Addr().AsSlice()...), dst.Addr().AsSlice()...)
	} else {
		h = append(h, 0x21) // TCP over IPv6
		addrs = append(append(addrs, src.Addr().AsSlice()...), dst.Addr().AsSlice()...)
	}
	addrs = binary.BigEndian.AppendUint16(addrs, src.Port())
	addrs = binary.BigEndian.AppendUint16(addrs, dst.Port())
	h = binary.BigEndian.AppendUint16(h, uint16(len(addrs)))
	return append(h, addrs...)
}

func TestProxyProtocol(t *testing.T) {
	ts := startServer(t, nil, withProxyListeners(), withLimits(mergeTestLimits(Limits{MaxConnectionsIP: 1})))
	dst := netip.MustParseAddrPort("192.0.2.1:587")
	tests := []struct {
		name, listener string
		header         []byte
		client         string // the address the header names
	}{
		{"v1 TCP4 STARTTLS", "pp-submission", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 56324 587\r\n"), "203.0.113.7:56324"},
		{"v1 TCP6 implicit", "pp-smtps", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 40001 465\r\n"), "[2001:db8::7]:40001"},
		{"v2 IPv4 implicit", "pp-smtps", proxyV2(netip.MustParseAddrPort("198.51.100.9:40000"), dst), "198.51.100.9:40000"},
		{"v2 IPv6 STARTTLS", "pp-submission", proxyV2(netip.MustParseAddrPort("[2001:db8::9]:40002"), netip.MustParseAddrPort("[2001:db8::1]:587")), "[2001:db8::9]:40002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts.addr(tt.listener))
			c.Write(string(tt.header))
			if tt.listener == "pp-smtps" {
				c.Upgrade(ts.clientTLS)
				c.Expect("220 mx.test")
				c.Do("EHLO client.test", "250 ")
				c.Do("AUTH PLAIN "+plainIR("", "alice", "secret"), "235 ")
			} else {
				c.Expect("220 mx.test")
				c.login(ts.clientTLS)
			}
			if reply := c.sendBody("rcpt@example.net", message(tt.name, "x")); replyCode(reply) != 250 {
				t.Fatalf("reply %q", reply)
			}
			msgs := ts.handler.messages()
			env := msgs[len(msgs)-1].env
			if env.RemoteAddr.String() != tt.client || env.Listener != tt.listener {
				t.Errorf("RemoteAddr %v on %q, want %v on %q", env.RemoteAddr, env.Listener, tt.client, tt.listener)
			}
			c.Do("QUIT", "221 ")
			c.ExpectClosed()
		})
	}
	t.Run("no header is dropped", func(t *testing.T) {
		c := dialRaw(t, ts.addr("pp-submission"))
		c.Write("EHLO client.test\r\n")
		c.ExpectClosed()
	})
	t.Run("per-IP limit on the proxied address", func(t *testing.T) {
		// Every socket comes from 127.0.0.1 and MaxConnectionsIP is 1:
		// only the addresses in the headers count.
		a := dialRaw(t, ts.addr("pp-submission"))
		a.Write("PROXY TCP4 203.0.113.20 192.0.2.1 1000 587\r\n")
		a.Expect("220 ")
		b := dialRaw(t, ts.addr("pp-submission"))
		b.Write("PROXY TCP4 203.0.113.21 192.0.2.1 1000 587\r\n")
		b.Expect("220 ")
		over := dialRaw(t, ts.addr("pp-submission"))
		over.Write("PROXY TCP4 203.0.113.20 192.0.2.1 1001 587\r\n")
		over.Expect("421 4.7.0 Too many connections from your address")
		over.ExpectClosed()
	})
}

func TestShutdown(t *testing.T) {
	t.Run("idle connection gets 421, transaction finishes", func(t *testing.T) {
		ts := startServer(t, nil)
		idle := dial(t, ts.addr("submission"))
		idle.login(ts.clientTLS)
		busy := dial(t, ts.addr("submission"))
		busy.login(ts.clientTLS)
		busy.Do("MAIL FROM:<alice@example.com>", "250 ")
		busy.Do("RCPT TO:<rcpt@example.net>", "250 ")
		busy.Do("DATA", "354 ")
		busy.Write("Subject: in flight\r\n\r\n")

		plain := dial(t, ts.addr("submission")) // idle before STARTTLS
		plain.Do("EHLO client.test", "250 ")

		done := make(chan error, 1)
		go func() { done <- ts.Shutdown(context.Background()) }()
		idle.Expect("421 4.4.2")
		idle.ExpectClosed()
		plain.Expect("421 4.4.2")
		plain.ExpectClosed()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned (%v) while a message was in flight", err)
		default:
		}
		busy.Write("finished after shutdown began\r\n.\r\n")
		busy.Expect("250 2.0.0 queued as")
		busy.Cmd("MAIL FROM:<alice@example.com>")
		busy.Expect("421 ")
		busy.ExpectClosed()
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if _, err := net.DialTimeout("tcp", ts.addr("submission"), time.Second); err == nil {
			t.Error("still accepting connections after Shutdown")
		}
	})
	t.Run("forced when ctx ends", func(t *testing.T) {
		ts := startServer(t, nil)
		ts.handler.hold = make(chan struct{}) // never released
		ts.handler.results = make(chan error, 1)
		c := dial(t, ts.addr("submission"))
		c.login(ts.clientTLS)
		c.Do("MAIL FROM:<alice@example.com>", "250 ")
		c.Do("RCPT TO:<rcpt@example.net>", "250 ")
		c.Do("DATA", "354 ")
		c.Write(message("held", "x") + ".\r\n")
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := ts.Shutdown(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v, want DeadlineExceeded", err)
		}
		// Shutdown returned only after the Handler did, with its context canceled.
		select {
		case herr := <-ts.handler.results:
			if !errors.Is(herr, context.Canceled) {
				t.Errorf("Handler returned %v, want context.Canceled", herr)
			}
		default:
			t.Error("Shutdown returned while the Handler was still running")
		}
		if err := ts.Shutdown(context.Background()); !errors.Is(err, ErrServerClosed) {
			t.Errorf("second Shutdown: %v", err)
		}
	})
}

func TestLogging(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	ts := startServer(t, zap.New(core))
	c := dial(t, ts.addr("submission"))
	c.Do("EHLO client.test", "250 ")
	c.StartTLS(ts.clientTLS)
	c.Do("EHLO client.test", "250 ")
	c.Do("AUTH PLAIN "+plainIR("", "carol", "Wrong-P4ss!"), "535 ")
	c.Do("AUTH LOGIN "+b64("carol"), "334 ")
	c.Do(b64("S3cr3t-P4ss!"), "235 ")
	reply := c.sendBody("rcpt@example.net", message("logged", "x"))
	c.Do("QUIT", "221 ")
	c.ExpectClosed()
	if reply != "250 2.0.0 queued as MSG0001" {
		t.Fatalf("reply %q", reply)
	}
	// The session line is written when the connection closes.
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessage("smtp session").Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	secrets := []string{"S3cr3t-P4ss!", "Wrong-P4ss!", b64("S3cr3t-P4ss!"), plainIR("", "carol", "Wrong-P4ss!")}
	for _, e := range logs.All() {
		text := e.Message
		for k, v := range e.ContextMap() {
			text += " " + k + "=" + toString(v)
		}
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("log entry %q contains AUTH data %q", text, s)
			}
		}
		if strings.Contains(text, "go-smtp") && e.Level >= zapcore.WarnLevel {
			t.Errorf("unexpected go-smtp complaint: %s", text)
		}
	}
	msgs := logs.FilterMessage("smtp message").All()
	if len(msgs) != 1 {
		t.Fatalf("%d message log entries", len(msgs))
	}
	m := msgs[0].ContextMap()
	if msgs[0].Level != zapcore.InfoLevel || m["id"] != "MSG0001" || m["login"] != "login-carol" || m["result"] != "queued" || m["remote"] == nil {
		t.Errorf("message entry %v %v", msgs[0].Level, m)
	}
	sess := logs.FilterMessage("smtp session").All()
	if len(sess) != 1 {
		t.Fatalf("%d session log entries", len(sess))
	}
	if s := sess[0].ContextMap(); s["login"] != "login-carol" || s["messages"] != int64(1) || s["auth_failures"] != int64(1) {
		t.Errorf("session entry %v", s)
	}
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case error:
		return v.Error()
	case interface{ String() string }:
		return v.String()
	}
	return ""
}

func TestTLSSettings(t *testing.T) {
	ts := startServer(t, nil)
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		cfg := ts.clientTLS.Clone()
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		conn, err := tls.Dial("tcp", ts.addr("smtps"), cfg)
		if err == nil {
			conn.Close()
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	})
	t.Run("session resumption", func(t *testing.T) {
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			cfg := ts.clientTLS.Clone()
			cfg.MaxVersion = version
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			for i := range 2 {
				c := dialTLS(t, ts.addr("smtps"), cfg) // reading the banner takes the ticket
				resumed := c.Conn.(*tls.Conn).ConnectionState().DidResume
				if resumed != (i == 1) {
					t.Errorf("TLS %x connection %d: DidResume %v", version, i, resumed)
				}
				c.Do("QUIT", "221 ")
			}
		}
	})
	t.Run("GetCertificate", func(t *testing.T) {
		serverTLS, clientTLS := testutil.SelfSignedTLS(t)
		calls := 0
		cfg := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			calls++
			return &serverTLS.Certificates[0], nil
		}}
		srv, err := New(Config{Hostname: "mx.test", TLS: cfg,
			Listeners: []ListenerConfig{{Name: "s", Address: "127.0.0.1:0", TLS: TLSStartTLS}}},
			newTestAuth(), &testHandler{}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown(context.Background())
		c := dial(t, srv.Addr("s").String())
		c.Do("EHLO client.test", "250 ")
		c.StartTLS(clientTLS)
		c.Do("EHLO client.test", "250 ")
		if calls != 1 {
			t.Errorf("GetCertificate called %d times", calls)
		}
		if cfg.MinVersion != 0 {
			t.Error("New modified the caller's tls.Config")
		}
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	serverTLS, _ := testutil.SelfSignedTLS(t)
	good := func() Config {
		return Config{Hostname: "mx.test", TLS: serverTLS,
			Listeners: []ListenerConfig{{Name: "a", Address: ":0", TLS: TLSStartTLS}}}
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no hostname", func(c *Config) { c.Hostname = "" }, "Hostname"},
		{"no TLS", func(c *Config) { c.TLS = nil }, "TLS is nil"},
		{"no certificate", func(c *Config) { c.TLS = &tls.Config{} }, "no certificate"},
		{"no listeners", func(c *Config) { c.Listeners = nil }, "no listeners"},
		{"unnamed listener", func(c *Config) { c.Listeners[0].Name = "" }, "no name"},
		{"duplicate name", func(c *Config) { c.Listeners = append(c.Listeners, c.Listeners[0]) }, "used twice"},
		{"bad TLS mode", func(c *Config) { c.Listeners[0].TLS = "none" }, `TLS mode "none"`},
		{"bad address", func(c *Config) { c.Listeners[0].Address = "localhost" }, "address"},
		{"negative limit", func(c *Config) { c.Limits.MaxRecipients = -1 }, "MaxRecipients"},
		{"bad purpose", func(c *Config) { c.Listeners[0].Purpose = "relay" }, `purpose "relay"`},
		{"implicit bounces", func(c *Config) {
			c.Listeners[0].Purpose, c.Listeners[0].TLS, c.Bounces = PurposeBounces, TLSImplicit, &testBounces{}
		}, `TLS mode "implicit"`},
		{"bounces without receiver", func(c *Config) { c.Listeners[0].Purpose = PurposeBounces }, "Config.Bounces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mutate(&cfg)
			_, err := New(cfg, newTestAuth(), &testHandler{}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error about %q", err, tt.want)
			}
		})
	}
	if _, err := New(good(), nil, &testHandler{}, nil); err == nil {
		t.Error("New accepted a nil Authenticator")
	}
}

func TestStart(t *testing.T) {
	ts := startServer(t, nil)
	if ts.Addr("nope") != nil {
		t.Error("Addr of an unknown listener is not nil")
	}
	if err := ts.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	serverTLS, _ := testutil.SelfSignedTLS(t)
	srv, err := New(Config{Hostname: "mx.test", TLS: serverTLS, Listeners: []ListenerConfig{
		{Name: "free", Address: "127.0.0.1:0", TLS: TLSStartTLS},
		{Name: "taken", Address: ts.addr("submission"), TLS: TLSStartTLS},
	}}, newTestAuth(), &testHandler{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), `"taken"`) {
		t.Fatalf("Start on a used address: %v", err)
	}
	if srv.Addr("free") != nil {
		t.Error("a listener stayed bound after Start failed")
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown after a failed Start: %v", err)
	}
}

func TestFailedSTARTTLSHandshakeEndsConnection(t *testing.T) {
	ts := startServer(t, nil)
	dial(t, ts.addr("submission")).plaintextAfterSTARTTLS("client.test", "alice@example.com")
}
