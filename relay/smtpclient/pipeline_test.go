package smtpclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smtpgate/smtpgate/relay/internal/smtptest"
)

// countingDialer dials TCP and counts the writes made on its connections:
// a pipelined transaction is one write for its commands and one for the
// message.
type countingDialer struct {
	writes atomic.Int64
}

func (d *countingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: &d.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// scriptedRcpt refuses recipients by their local part: unknown (550),
// busy (450), drop (the connection is closed).
func scriptedRcpt(_, to string) error {
	switch {
	case strings.HasPrefix(to, "unknown"):
		return smtptest.Reply("550 5.1.1 <" + to + ">: user unknown")
	case strings.HasPrefix(to, "busy"):
		return smtptest.Reply("450 4.2.1 <" + to + ">: mailbox busy")
	case strings.HasPrefix(to, "drop"):
		return smtptest.ErrDrop
	}
	return nil
}

// scriptedMail refuses senders by their local part: refused (553),
// later (451), drop (the connection is closed).
func scriptedMail(from string) error {
	switch {
	case strings.HasPrefix(from, "refused"):
		return smtptest.Reply("553 5.7.1 sender refused")
	case strings.HasPrefix(from, "later"):
		return smtptest.Reply("451 4.3.0 try later")
	case strings.HasPrefix(from, "drop"):
		return smtptest.ErrDrop
	}
	return nil
}

// TestPipelining runs the same transactions against a server that offers
// PIPELINING and one that does not: every recipient gets the same outcome
// and reply either way, the message goes only to the accepted ones, a
// session survives refusals (and is reused after them), and a connection
// dropped in the middle of a pipelined group leaves every recipient of the
// transaction Temporary and is replaced by a new one. (Dropped at MAIL, the
// reused session looks closed while idle: the transaction is tried once
// more on a new connection, which the server drops too.)
func TestPipelining(t *testing.T) {
	steps := []struct {
		name    string
		env     Envelope
		want    string
		replies []string // prefixes, per recipient
		got     []string // recipients the server took the message for
		conns   int      // connections made so far
	}{
		{"mixed RCPT replies", Envelope{From: "a@s.test", To: []string{"ok1@r.test", "unknown@r.test", "busy@r.test", "ok2@r.test"}},
			"ok1@r.test=sent unknown@r.test=permanent busy@r.test=temporary ok2@r.test=sent",
			[]string{"250 2.0.0 Ok: queued as Q1", "550 5.1.1 <unknown@r.test>: user unknown", "450 4.2.1 <busy@r.test>: mailbox busy", "250 2.0.0 Ok: queued as Q1"},
			[]string{"ok1@r.test", "ok2@r.test"}, 1},
		{"every RCPT refused", Envelope{From: "a@s.test", To: []string{"unknown@r.test", "busy@r.test"}},
			"unknown@r.test=permanent busy@r.test=temporary",
			[]string{"550 5.1.1 <unknown@r.test>: user unknown", "450 4.2.1 <busy@r.test>: mailbox busy"}, nil, 1},
		{"after a transaction left open", Envelope{From: "a@s.test", To: []string{"ok3@r.test"}},
			"ok3@r.test=sent", []string{"250 2.0.0 Ok: queued as Q2"}, []string{"ok3@r.test"}, 1},
		{"MAIL refused", Envelope{From: "refused@s.test", To: []string{"ok4@r.test", "unknown@r.test"}},
			"ok4@r.test=permanent unknown@r.test=permanent", []string{"553 5.7.1 sender refused", "553 5.7.1 sender refused"}, nil, 1},
		{"MAIL deferred", Envelope{From: "later@s.test", To: []string{"ok5@r.test"}},
			"ok5@r.test=temporary", []string{"451 4.3.0 try later"}, nil, 1},
		{"invalid recipient not sent", Envelope{From: "a@s.test", To: []string{"bad address@r.test", "ok6@r.test"}},
			"bad address@r.test=permanent ok6@r.test=sent", []string{"501 5.1.3 invalid recipient address", "250 2.0.0 Ok: queued as Q3"}, []string{"ok6@r.test"}, 1},
		{"dropped at the second RCPT", Envelope{From: "a@s.test", To: []string{"ok7@r.test", "drop@r.test", "ok8@r.test"}},
			"ok7@r.test=temporary drop@r.test=temporary ok8@r.test=temporary", []string{"", "", ""}, nil, 1},
		{"after the drop", Envelope{From: "a@s.test", To: []string{"ok9@r.test"}},
			"ok9@r.test=sent", []string{"250 2.0.0 Ok: queued as Q4"}, []string{"ok9@r.test"}, 2},
		{"dropped at MAIL", Envelope{From: "drop@s.test", To: []string{"ok10@r.test", "ok11@r.test"}},
			"ok10@r.test=temporary ok11@r.test=temporary", []string{"", ""}, nil, 3},
		{"final reply refused", Envelope{From: "a@s.test", To: []string{"reject@r.test", "unknown@r.test"}},
			"reject@r.test=permanent unknown@r.test=permanent", []string{"554 5.6.0 content rejected", "550 5.1.1"}, nil, 4},
	}
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipelining=%v", pipelining), func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Options{
				NoPipelining: !pipelining,
				Mail:         scriptedMail,
				Rcpt:         scriptedRcpt,
				Data: func(m *smtptest.Message) error {
					if strings.HasPrefix(m.To[0], "reject") {
						return smtptest.Reply("554 5.6.0 content rejected")
					}
					return nil
				},
			})
			c := newClient(t, Config{Smarthost: srv.Addr, TLS: TLSNone, MaxIdle: 1, IdleTimeout: time.Minute})
			for _, st := range steps {
				before := len(srv.Messages())
				r := deliver(t, c, "", st.env)
				if got := statuses(r); got != st.want {
					t.Fatalf("%s: statuses %q, want %q\n%+v", st.name, got, st.want, r)
				}
				for i, p := range st.replies {
					if got := r.Recipients[i].Reply; !strings.HasPrefix(got, p) || got == "" {
						t.Errorf("%s: recipient %d reply %q, want prefix %q", st.name, i, got, p)
					}
				}
				var got []string
				for _, m := range srv.Messages()[before:] {
					got = append(got, m.To...)
				}
				if strings.Join(got, " ") != strings.Join(st.got, " ") {
					t.Errorf("%s: server took the message for %q, want %q", st.name, got, st.got)
				}
				if n := srv.Connections(); n != st.conns {
					t.Errorf("%s: %d connections so far, want %d", st.name, n, st.conns)
				}
			}
			for _, m := range srv.Messages() {
				if string(m.Raw) != testMsg {
					t.Errorf("bytes changed on the wire:\n%q\nwant\n%q", m.Raw, testMsg)
				}
			}
		})
	}
}

// TestPipeliningWrites: with PIPELINING a transaction on a reused session
// is two writes (the commands, after an RSET when the previous transaction
// was left open; then the message and its dot); without it, one per
// command and one for the message.
func TestPipeliningWrites(t *testing.T) {
	for _, tt := range []struct {
		pipelining bool
		want       [3]int64 // writes for: 2 recipients; both refused; 1 recipient after that
	}{
		{true, [3]int64{2, 1, 2}},
		{false, [3]int64{5, 3, 5}}, // MAIL RCPT RCPT DATA body; MAIL RCPT RCPT; RSET MAIL RCPT DATA body
	} {
		t.Run(fmt.Sprintf("pipelining=%v", tt.pipelining), func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Options{NoPipelining: !tt.pipelining, Rcpt: scriptedRcpt})
			d := &countingDialer{}
			c := newClient(t, Config{Smarthost: srv.Addr, TLS: TLSNone, MaxIdle: 1, IdleTimeout: time.Minute, Dialer: d})
			// The first delivery opens the session (greeting, EHLO).
			wantStatuses(t, deliver(t, c, "", Envelope{From: "a@s.test", To: []string{"x@r.test"}}), "x@r.test=sent")
			envs := []Envelope{
				{From: "a@s.test", To: []string{"y@r.test", "z@r.test"}},
				{From: "a@s.test", To: []string{"unknown1@r.test", "unknown2@r.test"}},
				{From: "a@s.test", To: []string{"w@r.test"}},
			}
			for i, e := range envs {
				before := d.writes.Load()
				deliver(t, c, "", e)
				if n := d.writes.Load() - before; n != tt.want[i] {
					t.Errorf("delivery %d: %d writes, want %d", i, n, tt.want[i])
				}
			}
			if srv.Connections() != 1 || srv.Accepted("w@r.test") != 1 || srv.Accepted("z@r.test") != 1 {
				t.Errorf("connections %d, w accepted %d, z accepted %d", srv.Connections(), srv.Accepted("w@r.test"), srv.Accepted("z@r.test"))
			}
		})
	}
}

// rawServer is a hand-written SMTP server for what go-smtp's server never
// does; answer returns the reply lines for each command line ("" for
// none) and, for DATA, whether to read a message.
type rawServer struct {
	addr  string
	mu    sync.Mutex
	conns int
	got   []string // commands, and "<message>" for each message read
}

func startRaw(t *testing.T, ehlo string, answer func(cmd string) string) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tp := textproto.NewConn(c)
				tp.PrintfLine("220 raw.test ESMTP")
				for {
					line, err := tp.ReadLine()
					if err != nil {
						return
					}
					s.mu.Lock()
					s.got = append(s.got, line)
					s.mu.Unlock()
					cmd := strings.ToUpper(line)
					switch {
					case strings.HasPrefix(cmd, "EHLO"):
						io.WriteString(c, ehlo)
					case cmd == "QUIT":
						tp.PrintfLine("221 bye")
						return
					default:
						reply := answer(line)
						io.WriteString(c, reply)
						if cmd == "DATA" && strings.HasPrefix(reply, "354") {
							if _, err := tp.ReadDotBytes(); err != nil {
								return
							}
							s.mu.Lock()
							s.got = append(s.got, "<message>")
							s.mu.Unlock()
							tp.PrintfLine("250 2.0.0 queued")
						}
					}
				}
			}()
		}
	}()
	return s
}

func (s *rawServer) commands() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.got, "|")
}

func (s *rawServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// TestPipeliningOddServers: a server that takes DATA although it refused
// every recipient gets no message and the session is ended; replies split
// into single bytes, and multi-line ones, are read; a malformed reply is a
// temporary failure that ends the session.
func TestPipeliningOddServers(t *testing.T) {
	const ehlo = "250-raw.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
	env := Envelope{From: "a@s.test", To: []string{"u@r.test"}}

	t.Run("DATA taken without recipients", func(t *testing.T) {
		srv := startRaw(t, ehlo, func(cmd string) string {
			switch {
			case strings.HasPrefix(cmd, "RCPT"):
				return "550 5.1.1 no such user\r\n"
			case cmd == "DATA":
				return "354 go ahead anyway\r\n"
			}
			return "250 2.0.0 ok\r\n"
		})
		c := newClient(t, Config{Smarthost: srv.addr, TLS: TLSNone, MaxIdle: 1, IdleTimeout: time.Minute})
		r := deliver(t, c, "", env)
		wantStatuses(t, r, "u@r.test=permanent")
		wantReply(t, r, 0, "550 5.1.1 no such user")
		deliver(t, c, "", env)
		if n := srv.connections(); n != 2 {
			t.Errorf("%d connections, want 2 (the first one ended)", n)
		}
		if strings.Contains(srv.commands(), "<message>") {
			t.Errorf("a message was sent: %s", srv.commands())
		}
		if got, want := srv.commands(), "EHLO localhost|MAIL FROM:<a@s.test> BODY=8BITMIME|RCPT TO:<u@r.test>|DATA"; !strings.HasPrefix(got, want) {
			t.Errorf("commands %q, want prefix %q", got, want)
		}
	})

	t.Run("replies one byte at a time", func(t *testing.T) {
		srv := startRaw(t, ehlo, func(cmd string) string {
			if cmd == "DATA" {
				return "354 go ahead\r\n"
			}
			return "250-2.1.0 first line\r\n250 2.1.0 second line\r\n"
		})
		d := &byteDialer{}
		c := newClient(t, Config{Smarthost: srv.addr, TLS: TLSNone, Dialer: d})
		r := deliver(t, c, "", Envelope{From: "a@s.test", To: []string{"u@r.test", "v@r.test"}})
		wantStatuses(t, r, "u@r.test=sent v@r.test=sent")
		wantReply(t, r, 0, "250 2.0.0 queued")
	})

	t.Run("malformed reply", func(t *testing.T) {
		srv := startRaw(t, ehlo, func(cmd string) string {
			if strings.HasPrefix(cmd, "RCPT") {
				return "25O ok\r\n"
			}
			return "250 ok\r\n"
		})
		c := newClient(t, Config{Smarthost: srv.addr, TLS: TLSNone, MaxIdle: 1, IdleTimeout: time.Minute})
		r := deliver(t, c, "", env)
		wantStatuses(t, r, "u@r.test=temporary")
		wantReply(t, r, 0, "malformed reply")
		deliver(t, c, "", env)
		if n := srv.connections(); n != 2 {
			t.Errorf("%d connections, want 2 (the first one ended)", n)
		}
	})
}

// byteDialer's connections return one byte per Read.
type byteDialer struct{}

func (byteDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return byteConn{c}, nil
}

type byteConn struct{ net.Conn }

func (c byteConn) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return c.Conn.Read(p)
}

// TestWriteData: dot-stuffing and line endings as net/textproto's
// DotWriter writes them, for the inputs the signer can produce and more.
func TestWriteData(t *testing.T) {
	for _, in := range []string{
		"", "a", "a\r\n", "a\n", ".", ".\r\n", "..\r\n", "a\r\n.\r\nb", "a\n.b\n..c\r\n", "\r\n\r\n", "\n\n.", "x\ry\r\n.z", "end\r", "\r",
		strings.Repeat("line of text\r\n.dot\r\n", 2000),
	} {
		var want bytes.Buffer
		dw := textproto.NewWriter(bufio.NewWriter(&want)).DotWriter()
		io.WriteString(dw, in)
		dw.Close()
		var got bytes.Buffer
		bw := bufio.NewWriter(&got)
		w := &wire{w: bw}
		w.writeData([]byte(in))
		bw.Flush()
		if got.String() != want.String() {
			t.Errorf("writeData(%.40q) = %.60q, want %.60q", in, got.String(), want.String())
		}
	}
}

// FuzzWireReply feeds arbitrary server output to the transaction reply
// reader: nothing may panic, and an acceptance or a refusal becomes a
// one-line "code [x.y.z] text" (it is stored as an event's reply).
func FuzzWireReply(f *testing.F) {
	f.Add([]byte("250 2.0.0 Ok\r\n354 go\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		w := &wire{r: bufio.NewReaderSize(bytes.NewReader(data), replyBufferSize)}
		for range 10 {
			code, text, err := w.reply(2)
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				if se.Code/100 == 2 {
					t.Fatalf("2xx %d returned as an error", se.Code)
				}
				r := replyOf(err)
				if strings.ContainsAny(r, "\r\n") || !strings.HasPrefix(r, strconv.Itoa(se.Code)) {
					t.Fatalf("reply %q", r)
				}
				continue
			}
			if err != nil {
				return
			}
			if r := strconv.Itoa(code) + " " + oneLine(text); code < 200 || code > 299 || strings.ContainsAny(r, "\r\n") {
				t.Fatalf("code %d text %q: reply %q", code, text, r)
			}
		}
	})
}
