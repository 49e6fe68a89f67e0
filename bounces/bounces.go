// Package bounces turns the mail that comes back to the VERP addresses of
// the bounce domain into events. It is the proxy.BounceReceiver behind a
// bounces listener (proxy.PurposeBounces):
//
//   - at RCPT, CheckRecipient accepts an address only when it is a VERP
//     address of the bounce domain whose signature verifies
//     (bounce.Codec.Parse); a forged or tampered one is "no such user", any
//     other domain "relay access denied". The store is not consulted: a
//     token that verifies was made here, and refusing it would only send a
//     double bounce to the remote postmaster.
//   - at the end of DATA, Handle resolves each recipient's message id and
//     recipient index to the address the message was sent to, reads the
//     mail with bounce.ParseDSN and commits one event per recipient with
//     store.EventStore.AddEvents: "bounced" for a permanent failure,
//     "deferred" for a delay or a temporary failure, store.EventReply for mail
//     that is no delivery status notification (an autoreply, a person's
//     answer). Only then does the proxy answer 250.
//
// A bounce for a message the store no longer has (pruned by retention, or
// unknown) is accepted, logged and dropped without an event: the remote
// server has done its job and has nothing to retry. A store failure is a
// temporary error (451), so the remote server tries again later.
package bounces

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/features/bounce"
	"github.com/smtpgate/smtpgate/proxy"
	"github.com/smtpgate/smtpgate/store"
)

// Store is what the Handler needs of a store.Store: the message a bounce
// is about (its recipients; never its body), and a place for the events.
type Store interface {
	GetMeta(ctx context.Context, id string, scope store.Scope) (*store.Message, error)
	AddEvents(ctx context.Context, events ...*store.Event) error
}

// Handler receives the mail of bounces listeners. It implements
// proxy.BounceReceiver and is safe for concurrent use.
type Handler struct {
	codec *bounce.Codec
	st    Store
	log   *zap.Logger
}

var _ proxy.BounceReceiver = (*Handler)(nil)

// New returns a Handler for the VERP addresses of codec, looking messages
// up in and adding events to st. log may be nil.
func New(codec *bounce.Codec, st Store, log *zap.Logger) *Handler {
	if log == nil {
		log = zap.NewNop()
	}
	return &Handler{codec: codec, st: st, log: log}
}

// CheckRecipient implements proxy.RecipientChecker: nil for a VERP address
// of the bounce domain that verifies, an error wrapping
// proxy.ErrNoSuchUser for any other address on the bounce domain, and one
// wrapping proxy.ErrRelayDenied for any other domain.
func (h *Handler) CheckRecipient(_ context.Context, addr string) error {
	at := strings.LastIndexByte(addr, '@')
	domain := strings.TrimSuffix(addr[at+1:], ".")
	if at < 0 || !strings.EqualFold(domain, h.codec.Domain()) {
		return fmt.Errorf("bounces: %q is not on the bounce domain: %w", addr, proxy.ErrRelayDenied)
	}
	if _, _, err := h.codec.Parse(addr); err != nil {
		return fmt.Errorf("bounces: %w: %w", proxy.ErrNoSuchUser, err)
	}
	return nil
}

// target is one recipient a bounce is about.
type target struct {
	messageID string
	rcpt      string // the address the message was sent to
}

// Handle implements proxy.Handler: it reads the bounce, commits one event
// per VERP recipient whose message is stored and returns "bounce-" and
// the message id. Nothing is committed when it returns an error.
func (h *Handler) Handle(ctx context.Context, env *proxy.Envelope, body io.Reader) (string, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return "", fmt.Errorf("bounces: reading the message: %w", err)
	}
	log := h.log.With(zap.Stringer("remote", env.RemoteAddr), zap.String("from", env.MailFrom))
	targets, id, err := h.resolve(ctx, env.Recipients, log)
	if err != nil {
		return "", err
	}
	if len(targets) == 0 {
		return id, nil
	}
	rep, perr := bounce.ParseDSN(raw)
	when := env.Received.UTC()
	if when.IsZero() {
		when = time.Now().UTC()
	}
	events := make([]*store.Event, 0, len(targets))
	for _, t := range targets {
		e, ok := Classify(rep, perr, t.rcpt)
		if !ok {
			log.Info("bounce without a failure or delay: no event",
				zap.String("message", t.messageID), zap.String("rcpt", t.rcpt))
			continue
		}
		e.MessageID, e.Recipient, e.Time = t.messageID, t.rcpt, when
		events = append(events, e)
	}
	if err := h.add(ctx, events, log); err != nil {
		return "", err
	}
	for _, e := range events {
		log.Info("bounce", zap.String("message", e.MessageID), zap.String("rcpt", e.Recipient),
			zap.String("type", e.Type), zap.String("reply", e.Reply), zap.Int64("seq", e.Seq))
	}
	return id, nil
}

// resolve maps the envelope recipients to the recipients of stored
// messages, once each. It drops (and logs) addresses that do not verify,
// messages the store does not have and indexes past a message's recipient
// list. id is the queue id for the reply. Only a store failure is an error.
func (h *Handler) resolve(ctx context.Context, verps []string, log *zap.Logger) (_ []target, id string, _ error) {
	id = "bounce-none"
	msgs := map[string]*store.Message{}
	type verpKey struct {
		id    string
		index int
	}
	seen := map[verpKey]bool{}
	var out []target
	for _, v := range verps {
		mid, idx, err := h.codec.Parse(v)
		if err != nil {
			log.Warn("bounce recipient does not verify", zap.String("rcpt", v), zap.Error(err))
			continue
		}
		if id == "bounce-none" {
			id = "bounce-" + mid
		}
		key := verpKey{mid, idx}
		if seen[key] {
			continue
		}
		seen[key] = true
		msg, ok := msgs[mid]
		if !ok {
			msg, err = h.st.GetMeta(ctx, mid, store.Scope{All: true})
			switch {
			case errors.Is(err, store.ErrNotFound):
				log.Info("bounce for a message the store does not have: dropped", zap.String("message", mid), zap.Int("index", idx))
			case err != nil:
				return nil, "", fmt.Errorf("bounces: looking up message %s: %w", mid, err)
			}
			msgs[mid] = msg
		}
		switch {
		case msg == nil:
			continue
		case idx >= len(msg.Recipients):
			log.Warn("bounce names a recipient index past the message's recipients: dropped",
				zap.String("message", mid), zap.Int("index", idx), zap.Int("recipients", len(msg.Recipients)))
			continue
		}
		out = append(out, target{messageID: mid, rcpt: msg.Recipients[idx]})
	}
	return out, id, nil
}

// add commits events in one transaction. When AddEvents says a message is
// gone (removed since resolve looked it up), the events of the messages
// still there are committed, again in one transaction.
func (h *Handler) add(ctx context.Context, events []*store.Event, log *zap.Logger) error {
	if len(events) == 0 {
		return nil
	}
	err := h.st.AddEvents(ctx, events...)
	if errors.Is(err, store.ErrNotFound) {
		if events, err = h.present(ctx, events, log); err == nil && len(events) > 0 {
			err = h.st.AddEvents(ctx, events...)
		}
	}
	if err != nil {
		return fmt.Errorf("bounces: adding events: %w", err)
	}
	return nil
}

// present returns the events whose messages the store still has.
func (h *Handler) present(ctx context.Context, events []*store.Event, log *zap.Logger) ([]*store.Event, error) {
	gone := map[string]bool{}
	out := events[:0:0]
	for _, e := range events {
		g, known := gone[e.MessageID]
		if !known {
			_, err := h.st.GetMeta(ctx, e.MessageID, store.Scope{All: true})
			switch {
			case errors.Is(err, store.ErrNotFound):
				g = true
				log.Info("bounce for a message removed meanwhile: dropped", zap.String("message", e.MessageID))
			case err != nil:
				return nil, fmt.Errorf("looking up message %s: %w", e.MessageID, err)
			}
			gone[e.MessageID] = g
		}
		if !g {
			out = append(out, e)
		}
	}
	return out, nil
}
