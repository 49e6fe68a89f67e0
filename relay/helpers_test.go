package relay_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/smtpgate/smtpgate/internal/dnstest"
	"github.com/smtpgate/smtpgate/relay"
	"github.com/smtpgate/smtpgate/relay/dkim"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/sqlite"
)

// clock is an adjustable clock for the queue.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now().UTC()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// harness is a real SQLite store, a loopback DNS server and helpers to
// accept messages and watch their deliveries.
type harness struct {
	t   *testing.T
	db  *sqlite.DB
	dns *dnstest.Server
	now func() time.Time
	log *zap.Logger
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	db, err := sqlite.Open(context.Background(), t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return &harness{t: t, db: db, dns: dnstest.Start(t), now: time.Now, log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
}

// testMessage is a plain message from from to rcpts, with LF line
// endings (the relay normalises them).
func testMessage(from string, rcpts []string, subject string) []byte {
	return fmt.Appendf(nil, "From: Sender <%s>\nTo: %s\nSubject: %s\nDate: Sat, 21 Nov 2026 10:00:00 +0000\nMessage-ID: <%s@sender.test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\nHello.\n.A line with a leading dot.\n",
		from, strings.Join(rcpts, ", "), subject, strings.ReplaceAll(subject, " ", "-"))
}

// accept commits a message for route r with the deliveries relay.Deliveries
// builds, after mod had its say.
func (h *harness) accept(r relay.Route, login, from string, rcpts []string, mod ...func(*store.Message)) *store.Message {
	h.t.Helper()
	now := h.now().UTC()
	raw := testMessage(from, rcpts, "test "+store.NewID(now))
	m := &store.Message{ID: store.NewID(now), Login: login, Route: r.Name, MailFrom: from, Recipients: rcpts,
		Received: now, Size: int64(len(raw)), Raw: raw}
	for _, f := range mod {
		f(m)
	}
	m.Deliveries = relay.Deliveries(m, r)
	if err := h.db.Accept(context.Background(), m); err != nil {
		h.t.Fatalf("Accept: %v", err)
	}
	return m
}

// deliveries returns the message's deliveries, by ID.
func (h *harness) deliveries(msgID string) []*store.Delivery {
	h.t.Helper()
	ds, err := h.db.Deliveries(context.Background(), store.DeliveryQuery{Scope: store.Scope{All: true}, MessageID: msgID})
	if err != nil {
		h.t.Fatalf("Deliveries: %v", err)
	}
	return ds
}

// settled reports whether no delivery of the message is queued or
// deferred any more.
func settled(ds []*store.Delivery) bool {
	for _, d := range ds {
		if d.State == store.DeliveryQueued || d.State == store.DeliveryDeferred {
			return false
		}
	}
	return len(ds) > 0
}

// wait polls the message's deliveries until cond holds (or fails the test
// after 60 s: a hang, not a timing assertion).
func (h *harness) wait(msgID string, what string, cond func([]*store.Delivery) bool) []*store.Delivery {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ds := h.deliveries(msgID)
		if cond(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, d := range ds {
				fmt.Fprintf(&b, "\n  %d %s attempts=%d reply=%q %+v", d.ID, d.State, d.Attempts, d.LastReply, d.Recipients)
			}
			h.t.Fatalf("timed out waiting for %s of %s:%s", what, msgID, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// events returns the message's events of the given types, as
// "type recipient" strings in order.
func (h *harness) events(msgID string, types ...string) []string {
	h.t.Helper()
	evs, err := h.db.Events(context.Background(), store.EventQuery{MessageID: msgID, Scope: store.Scope{All: true}})
	if err != nil {
		h.t.Fatalf("Events: %v", err)
	}
	var out []string
	for _, e := range evs {
		for _, ty := range types {
			if e.Type == ty {
				out = append(out, e.Type+" "+e.Recipient)
			}
		}
	}
	return out
}

// fastConfig is a worker configuration for tests: millisecond backoff,
// quick polls, the harness's DNS.
func (h *harness) fastConfig(routes ...relay.Route) relay.Config {
	return relay.Config{
		Settings:       relay.Settings{Routes: routes},
		Resolver:       h.dns.Resolver(),
		Now:            h.now,
		PollInterval:   20 * time.Millisecond,
		Backoff:        relay.Backoff{Initial: 5 * time.Millisecond, Factor: 2, Max: 40 * time.Millisecond},
		CommandTimeout: 10 * time.Second,
		DialTimeout:    5 * time.Second,
		AttemptTimeout: 30 * time.Second,
		Lease:          time.Minute,
	}
}

// start runs a worker until the test ends (or stop is called, which
// returns Run's error).
func (h *harness) start(cfg relay.Config) (*relay.Worker, func() error) {
	h.t.Helper()
	w, err := relay.NewWorker(cfg, h.db, h.db, h.log)
	if err != nil {
		h.t.Fatalf("NewWorker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-errc
		})
		return runErr
	}
	h.t.Cleanup(func() {
		if err := stop(); err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
	return w, stop
}

// key generates a DKIM key for domain and publishes it in the harness's
// DNS.
func (h *harness) key(alg, domain, selector string) *dkim.Key {
	h.t.Helper()
	s, _, err := dkim.Generate(alg, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	rec, err := dkim.DNSRecord(s.Public())
	if err != nil {
		h.t.Fatal(err)
	}
	h.dns.AddTXT(dkim.RecordName(selector, domain), rec)
	return &dkim.Key{Domain: domain, Selector: selector, Algorithm: alg, Signer: s}
}

// verify runs go-msgauth's verifier on raw with the harness's DNS and
// returns "d=domain a=alg ok|error" per signature.
func (h *harness) verify(raw []byte) []string {
	h.t.Helper()
	r := h.dns.Resolver()
	vs, err := msgdkim.VerifyWithOptions(strings.NewReader(string(raw)), &msgdkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return r.LookupTXT(context.Background(), name) },
	})
	if err != nil {
		h.t.Fatalf("Verify: %v", err)
	}
	var out []string
	for _, v := range vs {
		res := "ok"
		if v.Err != nil {
			res = v.Err.Error()
		}
		out = append(out, fmt.Sprintf("d=%s %s", v.Domain, res))
	}
	return out
}
