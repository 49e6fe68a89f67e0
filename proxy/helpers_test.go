package proxy

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/smtpgate/smtpgate/internal/testutil"
)

// testLogin is a Login allowed to send from one domain.
type testLogin struct {
	name   string
	domain string // "" allows any sender
}

func (l testLogin) Name() string { return l.name }

func (l testLogin) SenderAllowed(addr string) bool {
	return l.domain == "" || strings.HasSuffix(addr, "@"+l.domain)
}

// errAuthBackend is what the "broken" user's authentication fails with; its
// text must never reach a client.
var errAuthBackend = errors.New("credential store unreachable: dsn=postgres://secret@db")

// testAuth is an Authenticator over a map of user to password. The user
// "broken" gets errAuthBackend.
type testAuth struct {
	mu    sync.Mutex
	users map[string]string
	ctxOK bool // every call had a non-nil context
	calls int
}

func newTestAuth() *testAuth {
	return &testAuth{users: map[string]string{"alice": "secret", "carol": "S3cr3t-P4ss!"}, ctxOK: true}
}

func (a *testAuth) Authenticate(ctx context.Context, user, pass string) (Login, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if ctx == nil || ctx.Err() != nil {
		a.ctxOK = false
	}
	if user == "broken" {
		return nil, errAuthBackend
	}
	if pw, ok := a.users[user]; !ok || pw != pass {
		return nil, ErrBadCredentials
	}
	return testLogin{name: "login-" + user, domain: "example.com"}, nil
}

// committed is one message a testHandler accepted.
type committed struct {
	env  *Envelope
	body string
}

// testHandler keeps accepted messages in memory. It reads the whole body
// and commits only when that succeeded. Recipients steer it:
// "temp@..." fails with a plain error, "policy@..." with an SMTPError,
// "early@..." accepts after reading the first byte only.
type testHandler struct {
	mu      sync.Mutex
	msgs    []committed
	aborted []error // read errors seen (nothing committed)
	n       int

	results chan error    // if set, gets what each Handle call returns
	hold    chan struct{} // if set, Handle waits for it (or ctx) after reading
}

var errHandlerStore = errors.New("store write failed: disk /var/lib/secret full")

func (h *testHandler) Handle(ctx context.Context, env *Envelope, body io.Reader) (id string, err error) {
	if h.results != nil {
		defer func() { h.results <- err }()
	}
	if ctx == nil {
		return "", errors.New("nil context")
	}
	if h.hold != nil {
		if _, err := io.Copy(io.Discard, body); err != nil {
			return "", err
		}
		select {
		case <-h.hold:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return h.commit(env, ""), nil
	}
	for _, r := range env.Recipients {
		if strings.HasPrefix(r, "early@") {
			var b [1]byte
			if _, err := io.ReadFull(body, b[:]); err != nil {
				return "", err
			}
			return h.commit(env, string(b[:])), nil
		}
	}
	data, err := io.ReadAll(body)
	if err != nil {
		h.mu.Lock()
		h.aborted = append(h.aborted, err)
		h.mu.Unlock()
		return "", fmt.Errorf("test handler: %w", err)
	}
	for _, r := range env.Recipients {
		switch {
		case strings.HasPrefix(r, "temp@"):
			return "", errHandlerStore
		case strings.HasPrefix(r, "policy@"):
			return "", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Rejected by policy"}
		}
	}
	return h.commit(env, string(data)), nil
}

func (h *testHandler) commit(env *Envelope, body string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	h.msgs = append(h.msgs, committed{env: env, body: body})
	return fmt.Sprintf("MSG%04d", h.n)
}

func (h *testHandler) messages() []committed {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]committed(nil), h.msgs...)
}

func (h *testHandler) abortedErrs() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.aborted...)
}

// bounceDomain is the domain testBounces receives bounces for.
const bounceDomain = "bounce.test"

// errCheckBackend is what testBounces fails with for "b+temp@bounce.test";
// its text must never reach a client.
var errCheckBackend = errors.New("bounce lookup failed: store /var/lib/secret unreachable")

// testBounces is a BounceReceiver: a testHandler for the messages and a
// recipient check by local part on bounceDomain. "b+ok..." is accepted,
// "b+temp" fails with a plain error, "b+busy" with a 450 SMTPError, any
// other local part is ErrNoSuchUser, and any other domain ErrRelayDenied.
type testBounces struct {
	testHandler
}

func (b *testBounces) CheckRecipient(ctx context.Context, addr string) error {
	if ctx == nil {
		return errors.New("nil context")
	}
	local, domain, _ := strings.Cut(addr, "@")
	switch {
	case !strings.EqualFold(domain, bounceDomain):
		return fmt.Errorf("test: %q: %w", domain, ErrRelayDenied)
	case strings.HasPrefix(local, "b+ok"):
		return nil
	case local == "b+temp":
		return errCheckBackend
	case local == "b+busy":
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "Try again later"}
	}
	return fmt.Errorf("test: %q: %w", local, ErrNoSuchUser)
}

// testServer is a running Server with a STARTTLS and an implicit TLS
// submission listener, a bounces listener (and, with
// withProxyListeners, the same behind PROXY headers).
type testServer struct {
	*Server
	auth      *testAuth
	handler   *testHandler
	bounces   *testBounces
	clientTLS *tls.Config
}

type serverOption func(*Config)

func withLimits(l Limits) serverOption { return func(c *Config) { c.Limits = l } }

func withProxyListeners() serverOption {
	return func(c *Config) {
		c.Listeners = append(c.Listeners,
			ListenerConfig{Name: "pp-submission", Address: "127.0.0.1:0", TLS: TLSStartTLS, ProxyProtocol: true},
			ListenerConfig{Name: "pp-smtps", Address: "127.0.0.1:0", TLS: TLSImplicit, ProxyProtocol: true},
			ListenerConfig{Name: "pp-bounces", Address: "127.0.0.1:0", TLS: TLSStartTLS, ProxyProtocol: true, Purpose: PurposeBounces})
	}
}

// startServer starts a server with fast test limits; it is shut down when
// the test ends.
func startServer(t testing.TB, log *zap.Logger, opts ...serverOption) *testServer {
	t.Helper()
	serverTLS, clientTLS := testutil.SelfSignedTLS(t)
	cfg := Config{
		Hostname: "mx.test",
		Listeners: []ListenerConfig{
			{Name: "submission", Address: "127.0.0.1:0", TLS: TLSStartTLS},
			{Name: "smtps", Address: "127.0.0.1:0", TLS: TLSImplicit},
			{Name: "bounces", Address: "127.0.0.1:0", TLS: TLSStartTLS, Purpose: PurposeBounces},
		},
		TLS: serverTLS,
		Limits: Limits{
			MaxMessageBytes:  64 << 10,
			MaxRecipients:    5,
			AuthFailureDelay: 5 * time.Millisecond,
			CommandTimeout:   10 * time.Second,
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if log == nil {
		// Info: go-smtp logs failed handshakes at Debug after the connection
		// is released, possibly after the test has ended.
		log = zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	}
	ts := &testServer{auth: newTestAuth(), handler: &testHandler{}, bounces: &testBounces{}, clientTLS: clientTLS}
	cfg.Bounces = ts.bounces
	srv, err := New(cfg, ts.auth, ts.handler, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts.Server = srv
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, ErrServerClosed) {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return ts
}

func (ts *testServer) addr(name string) string { return ts.Addr(name).String() }

// client is a raw SMTP client (testutil.SMTPClient) with the login the
// tests use.
type client struct {
	*testutil.SMTPClient
	t testing.TB
}

// dialRaw connects without reading anything.
func dialRaw(t testing.TB, addr string) *client {
	t.Helper()
	return &client{SMTPClient: testutil.DialSMTP(t, addr), t: t}
}

// dial connects to a STARTTLS listener and reads the banner.
func dial(t testing.TB, addr string) *client {
	t.Helper()
	c := dialRaw(t, addr)
	c.Expect("220 mx.test ESMTP")
	return c
}

// dialTLS connects to an implicit TLS listener and reads the banner.
func dialTLS(t testing.TB, addr string, cfg *tls.Config) *client {
	t.Helper()
	c := dialRaw(t, addr)
	c.Upgrade(cfg)
	c.Expect("220 mx.test ESMTP")
	return c
}

// login runs EHLO, STARTTLS, EHLO and AUTH PLAIN as alice.
func (c *client) login(cfg *tls.Config) {
	c.t.Helper()
	c.Do("EHLO client.test", "250 ")
	c.StartTLS(cfg)
	c.Do("EHLO client.test", "250 ")
	c.Do("AUTH PLAIN "+plainIR("", "alice", "secret"), "235 2.0.0")
}

// plaintextAfterSTARTTLS sends EHLO and MAIL FROM in plaintext where the
// ClientHello belongs after STARTTLS, and checks that the server answers
// "550 5.0.0 Handshake error" and ends the connection (go-smtp alone would
// answer that and go on without TLS).
func (c *client) plaintextAfterSTARTTLS(helo, from string) {
	c.t.Helper()
	c.Do("EHLO "+helo, "250 ")
	c.Do("STARTTLS", "220 2.0.0")
	c.Write("EHLO " + helo + "\r\nMAIL FROM:<" + from + ">\r\n")
	rest, err := c.ReadToEOF()
	if isTimeout(err) {
		c.t.Fatal("connection still open after a failed handshake")
	}
	if !strings.Contains(string(rest), "550 5.0.0 Handshake error") || strings.Contains(string(rest), "250") {
		c.t.Fatalf("after the failed handshake: %q", rest)
	}
}

// plainIR is an AUTH PLAIN initial response.
func plainIR(authzid, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authzid + "\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// message is a small message body with CRLF line endings.
func message(subject, text string) string {
	return "From: alice@example.com\r\nTo: rcpt@example.net\r\nSubject: " + subject + "\r\n\r\n" + text + "\r\n"
}

// replyCode returns the code of a reply's last line.
func replyCode(reply string) int {
	last := reply[strings.LastIndexByte(reply, '\n')+1:]
	if len(last) < 3 {
		return 0
	}
	n, _ := strconv.Atoi(last[:3])
	return n
}
