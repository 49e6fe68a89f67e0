package relay_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/relay"
	"github.com/smtpgate/smtpgate/relay/internal/smtptest"
	"github.com/smtpgate/smtpgate/store"
)

// countingSource is the real store, counting message reads.
type countingSource struct {
	relay.MessageSource
	gets atomic.Int32
}

func (s *countingSource) Get(ctx context.Context, id string, scope store.Scope) (*store.Message, error) {
	s.gets.Add(1)
	return s.MessageSource.Get(ctx, id, scope)
}

// TestRememberedMessages: a message handed to Remember is sent by the first
// attempt of each of its deliveries without reading the store, byte for
// byte as the store would have given it; a retry reads the store; with the
// cache off every attempt reads it.
func TestRememberedMessages(t *testing.T) {
	for _, tt := range []struct {
		cache int64
		gets  int32
	}{
		{0, 1},  // the default cache: only the retry reads
		{-1, 3}, // off: two first attempts and the retry
	} {
		t.Run(fmt.Sprintf("cache=%d", tt.cache), func(t *testing.T) {
			h := newHarness(t)
			var c counter
			srv := smtptest.Start(t, smtptest.Options{Rcpt: func(_, to string) error {
				if to == "busy@two.test" && c.inc(to) == 1 {
					return smtptest.Reply("450 4.2.1 mailbox busy")
				}
				return nil
			}})
			h.dns.AddA("one.test", "127.0.0.1")
			h.dns.AddA("two.test", "127.0.0.1")
			route := relay.Route{Name: "direct", MX: true, Port: srv.Port}
			cfg := h.fastConfig(route)
			cfg.MessageCache = tt.cache
			src := &countingSource{MessageSource: h.db}
			w, err := relay.NewWorker(cfg, h.db, src, h.log)
			if err != nil {
				t.Fatal(err)
			}
			// Committed and remembered before the worker runs, so that
			// no attempt can start before Remember.
			m := h.accept(route, "app", "app@sender.test", []string{"a@one.test", "busy@two.test"})
			w.Remember(m)
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- w.Run(ctx) }()
			ds := h.wait(m.ID, "the end", settled)
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Run: %v", err)
			}
			attempts := map[string]int{}
			for _, d := range ds {
				if d.State != store.DeliverySent {
					t.Errorf("%s: %s (%q)", d.Domain, d.State, d.LastReply)
				}
				attempts[d.Domain] = d.Attempts
			}
			if attempts["one.test"] != 1 || attempts["two.test"] != 2 {
				t.Errorf("attempts %v, want one.test 1, two.test 2", attempts)
			}
			if n := src.gets.Load(); n != tt.gets {
				t.Errorf("%d store reads, want %d", n, tt.gets)
			}
			want := strings.ReplaceAll(string(m.Raw), "\n", "\r\n")
			msgs := srv.Messages()
			if len(msgs) != 2 {
				t.Fatalf("server got %d messages, want 2", len(msgs))
			}
			for _, got := range msgs {
				if string(got.Raw) != want {
					t.Errorf("message for %v:\n%q\nwant\n%q", got.To, got.Raw, want)
				}
			}
		})
	}
}

// claimCounter is the real store, counting the two kinds of claim: scans,
// and claims by id (which the worker makes through CompleteAndClaim).
type claimCounter struct {
	store.Queue
	scans, byID atomic.Int32
}

func (q *claimCounter) ClaimDeliveries(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*store.Delivery, error) {
	q.scans.Add(1)
	return q.Queue.ClaimDeliveries(ctx, owner, now, limit, lease)
}

func (q *claimCounter) CompleteAndClaim(ctx context.Context, owner string, cs []store.Completion, ids []int64,
	now time.Time, lease time.Duration) ([]error, []*store.Delivery, error) {
	if len(ids) > 0 {
		q.byID.Add(1)
	}
	return q.Queue.CompleteAndClaim(ctx, owner, cs, ids, now, lease)
}

// TestRememberedClaimedByID: deliveries handed to Remember are claimed by
// id, without a claim that looks through the queue; a Notify without them
// (a retry through the API) still looks through the queue; a delivery not
// due yet is left to the scan that finds it when it is due.
func TestRememberedClaimedByID(t *testing.T) {
	h := newHarness(t)
	srv := smtptest.Start(t, smtptest.Options{})
	h.dns.AddA("one.test", "127.0.0.1")
	route := relay.Route{Name: "direct", MX: true, Port: srv.Port}
	cfg := h.fastConfig(route)
	cfg.PollInterval = time.Hour // no scan but the first, unless asked for
	q := &claimCounter{Queue: h.db}
	w, err := relay.NewWorker(cfg, q, h.db, h.log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	// The first scan, at start, finds the queue empty.
	for q.scans.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := range 5 {
		m := h.accept(route, "app", "app@sender.test", []string{fmt.Sprintf("u%d@one.test", i)})
		w.Remember(m)
		w.Notify()
		h.wait(m.ID, "sent", settled)
	}
	if n := q.scans.Load(); n != 1 {
		t.Errorf("%d scan claims for remembered deliveries, want only the first", n)
	}
	if q.byID.Load() == 0 {
		t.Error("no claim by id")
	}
	// Not remembered (a retry through the API, say): Notify scans.
	m := h.accept(route, "app", "app@sender.test", []string{"plain@one.test"})
	w.Notify()
	h.wait(m.ID, "sent", settled)
	if n := q.scans.Load(); n < 2 {
		t.Errorf("%d scan claims after a Notify without Remember, want 2 or more", n)
	}
	if got := len(srv.Messages()); got != 6 {
		t.Errorf("server got %d messages, want 6", got)
	}
}

// TestShutdownRecordsOutcomesBeforeRelease stops the worker right after
// the receiver took every message, while outcomes may still wait for
// their batched write: each must be recorded (sent, one attempt) before
// the leases are released, so that nothing is sent twice.
func TestShutdownRecordsOutcomesBeforeRelease(t *testing.T) {
	h := newHarness(t)
	srv := smtptest.Start(t, smtptest.Options{})
	h.dns.AddA("one.test", "127.0.0.1")
	route := relay.Route{Name: "direct", MX: true, Port: srv.Port}
	w, err := relay.NewWorker(h.fastConfig(route), h.db, h.db, h.log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	const n = 20
	var ids []string
	for i := range n {
		m := h.accept(route, "app", "app@sender.test", []string{fmt.Sprintf("u%d@one.test", i)})
		w.Remember(m)
		w.Notify()
		ids = append(ids, m.ID)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(srv.Messages()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got %d of %d messages", len(srv.Messages()), n)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, id := range ids {
		ds := h.deliveries(id)
		if len(ds) != 1 || ds[0].State != store.DeliverySent || ds[0].Attempts != 1 {
			t.Errorf("message %s after shutdown: %+v, want sent after one attempt", id, ds[0])
		}
	}
}
