// Package gateway joins smtpgate's front door to the rest of the pipeline:
// for each message the proxy accepts it resolves the login's plan from the
// current policy, adds the trace header, runs the content features, parses
// the capture summary and commits the message to the store. Only after the
// commit does the proxy answer "250 queued".
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/features/directives"
	"github.com/smtpgate/smtpgate/features/pipeline"
	"github.com/smtpgate/smtpgate/policy"
	"github.com/smtpgate/smtpgate/proxy"
	"github.com/smtpgate/smtpgate/relay"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// Config is what the gateway works with: the policy in force and the
// content pipeline built from it. Both change together on reload.
type Config struct {
	Policy   *policy.Policy
	Pipeline *pipeline.Pipeline
	Routes   map[string]relay.Route // the policy's relays, by name
}

// Source returns the Config in force; it may change between calls (SIGHUP
// reload), and one message is handled entirely under the one it got.
type Source interface {
	Current() Config
}

// Notifier is told about every committed message (live UI updates, the wait
// API). It must not block.
type Notifier interface {
	Committed(msg *store.Message)
}

// Gateway implements proxy.Handler.
type Gateway struct {
	hostname string
	source   Source
	store    store.Store
	notify   Notifier
	log      *zap.Logger
	now      func() time.Time
}

// New returns a Gateway. notify may be nil.
func New(hostname string, source Source, st store.Store, notify Notifier, log *zap.Logger) *Gateway {
	return &Gateway{hostname: hostname, source: source, store: st, notify: notify, log: log, now: time.Now}
}

var _ proxy.Handler = (*Gateway)(nil)

// Handle reads the message, resolves the plan, runs the content features
// and commits the message. It returns the message id once the message is
// durable.
func (g *Gateway) Handle(ctx context.Context, env *proxy.Envelope, body io.Reader) (string, error) {
	cfg := g.source.Current()
	login := env.Login.Name()
	plan, err := cfg.Policy.Resolve(login)
	if err != nil {
		// The login authenticated against an older policy that no longer has it.
		io.Copy(io.Discard, body) //nolint:errcheck // drain; the reply is the error below
		return "", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "Login is no longer allowed to send"}
	}
	var route relay.Route
	if plan.Route != store.RouteCapture {
		var ok bool
		if route, ok = cfg.Routes[plan.Route]; !ok {
			io.Copy(io.Discard, body) //nolint:errcheck
			return "", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 5},
				Message: fmt.Sprintf("Route %q is not configured", plan.Route)}
		}
	}

	received := env.Received
	if received.IsZero() {
		received = g.now()
	}
	id := store.NewID(received)

	var buf bytes.Buffer
	buf.Grow(8 << 10)
	writeReceived(&buf, g.hostname, id, env, received)
	if _, err := buf.ReadFrom(body); err != nil {
		if errors.Is(err, proxy.ErrTooLarge) {
			return "", err
		}
		return "", fmt.Errorf("gateway: read message: %w", err)
	}
	submitted := buf.Bytes()

	out, err := cfg.Pipeline.Apply(pipeline.Input{
		Raw: submitted, Base: plan.Features, Overridable: plan.Overridable,
		MessageID: id, MailFrom: env.MailFrom, Recipients: env.Recipients,
	})
	if err != nil {
		var mal *directives.MalformedError
		if errors.As(err, &mal) {
			g.log.Info("message refused: malformed directive", zap.String("id", id), zap.String("login", login), zap.Error(err))
			return "", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: mal.Error()}
		}
		return "", fmt.Errorf("gateway: features: %w", err)
	}

	// Only a captured message is searched, so only its readable text is
	// extracted (it costs as much as the summary itself).
	var (
		sum  summary.Summary
		text string
	)
	if plan.Route == store.RouteCapture {
		sum, text, err = summary.ParseText(out.Raw)
	} else {
		sum, err = summary.Parse(out.Raw)
	}
	if err != nil {
		// A message whose header cannot be read is still accepted and
		// captured; the summary stays empty and the raw bytes are kept.
		g.log.Info("message summary failed", zap.String("id", id), zap.Error(err))
	}
	msg := &store.Message{
		ID:         id,
		Login:      login,
		Route:      plan.Route,
		MailFrom:   env.MailFrom,
		Recipients: env.Recipients,
		RemoteIP:   remoteIP(env.RemoteAddr),
		Helo:       env.Helo,
		TLS:        env.TLS != nil,
		Received:   received.UTC(),
		Size:       int64(len(out.Raw)),
		Raw:        out.Raw,
		Summary:    sum,
		Text:       text,
		Tags:       out.Directives.Tags,
		Metadata:   out.Directives.Metadata,
		SendAt:     out.Directives.SendAt,
		Processing: processing(out),
	}
	if out.Changed {
		msg.Original = submitted
	}
	if out.MailFrom != env.MailFrom {
		msg.ReturnPath = out.MailFrom
	}
	now := msg.Received
	if plan.Route != store.RouteCapture {
		if err := schedule(msg, cfg.Policy.Server.MaxScheduleAhead, now); err != nil {
			return "", err
		}
		msg.Deliveries = relay.Deliveries(msg, route)
	}
	msg.Events = events(msg, out, now, cfg.Policy.Server.CaptureSimulateSent)
	for _, r := range out.Directives.Records {
		if r.Outcome != directives.Applied {
			g.log.Info("directive not applied", zap.String("id", id), zap.String("login", login),
				zap.String("header", r.Header), zap.String("outcome", string(r.Outcome)), zap.String("reason", r.Reason))
		}
	}
	if err := g.store.Accept(ctx, msg); err != nil {
		g.log.Error("store accept failed", zap.String("id", id), zap.String("login", login), zap.Error(err))
		return "", fmt.Errorf("gateway: commit %s: %w", id, err)
	}
	if g.notify != nil {
		g.notify.Committed(msg)
	}
	return id, nil
}

// processing turns the pipeline's output into the store's record of it.
func processing(out *pipeline.Output) store.Processing {
	p := store.Processing{Features: map[string]bool{}, Notes: out.Notes}
	for _, name := range features.AllNames {
		v, _ := out.Directives.Features.Get(name)
		p.Features[name] = v
	}
	for _, r := range out.Directives.Records {
		p.Directives = append(p.Directives, store.DirectiveRecord{
			Header: r.Header, Value: r.Value, Directive: r.Directive, Outcome: string(r.Outcome), Reason: r.Reason,
		})
	}
	st := out.Stats
	p.Stats = map[string]int{"html_parts": st.HTMLParts, "text_parts": st.TextParts, "css_inlined": st.CSSInlined,
		"links_tracked": st.LinksTracked, "pixels_added": st.PixelsAdded}
	return p
}

// events are committed with the message: one captured (or queued) event per
// recipient, a simulated sent event per recipient when the policy asks for
// it in capture mode, and one event per directive that was not applied
// (refused, malformed, ignored), so the message's event log says why.
func events(msg *store.Message, out *pipeline.Output, t time.Time, simulateSent bool) []*store.Event {
	var evs []*store.Event
	typ := store.EventCaptured
	if msg.Route != store.RouteCapture {
		typ = store.EventQueued
	}
	for _, r := range store.Inboxes(msg.Recipients) {
		evs = append(evs, &store.Event{Type: typ, Recipient: r, Time: t})
	}
	if simulateSent && msg.Route == store.RouteCapture {
		for _, r := range store.Inboxes(msg.Recipients) {
			evs = append(evs, &store.Event{Type: store.EventSent, Recipient: r, Time: t,
				Reply: "250 2.0.0 captured (simulated delivery)", Detail: "capture mode"})
		}
	}
	for _, r := range out.Directives.Records {
		if r.Outcome == directives.Applied {
			continue
		}
		d := fmt.Sprintf("%s %s: %s", r.Outcome, r.Header, r.Value)
		if r.Reason != "" {
			d += " (" + r.Reason + ")"
		}
		evs = append(evs, &store.Event{Type: store.EventDirective, Time: t, Detail: d})
	}
	return evs
}

// writeReceived writes the RFC 5321 trace header, with the RFC 3848
// protocol name (ESMTPSA: authenticated over TLS). Recipients are left out
// so that Bcc recipients are not disclosed.
func writeReceived(b *bytes.Buffer, hostname, id string, env *proxy.Envelope, t time.Time) {
	helo := sanitize(env.Helo)
	if helo == "" {
		helo = "unknown"
	}
	ip := remoteIP(env.RemoteAddr)
	proto := "ESMTP"
	if env.TLS != nil {
		proto += "S"
	}
	if env.Login != nil {
		proto += "A"
	}
	fmt.Fprintf(b, "Received: from %s ([%s])\r\n\tby %s (smtpgate) with %s id %s", helo, ip, hostname, proto, id)
	if env.TLS != nil {
		fmt.Fprintf(b, "\r\n\t(version=%s cipher=%s)", tlsVersion(env.TLS.Version), cipherName(env.TLS.CipherSuite))
	}
	b.WriteString(";\r\n\t")
	b.WriteString(t.Format(time.RFC1123Z))
	b.WriteString("\r\n")
}

// sanitize keeps a client-supplied HELO name from breaking the header.
func sanitize(s string) string {
	if len(s) > 255 {
		s = s[:255]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e || r == '(' || r == ')' || r == ';' {
			return '_'
		}
		return r
	}, s)
}

func remoteIP(a net.Addr) string {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case nil:
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// schedule checks the message's send-at time: a time in the past sends now,
// one further ahead than the policy allows is refused.
func schedule(msg *store.Message, maxAhead time.Duration, now time.Time) error {
	if msg.SendAt.IsZero() {
		return nil
	}
	if !msg.SendAt.After(now) {
		msg.SendAt = time.Time{}
		return nil
	}
	if maxAhead > 0 && msg.SendAt.After(now.Add(maxAhead)) {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 3, 0},
			Message: fmt.Sprintf("Send-at %s is more than %s ahead (max_schedule_ahead)", msg.SendAt.UTC().Format(time.RFC3339), maxAhead)}
	}
	return nil
}
