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

	"github.com/smtpgate/smtpgate/policy"
	"github.com/smtpgate/smtpgate/proxy"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// PolicySource returns the policy in force; it may change between calls
// (SIGHUP reload).
type PolicySource interface {
	Policy() *policy.Policy
}

// Notifier is told about every committed message (live UI updates, the wait
// API). It must not block.
type Notifier interface {
	Committed(msg *store.Message)
}

// Gateway implements proxy.Handler.
type Gateway struct {
	hostname string
	policies PolicySource
	store    store.Store
	notify   Notifier
	log      *zap.Logger
	now      func() time.Time
}

// New returns a Gateway. notify may be nil.
func New(hostname string, policies PolicySource, st store.Store, notify Notifier, log *zap.Logger) *Gateway {
	return &Gateway{hostname: hostname, policies: policies, store: st, notify: notify, log: log, now: time.Now}
}

var _ proxy.Handler = (*Gateway)(nil)

// Handle reads the message, resolves the plan and commits the message. It
// returns the message id once the message is durable.
func (g *Gateway) Handle(ctx context.Context, env *proxy.Envelope, body io.Reader) (string, error) {
	login := env.Login.Name()
	plan, err := g.policies.Policy().Resolve(login)
	if err != nil {
		// The login authenticated against an older policy that no longer has it.
		io.Copy(io.Discard, body) //nolint:errcheck // drain; the reply is the error below
		return "", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "Login is no longer allowed to send"}
	}
	if plan.Route != store.RouteCapture {
		io.Copy(io.Discard, body) //nolint:errcheck
		return "", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 3, 0},
			Message: fmt.Sprintf("Route %q cannot deliver: relay delivery is not available in this build", plan.Route)}
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
	raw := buf.Bytes()

	sum, err := summary.Parse(raw)
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
		Size:       int64(len(raw)),
		Raw:        raw,
		Summary:    sum,
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
