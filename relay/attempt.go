package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/relay/dkim"
	"github.com/smtpgate/smtpgate/relay/smtpclient"
	"github.com/smtpgate/smtpgate/store"
)

// rcptResult is the outcome of one pending recipient in one attempt.
type rcptResult struct {
	status smtpclient.Status
	reply  string
}

// tried is what an attempt found out.
type tried struct {
	results  map[int]rcptResult // by index in Delivery.Recipients, pending ones only
	host     string             // host:port of the session, or the last one tried
	reply    string             // the deciding reply
	detail   string             // host, TLS, DKIM, failed hosts: for the events
	slowDown bool               // the destination asked to slow down
	giveUp   bool               // nothing can ever be sent: fail the pending recipients now
}

// attempt runs one delivery attempt and hands its outcome to rec; it
// reports whether the destination asked to slow down.
func (w *Worker) attempt(ctx context.Context, set *settings, rec *recorder, j *job) (slowDown bool) {
	d := j.d
	start, t0 := w.cfg.Now(), time.Now()
	deadline := t0.Add(w.cfg.AttemptTimeout)
	if end := j.leaseUntil.Add(-time.Second); end.Before(deadline) {
		deadline = end // the outcome must be recorded while the lease holds
	}
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	tr := w.try(actx, set, j)
	o := w.outcome(d, j.route, tr, start, errors.Is(context.Cause(ctx), errShutdown))
	o.Attempt = store.Attempt{DeliveryID: d.ID, Time: start, Host: tr.host, Reply: tr.reply, Duration: time.Since(t0)}

	// The outcome is recorded in a batch with others; the delivery stays
	// leased to this worker until then.
	rec.submit(d.ID, o, func(err error) { w.logAttempt(d, tr, o, err) })
	return tr.slowDown
}

// logAttempt logs an attempt once its outcome is recorded, or could not
// be.
func (w *Worker) logAttempt(d *store.Delivery, tr tried, o store.Outcome, err error) {
	lvl, msg := zap.InfoLevel, "relay: attempt"
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		// Another worker took the delivery over (our lease had expired);
		// its attempt decides. Recipients sent here may be sent twice.
		lvl, msg = zap.WarnLevel, "relay: lease lost before the outcome was recorded"
	case err != nil:
		// The lease expires and the delivery is tried again: at least once.
		lvl, msg = zap.ErrorLevel, "relay: record attempt"
	}
	// One entry per attempt: its fields are built only when the level is
	// on.
	if ce := w.log.Check(lvl, msg); ce != nil {
		ce.Write(zap.Int64("delivery", d.ID), zap.String("message", d.MessageID), zap.String("route", d.Route),
			zap.String("domain", d.Domain), zap.String("host", tr.host), zap.String("state", o.State),
			zap.String("reply", tr.reply), zap.Duration("duration", o.Attempt.Duration), zap.Int("attempt", d.Attempts+1),
			zap.Error(err))
	}
}

// try loads, signs and sends the message to the delivery's pending
// recipients.
func (w *Worker) try(ctx context.Context, set *settings, j *job) tried {
	d := j.d
	pending := make([]int, 0, len(d.Recipients))
	for i, r := range d.Recipients {
		if r.State == store.RecipientPending {
			pending = append(pending, i)
		}
	}
	tr := tried{results: make(map[int]rcptResult, len(pending))}
	fail := func(reply string) tried {
		for _, i := range pending {
			tr.results[i] = rcptResult{smtpclient.Temporary, reply}
		}
		tr.reply = reply
		return tr
	}
	if len(pending) == 0 {
		tr.reply = "no pending recipients"
		return tr
	}
	if j.route == nil {
		return fail(fmt.Sprintf("451 4.3.5 route %q is not configured", d.Route))
	}

	msg := w.cache.take(d.MessageID, time.Now())
	if msg == nil {
		var err error
		msg, err = w.st.Get(ctx, d.MessageID, store.Scope{All: true})
		if errors.Is(err, store.ErrNotFound) {
			// Deleted (retention, API): nothing can ever be sent.
			tr.giveUp = true
			return fail(fmt.Sprintf("554 5.3.0 message %s is no longer stored", d.MessageID))
		}
		if err != nil {
			return fail("451 4.3.0 cannot read the message: " + oneLine(err.Error()))
		}
	}

	body, signedWith, err := w.sign(ctx, set, d.Login, msg.Raw)
	if err != nil {
		// A key that does not sign is a configuration error: hold the mail
		// rather than send it unsigned.
		return fail("451 4.7.0 DKIM signing failed: " + oneLine(err.Error()))
	}

	envs, order := envelopes(msg, d, pending, set.bounce, w.log)
	res := j.route.client.Deliver(ctx, d.Domain, envs, body)
	for k, i := range order {
		r := res.Recipients[k]
		tr.results[i] = rcptResult{r.Status, r.Reply}
	}
	tr.host, tr.reply, tr.slowDown = res.Host, res.Reply, res.SlowDown
	tr.detail = res.Host
	if res.TLS != "" {
		tr.detail += " (" + res.TLS + ")"
	}
	if len(signedWith) > 0 {
		tr.detail += "; dkim " + strings.Join(signedWith, ", ")
	}
	if len(res.Failed) > 0 {
		tr.detail += "; failed: " + strings.Join(res.Failed, "; ")
	}
	return tr
}

// oneLine joins a multi-line text into one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// sign DKIM-signs raw (or only normalises its line endings when no key
// applies), once per attempt, whatever the number of transactions. A
// stored message, already CRLF, is hashed where it lies and copied once,
// after its signature (not at all when unsigned).
func (w *Worker) sign(ctx context.Context, set *settings, login string, raw []byte) ([]byte, []string, error) {
	override := ""
	if set.signingDomain != nil {
		override = set.signingDomain(login)
	}
	out, with, err := set.signer.SignBytes(ctx, raw, override)
	if errors.Is(err, dkim.ErrNoSigningDomain) {
		// No usable From: nothing to sign for; send it normalised.
		out, with, err = dkim.NewSigner(nil, dkim.Options{}).SignBytes(ctx, raw, "")
	}
	if err != nil {
		return nil, nil, err
	}
	return out, with, nil
}

// envelopes builds the SMTP transactions for the pending recipients: one
// with the message's envelope sender, or one per recipient with its own
// VERP sender when bounce tracking is on for a message with several
// recipients. order maps each recipient of the transactions, in order, to
// its index in d.Recipients.
func envelopes(msg *store.Message, d *store.Delivery, pending []int, verp VERP, log *zap.Logger) ([]smtpclient.Envelope, []int) {
	from := msg.ReturnPath
	if from == "" {
		from = msg.MailFrom
	}
	perRecipient := verp != nil && msg.Processing.Features[features.TrackBounces] && msg.MailFrom != "" && len(msg.Recipients) > 1
	if !perRecipient {
		env := smtpclient.Envelope{From: from}
		for _, i := range pending {
			env.To = append(env.To, d.Recipients[i].Address)
		}
		return []smtpclient.Envelope{env}, pending
	}
	envs := make([]smtpclient.Envelope, 0, len(pending))
	for _, i := range pending {
		r := d.Recipients[i]
		sender, err := verp.Address(msg.ID, r.Index)
		if err != nil {
			log.Warn("relay: no VERP sender; using the envelope sender", zap.String("message", msg.ID), zap.Int("recipient", r.Index), zap.Error(err))
			sender = from
		}
		envs = append(envs, smtpclient.Envelope{From: sender, To: []string{r.Address}})
	}
	return envs, pending
}

// outcome turns an attempt's results into the delivery's new state and its
// events. interrupted (shutdown) makes the pending recipients due again at
// once instead of after the backoff.
func (w *Worker) outcome(d *store.Delivery, r *route, tr tried, now time.Time, interrupted bool) store.Outcome {
	o := store.Outcome{Recipients: make([]store.RecipientDelivery, len(d.Recipients))}
	copy(o.Recipients, d.Recipients)
	var pending []int
	sent := 0
	for i := range o.Recipients {
		rc := &o.Recipients[i]
		if rc.State != store.RecipientPending {
			if rc.State == store.RecipientSent {
				sent++
			}
			continue
		}
		res, ok := tr.results[i]
		if !ok {
			pending = append(pending, i)
			continue
		}
		rc.Reply = res.reply
		switch res.status {
		case smtpclient.Sent:
			rc.State = store.RecipientSent
			sent++
			o.Events = append(o.Events, &store.Event{Type: store.EventSent, Recipient: rc.Address, Time: now, Reply: res.reply, Detail: tr.detail})
		case smtpclient.Permanent:
			rc.State = store.RecipientBounced
			o.Events = append(o.Events, &store.Event{Type: store.EventBounced, Recipient: rc.Address, Time: now, Reply: res.reply, Detail: tr.detail})
		default:
			pending = append(pending, i)
		}
	}
	if len(pending) == 0 {
		o.State = store.DeliveryBounced
		if sent > 0 {
			o.State = store.DeliverySent
		}
		return o
	}

	attempts := d.Attempts + 1
	next := now.Add(w.cfg.Backoff.Delay(attempts))
	if interrupted {
		next = now
	}
	expires := d.Expires
	if expires.IsZero() {
		maxAge := DefaultMaxAge
		if r != nil {
			maxAge = r.MaxAge
		}
		expires = d.Created.Add(maxAge)
	}
	if tr.giveUp || next.After(expires) {
		o.State = store.DeliveryFailed
		why := fmt.Sprintf("gave up after %d attempts: the next one (%s) would be after the delivery expires (%s)",
			attempts, next.UTC().Format(time.RFC3339), expires.UTC().Format(time.RFC3339))
		if tr.giveUp {
			why = "gave up: " + tr.reply
		}
		for _, i := range pending {
			rc := &o.Recipients[i]
			rc.State = store.RecipientFailed
			o.Events = append(o.Events, &store.Event{Type: store.EventFailed, Recipient: rc.Address, Time: now, Reply: rc.Reply, Detail: why})
		}
		return o
	}
	o.State, o.NextAttempt = store.DeliveryDeferred, next
	why := "retry at " + next.UTC().Format(time.RFC3339)
	if tr.detail != "" {
		why = tr.detail + "; " + why
	}
	for _, i := range pending {
		rc := &o.Recipients[i]
		o.Events = append(o.Events, &store.Event{Type: store.EventDeferred, Recipient: rc.Address, Time: now, Reply: rc.Reply, Detail: why})
	}
	return o
}
