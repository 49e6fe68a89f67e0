// Package smtptest runs real SMTP receivers on the loopback interface for the
// relay's tests: a go-smtp server whose replies a test scripts per command
// (refuse a recipient, fail temporarily, answer slowly, drop the connection
// at MAIL, at a RCPT or in the middle of DATA, require STARTTLS or AUTH, do
// not offer PIPELINING), which records every
// message it accepts and counts acceptances per recipient; and a bare
// listener that answers every connection with a fixed banner (421 "too many
// connections") and hangs up.
package smtptest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/smtpgate/smtpgate/certs"
)

// Message is one message the server accepted.
type Message struct {
	From string
	To   []string
	Raw  []byte
	Helo string // the EHLO name of the session
	TLS  bool   // received over TLS
	User string // the authenticated user, if any
}

// Options scripts a Server. Every hook may be nil (accept), is called from
// the connection's goroutine, and may return an *smtp.SMTPError to refuse.
type Options struct {
	// Addr is the address to listen on; default "127.0.0.1:0".
	Addr string
	// Domain is the name in the greeting; default "mx.test".
	Domain string
	// TLS enables STARTTLS, or implicit TLS with Implicit.
	TLS      *tls.Config
	Implicit bool
	// RequireTLS refuses MAIL before STARTTLS (530 5.7.0).
	RequireTLS bool
	// Users enables AUTH (Mechanisms, default PLAIN and LOGIN) and requires
	// it before MAIL. AUTH is offered in plain text too (a smarthost with
	// tls = "none").
	Users      map[string]string
	Mechanisms []string
	// Delay is slept before answering MAIL, each RCPT and the final dot.
	Delay time.Duration
	// IdleTimeout closes a connection that sends nothing for that long
	// (go-smtp answers 421 4.4.2 and hangs up); default 30 s.
	IdleTimeout time.Duration
	// NoPipelining leaves PIPELINING out of the EHLO reply (go-smtp always
	// offers it, and handles pipelined commands either way). It works on
	// plain-text connections only, and cannot be combined with TLS.
	NoPipelining bool
	// Mail, Rcpt: per-command replies; ErrDrop closes the connection
	// instead of replying.
	Mail func(from string) error
	Rcpt func(from, to string) error
	// DataStart runs before the body is read. A positive dropAfter makes
	// the server read that many bytes of the body and close the connection
	// without a reply.
	DataStart func(from string, to []string) (dropAfter int, err error)
	// Data runs once the body was read; nil error accepts the message.
	Data func(m *Message) error
}

// ErrDrop, returned by a Mail or Rcpt hook, makes the server close the
// connection without replying.
var ErrDrop = errors.New("smtptest: drop the connection")

// Server is a scripted go-smtp receiver on loopback.
type Server struct {
	// Addr is "127.0.0.1:port"; Port the port alone.
	Addr string
	Port int

	opts Options
	srv  *smtp.Server

	mu       sync.Mutex
	messages []*Message
	counts   map[string]int
	sessions int
	helos    []string
	conns    atomic.Int32
}

// Start starts a server and stops it in t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Domain == "" {
		opts.Domain = "mx.test"
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if len(opts.Mechanisms) == 0 {
		opts.Mechanisms = []string{sasl.Plain, sasl.Login}
	}
	s := &Server{opts: opts, counts: map[string]int{}}
	srv := smtp.NewServer(s)
	srv.Domain = opts.Domain
	srv.TLSConfig = opts.TLS
	srv.AllowInsecureAuth = true
	srv.MaxLineLength = 64 << 10
	srv.ReadTimeout = 30 * time.Second
	if opts.IdleTimeout > 0 {
		srv.ReadTimeout = opts.IdleTimeout
	}
	srv.WriteTimeout = 30 * time.Second
	logger := &testLogger{t: t}
	srv.ErrorLog = logger
	s.srv = srv
	var ln net.Listener
	var err error
	if opts.TLS != nil && opts.Implicit {
		ln, err = tls.Listen("tcp4", opts.Addr, opts.TLS)
	} else {
		ln, err = net.Listen("tcp4", opts.Addr)
	}
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	if opts.NoPipelining {
		if opts.TLS != nil {
			t.Fatal("smtptest: NoPipelining works in plain text only")
		}
		ln = &noPipeliningListener{ln}
	}
	ln = &countingListener{Listener: ln, n: &s.conns}
	s.Addr = ln.Addr().String()
	s.Port = ln.Addr().(*net.TCPAddr).Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns when Close closes the listener
	}()
	t.Cleanup(func() {
		logger.closed.Store(true) // connection goroutines may outlive the test
		srv.Close()
		<-done
	})
	return s
}

// Messages returns the accepted messages in order.
func (s *Server) Messages() []*Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Message(nil), s.messages...)
}

// Accepted returns how many messages were accepted for rcpt (answered
// with 250 after the final dot).
func (s *Server) Accepted(rcpt string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[strings.ToLower(rcpt)]
}

// Connections returns how many connections the server accepted.
func (s *Server) Connections() int { return int(s.conns.Load()) }

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// noPipeliningListener hands out connections that drop the PIPELINING line
// of the EHLO reply: go-smtp writes (and flushes) each reply line on its
// own, so the line is one Write.
type noPipeliningListener struct{ net.Listener }

func (l *noPipeliningListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &noPipeliningConn{c}, nil
}

type noPipeliningConn struct{ net.Conn }

func (c *noPipeliningConn) Write(p []byte) (int, error) {
	if string(p) == "250-PIPELINING\r\n" {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// Sessions returns how many go-smtp sessions were created: one per EHLO or
// HELO that starts one, so a connection that upgrades with STARTTLS counts
// two.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Helos returns the EHLO names in order, one per session (a session
// repeats EHLO after STARTTLS; both are listed).
func (s *Server) Helos() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.helos...)
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.sessions++
	s.helos = append(s.helos, c.Hostname())
	s.mu.Unlock()
	return &session{s: s, c: c}, nil
}

type session struct {
	s    *Server
	c    *smtp.Conn
	user string
	from string
	to   []string
}

var errTLSRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Users == nil {
		return nil
	}
	return ss.s.opts.Mechanisms
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	check := func(identity, user, pass string) error {
		if pw, ok := ss.s.opts.Users[user]; !ok || pw != pass || (identity != "" && identity != user) {
			return smtp.ErrAuthFailed
		}
		ss.user = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(check), nil
	case sasl.Login:
		return &loginServer{check: func(u, p string) error { return check("", u, p) }}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if _, isTLS := ss.c.TLSConnectionState(); ss.s.opts.RequireTLS && !isTLS {
		return errTLSRequired
	}
	if ss.s.opts.Users != nil && ss.user == "" {
		return errAuthRequired
	}
	time.Sleep(ss.s.opts.Delay)
	if h := ss.s.opts.Mail; h != nil {
		if err := h(from); err != nil {
			return ss.drop(err)
		}
	}
	ss.from, ss.to = from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	time.Sleep(ss.s.opts.Delay)
	if h := ss.s.opts.Rcpt; h != nil {
		if err := h(ss.from, to); err != nil {
			return ss.drop(err)
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

// drop closes the connection when err is ErrDrop.
func (ss *session) drop(err error) error {
	if errors.Is(err, ErrDrop) {
		ss.c.Conn().Close()
	}
	return err
}

func (ss *session) Data(r io.Reader) error {
	if h := ss.s.opts.DataStart; h != nil {
		drop, err := h(ss.from, ss.to)
		if err != nil {
			return err
		}
		if drop > 0 {
			_, _ = io.CopyN(io.Discard, r, int64(drop))
			ss.c.Conn().Close()
			return errors.New("smtptest: dropped")
		}
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := ss.c.TLSConnectionState()
	m := &Message{From: ss.from, To: append([]string(nil), ss.to...), Raw: raw, Helo: ss.c.Hostname(), TLS: isTLS, User: ss.user}
	time.Sleep(ss.s.opts.Delay)
	if h := ss.s.opts.Data; h != nil {
		if err := h(m); err != nil {
			return err
		}
	}
	ss.s.mu.Lock()
	ss.s.messages = append(ss.s.messages, m)
	for _, to := range m.To {
		ss.s.counts[strings.ToLower(to)]++
	}
	n := len(ss.s.messages)
	ss.s.mu.Unlock()
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as Q" + strconv.Itoa(n)}
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(resp) > 0 { // initial response: the user name
			l.user, l.step = string(resp), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(resp))
	}
}

// Banner is a listener that answers every connection with a fixed line and
// hangs up, like an overloaded server answering 421.
type Banner struct {
	Addr string
	Port int

	mu    sync.Mutex
	conns int
}

// StartBanner starts a Banner on addr ("127.0.0.2:2525"; "127.0.0.1:0"
// for any port) writing line (without CRLF).
func StartBanner(t testing.TB, addr, line string) *Banner {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	b := &Banner{Addr: ln.Addr().String(), Port: ln.Addr().(*net.TCPAddr).Port}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns++
			b.mu.Unlock()
			_, _ = io.WriteString(c, line+"\r\n")
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return b
}

// Connections returns how many connections the Banner answered.
func (b *Banner) Connections() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns
}

// ClosedPort returns a loopback port on which nothing listens (it was
// just released), so connecting to it is refused.
func ClosedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// TLSConfig returns a server configuration with a fresh self-signed
// certificate for hostname, localhost, 127.0.0.1 and ::1, and a pool that
// trusts it.
func TLSConfig(t testing.TB, hostname string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, err := certs.Generate(hostname, time.Now())
	if err != nil {
		t.Fatalf("smtptest: certificate: %v", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("smtptest: key pair: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("smtptest: bad certificate PEM")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, pool
}

// testLogger sends go-smtp's server errors to the test log until the
// server is closed.
type testLogger struct {
	t      testing.TB
	closed atomic.Bool
}

func (l *testLogger) Printf(format string, v ...any) {
	if !l.closed.Load() {
		l.t.Logf("smtptest: "+format, v...)
	}
}

func (l *testLogger) Println(v ...any) {
	if !l.closed.Load() {
		l.t.Log(append([]any{"smtptest:"}, v...)...)
	}
}

// Reply is a convenience for building an *smtp.SMTPError from "550 5.1.1
// text"; it panics on a malformed reply, which is a bug in the test.
func Reply(s string) *smtp.SMTPError {
	code, rest, _ := strings.Cut(s, " ")
	n, err := strconv.Atoi(code)
	if err != nil {
		panic(fmt.Sprintf("smtptest.Reply(%q): %v", s, err))
	}
	e := &smtp.SMTPError{Code: n, EnhancedCode: smtp.NoEnhancedCode, Message: rest}
	if enh, msg, ok := strings.Cut(rest, " "); ok {
		var c smtp.EnhancedCode
		if k, _ := fmt.Sscanf(enh, "%d.%d.%d", &c[0], &c[1], &c[2]); k == 3 {
			e.EnhancedCode, e.Message = c, msg
		}
	}
	return e
}
