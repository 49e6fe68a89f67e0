package relay_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/features/bounce"
	"github.com/smtpgate/smtpgate/relay"
	"github.com/smtpgate/smtpgate/relay/dkim"
	"github.com/smtpgate/smtpgate/relay/internal/smtptest"
	"github.com/smtpgate/smtpgate/store"
)

// TestRelayToSmtpSink relays through Postfix's smtp-sink as a plain-text
// smarthost: every message arrives once, DKIM-signed, and every delivery
// ends sent with the sink's reply.
func TestRelayToSmtpSink(t *testing.T) {
	sink := smtptest.StartSink(t, true)
	h := newHarness(t)
	route := relay.Route{Name: "sink", Address: sink.Addr, TLS: relay.TLSNone, Helo: "relay.smtpgate.test", Concurrency: 4}
	cfg := h.fastConfig(route)
	cfg.Signer = dkim.NewSigner([]*dkim.Key{h.key(dkim.AlgorithmEd25519, "sender.test", "ed")}, dkim.Options{})
	w, _ := h.start(cfg)

	const n = 20
	var ids []string
	for i := range n {
		m := h.accept(route, "app", "app@sender.test", []string{fmt.Sprintf("r%d@one.test", i), fmt.Sprintf("r%d@two.test", i)})
		ids = append(ids, m.ID)
		w.Notify()
	}
	for _, id := range ids {
		ds := h.wait(id, "sent", settled)
		if len(ds) != 1 || ds[0].State != store.DeliverySent || ds[0].Attempts != 1 {
			t.Fatalf("delivery %+v, want one sent in one attempt", ds[0])
		}
		for _, r := range ds[0].Recipients {
			if r.State != store.RecipientSent || !strings.HasPrefix(r.Reply, "250 2.0.0 Ok") {
				t.Errorf("recipient %+v", r)
			}
		}
		if got := h.events(id, store.EventSent); len(got) != 2 {
			t.Errorf("sent events %q, want 2", got)
		}
	}
	dumps := sink.Dumps(t)
	if len(dumps) != n {
		t.Fatalf("smtp-sink got %d messages, want %d", len(dumps), n)
	}
	for _, f := range dumps {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), "X-Helo-Args: relay.smtpgate.test\n") || !strings.Contains(string(raw), "X-Mail-Args: <app@sender.test>") {
			t.Errorf("%s: unexpected envelope:\n%s", f, raw)
		}
		if got := h.verify(raw); !slices.Equal(got, []string{"d=sender.test ok"}) {
			t.Errorf("%s: DKIM %q", f, got)
		}
	}
}

// counter counts, per recipient, the sessions that got as far as each
// step on a go-smtp receiver, so that a test can script failures for the
// first attempts only.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) inc(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
	return c.n[key]
}

// TestRetryOutcomes runs one message per receiver behaviour against the
// worker and the real store: each ends delivered, bounced, failed or still
// retrying as expected, no recipient is lost, and none is accepted twice.
func TestRetryOutcomes(t *testing.T) {
	tlsCfg, pool := smtptest.TLSConfig(t, "relay.test")
	var c counter
	firstTwice := func(key string, err error) error { // fails the first two times
		if c.inc(key) <= 2 {
			return err
		}
		return nil
	}
	tests := []struct {
		name  string
		opts  smtptest.Options
		route relay.Route
		// recipient -> final recipient state; "" means still pending
		want map[string]string
		// final delivery state; deferred means still retrying
		state    string
		attempts int // exact when > 0
		banner   bool
		// commandTimeout, when set, replaces the default of 10 s
		commandTimeout time.Duration
	}{
		{
			name: "4xx on RCPT, then accepted",
			opts: smtptest.Options{Rcpt: func(_, to string) error {
				if to == "busy@r.test" {
					return firstTwice("busy", smtptest.Reply("450 4.2.1 mailbox busy"))
				}
				return nil
			}},
			want:  map[string]string{"ok@r.test": store.RecipientSent, "busy@r.test": store.RecipientSent, "ok2@r.test": store.RecipientSent},
			state: store.DeliverySent, attempts: 3,
		},
		{
			name: "5xx on RCPT for one of three",
			opts: smtptest.Options{Rcpt: func(_, to string) error {
				if to == "unknown@r.test" {
					return smtptest.Reply("550 5.1.1 <unknown@r.test>: user unknown")
				}
				return nil
			}},
			want:  map[string]string{"ok@r.test": store.RecipientSent, "unknown@r.test": store.RecipientBounced, "ok2@r.test": store.RecipientSent},
			state: store.DeliverySent, attempts: 1,
		},
		{
			name:  "5xx on every RCPT",
			opts:  smtptest.Options{Rcpt: func(_, to string) error { return smtptest.Reply("550 5.1.1 no such user") }},
			want:  map[string]string{"a@r.test": store.RecipientBounced, "b@r.test": store.RecipientBounced},
			state: store.DeliveryBounced, attempts: 1,
		},
		{
			name: "421 at RCPT, then accepted",
			// Counted for the first recipient only: with PIPELINING the
			// server has the second RCPT too before the client sees the 421.
			opts: smtptest.Options{Rcpt: func(_, to string) error {
				if to != "a@r.test" {
					return nil
				}
				return firstTwice("421", smtptest.Reply("421 4.7.0 too many connections"))
			}},
			want:  map[string]string{"a@r.test": store.RecipientSent, "b@r.test": store.RecipientSent},
			state: store.DeliverySent, attempts: 3,
		},
		{
			name:   "421 at connect until expiry",
			banner: true,
			route:  relay.Route{MaxAge: 50 * time.Millisecond},
			want:   map[string]string{"a@r.test": store.RecipientFailed, "b@r.test": store.RecipientFailed},
			state:  store.DeliveryFailed,
		},
		{
			name: "connection dropped mid-DATA, then accepted",
			opts: smtptest.Options{DataStart: func(string, []string) (int, error) {
				if c.inc("drop") == 1 {
					return 100, nil
				}
				return 0, nil
			}},
			want:  map[string]string{"a@r.test": store.RecipientSent, "b@r.test": store.RecipientSent},
			state: store.DeliverySent, attempts: 2,
		},
		{
			name: "a reply slower than the command timeout, then a quick one",
			opts: smtptest.Options{Rcpt: func(_, to string) error {
				if c.inc("slow") == 1 {
					time.Sleep(time.Second)
				}
				return nil
			}},
			commandTimeout: 300 * time.Millisecond,
			want:           map[string]string{"a@r.test": store.RecipientSent},
			state:          store.DeliverySent, attempts: 2,
		},
		{
			name:  "STARTTLS required, certificate not checked",
			opts:  smtptest.Options{TLS: tlsCfg, RequireTLS: true},
			route: relay.Route{TLS: relay.TLSStartTLS, InsecureSkipVerify: true},
			want:  map[string]string{"a@r.test": store.RecipientSent},
			state: store.DeliverySent, attempts: 1,
		},
		{
			name:  "STARTTLS required, certificate checked against the CA file",
			opts:  smtptest.Options{TLS: tlsCfg, RequireTLS: true},
			route: relay.Route{TLS: relay.TLSStartTLS, RootCAs: pool},
			want:  map[string]string{"a@r.test": store.RecipientSent},
			state: store.DeliverySent, attempts: 1,
		},
		{
			name:  "STARTTLS required, self-signed certificate checked: retrying",
			opts:  smtptest.Options{TLS: tlsCfg, RequireTLS: true},
			route: relay.Route{TLS: relay.TLSStartTLS},
			want:  map[string]string{"a@r.test": ""},
			state: store.DeliveryDeferred,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			var addr string
			var srv *smtptest.Server
			if tt.banner {
				addr = smtptest.StartBanner(t, "127.0.0.1:0", "421 4.7.0 Too many connections, slow down").Addr
			} else {
				srv = smtptest.Start(t, tt.opts)
				addr = srv.Addr
			}
			route := tt.route
			route.Name, route.Address = "up", addr
			if route.TLS == "" {
				route.TLS = relay.TLSNone
			}
			cfg := h.fastConfig(route)
			if tt.commandTimeout > 0 {
				cfg.CommandTimeout = tt.commandTimeout
			}
			h.start(cfg)

			var rcpts []string
			for r := range tt.want {
				rcpts = append(rcpts, r)
			}
			slices.Sort(rcpts)
			m := h.accept(route, "app", "app@sender.test", rcpts)
			var ds []*store.Delivery
			if tt.state == store.DeliveryDeferred {
				ds = h.wait(m.ID, "3 attempts", func(ds []*store.Delivery) bool { return ds[0].Attempts >= 3 })
			} else {
				ds = h.wait(m.ID, "the end", settled)
			}
			d := ds[0]
			if d.State != tt.state && !(tt.state == store.DeliveryDeferred && d.State == store.DeliveryQueued) {
				t.Fatalf("state %s, want %s (reply %q)", d.State, tt.state, d.LastReply)
			}
			if tt.attempts > 0 && d.Attempts != tt.attempts {
				t.Errorf("attempts %d, want %d", d.Attempts, tt.attempts)
			}
			sent := 0
			for _, r := range d.Recipients {
				want := tt.want[r.Address]
				if want == "" {
					want = store.RecipientPending
				}
				if r.State != want {
					t.Errorf("%s: state %s, want %s (reply %q)", r.Address, r.State, want, r.Reply)
				}
				if r.State == store.RecipientSent {
					sent++
				}
				if srv != nil {
					n := srv.Accepted(r.Address)
					if (r.State == store.RecipientSent) != (n == 1) || n > 1 {
						t.Errorf("%s: state %s but the server accepted it %d times", r.Address, r.State, n)
					}
				}
				if r.Reply == "" {
					t.Errorf("%s: no reply recorded", r.Address)
				}
			}
			// One terminal event per recipient that ended, with its reply.
			terminal := h.events(m.ID, store.EventSent, store.EventBounced, store.EventFailed)
			ended := 0
			for _, r := range d.Recipients {
				if r.State != store.RecipientPending {
					ended++
				}
			}
			if len(terminal) != ended {
				t.Errorf("terminal events %q, want %d", terminal, ended)
			}
			if d.State != store.DeliverySent && d.State != store.DeliveryBounced && len(h.events(m.ID, store.EventDeferred)) == 0 {
				t.Errorf("no deferred event")
			}
			attempts, err := h.db.Attempts(t.Context(), d.ID, store.Scope{All: true})
			if err != nil || len(attempts) != d.Attempts {
				t.Errorf("Attempts: %d recorded, delivery says %d (%v)", len(attempts), d.Attempts, err)
			}
			for _, a := range attempts {
				if a.Reply == "" || a.Host == "" {
					t.Errorf("attempt without reply or host: %+v", a)
				}
			}
		})
	}
}

// TestDirectMX delivers one message to five domains through the MX route:
// one delivery per domain, each ending as its DNS dictates.
func TestDirectMX(t *testing.T) {
	h := newHarness(t)
	srv := smtptest.Start(t, smtptest.Options{})
	z := h.dns
	z.AddMX("one.test", 10, "mx.one.test")
	z.AddA("mx.one.test", "127.0.0.1")
	z.AddA("implicit.test", "127.0.0.1")
	z.AddMX("null.test", 0, ".")
	z.AddMX("servfail.test", 10, "mx.servfail.test")
	z.SetRcode("servfail.test", 15 /* MX */, 2 /* SERVFAIL */)
	z.AddMX("backup.test", 10, "down.backup.test")
	z.AddMX("backup.test", 20, "up.backup.test")
	z.AddA("down.backup.test", "127.0.0.2") // nothing listens there
	z.AddA("up.backup.test", "127.0.0.1")

	route := relay.Route{Name: "direct", MX: true, Port: srv.Port, Helo: "relay.smtpgate.test", PerDomainConcurrency: 2}
	h.start(h.fastConfig(route))
	rcpts := []string{"a@one.test", "b@implicit.test", "c@null.test", "d@servfail.test", "e@backup.test", "f@One.Test"}
	m := h.accept(route, "app", "app@sender.test", rcpts)
	ds := h.wait(m.ID, "every domain but servfail.test", func(ds []*store.Delivery) bool {
		for _, d := range ds {
			if d.Domain == "servfail.test" && d.Attempts < 2 || d.Domain != "servfail.test" && !settled([]*store.Delivery{d}) {
				return false
			}
		}
		return true
	})
	want := map[string]string{
		"one.test": store.DeliverySent, "implicit.test": store.DeliverySent, "null.test": store.DeliveryBounced,
		"servfail.test": store.DeliveryDeferred, "backup.test": store.DeliverySent,
	}
	if len(ds) != len(want) {
		t.Fatalf("%d deliveries, want %d (one per domain)", len(ds), len(want))
	}
	for _, d := range ds {
		if got := d.State; got != want[d.Domain] && !(want[d.Domain] == store.DeliveryDeferred && got == store.DeliveryQueued) {
			t.Errorf("%s: %s (%q), want %s", d.Domain, got, d.LastReply, want[d.Domain])
		}
	}
	for _, r := range []string{"a@one.test", "b@implicit.test", "e@backup.test", "f@One.Test"} {
		if n := srv.Accepted(r); n != 1 {
			t.Errorf("%s accepted %d times", r, n)
		}
	}
	if n := srv.Accepted("c@null.test") + srv.Accepted("d@servfail.test"); n != 0 {
		t.Errorf("undeliverable recipients accepted %d times", n)
	}
	for _, d := range ds {
		if d.Domain == "null.test" && !strings.HasPrefix(d.Recipients[0].Reply, "556 5.1.10") {
			t.Errorf("null MX reply %q", d.Recipients[0].Reply)
		}
		if d.Domain == "servfail.test" && !strings.HasPrefix(d.Recipients[0].Reply, "451 4.4.3") {
			t.Errorf("SERVFAIL reply %q", d.Recipients[0].Reply)
		}
	}
	for _, msg := range srv.Messages() {
		if msg.Helo != "relay.smtpgate.test" {
			t.Errorf("EHLO %q", msg.Helo)
		}
	}
}

// TestDKIM: every relayed message verifies with go-msgauth against the
// keys in DNS: RSA, Ed25519 and both at once; the per-login override signs
// with the parent domain's key.
func TestDKIM(t *testing.T) {
	h := newHarness(t)
	srv := smtptest.Start(t, smtptest.Options{})
	rsaKey := h.key(dkim.AlgorithmRSA, "rsa.test", "r1")
	edKey := h.key(dkim.AlgorithmEd25519, "ed.test", "e1")
	dualRSA := h.key(dkim.AlgorithmRSA, "dual.test", "r2")
	dualEd := h.key(dkim.AlgorithmEd25519, "dual.test", "e2")
	parent := h.key(dkim.AlgorithmEd25519, "parent.test", "p1")
	route := relay.Route{Name: "up", Address: srv.Addr, TLS: relay.TLSNone}
	cfg := h.fastConfig(route)
	cfg.Signer = dkim.NewSigner([]*dkim.Key{rsaKey, edKey, dualRSA, dualEd, parent}, dkim.Options{})
	cfg.SigningDomain = func(login string) string {
		if login == "child-app" {
			return "parent.test"
		}
		return ""
	}
	h.start(cfg)

	tests := []struct {
		login, from string
		want        []string
	}{
		{"app", "a@rsa.test", []string{"d=rsa.test ok"}},
		{"app", "a@ed.test", []string{"d=ed.test ok"}},
		{"app", "a@dual.test", []string{"d=dual.test ok", "d=dual.test ok"}},
		{"child-app", "a@news.parent.test", []string{"d=parent.test ok"}},
		{"app", "a@unsigned.test", nil},
	}
	for _, tt := range tests {
		m := h.accept(route, tt.login, tt.from, []string{"x@r.test"})
		h.wait(m.ID, "sent", settled)
		var got []byte
		for _, msg := range srv.Messages() {
			if msg.From == tt.from {
				got = msg.Raw
			}
		}
		if got == nil {
			t.Fatalf("%s: not received", tt.from)
		}
		if v := h.verify(got); !slices.Equal(v, tt.want) {
			t.Errorf("%s: verifications %q, want %q", tt.from, v, tt.want)
		}
		if strings.Contains(string(got), "\n") && strings.Count(string(got), "\r\n") != strings.Count(string(got), "\n") {
			t.Errorf("%s: bare LF on the wire", tt.from)
		}
	}
}

// TestVERPPerRecipient: with bounce tracking on, each recipient of a
// multi-recipient message gets its own VERP sender, and a retry sends only
// to the recipient still pending.
func TestVERPPerRecipient(t *testing.T) {
	h := newHarness(t)
	var c counter
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(_, to string) error {
		if to == "late@r.test" && c.inc(to) == 1 {
			return smtptest.Reply("451 4.3.0 try again")
		}
		return nil
	}})
	codec, err := bounce.NewCodec([]byte("0123456789abcdef0123"), "bounce.smtpgate.test")
	if err != nil {
		t.Fatal(err)
	}
	route := relay.Route{Name: "up", Address: srv.Addr, TLS: relay.TLSNone}
	cfg := h.fastConfig(route)
	cfg.Bounce = codec
	h.start(cfg)
	rcpts := []string{"a@r.test", "late@r.test", "c@r.test"}
	m := h.accept(route, "app", "app@sender.test", rcpts, func(m *store.Message) {
		m.Processing.Features = map[string]bool{features.TrackBounces: true}
	})
	ds := h.wait(m.ID, "sent", settled)
	if ds[0].State != store.DeliverySent || ds[0].Attempts != 2 {
		t.Fatalf("delivery %+v", ds[0])
	}
	msgs := srv.Messages()
	if len(msgs) != 3 {
		t.Fatalf("%d transactions, want 3", len(msgs))
	}
	for _, msg := range msgs {
		id, idx, err := codec.Parse(msg.From)
		if err != nil || id != m.ID || len(msg.To) != 1 || rcpts[idx] != msg.To[0] {
			t.Errorf("transaction from %q to %q: VERP decodes to %s/%d (%v)", msg.From, msg.To, id, idx, err)
		}
	}
	for _, r := range rcpts {
		if n := srv.Accepted(r); n != 1 {
			t.Errorf("%s accepted %d times", r, n)
		}
	}

	// Without bounce tracking the envelope sender is kept, one transaction.
	m2 := h.accept(route, "app", "app@sender.test", []string{"d@r.test", "e@r.test"})
	h.wait(m2.ID, "sent", settled)
	last := srv.Messages()[len(srv.Messages())-1]
	if last.From != "app@sender.test" || len(last.To) != 2 {
		t.Errorf("plain message sent as %q to %q", last.From, last.To)
	}
}

// TestSendAtFuture: a delivery due later is not sent until the queue's
// clock reaches it.
func TestSendAtFuture(t *testing.T) {
	h := newHarness(t)
	clk := newClock()
	h.now = clk.Now
	srv := smtptest.Start(t, smtptest.Options{})
	route := relay.Route{Name: "up", Address: srv.Addr, TLS: relay.TLSNone}
	w, _ := h.start(h.fastConfig(route))

	later := h.accept(route, "app", "app@sender.test", []string{"later@r.test"}, func(m *store.Message) {
		m.SendAt = clk.Now().Add(time.Hour)
	})
	now := h.accept(route, "app", "app@sender.test", []string{"now@r.test"})
	w.Notify()
	h.wait(now.ID, "sent", settled)
	// The worker has claimed since both were committed; the later one
	// stays queued through more polls.
	time.Sleep(100 * time.Millisecond)
	if ds := h.deliveries(later.ID); ds[0].State != store.DeliveryQueued || ds[0].Attempts != 0 || srv.Accepted("later@r.test") != 0 {
		t.Fatalf("future delivery touched: %+v", ds[0])
	}
	clk.Add(59 * time.Minute)
	w.Notify()
	time.Sleep(100 * time.Millisecond)
	if srv.Accepted("later@r.test") != 0 {
		t.Fatal("sent a minute early")
	}
	clk.Add(time.Minute)
	w.Notify()
	ds := h.wait(later.ID, "sent", settled)
	if ds[0].State != store.DeliverySent || srv.Accepted("later@r.test") != 1 {
		t.Fatalf("delivery %+v", ds[0])
	}
}

// TestGracefulShutdown: attempts in progress finish, claimed ones that
// had not started are released, and another worker takes them over.
func TestGracefulShutdown(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	inRcpt := make(chan string, 10)
	var blocking atomic.Bool
	blocking.Store(true)
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(_, to string) error {
		if blocking.Load() {
			inRcpt <- to
			<-release
		}
		return nil
	}})
	route := relay.Route{Name: "up", Address: srv.Addr, TLS: relay.TLSNone, Concurrency: 1}
	cfgA := h.fastConfig(route)
	cfgA.Owner = "worker-a"
	cfgA.ShutdownGrace = time.Minute
	_, stopA := h.start(cfgA)

	var ids []string
	for i := range 4 {
		ids = append(ids, h.accept(route, "app", "app@sender.test", []string{fmt.Sprintf("r%d@r.test", i)}).ID)
	}
	first := <-inRcpt // one attempt in progress, three claimed and waiting
	stopped := make(chan error, 1)
	go func() { stopped <- stopA() }()
	time.Sleep(50 * time.Millisecond) // let Run see the cancellation
	blocking.Store(false)
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if srv.Accepted(first) != 1 {
		t.Fatalf("the attempt in progress was not allowed to finish: %s accepted %d times", first, srv.Accepted(first))
	}
	// Released deliveries are due and unleased: worker B takes them now,
	// long before any lease would have expired.
	cfgB := h.fastConfig(route)
	cfgB.Owner = "worker-b"
	h.start(cfgB)
	for i, id := range ids {
		ds := h.wait(id, "sent", settled)
		rcpt := fmt.Sprintf("r%d@r.test", i)
		if ds[0].State != store.DeliverySent || ds[0].Attempts != 1 || srv.Accepted(rcpt) != 1 {
			t.Errorf("%s: %+v, accepted %d times", rcpt, ds[0], srv.Accepted(rcpt))
		}
	}
}

// TestShutdownInterrupts: an attempt that outlasts the grace period is
// interrupted; its delivery is due again at once and another worker
// delivers it.
func TestShutdownInterrupts(t *testing.T) {
	h := newHarness(t)
	var c counter
	stuck := make(chan struct{})
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(_, to string) error {
		if c.inc(to) == 1 {
			stuck <- struct{}{}
			time.Sleep(2 * time.Second) // never answered in time
		}
		return nil
	}})
	route := relay.Route{Name: "up", Address: srv.Addr, TLS: relay.TLSNone}
	cfgA := h.fastConfig(route)
	cfgA.Owner, cfgA.ShutdownGrace = "worker-a", 100*time.Millisecond
	cfgA.Backoff = relay.Backoff{Initial: time.Hour, Factor: 1, Max: time.Hour} // an ordinary failure would wait an hour
	_, stopA := h.start(cfgA)
	m := h.accept(route, "app", "app@sender.test", []string{"x@r.test"})
	<-stuck
	if err := stopA(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	ds := h.deliveries(m.ID)
	if ds[0].State != store.DeliveryDeferred || ds[0].Attempts != 1 || ds[0].NextAttempt.After(time.Now()) {
		t.Fatalf("interrupted delivery %+v, want deferred and due now", ds[0])
	}
	if !strings.Contains(ds[0].LastReply, "interrupted") {
		t.Errorf("reply %q", ds[0].LastReply)
	}
	cfgB := h.fastConfig(route)
	cfgB.Owner = "worker-b"
	h.start(cfgB)
	ds = h.wait(m.ID, "sent", settled)
	if ds[0].State != store.DeliverySent || srv.Accepted("x@r.test") != 1 {
		t.Fatalf("%+v, accepted %d", ds[0], srv.Accepted("x@r.test"))
	}
}

// TestSlowDownHalvesConcurrency: a 421 halves the destination's
// concurrency (8 to 4) instead of failing mail: the deferred delivery is
// retried and sent, and the next 40 messages never have more than 4
// sessions at the receiver at once.
func TestSlowDownHalvesConcurrency(t *testing.T) {
	h := newHarness(t)
	var inFlight, peak atomic.Int32
	var c counter
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(_, to string) error {
		if c.inc("all") == 1 {
			return smtptest.Reply("421 4.7.0 too many connections")
		}
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		return nil
	}})
	route := relay.Route{Name: "up", Address: srv.Addr, TLS: relay.TLSNone, Concurrency: 8}
	cfg := h.fastConfig(route)
	cfg.SlowDownPeriod = time.Hour // no recovery during the test
	h.start(cfg)

	first := h.accept(route, "app", "app@sender.test", []string{"first@r.test"})
	ds := h.wait(first.ID, "sent", settled)
	if ds[0].State != store.DeliverySent || ds[0].Attempts != 2 {
		t.Fatalf("the delivery that got 421: %+v, want sent on the second attempt", ds[0])
	}
	var ids []string
	for i := range 40 {
		ids = append(ids, h.accept(route, "app", "app@sender.test", []string{fmt.Sprintf("r%d@r.test", i)}).ID)
	}
	for _, id := range ids {
		h.wait(id, "sent", settled)
	}
	if p := peak.Load(); p > 4 {
		t.Errorf("peak concurrency after the 421 = %d, want at most 4", p)
	}
	for i := range 40 {
		if n := srv.Accepted(fmt.Sprintf("r%d@r.test", i)); n != 1 {
			t.Errorf("r%d accepted %d times", i, n)
		}
	}
}

// TestRateLimit: 16 messages at 120 per minute (a burst of 10, then two
// per second) cannot all be sent in under 2.5 s.
func TestRateLimit(t *testing.T) {
	h := newHarness(t)
	srv := smtptest.Start(t, smtptest.Options{})
	route := relay.Route{Name: "up", Address: srv.Addr, TLS: relay.TLSNone, RatePerMinute: 120}
	h.start(h.fastConfig(route))
	start := time.Now()
	var ids []string
	for i := range 16 {
		ids = append(ids, h.accept(route, "app", "app@sender.test", []string{fmt.Sprintf("r%d@r.test", i)}).ID)
	}
	for _, id := range ids {
		h.wait(id, "sent", settled)
	}
	if el := time.Since(start); el < 2500*time.Millisecond {
		t.Errorf("16 messages at 120/min took %v, want at least 2.5 s", el)
	}
	if len(srv.Messages()) != 16 {
		t.Errorf("%d messages received", len(srv.Messages()))
	}
}

// TestUnknownRouteAndMissingMessage: a delivery whose route is not
// configured is retried (the route may come back with a reload) until it
// expires; one whose message is gone fails at once.
func TestUnknownRouteAndReload(t *testing.T) {
	h := newHarness(t)
	srv := smtptest.Start(t, smtptest.Options{})
	known := relay.Route{Name: "known", Address: srv.Addr, TLS: relay.TLSNone}
	w, _ := h.start(h.fastConfig(known))
	later := relay.Route{Name: "later", Address: srv.Addr, TLS: relay.TLSNone}
	m := h.accept(later, "app", "app@sender.test", []string{"x@r.test"})
	ds := h.wait(m.ID, "two attempts", func(ds []*store.Delivery) bool { return ds[0].Attempts >= 2 })
	if !strings.Contains(ds[0].LastReply, `route "later" is not configured`) {
		t.Errorf("reply %q", ds[0].LastReply)
	}
	if err := w.Reload(relay.Settings{Routes: []relay.Route{known, later}}); err != nil {
		t.Fatal(err)
	}
	ds = h.wait(m.ID, "sent", settled)
	if ds[0].State != store.DeliverySent || srv.Accepted("x@r.test") != 1 {
		t.Fatalf("%+v", ds[0])
	}
	if err := w.Reload(relay.Settings{Routes: []relay.Route{{Name: "bad"}}}); err == nil {
		t.Error("Reload accepted a smarthost without address")
	}
}

func TestNewWorkerRejectsBadConfig(t *testing.T) {
	h := newHarness(t)
	for _, cfg := range []relay.Config{
		{AttemptTimeout: time.Minute, Lease: time.Minute},
		{Settings: relay.Settings{Routes: []relay.Route{{Name: "a", Address: "h:25"}, {Name: "a", Address: "h:25"}}}},
		{Settings: relay.Settings{Routes: []relay.Route{{Address: "h:25"}}}},
		{Settings: relay.Settings{Routes: []relay.Route{{Name: "a", Address: "h:25", TLS: "ssl"}}}},
		{Settings: relay.Settings{Routes: []relay.Route{{Name: "a", MX: true, Username: "u"}}}},
	} {
		if _, err := relay.NewWorker(cfg, h.db, h.db, h.log); err == nil {
			t.Errorf("NewWorker(%+v) = nil error", cfg)
		}
	}
}

// TestMessageGone: a delivery whose message cannot be read any more (here
// the worker reads messages from another, empty store) fails at once
// instead of being retried until it expires.
func TestMessageGone(t *testing.T) {
	h := newHarness(t)
	other := newHarness(t)
	srv := smtptest.Start(t, smtptest.Options{})
	route := relay.Route{Name: "up", Address: srv.Addr, TLS: relay.TLSNone}
	w, err := relay.NewWorker(h.fastConfig(route), h.db, other.db, h.log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	m := h.accept(route, "app", "app@sender.test", []string{"x@r.test"})
	w.Notify()
	ds := h.wait(m.ID, "the end", settled)
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Run: %v", err)
	}
	if ds[0].State != store.DeliveryFailed || ds[0].Attempts != 1 || !strings.HasPrefix(ds[0].Recipients[0].Reply, "554 5.3.0") {
		t.Fatalf("%+v", ds[0])
	}
	if got := h.events(m.ID, store.EventFailed); len(got) != 1 {
		t.Errorf("failed events %q", got)
	}
	if len(srv.Messages()) != 0 {
		t.Error("something was sent")
	}
}
