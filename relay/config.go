package relay

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"time"

	"github.com/smtpgate/smtpgate/relay/dkim"
	"github.com/smtpgate/smtpgate/relay/smtpclient"
	"github.com/smtpgate/smtpgate/store"
)

// MessageSource reads stored messages with their Raw bytes; store.Store is
// one.
type MessageSource interface {
	Get(ctx context.Context, id string, scope store.Scope) (*store.Message, error)
}

// VERP makes the per-recipient envelope sender of bounce tracking;
// *bounce.Codec (features/bounce) is one.
type VERP interface {
	Address(messageID string, rcpt int) (string, error)
}

// Settings are the parts of the configuration that a policy reload
// changes; Worker.Reload swaps them while the worker runs.
type Settings struct {
	// Routes are the relays deliveries name.
	Routes []Route
	// Signer signs every message just before it is sent; nil sends
	// unsigned (line endings are still normalised to CRLF).
	Signer *dkim.Signer
	// SigningDomain returns the DKIM signing domain for a login's mail, ""
	// for the From domain (the policy's per-credential dkim_domain); nil
	// means always the From domain.
	SigningDomain func(login string) string
	// Bounce, when set, gives each recipient of a multi-recipient message
	// with bounce tracking on its own VERP sender (one SMTP transaction
	// each). Single-recipient messages already carry it in ReturnPath.
	Bounce VERP
}

// Backoff is the retry schedule: Initial after the first failed attempt,
// multiplied by Factor after each further one, capped at Max, and each
// delay then spread by ±Jitter (a fraction) so that deliveries deferred
// together do not come back together.
type Backoff struct {
	Initial time.Duration
	Factor  float64
	Max     time.Duration
	Jitter  float64
}

// DefaultBackoff returns the default schedule: 1 min, 2, 4, ... up to 1 h,
// ±20 %.
func DefaultBackoff() Backoff {
	return Backoff{Initial: time.Minute, Factor: 2, Max: time.Hour, Jitter: 0.2}
}

// Delay returns the wait after the attempts-th failed attempt (1 for the
// first).
func (b Backoff) Delay(attempts int) time.Duration {
	if b.Initial <= 0 {
		b = DefaultBackoff()
	}
	if b.Factor < 1 {
		b.Factor = 1
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	d := min(float64(b.Initial)*math.Pow(b.Factor, float64(max(attempts, 1)-1)), float64(b.Max))
	if j := min(max(b.Jitter, 0), 1); j > 0 {
		d *= 1 + j*(2*rand.Float64()-1) // after the cap, so capped delays spread too
	}
	return time.Duration(d)
}

// Config configures a Worker.
type Config struct {
	Settings

	// Resolver finds MX hosts; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// Dialer opens connections; nil means a net.Dialer.
	Dialer smtpclient.Dialer
	// Now is the clock for the queue: claims (what is due), attempt and
	// event times, retry times and expiry. nil means time.Now. Concurrency
	// and rate limits always run on the real clock.
	Now func() time.Time
	// Owner names this worker's leases; empty means host-pid-random.
	// Two workers must never share one.
	Owner string
	// PollInterval is how often the queue is looked at when nothing
	// happens (Notify wakes the worker earlier); default 5 s.
	PollInterval time.Duration
	// AttemptTimeout bounds one delivery attempt; default 10 min.
	AttemptTimeout time.Duration
	// Lease is how long a claimed delivery is this worker's; it must
	// exceed AttemptTimeout (default AttemptTimeout + 5 min). A delivery
	// that could not start early enough to finish within its lease is left
	// to expire and be claimed again.
	Lease time.Duration
	// Backoff is the retry schedule; the zero value is DefaultBackoff().
	Backoff Backoff
	// MaxInFlight bounds the deliveries claimed and not yet attempted
	// (running, or waiting for a concurrency or rate slot); default 100.
	// Outcomes waiting to be recorded (a few milliseconds) are not
	// counted.
	MaxInFlight int
	// ShutdownGrace is how long Run lets attempts in progress finish after
	// its context ends before it interrupts them; default 30 s.
	ShutdownGrace time.Duration
	// SlowDownPeriod is how long a domain's concurrency stays halved after
	// a slow-down reply before it grows by one (and again one period
	// later, up to the route's bound); default 1 min.
	SlowDownPeriod time.Duration
	// DialTimeout, CommandTimeout and DataTimeout are the SMTP client's
	// (see smtpclient.Config); zero means its defaults.
	DialTimeout, CommandTimeout, DataTimeout time.Duration
	// MessageCache bounds, in bytes, the cache of messages handed to
	// Worker.Remember when they are committed, which spares their first
	// attempts a read of the store (an entry counts its Raw bytes and 512
	// more); 0 means DefaultMessageCache (64 MiB), negative turns the cache
	// off. MessageCacheTTL is how long an entry is kept at most (default
	// DefaultMessageCacheTTL, one minute).
	MessageCache    int64
	MessageCacheTTL time.Duration
	// IdleTimeout is how long an SMTP session stays open after a delivery
	// for the next one to the same destination to reuse (up to
	// PerDomainConcurrency sessions per destination); default 5 s, negative
	// turns reuse off.
	IdleTimeout time.Duration
}

// withDefaults fills the zero values.
func (c Config) withDefaults() (Config, error) {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		c.Owner = fmt.Sprintf("%s-%d-%08x", host, os.Getpid(), rand.Uint32())
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 10 * time.Minute
	}
	if c.Lease <= 0 {
		c.Lease = c.AttemptTimeout + 5*time.Minute
	}
	if c.Lease <= c.AttemptTimeout {
		return c, fmt.Errorf("relay: lease %v must exceed the attempt timeout %v", c.Lease, c.AttemptTimeout)
	}
	if c.Backoff.Initial <= 0 {
		c.Backoff = DefaultBackoff()
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 100
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 30 * time.Second
	}
	if c.SlowDownPeriod <= 0 {
		c.SlowDownPeriod = time.Minute
	}
	if c.MessageCache == 0 {
		c.MessageCache = DefaultMessageCache
	}
	if c.MessageCacheTTL <= 0 {
		c.MessageCacheTTL = DefaultMessageCacheTTL
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 5 * time.Second
	}
	return c, nil
}
