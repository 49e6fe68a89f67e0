package smtpclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

// maxAddressLen bounds an address (RFC 5321 section 4.5.3.1.3: a path is at
// most 256 octets with its angle brackets).
const maxAddressLen = 254

// runOutcome says what became of a session after run.
type runOutcome uint8

const (
	runOK     runOutcome = iota // every envelope was handled; the session can be reused
	runBroken                   // the session cannot go on; the undecided recipients are Temporary
	runStale                    // an idle session had died before its first reply: nothing was decided, use another one
)

// run sends every envelope in turn. When the session breaks, the
// recipients not yet decided stay Temporary with the reason; when it turns
// out stale, none is decided.
func (s *session) run(ctx context.Context, envs []Envelope, msg []byte, res *Result) runOutcome {
	res.Host, res.TLS = s.host, s.tls
	i := 0
	for _, e := range envs {
		rs := res.Recipients[i : i+len(e.To)]
		i += len(e.To)
		if err := s.transaction(ctx, e, msg, rs, res); err != nil {
			var stale *staleError
			if errors.As(err, &stale) {
				return runStale
			}
			reply := s.reply(ctx, err)
			for j := i; j < len(res.Recipients); j++ {
				res.Recipients[j].Status, res.Recipients[j].Reply = Temporary, reply
			}
			return runBroken
		}
	}
	return runOK
}

// staleError is the failure of a session taken from the idle pool before
// its first reply: the server closed it while it was idle (a 421 for the
// idle timeout, a reset, an end of file). Nothing was sent yet.
type staleError struct{ err error }

func (e *staleError) Error() string { return "idle session closed by the server: " + e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// checkStale turns err into a *staleError when it is the first outcome of
// a reused session and says that the server had closed it; a timeout or an
// interrupted attempt is not.
func (s *session) checkStale(ctx context.Context, err error) error {
	if !s.reused {
		return err
	}
	if err == nil {
		s.reused = false
		return nil
	}
	var se *smtp.SMTPError
	var ne net.Error
	switch {
	case ctx.Err() != nil:
	case errors.As(err, &se):
		if se.Code == 421 {
			return &staleError{err}
		}
	case errors.As(err, &ne) && ne.Timeout():
	default:
		return &staleError{err}
	}
	s.reused = false
	return err
}

// flush sends the buffered commands.
func (s *session) flush(ctx context.Context) error {
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.CommandTimeout))
	if err := s.w.flush(); err != nil {
		return s.checkStale(ctx, err)
	}
	return nil
}

// read reads the next reply within timeout (see wire.reply).
func (s *session) read(ctx context.Context, class int, timeout time.Duration) (int, string, error) {
	s.conn.SetReadDeadline(time.Now().Add(timeout))
	code, text, err := s.w.reply(class)
	return code, text, s.checkStale(ctx, err)
}

// reply is the text for an error that broke the session, naming the
// context when it was cancelled.
func (s *session) reply(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return fmt.Sprintf("attempt interrupted (%v): %s", context.Cause(ctx), replyOf(err))
	}
	return replyOf(err)
}

// transaction runs MAIL, RCPT per recipient and DATA. With PIPELINING
// (RFC 2920) they go out in one write, after an RSET when the previous
// transaction was left open, and their replies are read in order; without
// it each command waits for the previous reply, and DATA is sent only when
// a recipient was accepted. Either way each recipient gets its RCPT reply,
// the message is sent only when at least one was accepted (a DATA refused
// because none was is expected, and ignored), and the final reply applies
// to the accepted ones. It decides every recipient in rs and returns an
// error only when the session cannot go on (a *staleError, deciding none,
// when a reused session turns out to have been closed while idle).
func (s *session) transaction(ctx context.Context, e Envelope, msg []byte, rs []Recipient, res *Result) error {
	if !validAddress(e.From, true) {
		setAll(rs, Permanent, "501 5.1.7 invalid sender address")
		return nil
	}
	needUTF8 := !isASCII(e.From) || anyNonASCII(e.To)
	if needUTF8 && !s.ext[extSMTPUTF8] {
		setAll(rs, Permanent, "553 5.6.7 an address is not ASCII and the server does not offer SMTPUTF8")
		return nil
	}
	valid := make([]int, 0, len(e.To)) // the recipients given a RCPT, by index in rs
	for j, to := range e.To {
		if validAddress(to, false) {
			valid = append(valid, j)
		} else {
			rs[j].Status, rs[j].Reply = Permanent, "501 5.1.3 invalid recipient address"
		}
	}
	if len(valid) == 0 {
		return nil
	}
	decide := func(list []int, st Status, reply string) {
		for _, j := range list {
			rs[j].Status, rs[j].Reply = st, reply
		}
	}

	// fail decides list on a reply or error that broke the session.
	fail := func(list []int, err error) error {
		if _, stale := err.(*staleError); !stale {
			decide(list, Temporary, s.reply(ctx, err))
		}
		return err
	}

	var body, size, smtputf8 string
	if s.ext[ext8BITMIME] {
		body = " BODY=8BITMIME"
	}
	if s.ext[extSIZE] {
		size = " SIZE=" + strconv.Itoa(len(msg))
	}
	if needUTF8 {
		smtputf8 = " SMTPUTF8"
	}
	pipelined := s.ext[extPIPELINING]
	if pipelined {
		if s.dirty {
			s.w.command("RSET")
		}
		s.w.command("MAIL FROM:<", e.From, ">", body, size, smtputf8)
		for _, j := range valid {
			s.w.command("RCPT TO:<", e.To[j], ">")
		}
		s.w.command("DATA")
		if err := s.flush(ctx); err != nil {
			return fail(valid, err)
		}
	}
	// cmd sends a command on its own; with PIPELINING it already went out.
	cmd := func(parts ...string) error {
		if pipelined {
			return nil
		}
		s.w.command(parts...)
		return s.flush(ctx)
	}
	wait := s.cfg.CommandTimeout

	if s.dirty {
		// The previous transaction ended without its final dot.
		err := cmd("RSET")
		if err == nil {
			_, _, err = s.read(ctx, 2, wait)
		}
		if err != nil {
			return fail(valid, err)
		}
		s.dirty = false
	}

	err := cmd("MAIL FROM:<", e.From, ">", body, size, smtputf8)
	if err == nil {
		_, _, err = s.read(ctx, 2, wait)
	}
	if err != nil {
		if _, stale := err.(*staleError); !stale {
			res.note(err)
		}
		if broken(err) {
			return fail(valid, err)
		}
		decide(valid, statusOf(err), replyOf(err))
		if pipelined {
			// The RCPTs and DATA that followed are refused in turn.
			return s.drain(ctx, len(valid)+1)
		}
		return nil
	}
	s.dirty = true

	accepted := make([]int, 0, len(valid))
	for k, j := range valid {
		err := cmd("RCPT TO:<", e.To[j], ">")
		if err == nil {
			_, _, err = s.read(ctx, 2, wait)
		}
		if err == nil {
			accepted = append(accepted, j)
			continue
		}
		res.note(err)
		if broken(err) {
			return fail(append(accepted, valid[k:]...), err)
		}
		rs[j].Status, rs[j].Reply = statusOf(err), replyOf(err)
	}
	if len(accepted) == 0 && !pipelined {
		return nil
	}

	err = cmd("DATA")
	if err == nil {
		_, _, err = s.read(ctx, 3, wait)
	}
	if err != nil {
		res.note(err)
		if broken(err) {
			return fail(accepted, err)
		}
		// With no recipient accepted this is the expected refusal
		// (RFC 2920: 503 or 554), and there is nothing to decide.
		decide(accepted, statusOf(err), replyOf(err))
		return nil
	}
	if len(accepted) == 0 {
		// A server that takes DATA with no recipient now waits for a
		// message that will not come: end the session.
		return errors.New("the server accepted DATA without an accepted recipient")
	}

	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.DataTimeout))
	s.w.writeData(msg)
	if err := s.w.flush(); err != nil {
		// The final dot was not sent: the server drops the message.
		return fail(accepted, fmt.Errorf("writing the message: %w", err))
	}
	code, text, err := s.read(ctx, 2, 2*s.cfg.CommandTimeout)
	if err != nil {
		// A reply that never came after the dot leaves the message in
		// doubt; Temporary means it is sent again (at least once).
		res.note(err)
		if broken(err) {
			return fail(accepted, err)
		}
		s.dirty = false
		decide(accepted, statusOf(err), replyOf(err))
		return nil
	}
	s.dirty = false
	decide(accepted, Sent, strconv.Itoa(code)+" "+oneLine(text))
	return nil
}

// drain reads the replies to n pipelined commands that followed a refused
// MAIL; their recipients are already decided. A DATA accepted all the same
// leaves the session waiting for a message: it is ended.
func (s *session) drain(ctx context.Context, n int) error {
	for i := range n {
		class := 2
		if i == n-1 {
			class = 3 // DATA
		}
		_, _, err := s.read(ctx, class, s.cfg.CommandTimeout)
		switch {
		case err == nil && class == 3:
			return errors.New("the server accepted DATA after refusing MAIL")
		case err != nil && broken(err):
			return err
		}
	}
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
