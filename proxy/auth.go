package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
)

// maxAuthDelay caps the doubling delay before an AUTH failure reply.
const maxAuthDelay = time.Minute

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login), which go-sasl lacks. It sends the
// challenges "Username:" and "Password:" (go-smtp base64-encodes them) and
// takes the user name from the initial response when there is one, as
// go-sasl's LOGIN client sends it.
type loginServer struct {
	step  int
	user  string
	check func(user, password string) error
}

// Next implements sasl.Server.
func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		if response == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.user, string(response))
	}
	return nil, true, sasl.ErrUnexpectedClientResponse
}

// saslGuard wraps a mechanism so that its own errors (a PLAIN response
// without two NULs...) are answered "501 5.5.2" and counted as failures
// instead of go-smtp's "454 4.7.0 <error text>".
type saslGuard struct {
	s     *session
	inner sasl.Server
}

// Next implements sasl.Server.
func (g *saslGuard) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := g.inner.Next(response)
	if err == nil {
		return challenge, done, nil
	}
	if _, ok := errors.AsType[*smtp.SMTPError](err); ok {
		return nil, true, err
	}
	return nil, true, g.s.authFailed(errAuthMalformed, "malformed response")
}

// checkPlain is PLAIN's callback: the authorization identity, when given,
// must be the user name itself.
func (s *session) checkPlain(identity, user, password string) error {
	if identity != "" && identity != user {
		return s.authFailed(errAuthInvalid, "authorization identity differs from user name")
	}
	return s.checkPassword(user, password)
}

// checkPassword asks the Authenticator. Only ErrBadCredentials is the
// client's fault; any other error is a temporary failure whose text stays
// in the log.
func (s *session) checkPassword(user, password string) error {
	login, err := s.srv.auth.Authenticate(s.srv.ctx, user, password)
	switch {
	case err == nil && login != nil:
		s.login = login
		s.c.login = login.Name()
		s.srv.log.Info("smtp auth", zap.Stringer("remote", s.c.remote), zap.String("login", login.Name()))
		return nil
	case errors.Is(err, ErrBadCredentials):
		return s.authFailed(errAuthInvalid, "bad credentials")
	case err == nil:
		err = errors.New("authenticator returned no login and no error")
	}
	s.srv.log.Error("authenticator failed", zap.Stringer("remote", s.c.remote), zap.Error(err))
	return errAuthTemporary
}

// authFailed counts a failed AUTH, waits before answering (the wait doubles
// with each failure on the connection) and returns reply, or, at the
// connection's last allowed failure, a 421 after which it is closed.
func (s *session) authFailed(reply *smtp.SMTPError, why string) error {
	c, lim := s.c, s.srv.limits
	c.authFailures++
	n := c.authFailures
	delay := min(lim.AuthFailureDelay<<min(n-1, 16), maxAuthDelay)
	s.srv.log.Info("smtp auth failed", zap.Stringer("remote", c.remote),
		zap.String("why", why), zap.Int("failures", n), zap.Duration("delay", delay))
	sleep(s.srv.ctx, delay)
	if n >= lim.MaxAuthFailures {
		c.closeAfterReply("auth failures")
		return errAuthTooMany
	}
	return reply
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
