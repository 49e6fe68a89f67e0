package smtpclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/smtpgate/smtpgate/relay/mx"
)

// hostError is a failure to use one host (connect, greeting, EHLO, TLS,
// AUTH). It is always temporary: another host, or a later attempt, may work.
type hostError struct {
	host string
	err  error
}

func (e *hostError) Error() string { return e.host + ": " + replyOf(e.err) }
func (e *hostError) Unwrap() error { return e.err }

// statusOf classifies an error for the recipients it concerns.
func statusOf(err error) Status {
	var he *hostError
	var me *mx.Error
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &he):
		return Temporary
	case errors.As(err, &me):
		if me.Permanent {
			return Permanent
		}
		return Temporary
	case errors.As(err, &se) && se.Code >= 500 && se.Code <= 599:
		return Permanent
	default:
		return Temporary
	}
}

// replyOf is the text recorded for an error: an SMTP reply as
// "code x.y.z text", anything else as its message.
func replyOf(err error) string {
	var he *hostError
	var me *mx.Error
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &he):
		return he.Error()
	case errors.As(err, &me):
		return me.Error()
	case errors.As(err, &se):
		// Keep the context wrapped around the reply ("AUTH PLAIN: 535
		// 5.7.8 ..."), with the reply in its usual form.
		return oneLine(strings.Replace(err.Error(), se.Error(), replyString(se), 1))
	default:
		return oneLine(err.Error())
	}
}

// isSlowDown reports whether err is a reply asking to send more slowly: a
// 421 (service closing, usually "too many connections"), or a 4xx that
// says "too many" or mentions a rate limit.
func isSlowDown(err error) bool {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return false
	}
	if se.Code == 421 {
		return true
	}
	if se.Code/100 != 4 {
		return false
	}
	m := strings.ToLower(se.Message)
	return strings.Contains(m, "too many") || strings.Contains(m, "rate limit") ||
		strings.Contains(m, "throttl") || strings.Contains(m, "slow down")
}

// broken reports whether the session cannot go on after err: anything but
// an SMTP reply (I/O error, timeout), or a 421.
func broken(err error) bool {
	var se *smtp.SMTPError
	return !errors.As(err, &se) || se.Code == 421
}

func (r *Result) note(err error) {
	if isSlowDown(err) {
		r.SlowDown = true
	}
}

// connect returns a session with the smarthost or the first usable MX host.
func (c *Client) connect(ctx context.Context, domain string, res *Result) (*session, error) {
	if c.cfg.Smarthost != "" {
		host, _, _ := net.SplitHostPort(c.cfg.Smarthost)
		t := target{name: host, addr: c.cfg.Smarthost}
		res.Host = t.String()
		s, err := c.open(ctx, t)
		if err != nil {
			res.note(err)
			err = &hostError{host: t.String(), err: err}
			res.Failed = append(res.Failed, err.Error())
			return nil, err
		}
		return s, nil
	}

	hosts, err := mx.Lookup(ctx, c.resolver, domain)
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(c.cfg.Port)
	tried := 0
	var last error
	for _, h := range hosts {
		addrs, err := c.addresses(ctx, h)
		if err != nil {
			last = &hostError{host: h.Name, err: err}
			res.Failed = append(res.Failed, last.Error())
			continue
		}
		for _, a := range addrs {
			if tried == c.cfg.MaxAddresses {
				return nil, last
			}
			tried++
			t := target{name: h.Name, addr: net.JoinHostPort(a.String(), port)}
			res.Host = t.String()
			s, err := c.open(ctx, t)
			if err == nil {
				return s, nil
			}
			res.note(err)
			last = &hostError{host: t.String(), err: err}
			res.Failed = append(res.Failed, last.Error())
			if ctx.Err() != nil {
				return nil, last
			}
		}
	}
	return nil, last
}

// addresses resolves an MX host.
func (c *Client) addresses(ctx context.Context, h mx.Host) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(h.Name); err == nil {
		return []netip.Addr{a}, nil
	}
	addrs, err := c.resolver.LookupNetIP(ctx, "ip", h.Name)
	if err != nil {
		return nil, fmt.Errorf("address lookup: %w", err)
	}
	if len(addrs) == 0 {
		return nil, errors.New("address lookup: no addresses")
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	return addrs, nil
}

// Extensions the transactions use.
const (
	extPIPELINING = "PIPELINING"
	ext8BITMIME   = "8BITMIME"
	extSIZE       = "SIZE"
	extSMTPUTF8   = "SMTPUTF8"
)

// session is an SMTP session that has said EHLO (and authenticated). Its
// mail transactions run on w, this package's own command layer: go-smtp's
// client, which says EHLO and authenticates, cannot pipeline.
type session struct {
	w    *wire
	raw  net.Conn // the TCP connection
	conn net.Conn // what the session reads and writes (TLS or plain)
	stop func() bool
	cfg  *Config
	ext  map[string]bool
	host string // target.String()
	tls  string // negotiated TLS version, "" in plain text
	// dirty is set while a transaction is open on the server (MAIL
	// accepted, DATA not completed): the next one starts with RSET.
	dirty bool
	// reused is set when the session was taken from the idle pool, until
	// its first reply: a failure before then means the server closed it
	// while it was idle (see checkStale).
	reused bool
	// idleSince is when the session was put in the idle pool.
	idleSince time.Time
}

// close ends the session without QUIT.
func (s *session) close() {
	_ = s.conn.Close()
	s.stop()
}

// bind makes ctx's end close the session's connection.
func (s *session) bind(ctx context.Context) {
	raw := s.raw
	s.stop = context.AfterFunc(ctx, func() { raw.Close() })
}

// open connects to t, reads the greeting, says EHLO, negotiates TLS as
// configured and authenticates.
func (c *Client) open(ctx context.Context, t target) (*session, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	raw, err := c.dialer.DialContext(dctx, "tcp", t.addr)
	cancel()
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	cl, conn, err := c.handshake(ctx, raw, t)
	if err == nil {
		err = c.auth(cl)
	}
	if err != nil {
		stop()
		raw.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, err
	}
	// go-smtp's client is done with: it has read every reply to what it
	// sent, and nothing is left in its buffer.
	s := &session{w: newWire(conn), raw: raw, conn: conn, stop: stop, cfg: &c.cfg, ext: map[string]bool{}, host: t.String()}
	if tc, ok := conn.(*tls.Conn); ok {
		s.tls = tls.VersionName(tc.ConnectionState().Version)
	}
	for _, e := range []string{extPIPELINING, ext8BITMIME, extSIZE, extSMTPUTF8} {
		s.ext[e], _ = cl.Extension(e)
	}
	return s, nil
}

// handshake brings raw to an EHLO'd go-smtp client in the configured TLS
// mode.
func (c *Client) handshake(ctx context.Context, raw net.Conn, t target) (*smtp.Client, net.Conn, error) {
	mode := c.cfg.TLS
	if c.cfg.Smarthost == "" {
		mode = TLSStartTLS
	}
	switch mode {
	case TLSImplicit:
		tc, err := c.tlsHandshake(ctx, raw, t.name, true)
		if err != nil {
			return nil, nil, err
		}
		cl, err := c.hello(tc, "")
		return cl, tc, err
	case TLSNone:
		cl, err := c.hello(raw, "")
		return cl, raw, err
	}

	// STARTTLS: go-smtp's client cannot start TLS on a session it already
	// greeted (and NewClientStartTLS would say EHLO as "localhost"), so the
	// greeting, the first EHLO and STARTTLS are done here, and go-smtp
	// takes over on the TLS connection with a synthetic greeting.
	required := c.cfg.Smarthost != "" || c.cfg.StartTLS == StartTLSRequire
	tp := textproto.NewConn(raw)
	deadline := func() { raw.SetDeadline(time.Now().Add(c.cfg.CommandTimeout)) }
	deadline()
	if _, _, err := readReply(tp, 220); err != nil {
		return nil, nil, err
	}
	deadline()
	if err := tp.PrintfLine("EHLO %s", c.cfg.Helo); err != nil {
		return nil, nil, err
	}
	_, msg, err := readReply(tp, 250)
	offered := err == nil && hasExtension(msg, "STARTTLS")
	var se *smtp.SMTPError
	if err != nil && (!errors.As(err, &se) || (se.Code != 500 && se.Code != 502)) {
		// 500/502 is a server that only knows HELO: no STARTTLS there,
		// and go-smtp falls back to HELO itself below.
		return nil, nil, err
	}
	plain := func() (*smtp.Client, net.Conn, error) {
		if required {
			return nil, nil, errSTARTTLSMissing
		}
		raw.SetDeadline(time.Time{})
		cl, err := c.hello(raw, t.name)
		return cl, raw, err
	}
	if !offered {
		return plain()
	}
	deadline()
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return nil, nil, err
	}
	if _, _, err := readReply(tp, 220); err != nil {
		if errors.As(err, &se) && se.Code != 421 {
			return plain() // refused (454): go on in plain text if allowed
		}
		return nil, nil, err
	}
	raw.SetDeadline(time.Time{})
	// Anything the server sent after its 220 sits in tp's buffer and is
	// dropped with it, as RFC 3207 requires (no STARTTLS injection).
	tc, err := c.tlsHandshake(ctx, raw, t.name, required)
	if err != nil {
		return nil, nil, err
	}
	cl, err := c.hello(tc, t.name)
	return cl, tc, err
}

// hello makes a go-smtp client on conn and says EHLO. greeted names the
// host whose greeting was already read (the client is fed a synthetic one);
// "" means the greeting is still to come.
func (c *Client) hello(conn net.Conn, greetedBy string) (*smtp.Client, error) {
	if greetedBy != "" {
		conn = &greeted{Conn: conn, pending: "220 " + greetedBy + " (greeting already read)\r\n"}
	}
	cl := smtp.NewClient(conn)
	cl.CommandTimeout = c.cfg.CommandTimeout
	if err := cl.Hello(c.cfg.Helo); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// tlsHandshake runs the TLS client handshake; verify says whether the
// certificate is checked (unless InsecureSkipVerify).
func (c *Client) tlsHandshake(ctx context.Context, raw net.Conn, name string, verify bool) (*tls.Conn, error) {
	cfg := c.tlsBase.Clone()
	cfg.ServerName = name
	if !verify {
		cfg.InsecureSkipVerify = true
	}
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.cfg.CommandTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// auth authenticates to a smarthost when a username is set.
func (c *Client) auth(cl *smtp.Client) error {
	if c.cfg.Username == "" {
		return nil
	}
	ok, mechs := cl.Extension("AUTH")
	if !ok {
		return errors.New("the server does not offer AUTH")
	}
	var a sasl.Client
	var mech string
	switch {
	case hasWord(mechs, sasl.Plain):
		a, mech = sasl.NewPlainClient("", c.cfg.Username, c.cfg.Password), sasl.Plain
	case hasWord(mechs, sasl.Login):
		a, mech = sasl.NewLoginClient(c.cfg.Username, c.cfg.Password), sasl.Login
	default:
		return fmt.Errorf("the server offers AUTH %s, neither PLAIN nor LOGIN", mechs)
	}
	if err := cl.Auth(a); err != nil {
		return fmt.Errorf("AUTH %s: %w", mech, err)
	}
	return nil
}

// readReply reads one reply, returning an *smtp.SMTPError for a code other
// than want.
func readReply(tp *textproto.Conn, want int) (int, string, error) {
	code, msg, err := tp.ReadResponse(want)
	var te *textproto.Error
	if errors.As(err, &te) {
		se := &smtp.SMTPError{Code: te.Code, Message: te.Msg}
		if enh, rest, ok := strings.Cut(te.Msg, " "); ok {
			var e smtp.EnhancedCode
			if n, _ := fmt.Sscanf(enh, "%d.%d.%d", &e[0], &e[1], &e[2]); n == 3 {
				se.EnhancedCode, se.Message = e, rest
			}
		}
		return code, msg, se
	}
	return code, msg, err
}

// hasExtension reports whether an EHLO reply text (its lines after the
// first) lists the extension ext.
func hasExtension(msg, ext string) bool {
	lines := strings.Split(msg, "\n")
	for _, l := range lines[1:] {
		if kw, _, _ := strings.Cut(strings.TrimSpace(l), " "); strings.EqualFold(kw, ext) {
			return true
		}
	}
	return false
}

func hasWord(list, w string) bool {
	for _, f := range strings.Fields(list) {
		if strings.EqualFold(f, w) {
			return true
		}
	}
	return false
}
