package smtpclient

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

// maxAddressLen bounds an address (RFC 5321 section 4.5.3.1.3: a path is at
// most 256 octets with its angle brackets).
const maxAddressLen = 254

// run sends every envelope in turn and reports whether the session is
// still usable. When it breaks, the recipients not yet decided stay
// Temporary with the reason.
func (s *session) run(ctx context.Context, envs []Envelope, msg []byte, res *Result) bool {
	res.Host, res.TLS = s.host, s.tls
	i := 0
	for _, e := range envs {
		rs := res.Recipients[i : i+len(e.To)]
		i += len(e.To)
		if err := s.transaction(ctx, e, msg, rs, res); err != nil {
			reply := s.reply(ctx, err)
			for j := i; j < len(res.Recipients); j++ {
				res.Recipients[j].Status, res.Recipients[j].Reply = Temporary, reply
			}
			return false
		}
	}
	return true
}

// probe checks that an idle session still works (RSET, as Postfix does
// before reusing a cached connection).
func (s *session) probe() bool {
	if err := s.c.Reset(); err != nil {
		return false
	}
	s.dirty = false
	return true
}

// reply is the text for an error that broke the session, naming the
// context when it was cancelled.
func (s *session) reply(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return fmt.Sprintf("attempt interrupted (%v): %s", context.Cause(ctx), replyOf(err))
	}
	return replyOf(err)
}

// transaction runs MAIL, RCPT per recipient and, if any was accepted, DATA.
// It decides every recipient in rs and returns an error only when the
// session cannot go on.
func (s *session) transaction(ctx context.Context, e Envelope, msg []byte, rs []Recipient, res *Result) error {
	if s.dirty {
		// The previous transaction ended without DATA.
		if err := s.c.Reset(); err != nil {
			setAll(rs, Temporary, s.reply(ctx, err))
			return err
		}
		s.dirty = false
	}
	if !validAddress(e.From, true) {
		setAll(rs, Permanent, "501 5.1.7 invalid sender address")
		return nil
	}
	opts := &smtp.MailOptions{}
	if s.ext["SIZE"] {
		opts.Size = int64(len(msg))
	}
	if !isASCII(e.From) || anyNonASCII(e.To) {
		if !s.ext["SMTPUTF8"] {
			setAll(rs, Permanent, "553 5.6.7 an address is not ASCII and the server does not offer SMTPUTF8")
			return nil
		}
		opts.UTF8 = true
	}
	if err := s.c.Mail(e.From, opts); err != nil {
		res.note(err)
		if broken(err) {
			setAll(rs, Temporary, s.reply(ctx, err))
			return err
		}
		setAll(rs, statusOf(err), replyOf(err))
		return nil
	}
	s.dirty = true

	var accepted []int
	for j, to := range e.To {
		if !validAddress(to, false) {
			rs[j].Status, rs[j].Reply = Permanent, "501 5.1.3 invalid recipient address"
			continue
		}
		err := s.c.Rcpt(to, nil)
		if err == nil {
			accepted = append(accepted, j)
			continue
		}
		res.note(err)
		if broken(err) {
			reply := s.reply(ctx, err)
			for _, k := range accepted {
				rs[k].Status, rs[k].Reply = Temporary, reply
			}
			setAll(rs[j:], Temporary, reply)
			return err
		}
		rs[j].Status, rs[j].Reply = statusOf(err), replyOf(err)
	}
	if len(accepted) == 0 {
		return nil
	}
	settle := func(st Status, reply string) {
		for _, k := range accepted {
			rs[k].Status, rs[k].Reply = st, reply
		}
	}

	w, err := s.c.Data()
	if err != nil {
		res.note(err)
		if broken(err) {
			settle(Temporary, s.reply(ctx, err))
			return err
		}
		settle(statusOf(err), replyOf(err))
		return nil
	}
	// go-smtp sets no deadline while the body is written.
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.DataTimeout))
	if _, err := w.Write(msg); err != nil {
		// The final dot was not sent: the server drops the message.
		err = fmt.Errorf("writing the message: %w", err)
		settle(Temporary, s.reply(ctx, err))
		return err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		// A reply that never came after the dot leaves the message in
		// doubt; Temporary means it is sent again (at least once).
		res.note(err)
		if broken(err) {
			settle(Temporary, s.reply(ctx, err))
			return err
		}
		s.dirty = false
		settle(statusOf(err), replyOf(err))
		return nil
	}
	s.dirty = false
	settle(Sent, "250 "+oneLine(resp.StatusText))
	return nil
}

// validAddress checks what go-smtp would otherwise refuse or put on the
// wire verbatim: line breaks, angle brackets, spaces, excessive length. The
// null sender is valid only as a sender.
func validAddress(a string, sender bool) bool {
	if a == "" {
		return sender
	}
	return len(a) <= maxAddressLen && utf8.ValidString(a) && !strings.ContainsAny(a, "\r\n\t <>\x00")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func anyNonASCII(list []string) bool {
	for _, s := range list {
		if !isASCII(s) {
			return true
		}
	}
	return false
}
