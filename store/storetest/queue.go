package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/store"
)

// sameDelivery reports how got differs from want. Times the store sets
// (Created, Updated) may lose precision below a millisecond.
func sameDelivery(got, want *store.Delivery) error {
	var errs []error
	close := func(what string, g, w time.Time, exact bool) {
		d := g.Sub(w)
		if exact && !g.Equal(w) || !exact && (d >= time.Millisecond || d <= -time.Millisecond) {
			errs = append(errs, fmt.Errorf("%s: got %v, want %v", what, g, w))
		}
	}
	close("NextAttempt", got.NextAttempt, want.NextAttempt, true)
	close("Expires", got.Expires, want.Expires, true)
	close("Created", got.Created, want.Created, false)
	close("Updated", got.Updated, want.Updated, false)
	g, w := *got, *want
	g.NextAttempt, g.Expires, g.Created, g.Updated = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	w.NextAttempt, w.Expires, w.Created, w.Updated = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		errs = append(errs, fmt.Errorf("delivery: got %+v, want %+v", g, w))
	}
	return errors.Join(errs...)
}

// relay accepts a relayed message of login with one delivery per
// recipient, due at due.
func (h *harness) relay(login string, due time.Time, rcpts ...string) *store.Message {
	h.t.Helper()
	m := h.message(login, "smarthost", rcpts...)
	for i, r := range rcpts {
		m.Deliveries = append(m.Deliveries, &store.Delivery{
			Route: "smarthost", Domain: "example.org",
			Recipients:  []store.RecipientDelivery{{Address: r, Index: i, State: store.RecipientPending}},
			NextAttempt: ms(due), Expires: ms(due.Add(48 * time.Hour)),
		})
	}
	return h.accept(m)
}

func deliveryIDs(ds []*store.Delivery) []int64 {
	out := []int64{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func queueOf(t *testing.T, h *harness) store.Queue {
	q, ok := h.st.(store.Queue)
	if !ok {
		t.Skip("backend does not implement store.Queue")
	}
	return q
}

func testClaimDeliveries(t *testing.T, h *harness) {
	q := queueOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	late := h.relay("alpha", now.Add(-time.Minute), "late@example.org").Deliveries[0]
	early := h.relay("alpha", now.Add(-time.Hour), "early@example.org").Deliveries[0]
	future := h.relay("alpha", now.Add(time.Hour), "future@example.org").Deliveries[0]
	h.capture("alpha", "captured@example.org") // no delivery

	got, err := q.ClaimDeliveries(ctx, "worker-a", now, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ids := deliveryIDs(got); !reflect.DeepEqual(ids, []int64{early.ID, late.ID}) {
		t.Fatalf("claimed %v, want the due ones oldest first [%d %d]", ids, early.ID, late.ID)
	}
	if err := sameDelivery(got[0], early); err != nil {
		t.Errorf("claimed delivery: %v", err)
	}
	if again, err := q.ClaimDeliveries(ctx, "worker-b", now.Add(30*time.Second), 10, time.Minute); err != nil || len(again) != 0 {
		t.Errorf("claim during the lease: %v (%v), want none", deliveryIDs(again), err)
	}
	expired, err := q.ClaimDeliveries(ctx, "worker-b", now.Add(2*time.Minute), 1, time.Minute)
	if err != nil || !reflect.DeepEqual(deliveryIDs(expired), []int64{early.ID}) {
		t.Errorf("claim after the lease expired, limit 1: %v (%v), want [%d]", deliveryIDs(expired), err, early.ID)
	}
	all2h, err := q.ClaimDeliveries(ctx, "worker-c", now.Add(2*time.Hour), 10, time.Minute)
	if err != nil || !slices.Contains(deliveryIDs(all2h), future.ID) {
		t.Errorf("claim two hours later: %v (%v), want the future delivery too", deliveryIDs(all2h), err)
	}
}

func testClaimConcurrently(t *testing.T, h *harness) {
	q := queueOf(t, h)
	now := ms(time.Now())
	var rcpts []string
	for i := 0; i < 30; i++ {
		rcpts = append(rcpts, fmt.Sprintf("r%d@example.org", i))
	}
	h.relay("alpha", now.Add(-time.Second), rcpts...)
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		owner := fmt.Sprintf("worker-%d", w)
		wg.Go(func() {
			for {
				got, err := q.ClaimDeliveries(context.Background(), owner, now, 3, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					if prev, dup := seen[d.ID]; dup {
						t.Errorf("delivery %d leased to %s and %s", d.ID, prev, owner)
					}
					seen[d.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 30 {
		t.Errorf("%d deliveries claimed, want 30", len(seen))
	}
}

func testCompleteAttempt(t *testing.T, h *harness) {
	q := queueOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	m := h.relay("alpha", now.Add(-time.Second), "x@example.org")
	claimed, err := q.ClaimDeliveries(ctx, "worker-a", now, 1, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", deliveryIDs(claimed), err)
	}
	d := claimed[0]
	next := now.Add(10 * time.Minute)
	deferred := &store.Event{Type: store.EventDeferred, Recipient: "x@example.org", Time: now, Reply: "451 4.7.1 try later"}
	o := store.Outcome{
		Attempt:     store.Attempt{Time: now, Host: "mx.example.org:25", Reply: "451 4.7.1 try later", Duration: 1500 * time.Millisecond},
		Recipients:  []store.RecipientDelivery{{Address: "x@example.org", Index: 0, State: store.RecipientPending, Reply: "451 4.7.1 try later"}},
		State:       store.DeliveryDeferred,
		NextAttempt: next,
		Events:      []*store.Event{deferred},
	}
	if err := q.CompleteAttempt(ctx, d.ID, "worker-a", o); err != nil {
		t.Fatal(err)
	}
	if deferred.Seq <= 0 || deferred.MessageID != m.ID || deferred.Login != "alpha" {
		t.Errorf("outcome event after CompleteAttempt: %+v", deferred)
	}
	ds, err := q.Deliveries(ctx, store.DeliveryQuery{Scope: scopeOf("alpha"), MessageID: m.ID})
	if err != nil || len(ds) != 1 {
		t.Fatalf("Deliveries: %v %v", ds, err)
	}
	got := ds[0]
	if got.State != store.DeliveryDeferred || got.Attempts != 1 || !got.NextAttempt.Equal(next) ||
		got.LastReply != o.Attempt.Reply || !reflect.DeepEqual(got.Recipients, o.Recipients) {
		t.Errorf("after a deferral: %+v", got)
	}
	attempts, err := q.Attempts(ctx, d.ID, scopeOf("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	want := o.Attempt
	want.DeliveryID = d.ID
	if len(attempts) != 1 || attempts[0].DeliveryID != d.ID || !attempts[0].Time.Equal(now) || attempts[0].Host != want.Host ||
		attempts[0].Reply != want.Reply || attempts[0].Duration != want.Duration {
		t.Errorf("Attempts = %+v, want [%+v]", attempts, want)
	}
	if _, err := q.Attempts(ctx, d.ID, scopeOf("beta")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Attempts out of scope: %v, want ErrNotFound", err)
	}
	if es, ok := h.st.(store.EventStore); ok {
		events := eventsOf(t, es, m.ID)
		if len(events) == 0 || sameEvent(events[len(events)-1], deferred) != nil {
			t.Errorf("outcome event not listed: %+v", events)
		}
	}

	// The lease was released: completing again is refused.
	if err := q.CompleteAttempt(ctx, d.ID, "worker-a", o); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("second CompleteAttempt: %v, want ErrLeaseLost", err)
	}
	// Not due before next; due at next.
	if got, _ := q.ClaimDeliveries(ctx, "worker-b", next.Add(-time.Second), 10, time.Minute); len(got) != 0 {
		t.Errorf("claimed %v before its next attempt", deliveryIDs(got))
	}
	again, err := q.ClaimDeliveries(ctx, "worker-b", next, 10, time.Minute)
	if err != nil || !reflect.DeepEqual(deliveryIDs(again), []int64{d.ID}) {
		t.Fatalf("claim at next attempt: %v %v", deliveryIDs(again), err)
	}
	// worker-a lost it to worker-b: its outcome is dropped.
	sent := store.Outcome{Attempt: store.Attempt{Time: next, Reply: "250 ok"}, State: store.DeliverySent,
		Recipients: []store.RecipientDelivery{{Address: "x@example.org", State: store.RecipientSent, Reply: "250 ok"}}}
	if err := q.CompleteAttempt(ctx, d.ID, "worker-a", sent); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("CompleteAttempt by the old owner: %v, want ErrLeaseLost", err)
	}
	if attempts, _ := q.Attempts(ctx, d.ID, all); len(attempts) != 1 {
		t.Errorf("a lost lease recorded an attempt: %d attempts", len(attempts))
	}
	if err := q.CompleteAttempt(ctx, d.ID, "worker-b", sent); err != nil {
		t.Fatal(err)
	}
	ds, _ = q.Deliveries(ctx, store.DeliveryQuery{Scope: all, MessageID: m.ID})
	if len(ds) != 1 || ds[0].State != store.DeliverySent || ds[0].Attempts != 2 {
		t.Errorf("after sending: %+v", ds)
	}
	if got, _ := q.ClaimDeliveries(ctx, "worker-c", next.Add(time.Hour), 10, time.Minute); len(got) != 0 {
		t.Errorf("a sent delivery was claimed again: %v", deliveryIDs(got))
	}
	if err := q.CompleteAttempt(ctx, 1<<40, "worker-b", sent); !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("CompleteAttempt of an unknown delivery: %v", err)
	}
}

// testClaimByID claims named deliveries: only those due and not leased
// (or whose lease expired), in NextAttempt order; unknown ids, deliveries
// not due, leased to another owner or already sent are left alone.
func testClaimByID(t *testing.T, h *harness) {
	q := queueOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	later := h.relay("alpha", now.Add(-time.Second), "a@example.org")
	earlier := h.relay("alpha", now.Add(-2*time.Second), "b@example.org")
	notDue := h.relay("alpha", now.Add(time.Hour), "c@example.org")
	leased := h.relay("beta", now.Add(-3*time.Second), "d@example.org")
	other, err := q.ClaimDeliveries(ctx, "other", now, 1, time.Minute)
	if err != nil || len(other) != 1 || other[0].MessageID != leased.ID {
		t.Fatalf("claim by another owner: %+v %v", other, err)
	}
	id := func(m *store.Message) int64 { return m.Deliveries[0].ID }
	ids := []int64{id(later), id(notDue), id(leased), 1 << 40, id(earlier)}
	got, err := q.ClaimDeliveriesByID(ctx, "w", ids, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{id(earlier), id(later)}; !reflect.DeepEqual(deliveryIDs(got), want) {
		t.Fatalf("ClaimDeliveriesByID = %v, want %v", deliveryIDs(got), want)
	}
	if got[0].MessageID != earlier.ID || got[0].Login != "alpha" || len(got[0].Recipients) != 1 ||
		got[0].Recipients[0].Address != "b@example.org" || got[0].State != store.DeliveryQueued {
		t.Errorf("claimed delivery: %+v", got[0])
	}
	// Now leased to w: neither a scan nor another claim by id takes them.
	if again, err := q.ClaimDeliveriesByID(ctx, "x", ids, now, time.Minute); err != nil || len(again) != 0 {
		t.Errorf("claimed again by id: %v %v", deliveryIDs(again), err)
	}
	if again, err := q.ClaimDeliveries(ctx, "x", now, 10, time.Minute); err != nil || len(again) != 0 {
		t.Errorf("claimed again by a scan: %v %v", deliveryIDs(again), err)
	}
	// w's lease is its own to complete.
	o := store.Outcome{Attempt: store.Attempt{Time: now, Reply: "250 ok"}, State: store.DeliverySent,
		Recipients: []store.RecipientDelivery{{Address: "b@example.org", State: store.RecipientSent, Reply: "250 ok"}}}
	if err := q.CompleteAttempt(ctx, got[0].ID, "w", o); err != nil {
		t.Fatalf("complete a delivery claimed by id: %v", err)
	}
	// Expired leases are claimable by id; sent deliveries are not.
	expired, err := q.ClaimDeliveriesByID(ctx, "y", ids, now.Add(2*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{id(leased), id(later)}; !reflect.DeepEqual(deliveryIDs(expired), want) {
		t.Errorf("after the leases expired: %v, want %v", deliveryIDs(expired), want)
	}
	if none, err := q.ClaimDeliveriesByID(ctx, "y", nil, now, time.Minute); err != nil || len(none) != 0 {
		t.Errorf("ClaimDeliveriesByID(nil) = %v, %v", none, err)
	}
}

// testCompleteAttempts records several outcomes in one call: each gets
// its own result, and a lost lease or an unknown delivery in the batch
// records nothing of its own and does not fail the others.
func testCompleteAttempts(t *testing.T, h *harness) {
	q := queueOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	m1 := h.relay("alpha", now.Add(-3*time.Second), "a@example.org")
	m2 := h.relay("alpha", now.Add(-2*time.Second), "b@example.org")
	mine, err := q.ClaimDeliveries(ctx, "w", now, 2, time.Minute)
	if err != nil || len(mine) != 2 {
		t.Fatalf("claim: %v %v", deliveryIDs(mine), err)
	}
	m3 := h.relay("beta", now.Add(-time.Second), "c@example.org")
	theirs, err := q.ClaimDeliveries(ctx, "other", now, 10, time.Minute)
	if err != nil || len(theirs) != 1 {
		t.Fatalf("claim by another owner: %v %v", deliveryIDs(theirs), err)
	}
	sentEvent := &store.Event{Type: store.EventSent, Recipient: "a@example.org", Time: now, Reply: "250 ok"}
	deferredEvent := &store.Event{Type: store.EventDeferred, Recipient: "b@example.org", Time: now, Reply: "451 later"}
	lostEvent := &store.Event{Type: store.EventSent, Recipient: "c@example.org", Time: now, Reply: "250 ok"}
	next := now.Add(time.Hour)
	cs := []store.Completion{
		{ID: mine[0].ID, Outcome: store.Outcome{Attempt: store.Attempt{Time: now, Host: "mx:25", Reply: "250 ok"}, State: store.DeliverySent,
			Recipients: []store.RecipientDelivery{{Address: "a@example.org", State: store.RecipientSent, Reply: "250 ok"}},
			Events:     []*store.Event{sentEvent}}},
		{ID: theirs[0].ID, Outcome: store.Outcome{Attempt: store.Attempt{Time: now, Reply: "250 ok"}, State: store.DeliverySent,
			Recipients: []store.RecipientDelivery{{Address: "c@example.org", State: store.RecipientSent, Reply: "250 ok"}},
			Events:     []*store.Event{lostEvent}}},
		{ID: 1 << 40, Outcome: store.Outcome{Attempt: store.Attempt{Time: now, Reply: "250 ok"}, State: store.DeliverySent}},
		{ID: mine[1].ID, Outcome: store.Outcome{Attempt: store.Attempt{Time: now, Reply: "451 later"}, State: store.DeliveryDeferred,
			NextAttempt: next, Events: []*store.Event{deferredEvent}}},
	}
	errs := q.CompleteAttempts(ctx, "w", cs)
	if len(errs) != len(cs) {
		t.Fatalf("%d results for %d completions", len(errs), len(cs))
	}
	if errs[0] != nil || errs[3] != nil {
		t.Errorf("completions of held deliveries: %v, %v", errs[0], errs[3])
	}
	if !errors.Is(errs[1], store.ErrLeaseLost) {
		t.Errorf("completion of another owner's delivery: %v, want ErrLeaseLost", errs[1])
	}
	if !errors.Is(errs[2], store.ErrNotFound) && !errors.Is(errs[2], store.ErrLeaseLost) {
		t.Errorf("completion of an unknown delivery: %v", errs[2])
	}
	if sentEvent.Seq <= 0 || sentEvent.MessageID != m1.ID || sentEvent.Login != "alpha" ||
		deferredEvent.Seq <= 0 || deferredEvent.Seq == sentEvent.Seq || deferredEvent.MessageID != m2.ID {
		t.Errorf("events after CompleteAttempts: %+v, %+v", sentEvent, deferredEvent)
	}
	if lostEvent.Seq != 0 {
		t.Errorf("the lost completion's event got Seq %d", lostEvent.Seq)
	}
	for _, c := range []struct {
		m     *store.Message
		state string
		n     int
	}{{m1, store.DeliverySent, 1}, {m2, store.DeliveryDeferred, 1}, {m3, store.DeliveryQueued, 0}} {
		ds, err := q.Deliveries(ctx, store.DeliveryQuery{Scope: all, MessageID: c.m.ID})
		if err != nil || len(ds) != 1 {
			t.Fatalf("Deliveries(%s): %v %v", c.m.ID, ds, err)
		}
		if ds[0].State != c.state || ds[0].Attempts != c.n {
			t.Errorf("delivery of %s: state %s, %d attempts; want %s, %d", c.m.ID, ds[0].State, ds[0].Attempts, c.state, c.n)
		}
		if attempts, err := q.Attempts(ctx, ds[0].ID, all); err != nil || len(attempts) != c.n {
			t.Errorf("attempts of %s: %d (%v), want %d", c.m.ID, len(attempts), err, c.n)
		}
	}
	if es, ok := h.st.(store.EventStore); ok {
		for _, ev := range eventsOf(t, es, m3.ID) {
			if ev.Type == store.EventSent {
				t.Errorf("the lost completion's event was stored: %+v", ev)
			}
		}
	}
	// The other owner still holds its delivery and completes it.
	if errs := q.CompleteAttempts(ctx, "other", cs[1:2]); errs[0] != nil {
		t.Errorf("the owner's completion: %v", errs[0])
	}
	if got := q.CompleteAttempts(ctx, "w", nil); len(got) != 0 {
		t.Errorf("CompleteAttempts(nil) = %v", got)
	}
}

// testCompleteAndClaim hands back outcomes and takes named deliveries in
// one call: each completion gets its own result, and only the claimable
// deliveries named are claimed.
func testCompleteAndClaim(t *testing.T, h *harness) {
	q := queueOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	done := h.relay("alpha", now.Add(-3*time.Second), "a@example.org")
	held, err := q.ClaimDeliveries(ctx, "w", now, 1, time.Minute)
	if err != nil || len(held) != 1 || held[0].MessageID != done.ID {
		t.Fatalf("claim: %+v %v", held, err)
	}
	next := h.relay("alpha", now.Add(-time.Second), "b@example.org")
	notDue := h.relay("alpha", now.Add(time.Hour), "c@example.org")
	sent := &store.Event{Type: store.EventSent, Recipient: "a@example.org", Time: now, Reply: "250 ok"}
	cs := []store.Completion{
		{ID: held[0].ID, Outcome: store.Outcome{Attempt: store.Attempt{Time: now, Reply: "250 ok"}, State: store.DeliverySent,
			Recipients: []store.RecipientDelivery{{Address: "a@example.org", State: store.RecipientSent, Reply: "250 ok"}},
			Events:     []*store.Event{sent}}},
		{ID: 1 << 40, Outcome: store.Outcome{Attempt: store.Attempt{Time: now, Reply: "250 ok"}, State: store.DeliverySent}},
	}
	ids := []int64{next.Deliveries[0].ID, notDue.Deliveries[0].ID, held[0].ID}
	errs, claimed, err := q.CompleteAndClaim(ctx, "w", cs, ids, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 2 || errs[0] != nil || !(errors.Is(errs[1], store.ErrNotFound) || errors.Is(errs[1], store.ErrLeaseLost)) {
		t.Errorf("completion results %v", errs)
	}
	if sent.Seq <= 0 || sent.MessageID != done.ID {
		t.Errorf("event after CompleteAndClaim: %+v", sent)
	}
	// The sent delivery is not claimable any more, nor the one not due.
	if want := []int64{next.Deliveries[0].ID}; !reflect.DeepEqual(deliveryIDs(claimed), want) {
		t.Errorf("claimed %v, want %v", deliveryIDs(claimed), want)
	}
	ds, _ := q.Deliveries(ctx, store.DeliveryQuery{Scope: all, MessageID: done.ID})
	if len(ds) != 1 || ds[0].State != store.DeliverySent || ds[0].Attempts != 1 {
		t.Errorf("completed delivery: %+v", ds)
	}
	// Claimed by w: its outcome is w's to record.
	o := store.Outcome{Attempt: store.Attempt{Time: now, Reply: "250 ok"}, State: store.DeliverySent,
		Recipients: []store.RecipientDelivery{{Address: "b@example.org", State: store.RecipientSent, Reply: "250 ok"}}}
	errs, none, err := q.CompleteAndClaim(ctx, "w", []store.Completion{{ID: claimed[0].ID, Outcome: o}}, nil, now, time.Minute)
	if err != nil || len(errs) != 1 || errs[0] != nil || len(none) != 0 {
		t.Errorf("complete only: %v, claimed %v, %v", errs, deliveryIDs(none), err)
	}
}

func testReleaseDeliveries(t *testing.T, h *harness) {
	q := queueOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	h.relay("alpha", now.Add(-time.Second), "a@example.org", "b@example.org")
	got, err := q.ClaimDeliveries(ctx, "worker-a", now, 10, time.Hour)
	if err != nil || len(got) != 2 {
		t.Fatalf("claim: %v %v", deliveryIDs(got), err)
	}
	if err := q.ReleaseDeliveries(ctx, "worker-a"); err != nil {
		t.Fatal(err)
	}
	again, err := q.ClaimDeliveries(ctx, "worker-b", now, 10, time.Hour)
	if err != nil || len(again) != 2 {
		t.Errorf("after release: claimed %v (%v), want both", deliveryIDs(again), err)
	}
	for i := range again {
		if again[i].Attempts != 0 || again[i].State != store.DeliveryQueued {
			t.Errorf("release changed the delivery: %+v", again[i])
		}
	}
}

func testRetryAndCancel(t *testing.T, h *harness) {
	q := queueOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	m := h.relay("alpha", now.Add(time.Hour), "a@example.org")
	d := m.Deliveries[0]

	if err := q.RetryNow(ctx, d.ID, scopeOf("beta"), now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RetryNow out of scope: %v, want ErrNotFound", err)
	}
	if err := q.RetryNow(ctx, d.ID, scopeOf("alpha"), now); err != nil {
		t.Fatal(err)
	}
	got, err := q.ClaimDeliveries(ctx, "w", now, 10, time.Minute)
	if err != nil || !reflect.DeepEqual(deliveryIDs(got), []int64{d.ID}) {
		t.Fatalf("after RetryNow: claimed %v (%v)", deliveryIDs(got), err)
	}
	if err := q.ReleaseDeliveries(ctx, "w"); err != nil {
		t.Fatal(err)
	}

	td2 := &store.Delivery{Route: "smarthost", NextAttempt: now.Add(time.Hour), Expires: now.Add(48 * time.Hour),
		Recipients: []store.RecipientDelivery{{Address: "c@example.org", Index: 0, State: store.RecipientPending}, {Address: "d@example.org", Index: 1, State: store.RecipientPending}}}
	multi := h.message("alpha", "smarthost", "c@example.org", "d@example.org")
	multi.Deliveries = []*store.Delivery{td2}
	h.accept(multi)
	if err := q.CancelDelivery(ctx, td2.ID, scopeOf("beta"), now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CancelDelivery out of scope: %v, want ErrNotFound", err)
	}
	if err := q.CancelDelivery(ctx, td2.ID, scopeOf("alpha"), now); err != nil {
		t.Fatal(err)
	}
	ds, _ := q.Deliveries(ctx, store.DeliveryQuery{Scope: all, MessageID: multi.ID})
	if len(ds) != 1 || ds[0].State != store.DeliveryCancelled {
		t.Fatalf("after cancel: %+v", ds)
	}
	if es, ok := h.st.(store.EventStore); ok {
		var failed []string
		for _, e := range eventsOf(t, es, multi.ID) {
			if e.Type == store.EventFailed {
				failed = append(failed, e.Recipient)
			}
		}
		slices.Sort(failed)
		if !reflect.DeepEqual(failed, []string{"c@example.org", "d@example.org"}) {
			t.Errorf("failed events after cancel: %q, want one per pending recipient", failed)
		}
	}
	if err := q.CancelDelivery(ctx, td2.ID, all, now); !errors.Is(err, store.ErrState) {
		t.Errorf("cancelling a cancelled delivery: %v, want ErrState", err)
	}
	if err := q.RetryNow(ctx, td2.ID, all, now); !errors.Is(err, store.ErrState) {
		t.Errorf("retrying a cancelled delivery: %v, want ErrState", err)
	}
	if got, _ := q.ClaimDeliveries(ctx, "w", now.Add(2*time.Hour), 10, time.Minute); slices.Contains(deliveryIDs(got), td2.ID) {
		t.Error("a cancelled delivery was claimed")
	}
	if err := q.RetryNow(ctx, 1<<40, all, now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RetryNow of an unknown delivery: %v, want ErrNotFound", err)
	}
}

func testDeliveriesQuery(t *testing.T, h *harness) {
	q := queueOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	var alpha []int64
	for i := 0; i < 5; i++ {
		alpha = append(alpha, h.relay("alpha", now.Add(time.Hour), fmt.Sprintf("a%d@example.org", i)).Deliveries[0].ID)
		h.relay("beta", now.Add(time.Hour), fmt.Sprintf("b%d@example.org", i))
	}
	if err := q.CancelDelivery(ctx, alpha[1], all, now); err != nil {
		t.Fatal(err)
	}
	list := func(dq store.DeliveryQuery) []int64 {
		t.Helper()
		ds, err := q.Deliveries(ctx, dq)
		if err != nil {
			t.Fatalf("Deliveries(%+v): %v", dq, err)
		}
		return deliveryIDs(ds)
	}
	if got := list(store.DeliveryQuery{Scope: scopeOf("alpha")}); !reflect.DeepEqual(got, alpha) {
		t.Errorf("alpha's deliveries %v, want %v", got, alpha)
	}
	if got := list(store.DeliveryQuery{Scope: scopeOf("alpha"), AfterID: alpha[0], Limit: 2}); !reflect.DeepEqual(got, alpha[1:3]) {
		t.Errorf("paged: %v, want %v", got, alpha[1:3])
	}
	if got := list(store.DeliveryQuery{Scope: scopeOf("alpha"), States: []string{store.DeliveryCancelled}}); !reflect.DeepEqual(got, alpha[1:2]) {
		t.Errorf("cancelled: %v, want %v", got, alpha[1:2])
	}
	if got := list(store.DeliveryQuery{Scope: scopeOf("alpha"), States: []string{store.DeliveryQueued, store.DeliveryDeferred}}); len(got) != 4 {
		t.Errorf("queued or deferred: %v, want 4", got)
	}
	if got := list(store.DeliveryQuery{}); len(got) != 0 {
		t.Errorf("zero scope sees %v", got)
	}
	if got := list(store.DeliveryQuery{Scope: all}); len(got) != 10 {
		t.Errorf("admin sees %d deliveries, want 10", len(got))
	}
}
