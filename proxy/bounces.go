package proxy

import (
	"errors"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
)

// maxBounceRefusals is how many AUTH attempts and refused recipients a
// client may collect on a bounces listener; the next refusal is a 421 and
// closes the connection. A mail server returning bounces needs none; relay
// probes and address guessing get cut short.
const maxBounceRefusals = 10

// checkBounceRecipient asks the BounceReceiver about a recipient on a
// bounces listener and maps its answer to a reply (see RecipientChecker).
func (s *session) checkBounceRecipient(to string) error {
	err := s.srv.bounces.CheckRecipient(s.srv.ctx, to)
	if err == nil {
		return nil
	}
	var reply *smtp.SMTPError
	switch se, isSMTP := errors.AsType[*smtp.SMTPError](err); {
	case errors.Is(err, ErrRelayDenied):
		reply = errRelayDenied
	case errors.Is(err, ErrNoSuchUser):
		reply = errNoSuchUser
	case isSMTP:
		reply = se
	default:
		s.srv.log.Error("bounce recipient check failed", zap.Stringer("remote", s.c.remote),
			zap.String("rcpt", to), zap.Error(err))
		return errTemporary
	}
	s.srv.log.Info("bounce recipient refused", zap.Stringer("remote", s.c.remote),
		zap.String("rcpt", to), zap.Int("code", reply.Code), zap.NamedError("why", err))
	if reply.Code < 500 {
		return reply
	}
	return s.bounceRefusal(reply, "recipient refused")
}

// bounceRefusal counts a refusal on a bounces listener and returns reply,
// or, past maxBounceRefusals, a 421 after which the connection is closed.
func (s *session) bounceRefusal(reply *smtp.SMTPError, why string) error {
	c := s.c
	c.refusals++
	if c.refusals > maxBounceRefusals {
		s.srv.log.Info("too many refusals on a bounces listener", zap.Stringer("remote", c.remote),
			zap.String("last", why), zap.Int("refusals", c.refusals))
		c.closeAfterReply("too many refusals")
		return errTooManyRefusals
	}
	return reply
}
