package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
)

// backend implements smtp.Backend.
type backend struct{ s *Server }

// NewSession implements smtp.Backend. go-smtp calls it at the first EHLO or
// HELO, and again at the first one after STARTTLS.
func (b backend) NewSession(sc *smtp.Conn) (smtp.Session, error) {
	c := connOf(sc)
	if c == nil {
		b.s.log.Error("smtp connection without proxy state", zap.Stringer("remote", sc.Conn().RemoteAddr()))
		return nil, errNoSession
	}
	s := &session{srv: b.s, sc: sc, c: c, bounces: c.lis.cfg.purpose() == PurposeBounces}
	if st, ok := sc.TLSConnectionState(); ok {
		s.tls = &st
	}
	return s, nil
}

// connOf finds the proxy's conn under go-smtp's connection.
func connOf(sc *smtp.Conn) *conn {
	nc := sc.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, _ := nc.(*conn)
	return c
}

// session implements smtp.Session and smtp.AuthSession. Every error it
// returns is an *smtp.SMTPError (see replies.go).
type session struct {
	srv     *Server
	sc      *smtp.Conn
	c       *conn
	tls     *tls.ConnectionState // nil before STARTTLS
	login   Login
	bounces bool // on a bounces listener (bounces.go)

	// The transaction. go-smtp runs Data in a goroutine of its own for
	// BDAT, where an RSET may reset the transaction concurrently.
	mu    sync.Mutex
	from  string
	rcpts []string
	utf8  bool
}

var _ smtp.AuthSession = (*session)(nil)

// AuthMechanisms implements smtp.AuthSession: PLAIN and LOGIN, over TLS
// only, and none on a bounces listener.
func (s *session) AuthMechanisms() []string {
	if s.tls == nil || s.bounces {
		return nil
	}
	return s.srv.mechs
}

// Auth implements smtp.AuthSession.
func (s *session) Auth(mech string) (sasl.Server, error) {
	switch {
	case s.bounces:
		return nil, s.bounceRefusal(errAuthNotAvailable, "auth")
	case s.tls == nil:
		return nil, errTLSRequired
	}
	switch mech {
	case sasl.Plain:
		return &saslGuard{s: s, inner: sasl.NewPlainServer(s.checkPlain)}, nil
	case sasl.Login:
		return &saslGuard{s: s, inner: &loginServer{check: s.checkPassword}}, nil
	}
	return nil, errAuthMechanism
}

// Mail implements smtp.Session. go-smtp has already refused a SIZE= over
// the limit with 552 5.3.4. On a bounces listener any sender is taken, the
// null sender included, without TLS or AUTH.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	c := s.c
	switch {
	case s.bounces:
	case s.tls == nil:
		return errTLSRequired
	case s.login == nil:
		return errAuthRequired
	}
	switch {
	case c.stopping.Load():
		c.closeAfterReply("shutdown")
		return errShuttingDown
	case c.messages.Load() >= int64(s.srv.limits.MaxMessagesPerConn):
		c.closeAfterReply("message limit")
		return errTooManyMessages
	}
	if from != "" {
		switch checkAddress(from, opts.UTF8) {
		case errAddrSyntax:
			return errBadSender
		case errAddrUTF8:
			return errNeedsSMTPUTF8
		}
	}
	if !s.bounces && !s.login.SenderAllowed(from) {
		return errSenderNotAllowed
	}
	s.mu.Lock()
	s.from, s.utf8, s.rcpts = from, opts.UTF8, nil
	s.mu.Unlock()
	c.inTxn.Store(true)
	return nil
}

// Rcpt implements smtp.Session. go-smtp has already applied MaxRecipients
// (452 4.5.3). On a bounces listener the BounceReceiver must accept the
// address.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mu.Lock()
	utf8 := s.utf8
	s.mu.Unlock()
	switch checkAddress(to, utf8) {
	case errAddrSyntax:
		return errBadRecipient
	case errAddrUTF8:
		return errNeedsSMTPUTF8
	}
	if s.bounces {
		if err := s.checkBounceRecipient(to); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.rcpts = append(s.rcpts, to)
	s.mu.Unlock()
	return nil
}

// Data implements smtp.Session: it hands the message to the Handler and
// turns the outcome into the reply. On success the reply is
// "250 2.0.0 queued as <id>": go-smtp sends an *smtp.SMTPError returned by
// Data as it is, whatever its code.
func (s *session) Data(r io.Reader) error {
	c, srv := s.c, s.srv
	start := time.Now()
	c.messages.Add(1)
	c.beginBody(start, srv.limits.DataTimeout)

	s.mu.Lock()
	env := &Envelope{
		Login:      s.login,
		MailFrom:   s.from,
		Recipients: s.rcpts,
		RemoteAddr: c.remote,
		Helo:       s.sc.Hostname(),
		TLS:        s.tls,
		Listener:   c.lis.cfg.Name,
		UTF8:       s.utf8,
		Received:   start,
	}
	s.rcpts = nil
	s.mu.Unlock()

	handler, max := srv.handler, srv.limits.MaxMessageBytes
	if s.bounces {
		handler, max = srv.bounces, srv.bounceMax
	}
	buf := srv.getBodyBuf()
	defer srv.putBodyBuf(buf)
	body := newBodyReader(r, buf[:], max)
	id, err := handler.Handle(srv.ctx, env, body)
	reply := s.outcome(body, id, err)

	if ce := srv.log.Check(zap.InfoLevel, "smtp message"); ce != nil {
		result, detail := zap.String("result", "queued"), zap.String("id", id)
		if reply.Code != 250 {
			result, detail = zap.String("result", "refused"), zap.String("reply", reply.Message)
		}
		ce.Write(
			zap.String("listener", env.Listener),
			zap.Stringer("remote", env.RemoteAddr),
			zap.String("login", c.login),
			zap.String("from", env.MailFrom),
			zap.Int("rcpts", len(env.Recipients)),
			zap.Int64("bytes", body.n),
			zap.Int("code", reply.Code),
			zap.Duration("duration", time.Since(start)),
			result, detail)
	}
	return reply
}

// outcome maps what happened to a message to its reply. A body that could
// not be read completely is never acknowledged with 250, even if the
// Handler returned an id for it.
func (s *session) outcome(body *bodyReader, id string, herr error) *smtp.SMTPError {
	if rerr := body.failed(); rerr != nil {
		if herr == nil {
			s.srv.log.Error("handler accepted a message it could not read completely",
				zap.String("id", id), zap.Error(rerr))
		}
		return readFailure(rerr)
	}
	if herr != nil {
		if se, ok := errors.AsType[*smtp.SMTPError](herr); ok {
			return se
		}
		if isTooLarge(herr) {
			return errMessageTooLarge
		}
		s.srv.log.Error("handler failed", zap.Stringer("remote", s.c.remote), zap.Error(herr))
		return errTemporary
	}
	if !body.complete() {
		// The Handler stopped reading before the end: what it stored may
		// be cut short, so the client must not take it as delivered.
		n, err := io.Copy(io.Discard, body)
		if err != nil {
			s.srv.log.Error("handler accepted a message it could not read completely",
				zap.String("id", id), zap.Error(err))
			return readFailure(err)
		}
		if n > 0 {
			s.srv.log.Error("handler returned before the end of the message",
				zap.String("id", id), zap.Int64("unread_bytes", n))
			return errTemporary
		}
	}
	return queuedReply(id)
}

// readFailure is the reply to a body that ended with err.
func readFailure(err error) *smtp.SMTPError {
	switch {
	case isTooLarge(err):
		return errMessageTooLarge
	case isTimeout(err):
		return errDataTimeout
	default: // the client went away, or RSET in the middle of BDAT
		return errTemporary
	}
}

// Reset implements smtp.Session.
func (s *session) Reset() {
	s.mu.Lock()
	s.from, s.rcpts, s.utf8 = "", nil, false
	s.mu.Unlock()
	s.c.endTransaction()
}

// Logout implements smtp.Session.
func (s *session) Logout() error {
	s.Reset()
	return nil
}
