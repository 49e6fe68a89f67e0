package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/smtpgate/smtpgate/internal/testutil"
)

// gotMsg is a message the test server accepted.
type gotMsg struct {
	from string
	to   []string
	data []byte
}

// gotAuth is an AUTH the test server accepted.
type gotAuth struct {
	user  string
	tls   bool
	curve tls.CurveID
}

// testServer is a real go-smtp server on loopback that records what it
// receives, and how the client's bytes arrive: every raw read, and the
// number of turns per connection (a read after a write of the server's,
// i.e. a round trip the client waited for).
type testServer struct {
	addr string
	// hidePipelining rewrites the server's EHLO reply so that it does not
	// offer PIPELINING (only without TLS, where the bytes are clear).
	hidePipelining bool

	mu    sync.Mutex
	msgs  []gotMsg
	auths []gotAuth
	conns []*turnConn
}

// startServer starts a go-smtp server on 127.0.0.1:0 with a self-signed
// certificate: STARTTLS when tlsMode is "starttls" or "none" (the client
// may not use it), TLS from the first byte when "implicit". AUTH PLAIN
// accepts user "u", password "p", also without TLS. RCPT refuses every
// address starting with "reject" or equal to "u3@example.com" with a
// two-line 550.
func startServer(t *testing.T, tlsMode string, hidePipelining bool) *testServer {
	t.Helper()
	serverTLS, _ := testutil.SelfSignedTLS(t)
	ts := &testServer{hidePipelining: hidePipelining}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &testSession{ts: ts, conn: c}, nil
	}))
	srv.Domain = "mx.test"
	srv.TLSConfig = serverTLS
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = l.Addr().String()
	var lis net.Listener = &turnListener{Listener: l, ts: ts}
	if tlsMode == "implicit" {
		lis = tls.NewListener(lis, serverTLS)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ts
}

func (ts *testServer) messages() []gotMsg {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.msgs)
}

// turns returns the turns of every connection so far, in accept order.
func (ts *testServer) turns() []int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var n []int
	for _, c := range ts.conns {
		n = append(n, c.turns)
	}
	return n
}

// reads returns every raw read of every connection, in order.
func (ts *testServer) reads() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var r []string
	for _, c := range ts.conns {
		r = append(r, c.reads...)
	}
	return r
}

type testSession struct {
	ts   *testServer
	conn *smtp.Conn
	from string
	to   []string
}

func (s *testSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *testSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if identity != "" && identity != user || user != "u" || pass != "p" {
			return smtp.ErrAuthFailed
		}
		state, ok := s.conn.TLSConnectionState()
		s.ts.mu.Lock()
		s.ts.auths = append(s.ts.auths, gotAuth{user: user, tls: ok, curve: state.CurveID})
		s.ts.mu.Unlock()
		return nil
	}), nil
}

func (s *testSession) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "reject") || to == "u3@example.com" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user\nnot here either"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.ts.mu.Lock()
	s.ts.msgs = append(s.ts.msgs, gotMsg{from: s.from, to: s.to, data: b})
	s.ts.mu.Unlock()
	return nil
}

func (s *testSession) Reset()        { s.from, s.to = "", nil }
func (s *testSession) Logout() error { return nil }

type turnListener struct {
	net.Listener
	ts *testServer
}

func (l *turnListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &turnConn{Conn: c, ts: l.ts}
	l.ts.mu.Lock()
	l.ts.conns = append(l.ts.conns, tc)
	l.ts.mu.Unlock()
	return tc, nil
}

// turnConn is the server's side of a connection, below TLS if any.
type turnConn struct {
	net.Conn
	ts *testServer
	// Under ts.mu.
	wrote bool
	turns int
	reads []string
}

func (c *turnConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.ts.mu.Lock()
		if c.wrote {
			c.turns++
		}
		c.wrote = false
		c.reads = append(c.reads, string(p[:n]))
		c.ts.mu.Unlock()
	}
	return n, err
}

func (c *turnConn) Write(p []byte) (int, error) {
	c.ts.mu.Lock()
	c.wrote = true
	c.ts.mu.Unlock()
	if c.ts.hidePipelining {
		if _, err := c.Conn.Write(bytes.ReplaceAll(p, []byte("PIPELINING"), []byte("XPIPELINER"))); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// testConfig is the flags' defaults, against addr, as user "u".
func testConfig(addr string, n, conns, perConn int) config {
	return config{addr: addr, tlsMode: "starttls", user: "u", pass: "p", from: "load@example.com",
		to: "inbox%d@example.com", rcptSpan: 100, total: n, conns: conns, perConn: perConn, size: 5120,
		timeout: 30 * time.Second, pipelining: true, curves: "x25519"}
}

func runLoad(t *testing.T, c config) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	r, err := run(ctx, c)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return r
}

// bodyFile writes a -body file whose body has lines that must be
// dot-stuffed on the wire, and returns its path and the bytes the server
// must hand over after the standard header lines.
func bodyFile(t *testing.T) (path, want string) {
	path = filepath.Join(t.TempDir(), "body.eml")
	file := "Content-Type: text/plain\n\n.leading dot\n.\n..two dots\n. \nend .\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, strings.ReplaceAll(file, "\n", "\r\n")
}

var headerRE = regexp.MustCompile(`^From: <load@example\.com>\r\nTo: <inbox(\d+)@example\.com>\r\nSubject: load (\d+)\r\nMessage-ID: <load-\d+-(\d+)@smtpload>\r\n`)

// checkMessages checks that the server received messages 0..n-1, each
// once, byte-exact: the standard header lines, then body.
func checkMessages(t *testing.T, got []gotMsg, n int, body string) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("the server received %d messages, want %d", len(got), n)
	}
	seen := map[int]bool{}
	for _, m := range got {
		h := headerRE.FindSubmatch(m.data)
		if h == nil {
			t.Fatalf("message %q: not the standard header lines", m.data)
		}
		num, _ := strconv.Atoi(string(h[2]))
		if string(h[1]) != strconv.Itoa(num%100) || string(h[3]) != strconv.Itoa(num) {
			t.Errorf("message %d: header lines %q", num, h[0])
		}
		if rest := string(m.data[len(h[0]):]); rest != body {
			t.Errorf("message %d: after the header lines %q, want %q", num, rest, body)
		}
		if want := fmt.Sprintf("inbox%d@example.com", num%100); m.from != "load@example.com" || !slices.Equal(m.to, []string{want}) {
			t.Errorf("message %d: envelope %s -> %v, want load@example.com -> %s", num, m.from, m.to, want)
		}
		if seen[num] {
			t.Errorf("message %d received twice", num)
		}
		seen[num] = true
	}
	for i := range n {
		if !seen[i] {
			t.Errorf("message %d not received", i)
		}
	}
}

// TestDelivers sends messages over STARTTLS and implicit TLS, pipelined
// and not: each arrives once, byte-exact after dot-unstuffing, after AUTH
// inside TLS with X25519.
func TestDelivers(t *testing.T) {
	for _, tlsMode := range []string{"starttls", "implicit"} {
		for _, pipe := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s pipelining=%v", tlsMode, pipe), func(t *testing.T) {
				ts := startServer(t, tlsMode, false)
				c := testConfig(ts.addr, 7, 2, 3)
				c.tlsMode, c.pipelining = tlsMode, pipe
				path, body := bodyFile(t)
				c.bodyFile = path
				r := runLoad(t, c)
				if r.Sent != 7 || r.Errors != 0 || r.FirstError != "" {
					t.Fatalf("result %+v, want 7 sent, no error", r)
				}
				if r.Pipelining != pipe || r.Curves != "x25519" {
					t.Errorf("result pipelining %v, curves %q; want %v, x25519", r.Pipelining, r.Curves, pipe)
				}
				checkMessages(t, ts.messages(), 7, body)
				ts.mu.Lock()
				defer ts.mu.Unlock()
				if len(ts.auths) != 3 {
					t.Errorf("%d logins, want 3 (7 messages, 3 per connection)", len(ts.auths))
				}
				for _, a := range ts.auths {
					if a.user != "u" || !a.tls || a.curve != tls.X25519 {
						t.Errorf("login %+v, want user u over TLS with X25519", a)
					}
				}
			})
		}
	}
}

// TestDefaultBody sends the -size body.
func TestDefaultBody(t *testing.T) {
	ts := startServer(t, "starttls", false)
	c := testConfig(ts.addr, 2, 1, 2)
	c.size = 3000
	if r := runLoad(t, c); r.Sent != 2 || r.Errors != 0 {
		t.Fatalf("result %+v, want 2 sent", r)
	}
	checkMessages(t, ts.messages(), 2, string(makeBody(3000)))
	if n := len(ts.messages()[0].data); n < 2800 || n > 3200 {
		t.Errorf("a -size 3000 message is %d bytes", n)
	}
}

// TestPipelining checks how the commands go on the wire: with PIPELINING
// MAIL, RCPT and DATA arrive in one read and each message costs two round
// trips; without (-pipelining=false, or a server that does not offer it)
// one command per read and four round trips.
func TestPipelining(t *testing.T) {
	const k = 4
	mailRE := regexp.MustCompile(`^MAIL FROM:<load@example\.com> SIZE=\d+\r\nRCPT TO:<inbox\d+@example\.com>\r\nDATA\r\n$`)
	turns := map[string]int{}
	for _, tc := range []struct {
		name       string
		tlsMode    string
		pipelining bool
		hide       bool
	}{
		{"none", "none", true, false},
		{"none unpipelined", "none", false, false},
		{"none server without PIPELINING", "none", true, true},
		{"starttls", "starttls", true, false},
		{"starttls unpipelined", "starttls", false, false},
		{"implicit", "implicit", true, false},
		{"implicit unpipelined", "implicit", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, tc.tlsMode, tc.hide)
			c := testConfig(ts.addr, k, 1, k)
			c.tlsMode, c.pipelining = tc.tlsMode, tc.pipelining
			r := runLoad(t, c)
			if r.Sent != k || r.Errors != 0 {
				t.Fatalf("result %+v, want %d sent", r, k)
			}
			if want := tc.pipelining && !tc.hide; r.Pipelining != want {
				t.Errorf("result pipelining %v, want %v", r.Pipelining, want)
			}
			tn := ts.turns()
			if len(tn) != 1 {
				t.Fatalf("%d connections, want 1", len(tn))
			}
			turns[tc.name] = tn[0]
			if tc.tlsMode != "none" {
				return
			}
			var mails []string
			for _, rd := range ts.reads() {
				if strings.Contains(rd, "MAIL FROM") || strings.Contains(rd, "RCPT TO") {
					mails = append(mails, rd)
				}
			}
			if tc.pipelining && !tc.hide {
				if len(mails) != k {
					t.Fatalf("%d reads with MAIL or RCPT, want %d: %q", len(mails), k, mails)
				}
				for _, m := range mails {
					if !mailRE.MatchString(m) {
						t.Errorf("read %q, want MAIL FROM, RCPT TO and DATA in one", m)
					}
				}
			} else if len(mails) != 2*k {
				t.Errorf("%d reads with MAIL or RCPT, want %d, one command each: %q", len(mails), 2*k, mails)
			}
		})
	}
	for _, mode := range []string{"none", "starttls", "implicit"} {
		if p, u := turns[mode], turns[mode+" unpipelined"]; u-p != 2*k {
			t.Errorf("%s: %d round trips pipelined, %d unpipelined; want %d fewer pipelined (2 per message)", mode, p, u, 2*k)
		}
	}
	if h, u := turns["none server without PIPELINING"], turns["none unpipelined"]; h != u {
		t.Errorf("%d round trips to a server without PIPELINING, want %d as with -pipelining=false", h, u)
	}
}

// TestErrors checks that refusals count as errors, with the reply's full
// text in first_error, and that the rest of the run goes on.
func TestErrors(t *testing.T) {
	for _, pipe := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipelining=%v", pipe), func(t *testing.T) {
			ts := startServer(t, "starttls", false)

			c := testConfig(ts.addr, 6, 2, 2)
			c.pipelining, c.pass = pipe, "wrong"
			r := runLoad(t, c)
			if r.Sent != 0 || r.Errors != 6 || r.FirstError != "AUTH PLAIN: 535 5.7.8 Authentication failed" {
				t.Errorf("wrong password: result %+v, want 6 errors, first_error the 535", r)
			}

			c = testConfig(ts.addr, 4, 1, 2)
			c.pipelining, c.to = pipe, "reject%d@example.com"
			r = runLoad(t, c)
			want := "RCPT TO:<reject0@example.com>: 550-No such user\n550 5.1.1 not here either"
			if r.Sent != 0 || r.Errors != 4 || r.FirstError != want {
				t.Errorf("refused recipients: result %+v, want 4 errors, first_error %q", r, want)
			}

			// u3 is refused: message 3 fails, message 4 (same
			// connection) is not sent, 5..9 go on a new connection.
			c = testConfig(ts.addr, 10, 1, 5)
			c.pipelining, c.to, c.rcptSpan = pipe, "u%d@example.com", 10
			r = runLoad(t, c)
			if r.Sent != 8 || r.Errors != 2 || !strings.HasPrefix(r.FirstError, "RCPT TO:<u3@example.com>: 550-No such user\n") {
				t.Errorf("one refused recipient: result %+v, want 8 sent, 2 errors, first_error the 550 to u3", r)
			}
			var got []string
			for _, m := range ts.messages() {
				got = append(got, m.to...)
			}
			slices.Sort(got)
			if want := []string{"u0@example.com", "u1@example.com", "u2@example.com", "u5@example.com",
				"u6@example.com", "u7@example.com", "u8@example.com", "u9@example.com"}; !slices.Equal(got, want) {
				t.Errorf("the server received messages to %v, want %v", got, want)
			}
		})
	}
}

// TestTimeout: a server that never greets; the run ends at -timeout with
// every message an error.
func TestTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	c := testConfig(l.Addr().String(), 4, 2, 2)
	c.timeout = 300 * time.Millisecond
	t0 := time.Now()
	r := runLoad(t, c)
	if el := time.Since(t0); el > 5*time.Second {
		t.Errorf("run took %v with -timeout 300ms", el)
	}
	if r.Sent != 0 || r.Errors != 4 || !strings.Contains(r.FirstError, "greeting") {
		t.Errorf("result %+v, want 4 errors, first_error about the greeting", r)
	}
}

// TestCurves checks -curves: parsing, and the group each setting
// negotiates with a Go server (which takes the client's first).
func TestCurves(t *testing.T) {
	for _, tc := range []struct {
		in, names string
		ids       []tls.CurveID
		err       string
	}{
		{in: "x25519", names: "x25519", ids: []tls.CurveID{tls.X25519}},
		{in: "default", names: "default"},
		{in: " X25519, p256 ,x25519mlkem768", names: "x25519,p256,x25519mlkem768", ids: []tls.CurveID{tls.X25519, tls.CurveP256, tls.X25519MLKEM768}},
		{in: "p384", err: `"p384" is not`},
		{in: "x25519,", err: `"" is not`},
		{in: "", err: `"" is not`},
		{in: "default,x25519", err: `"default" is not`},
		{in: "p256,p256", err: "p256 twice"},
	} {
		ids, names, err := parseCurves(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseCurves(%q) = %v, %q, %v; want an error containing %q", tc.in, ids, names, err, tc.err)
			}
			continue
		}
		if err != nil || names != tc.names || !slices.Equal(ids, tc.ids) {
			t.Errorf("parseCurves(%q) = %v, %q, %v; want %v, %q", tc.in, ids, names, err, tc.ids, tc.names)
		}
	}

	for curves, want := range map[string]tls.CurveID{"default": tls.X25519MLKEM768, "x25519": tls.X25519,
		"p256": tls.CurveP256, "x25519mlkem768,x25519": tls.X25519MLKEM768} {
		ts := startServer(t, "starttls", false)
		c := testConfig(ts.addr, 1, 1, 1)
		c.curves = curves
		if r := runLoad(t, c); r.Sent != 1 || r.Errors != 0 {
			t.Fatalf("-curves %s: result %+v", curves, r)
		}
		ts.mu.Lock()
		if len(ts.auths) != 1 || ts.auths[0].curve != want {
			t.Errorf("-curves %s: logins %+v, want one over %v", curves, ts.auths, want)
		}
		ts.mu.Unlock()
	}

	ctx := context.Background()
	c := testConfig("127.0.0.1:1", 1, 1, 1)
	c.curves = "ffdhe2048"
	if _, err := run(ctx, c); err == nil || !strings.Contains(err.Error(), "-curves") {
		t.Errorf("run with -curves ffdhe2048: %v, want a -curves error", err)
	}
}

// TestReadReply checks the reply parser on single and multi-line replies
// and on what is not a reply.
func TestReadReply(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "250 ok\r\n", want: "250 ok"},
		{in: "250\r\n", want: "250"},
		{in: "250-a\r\n250-b\r\n250 c\r\nNEXT", want: "250-a\n250-b\n250 c"},
		{in: "220 lf only\n", want: "220 lf only"},
		{in: "250 " + strings.Repeat("x", 10000) + "\r\n", want: "250 " + strings.Repeat("x", 10000)},
		{in: "250-a\r\n251 b\r\n", err: "malformed"},
		{in: "25 short\r\n", err: "malformed"},
		{in: "2x0 ok\r\n", err: "malformed"},
		{in: "250_ok\r\n", err: "malformed"},
		{in: "250-a\r\n", err: io.ErrUnexpectedEOF.Error()},
		{in: "", err: io.ErrUnexpectedEOF.Error()},
		{in: "250-" + strings.Repeat("x", maxReply) + "\r\n", err: "longer than"},
	} {
		got, err := readReply(bufio.NewReader(strings.NewReader(tc.in)), []byte("old"))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("readReply(%.40q) = %.40q, %v; want an error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != "old"+tc.want {
			t.Errorf("readReply(%.40q) = %.40q, %v; want %.40q", tc.in, got, err, tc.want)
		}
	}
	if err := (&replyError{cmd: "DATA", reply: "554 no"}); !errors.As(error(err), new(*replyError)) || err.Error() != "DATA: 554 no" {
		t.Errorf("replyError %q", err)
	}
}

// TestDotStuff checks the one-time dot-stuffing of the body.
func TestDotStuff(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"a\r\n":             "a\r\n",
		".\r\n":             "..\r\n",
		"a\r\n.b\r\n..\r\n": "a\r\n..b\r\n...\r\n",
		"a.\r\nb":           "a.\r\nb\r\n",
	} {
		if got := string(dotStuff([]byte(in))); got != want {
			t.Errorf("dotStuff(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTLSResume: with -tls-resume every connection after the first resumes
// a session (the server issues TLS 1.3 tickets), over STARTTLS and implicit
// TLS; with -tls-resume=false none does.
func TestTLSResume(t *testing.T) {
	for _, mode := range []string{"starttls", "implicit"} {
		for _, resume := range []bool{true, false} {
			ts := startServer(t, mode, false)
			c := testConfig(ts.addr, 4, 1, 1) // four connections, one after another
			c.tlsMode = mode
			c.tlsResume = resume
			r := runLoad(t, c)
			if r.Sent != 4 || r.Errors != 0 {
				t.Fatalf("%s resume=%v: result %+v", mode, resume, r)
			}
			if want := map[bool]int64{true: 3, false: 0}[resume]; r.Resumed != want {
				t.Errorf("%s resume=%v: %d connections resumed, want %d", mode, resume, r.Resumed, want)
			}
		}
	}
}
