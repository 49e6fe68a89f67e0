// Package smtpclient is the relay's SMTP client leg: it delivers one message
// to a smarthost or to the MX hosts of a destination domain, on top of
// github.com/emersion/go-smtp's client, and reports a result per recipient.
//
// A smarthost is reached at its host:port with mandatory STARTTLS (the
// default), implicit TLS, or no TLS at all when that is asked for
// explicitly; it authenticates with AUTH PLAIN (or LOGIN when only that is
// offered) when a username is set, and checks the certificate unless told
// not to. Direct delivery looks the domain up with package mx and tries its
// hosts in order until one greets and says EHLO; STARTTLS is opportunistic
// (used when offered, plain text only when it is not offered) or required.
//
// go-smtp's client greets, says EHLO and authenticates; the mail
// transactions then run on this package's own command layer, because
// go-smtp's client cannot pipeline and its SendMail gives up at the first
// refused recipient. When the server offers PIPELINING (RFC 2920), MAIL,
// every RCPT and DATA go out in one write and their replies are read in
// order; otherwise each command waits for its reply. Either way each
// recipient gets its own RCPT reply, the message is sent only when at least
// one recipient was accepted, and the final reply applies to the accepted
// ones. Sessions are kept for reuse (Config.MaxIdle) without a probe of
// their own: a reused session that fails before its first reply was closed
// by the server while idle, and the delivery moves to another session or a
// new connection. 2xx is Sent, 5xx Permanent, and
// everything else (4xx, broken connections, timeouts, DNS failures)
// Temporary. A 421 or a "too many connections" reply sets Result.SlowDown so
// that the caller can reduce its concurrency towards that destination.
package smtpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Smarthost TLS modes (Config.TLS).
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS, which must be offered
	TLSImplicit = "implicit" // TLS from the first byte (port 465)
	TLSNone     = "none"     // no TLS at all
)

// Direct-MX STARTTLS policies (Config.StartTLS).
const (
	// StartTLSOpportunistic uses STARTTLS when a host offers it and sends
	// in plain text only when it does not. The certificate is not checked
	// (RFC 7435 opportunistic security: encryption against passive
	// listeners, since MX certificates are often self-signed or name the
	// wrong host); a failed handshake is a failure for that host.
	StartTLSOpportunistic = "opportunistic"
	// StartTLSRequire makes a host that does not offer STARTTLS, or whose
	// certificate does not verify (unless InsecureSkipVerify), a
	// temporary failure for that host.
	StartTLSRequire = "require"
)

// Defaults for the zero values of Config.
const (
	DefaultPort           = 25
	DefaultDialTimeout    = 30 * time.Second
	DefaultCommandTimeout = 5 * time.Minute
	DefaultDataTimeout    = 10 * time.Minute
	DefaultMaxAddresses   = 5
	DefaultHelo           = "localhost"
	DefaultIdleTimeout    = 5 * time.Second
)

// Config says how to reach the destination. The zero value delivers
// directly to MX hosts on port 25 with opportunistic STARTTLS.
type Config struct {
	// Smarthost is the host:port of a smarthost; empty means direct
	// delivery to the MX hosts of the domain passed to Deliver.
	Smarthost string
	// TLS is the smarthost's TLS mode: TLSStartTLS (the default when
	// empty), TLSImplicit or TLSNone.
	TLS string
	// StartTLS is the direct-MX policy: StartTLSOpportunistic (the default
	// when empty) or StartTLSRequire.
	StartTLS string
	// Username and Password authenticate to a smarthost (AUTH PLAIN, or
	// LOGIN when only that is offered). Empty Username: no AUTH.
	Username, Password string
	// RootCAs verifies server certificates; nil means the system roots.
	RootCAs *x509.CertPool
	// InsecureSkipVerify turns certificate checking off (smarthost, and
	// required STARTTLS to MX hosts).
	InsecureSkipVerify bool
	// Port is the MX hosts' port; 0 means 25. Tests point it at loopback
	// receivers.
	Port int
	// Helo is the name sent with EHLO; empty means "localhost", which real
	// MX hosts may refuse: set it to the server's public host name.
	Helo string
	// Resolver looks MX hosts and their addresses up; nil means
	// net.DefaultResolver.
	Resolver *net.Resolver
	// Dialer opens TCP connections; nil means a net.Dialer.
	Dialer Dialer
	// DialTimeout bounds each connection attempt (default 30 s),
	// CommandTimeout each reply (default 5 min; twice that for the reply to
	// the final dot), DataTimeout the writing of the message (default 10 min).
	DialTimeout, CommandTimeout, DataTimeout time.Duration
	// MaxAddresses is how many MX addresses one delivery tries at most
	// (default 5).
	MaxAddresses int
	// MaxIdle is how many sessions per destination (the smarthost, or a
	// domain) are kept open after a delivery for the next one to reuse,
	// saving the connection, greeting, EHLO, TLS and AUTH; 0 keeps none.
	// A reused session that the server closed meanwhile is replaced.
	MaxIdle int
	// IdleTimeout is how long an idle session is kept (default 5 s).
	IdleTimeout time.Duration
}

// Dialer opens network connections; *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Envelope is one mail transaction: a sender and its recipients. Several
// envelopes sent in one Deliver share the connection (per-recipient VERP
// senders need one transaction each).
type Envelope struct {
	From string // "" is the null sender
	To   []string
}

// Status is a recipient's outcome.
type Status uint8

// Recipient outcomes. The zero value is Temporary: a recipient the client
// never got to is retried, never dropped.
const (
	Temporary Status = iota // not delivered this time; retry later
	Sent                    // the server took responsibility (2xx after DATA)
	Permanent               // refused for good (5xx)
)

// String returns "temporary", "sent" or "permanent".
func (s Status) String() string {
	switch s {
	case Sent:
		return "sent"
	case Permanent:
		return "permanent"
	default:
		return "temporary"
	}
}

// Recipient is one recipient's outcome.
type Recipient struct {
	Address string
	Status  Status
	// Reply is the reply that decided it, e.g. "250 2.0.0 Ok: queued as X"
	// or "550 5.1.1 <x@example.com>: user unknown", or the text of a
	// connection or DNS failure.
	Reply string
}

// Result is the outcome of one Deliver.
type Result struct {
	// Recipients holds one entry per recipient of the envelopes, in order.
	Recipients []Recipient
	// Host is the host:port the session was held with, or the last one
	// tried when none could be used.
	Host string
	// TLS is the negotiated TLS version ("TLS 1.3"), empty in plain text.
	TLS string
	// Reply is the deciding reply of the attempt: the first recipient's
	// failure if any recipient was not sent, else the last final reply.
	Reply string
	// Failed lists the hosts that were tried and could not be used, with
	// why, in order ("mx1.example.com:25: 421 4.7.0 too busy").
	Failed []string
	// SlowDown is set when a server answered 421 or said it had too many
	// connections or messages: the caller should send to it more slowly.
	SlowDown bool
}

// Client delivers messages with a fixed Config. It is safe for concurrent
// use: each Deliver uses a session of its own, new or taken from the idle
// pool (see Config.MaxIdle). Close closes the idle sessions.
type Client struct {
	cfg      Config
	tlsBase  *tls.Config
	resolver *net.Resolver
	dialer   Dialer

	mu   sync.Mutex
	idle map[string][]*session // by destination key, oldest first
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Smarthost != "" {
		host, port, err := net.SplitHostPort(cfg.Smarthost)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("smtpclient: smarthost %q: want host:port", cfg.Smarthost)
		}
		switch cfg.TLS {
		case "":
			cfg.TLS = TLSStartTLS
		case TLSStartTLS, TLSImplicit, TLSNone:
		default:
			return nil, fmt.Errorf("smtpclient: TLS mode %q: want %q, %q or %q", cfg.TLS, TLSStartTLS, TLSImplicit, TLSNone)
		}
	} else {
		if cfg.Username != "" {
			return nil, errors.New("smtpclient: a username is only used with a smarthost")
		}
		switch cfg.StartTLS {
		case "":
			cfg.StartTLS = StartTLSOpportunistic
		case StartTLSOpportunistic, StartTLSRequire:
		default:
			return nil, fmt.Errorf("smtpclient: STARTTLS policy %q: want %q or %q", cfg.StartTLS, StartTLSOpportunistic, StartTLSRequire)
		}
		if cfg.Port == 0 {
			cfg.Port = DefaultPort
		}
		if cfg.Port < 0 || cfg.Port > 65535 {
			return nil, fmt.Errorf("smtpclient: port %d out of range", cfg.Port)
		}
	}
	if cfg.Helo == "" {
		cfg.Helo = DefaultHelo
	}
	if strings.ContainsAny(cfg.Helo, " \r\n\t") {
		return nil, fmt.Errorf("smtpclient: EHLO name %q contains white space", cfg.Helo)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = DefaultDataTimeout
	}
	if cfg.MaxAddresses <= 0 {
		cfg.MaxAddresses = DefaultMaxAddresses
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	c := &Client{
		cfg:      cfg,
		tlsBase:  &tls.Config{RootCAs: cfg.RootCAs, InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12},
		resolver: cfg.Resolver,
		dialer:   cfg.Dialer,
		idle:     map[string][]*session{},
	}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	if c.dialer == nil {
		c.dialer = &net.Dialer{}
	}
	return c, nil
}

// Deliver sends msg (already signed, CRLF line endings) to every envelope's
// recipients. domain is the destination domain for direct MX delivery and
// is ignored with a smarthost. It never returns a recipient without an
// outcome: anything that goes wrong leaves the recipients it concerns
// Temporary (or Permanent when the failure is permanent).
func (c *Client) Deliver(ctx context.Context, domain string, envs []Envelope, msg []byte) *Result {
	res := &Result{}
	for _, e := range envs {
		for _, to := range e.To {
			res.Recipients = append(res.Recipients, Recipient{Address: to})
		}
	}
	if len(res.Recipients) == 0 {
		return res
	}
	key := domain
	if c.cfg.Smarthost != "" {
		key = ""
	}
	for {
		s := c.takeIdle(key)
		if s == nil {
			var err error
			if s, err = c.connect(ctx, domain, res); err != nil {
				setAll(res.Recipients, statusOf(err), replyOf(err))
				res.Reply = decidingReply(res.Recipients)
				return res
			}
		} else {
			s.bind(ctx)
		}
		switch s.run(ctx, envs, msg, res) {
		case runOK:
			c.putIdle(key, s)
		case runStale:
			// Only an idle session can be stale: the next one is
			// another idle session or a new connection.
			s.close()
			continue
		default:
			s.close()
		}
		res.Reply = decidingReply(res.Recipients)
		return res
	}
}

// decidingReply is the first failure's reply, or the last reply when all
// were sent.
func decidingReply(rs []Recipient) string {
	for _, r := range rs {
		if r.Status != Sent {
			return r.Reply
		}
	}
	return rs[len(rs)-1].Reply
}

func setAll(rs []Recipient, st Status, reply string) {
	for i := range rs {
		rs[i].Status, rs[i].Reply = st, reply
	}
}

// target is one address to connect to.
type target struct {
	name string // host name for TLS and reports
	addr string // ip:port or host:port to dial
}

func (t target) String() string {
	host, port, _ := net.SplitHostPort(t.addr)
	if host == t.name {
		return t.addr
	}
	return net.JoinHostPort(t.name, port)
}

// errSTARTTLSMissing is the host failure of a required STARTTLS that is not
// offered.
var errSTARTTLSMissing = errors.New("STARTTLS is required but the server does not offer it")

// greeted wraps a connection whose greeting (and EHLO) this package already
// read, so that go-smtp's client, which expects a greeting, gets one.
type greeted struct {
	net.Conn
	pending string
}

func (g *greeted) Read(p []byte) (int, error) {
	if g.pending != "" {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

// replyString formats an SMTP error as "code x.y.z text" on one line.
func replyString(e *smtp.SMTPError) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.Code))
	if e.EnhancedCode[0] > 0 {
		fmt.Fprintf(&b, " %d.%d.%d", e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2])
	}
	if msg := oneLine(e.Message); msg != "" {
		b.WriteByte(' ')
		b.WriteString(msg)
	}
	return b.String()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
