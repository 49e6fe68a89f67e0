package app

import (
	"context"
	"fmt"
	"io"

	"github.com/smtpgate/smtpgate/bounces"
	"github.com/smtpgate/smtpgate/proxy"
)

// bounceSwitch is the proxy's receiver for bounces listeners. It hands each
// call to the bounce handler of the policy in force, so a reload that
// changes the tracking secret or the bounce domain takes effect at once.
type bounceSwitch struct{ a *App }

var _ proxy.BounceReceiver = bounceSwitch{}

func (b bounceSwitch) handler() *bounces.Handler { return b.a.cur.Load().bounces }

// CheckRecipient accepts only signed VERP addresses of the bounce domain.
func (b bounceSwitch) CheckRecipient(ctx context.Context, addr string) error {
	h := b.handler()
	if h == nil {
		return fmt.Errorf("no bounce domain configured: %w", proxy.ErrRelayDenied)
	}
	return h.CheckRecipient(ctx, addr)
}

// Handle turns a bounce into events.
func (b bounceSwitch) Handle(ctx context.Context, env *proxy.Envelope, body io.Reader) (string, error) {
	h := b.handler()
	if h == nil {
		io.Copy(io.Discard, body) //nolint:errcheck
		return "", fmt.Errorf("no bounce domain configured: %w", proxy.ErrRelayDenied)
	}
	return h.Handle(ctx, env, body)
}

// bounceHandler builds the bounce handler of a state, or nil without a
// bounce domain.
func (a *App) bounceHandler(tr *transforms) *bounces.Handler {
	if tr.pipeline.Bounce == nil {
		return nil
	}
	return bounces.New(tr.pipeline.Bounce, a.store, a.log.Named("bounces"))
}
