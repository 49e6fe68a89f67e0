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

// contractTests are the subtests for the finer points of the contracts of
// Queue, Webhooks and Capture: defaults, state rules, limits, durability
// and isolation.
func contractTests() []struct {
	name string
	fn   func(*testing.T, *harness)
} {
	return []struct {
		name string
		fn   func(*testing.T, *harness)
	}{
		{"AcceptDeliveryDefaults", testDeliveryDefaults},
		{"CompleteAttemptNilRecipientsAndOrder", testCompleteNilRecipients},
		{"CompleteAttemptLeaseLostRecordsNothing", testLeaseLostRecordsNothing},
		{"ReleaseOnlyTheOwnersLeases", testReleaseOnlyOwner},
		{"CancelDeliveryRules", testCancelRules},
		{"DeliveriesLimits", testDeliveryLimits},
		{"QueueSurvivesReopen", testQueueReopen},
		{"WebhookFanOutConcurrent", testWebhookFanOutConcurrent},
		{"WebhookLeasesAndLimits", testWebhookLeases},
		{"SearchIsolationPagingLimits", testSearchIsolationPaging},
		{"PruneRules", testPruneRules},
		{"ClosedStoreRefusesWrites", testClosedWrites},
	}
}

// deliveries lists deliveries and fails the test on error.
func (h *harness) deliveries(q store.DeliveryQuery) []*store.Delivery {
	h.t.Helper()
	ds, err := h.st.Deliveries(context.Background(), q)
	if err != nil {
		h.t.Fatalf("Deliveries(%+v): %v", q, err)
	}
	return ds
}

// claim claims deliveries and fails the test on error.
func (h *harness) claim(owner string, now time.Time, limit int, lease time.Duration) []*store.Delivery {
	h.t.Helper()
	ds, err := h.st.ClaimDeliveries(context.Background(), owner, now, limit, lease)
	if err != nil {
		h.t.Fatalf("ClaimDeliveries(%s): %v", owner, err)
	}
	return ds
}

// testDeliveryDefaults: Accept fills in what the caller left zero.
func testDeliveryDefaults(t *testing.T, h *harness) {
	ctx := context.Background()
	explicit := msNow().Add(-time.Minute)
	m := h.message("alpha", "mx", "a@one.example", "b@two.example", "c@two.example")
	m.Deliveries = []*store.Delivery{
		{Route: "mx", Domain: "one.example", Expires: msNow().Add(24 * time.Hour),
			Recipients: []store.RecipientDelivery{{Address: "a@one.example", Index: 0}}},
		{Route: "mx", Domain: "two.example", NextAttempt: explicit, State: store.DeliveryQueued,
			Recipients: []store.RecipientDelivery{{Address: "b@two.example", Index: 1, State: store.RecipientPending}, {Address: "c@two.example", Index: 2}}},
	}
	// The store sets these whatever the caller says.
	m.Deliveries[0].MessageID, m.Deliveries[0].Login = "forged", "mallory"
	before := time.Now().Add(-time.Second)
	h.accept(m)
	after := time.Now().Add(time.Second)
	d0, d1 := m.Deliveries[0], m.Deliveries[1]
	if d0.ID <= 0 || d1.ID <= 0 || d0.ID == d1.ID {
		t.Fatalf("delivery IDs %d and %d", d0.ID, d1.ID)
	}
	for _, d := range m.Deliveries {
		if d.MessageID != m.ID || d.Login != "alpha" || d.State != store.DeliveryQueued || d.Attempts != 0 {
			t.Errorf("delivery after Accept: %+v", d)
		}
		if d.Created.IsZero() || !d.Updated.Equal(d.Created) || d.Created.Before(before) || d.Created.After(after) {
			t.Errorf("Created %v Updated %v, want equal and about now", d.Created, d.Updated)
		}
		for _, r := range d.Recipients {
			if r.State != store.RecipientPending {
				t.Errorf("recipient %s state %q, want pending", r.Address, r.State)
			}
		}
	}
	if !d0.NextAttempt.Equal(m.Received) {
		t.Errorf("zero NextAttempt became %v, want Received %v", d0.NextAttempt, m.Received)
	}
	if !d1.NextAttempt.Equal(explicit) {
		t.Errorf("explicit NextAttempt became %v, want %v", d1.NextAttempt, explicit)
	}
	got := h.deliveries(store.DeliveryQuery{Scope: scopeOf("alpha"), MessageID: m.ID})
	if len(got) != 2 {
		t.Fatalf("%d deliveries listed, want 2", len(got))
	}
	for i := range got {
		if err := sameDelivery(got[i], m.Deliveries[i]); err != nil {
			t.Errorf("listed delivery %d: %v", i, err)
		}
	}

	// A zero NextAttempt of a message held until SendAt is SendAt.
	held := h.message("alpha", "mx", "d@one.example")
	held.SendAt = msNow().Add(2 * time.Hour)
	held.Deliveries = []*store.Delivery{{Route: "mx", Domain: "one.example",
		Recipients: []store.RecipientDelivery{{Address: "d@one.example"}}}}
	h.accept(held)
	if !held.Deliveries[0].NextAttempt.Equal(held.SendAt) {
		t.Errorf("NextAttempt of a held message %v, want SendAt %v", held.Deliveries[0].NextAttempt, held.SendAt)
	}
	for _, d := range h.claim("w", msNow(), 10, time.Minute) {
		if d.ID == held.Deliveries[0].ID {
			t.Error("a delivery was claimed before its message's SendAt")
		}
	}
	if got := h.claim("w2", held.SendAt, 10, time.Minute); !slices.Contains(deliveryIDs(got), held.Deliveries[0].ID) {
		t.Errorf("at SendAt claimed %v, want the held delivery %d", deliveryIDs(got), held.Deliveries[0].ID)
	}

	// A failed Accept creates no delivery; a captured message has none.
	n := len(h.deliveries(store.DeliveryQuery{Scope: all}))
	dup := h.message("alpha", "mx", "e@one.example")
	dup.ID = m.ID
	dup.Deliveries = []*store.Delivery{{Route: "mx", Recipients: []store.RecipientDelivery{{Address: "e@one.example"}}}}
	if err := h.st.Accept(ctx, dup); !errors.Is(err, store.ErrDuplicateID) {
		t.Fatalf("duplicate Accept: %v", err)
	}
	c := h.capture("alpha", "f@example.org")
	if got := len(h.deliveries(store.DeliveryQuery{Scope: all})); got != n {
		t.Errorf("%d deliveries after a failed Accept and a capture, want %d", got, n)
	}
	if got := h.deliveries(store.DeliveryQuery{Scope: all, MessageID: c.ID}); len(got) != 0 {
		t.Errorf("captured message has deliveries %v", deliveryIDs(got))
	}
}

// testCompleteNilRecipients: an outcome without recipients leaves them as
// they were; attempts list in the order they were made.
func testCompleteNilRecipients(t *testing.T, h *harness) {
	ctx := context.Background()
	now := msNow()
	m := h.relay("alpha", now.Add(-time.Second), "x@example.org")
	want := m.Deliveries[0].Recipients
	var made []store.Attempt
	for i := 0; i < 3; i++ {
		at := now.Add(time.Duration(i) * time.Hour)
		got := h.claim("w", at, 10, time.Minute)
		if len(got) != 1 {
			t.Fatalf("attempt %d: claimed %v", i, deliveryIDs(got))
		}
		a := store.Attempt{DeliveryID: got[0].ID, Time: at, Host: fmt.Sprintf("mx%d.example.org:25", i),
			Reply: fmt.Sprintf("421 4.3.%d busy", i), Duration: time.Duration(i+1) * time.Second}
		made = append(made, a)
		if err := h.st.CompleteAttempt(ctx, got[0].ID, "w", store.Outcome{Attempt: a, State: store.DeliveryDeferred,
			NextAttempt: at.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	d := h.deliveries(store.DeliveryQuery{Scope: all, MessageID: m.ID})[0]
	if !reflect.DeepEqual(d.Recipients, want) {
		t.Errorf("recipients after outcomes without recipients: %+v, want unchanged %+v", d.Recipients, want)
	}
	if d.Attempts != 3 || d.LastReply != made[2].Reply || d.State != store.DeliveryDeferred {
		t.Errorf("after three attempts: %+v", d)
	}
	got, err := h.st.Attempts(ctx, d.ID, scopeOf("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d attempts, want 3", len(got))
	}
	for i := range got {
		g, w := got[i], made[i]
		if !g.Time.Equal(w.Time) || g.Time.Location() != time.UTC {
			t.Errorf("attempt %d time %v, want %v (UTC)", i, g.Time, w.Time)
		}
		g.Time, w.Time = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("attempt %d: %+v, want %+v", i, g, w)
		}
	}
	if got, err := h.st.Attempts(ctx, h.relay("alpha", now, "y@example.org").Deliveries[0].ID, all); err != nil || len(got) != 0 {
		t.Errorf("Attempts of a fresh delivery: %v (%v), want none", got, err)
	}
	for _, id := range []int64{0, -1, 1 << 40} {
		if _, err := h.st.Attempts(ctx, id, all); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Attempts(%d): %v, want ErrNotFound", id, err)
		}
	}
	if _, err := h.st.Attempts(ctx, d.ID, store.Scope{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Attempts with the zero scope: %v, want ErrNotFound", err)
	}
}

// testLeaseLostRecordsNothing: an outcome from a worker whose lease was
// taken over changes nothing at all: no attempt, no event, no new state.
func testLeaseLostRecordsNothing(t *testing.T, h *harness) {
	ctx := context.Background()
	now := msNow()
	m := h.relay("alpha", now, "x@example.org")
	id := m.Deliveries[0].ID
	if got := h.claim("old", now, 1, time.Minute); len(got) != 1 {
		t.Fatalf("claimed %v", deliveryIDs(got))
	}
	if got := h.claim("new", now.Add(2*time.Minute), 1, time.Hour); len(got) != 1 {
		t.Fatalf("take over: claimed %v", deliveryIDs(got))
	}
	before := h.deliveries(store.DeliveryQuery{Scope: all, MessageID: m.ID})[0]
	evsBefore := len(eventsOf(t, h.st, m.ID))
	ev := &store.Event{Type: store.EventSent, Recipient: "x@example.org", Time: now, Reply: "250 ok"}
	err := h.st.CompleteAttempt(ctx, id, "old", store.Outcome{
		Attempt:    store.Attempt{Time: now, Host: "mx:25", Reply: "250 ok"},
		Recipients: []store.RecipientDelivery{{Address: "x@example.org", State: store.RecipientSent, Reply: "250 ok"}},
		State:      store.DeliverySent, Events: []*store.Event{ev}})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("CompleteAttempt by the old owner: %v, want ErrLeaseLost", err)
	}
	if got := len(eventsOf(t, h.st, m.ID)); got != evsBefore {
		t.Errorf("a lost lease added %d events", got-evsBefore)
	}
	if a, err := h.st.Attempts(ctx, id, all); err != nil || len(a) != 0 {
		t.Errorf("a lost lease recorded attempts %+v (%v)", a, err)
	}
	after := h.deliveries(store.DeliveryQuery{Scope: all, MessageID: m.ID})[0]
	if err := sameDelivery(after, before); err != nil {
		t.Errorf("a lost lease changed the delivery: %v", err)
	}
	// The new owner still holds it.
	if err := h.st.CompleteAttempt(ctx, id, "new", store.Outcome{Attempt: store.Attempt{Time: now, Reply: "250 ok"},
		State: store.DeliverySent}); err != nil {
		t.Errorf("the new owner: %v", err)
	}
}

// testReleaseOnlyOwner: ReleaseDeliveries frees the owner's leases only.
func testReleaseOnlyOwner(t *testing.T, h *harness) {
	ctx := context.Background()
	now := msNow()
	h.relay("alpha", now, "a@example.org", "b@example.org", "c@example.org")
	a := h.claim("a", now, 2, time.Hour)
	b := h.claim("b", now, 2, time.Hour)
	if len(a) != 2 || len(b) != 1 {
		t.Fatalf("claimed %v and %v", deliveryIDs(a), deliveryIDs(b))
	}
	if err := h.st.ReleaseDeliveries(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := h.st.ReleaseDeliveries(ctx, "nobody"); err != nil {
		t.Errorf("releasing an owner without leases: %v", err)
	}
	got := h.claim("c", now.Add(time.Minute), 10, time.Hour)
	if !reflect.DeepEqual(deliveryIDs(got), deliveryIDs(a)) {
		t.Errorf("after releasing a: claimed %v, want a's %v (b's lease holds)", deliveryIDs(got), deliveryIDs(a))
	}
	if err := h.st.CompleteAttempt(ctx, a[0].ID, "a", store.Outcome{Attempt: store.Attempt{Time: now, Reply: "250"},
		State: store.DeliverySent}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("completing a released delivery: %v, want ErrLeaseLost", err)
	}
	if err := h.st.CompleteAttempt(ctx, b[0].ID, "b", store.Outcome{Attempt: store.Attempt{Time: now, Reply: "250"},
		State: store.DeliverySent}); err != nil {
		t.Errorf("b lost its lease to a's release: %v", err)
	}
}

// testCancelRules: only pending recipients fail; an attempt in flight
// blocks the cancel; a cancelled delivery accepts no outcome.
func testCancelRules(t *testing.T, h *harness) {
	ctx := context.Background()
	now := msNow()
	m := h.message("alpha", "mx", "s@example.org", "b@example.org", "p@example.org")
	m.Deliveries = []*store.Delivery{{Route: "mx", Domain: "example.org", NextAttempt: now,
		Recipients: []store.RecipientDelivery{{Address: "s@example.org", Index: 0}, {Address: "b@example.org", Index: 1}, {Address: "p@example.org", Index: 2}}}}
	h.accept(m)
	id := m.Deliveries[0].ID
	if got := h.claim("w", now, 10, time.Hour); !reflect.DeepEqual(deliveryIDs(got), []int64{id}) {
		t.Fatalf("claimed %v", deliveryIDs(got))
	}
	// In flight: the cancel must wait for the outcome.
	if err := h.st.CancelDelivery(ctx, id, all, now.Add(time.Minute)); !errors.Is(err, store.ErrState) {
		t.Errorf("cancelling a delivery in flight: %v, want ErrState", err)
	}
	partial := []store.RecipientDelivery{
		{Address: "s@example.org", Index: 0, State: store.RecipientSent, Reply: "250 2.0.0 ok"},
		{Address: "b@example.org", Index: 1, State: store.RecipientBounced, Reply: "550 5.1.1 unknown"},
		{Address: "p@example.org", Index: 2, State: store.RecipientPending, Reply: "451 4.2.0 later"},
	}
	if err := h.st.CompleteAttempt(ctx, id, "w", store.Outcome{Attempt: store.Attempt{Time: now, Reply: "451 4.2.0 later"},
		Recipients: partial, State: store.DeliveryDeferred, NextAttempt: now.Add(time.Hour)}); err != nil {
		t.Fatalf("the outcome of the attempt in flight was lost: %v", err)
	}
	before := len(eventsOf(t, h.st, m.ID))
	cancelAt := now.Add(2 * time.Minute)
	if err := h.st.CancelDelivery(ctx, id, scopeOf("alpha"), cancelAt); err != nil {
		t.Fatal(err)
	}
	d := h.deliveries(store.DeliveryQuery{Scope: all, MessageID: m.ID})[0]
	if d.State != store.DeliveryCancelled {
		t.Errorf("state %q, want cancelled", d.State)
	}
	states := map[string]string{}
	for _, r := range d.Recipients {
		states[r.Address] = r.State
	}
	if want := map[string]string{"s@example.org": store.RecipientSent, "b@example.org": store.RecipientBounced,
		"p@example.org": store.RecipientFailed}; !reflect.DeepEqual(states, want) {
		t.Errorf("recipient states after cancel %v, want %v", states, want)
	}
	evs := eventsOf(t, h.st, m.ID)[before:]
	if len(evs) != 1 || evs[0].Type != store.EventFailed || evs[0].Recipient != "p@example.org" ||
		evs[0].MessageID != m.ID || evs[0].Login != "alpha" || !evs[0].Time.Equal(cancelAt) {
		t.Errorf("events of the cancel: %+v, want one failed event for p@ at %v", evs, cancelAt)
	}
	// A cancelled delivery takes no outcome and is never claimed.
	if err := h.st.CompleteAttempt(ctx, id, "w", store.Outcome{Attempt: store.Attempt{Time: now, Reply: "250 ok"},
		State: store.DeliverySent}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("CompleteAttempt on a cancelled delivery: %v, want ErrLeaseLost", err)
	}
	if got := h.claim("w", now.Add(48*time.Hour), 10, time.Minute); len(got) != 0 {
		t.Errorf("claimed %v after the cancel", deliveryIDs(got))
	}

	// An expired lease no longer blocks a cancel; sent and bounced
	// deliveries cannot be cancelled or retried.
	m2 := h.relay("alpha", now, "q@example.org", "r@example.org")
	got := h.claim("w", now, 10, time.Minute)
	if len(got) != 2 {
		t.Fatalf("claimed %v, want m2's two deliveries", deliveryIDs(got))
	}
	if err := h.st.CancelDelivery(ctx, m2.Deliveries[0].ID, all, now.Add(time.Hour)); err != nil {
		t.Errorf("cancel after the lease expired: %v", err)
	}
	sent := m2.Deliveries[1].ID
	for _, o := range []store.Outcome{{Attempt: store.Attempt{Time: now, Reply: "250 ok"}, State: store.DeliverySent,
		Recipients: []store.RecipientDelivery{{Address: "r@example.org", Index: 1, State: store.RecipientSent}}}} {
		if err := h.st.CompleteAttempt(ctx, sent, "w", o); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.st.CancelDelivery(ctx, sent, all, now); !errors.Is(err, store.ErrState) {
		t.Errorf("cancelling a sent delivery: %v, want ErrState", err)
	}
	if err := h.st.RetryNow(ctx, sent, all, now); !errors.Is(err, store.ErrState) {
		t.Errorf("retrying a sent delivery: %v, want ErrState", err)
	}
	for _, bad := range []int64{0, -3, 1 << 40} {
		if err := h.st.CancelDelivery(ctx, bad, all, now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("CancelDelivery(%d): %v, want ErrNotFound", bad, err)
		}
	}
	// The zero scope finds nothing to cancel, and changes nothing.
	m3 := h.relay("alpha", now.Add(time.Hour), "z@example.org")
	if err := h.st.CancelDelivery(ctx, m3.Deliveries[0].ID, store.Scope{}, now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancel with the zero scope: %v, want ErrNotFound", err)
	}
	if err := h.st.RetryNow(ctx, m3.Deliveries[0].ID, scopeOf("ALPHA"), now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("retry with a scope of another case: %v, want ErrNotFound", err)
	}
	if d := h.deliveries(store.DeliveryQuery{Scope: all, MessageID: m3.ID})[0]; d.State != store.DeliveryQueued || !d.NextAttempt.Equal(now.Add(time.Hour)) {
		t.Errorf("refused operations changed the delivery: %+v", d)
	}
}

func testDeliveryLimits(t *testing.T, h *harness) {
	const n = 1005
	m := h.message("alpha", "mx")
	for i := 0; i < n; i++ {
		rcpt := fmt.Sprintf("r%d@d%d.example", i, i)
		m.Recipients = append(m.Recipients, rcpt)
		m.Deliveries = append(m.Deliveries, &store.Delivery{Route: "mx", Domain: fmt.Sprintf("d%d.example", i),
			NextAttempt: msNow().Add(time.Hour), Recipients: []store.RecipientDelivery{{Address: rcpt, Index: i}}})
	}
	h.accept(m)
	for _, tt := range []struct{ limit, want int }{{0, 100}, {-1, 100}, {7, 7}, {5000, 1000}} {
		if got := len(h.deliveries(store.DeliveryQuery{Scope: all, Limit: tt.limit})); got != tt.want {
			t.Errorf("Limit %d: %d deliveries, want %d", tt.limit, got, tt.want)
		}
	}
	// Paging by AfterID reaches every delivery once, ascending.
	var got []int64
	for after := int64(0); ; {
		page := h.deliveries(store.DeliveryQuery{Scope: scopeOf("alpha"), AfterID: after, Limit: 400})
		if len(page) == 0 {
			break
		}
		for _, d := range page {
			if d.ID <= after {
				t.Fatalf("ID %d not after %d", d.ID, after)
			}
			after = d.ID
			got = append(got, d.ID)
		}
	}
	want := make([]int64, n)
	for i, d := range m.Deliveries {
		want[i] = d.ID
	}
	slices.Sort(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paging returned %d deliveries, want %d", len(got), n)
	}
	if got := h.claim("w", msNow().Add(2*time.Hour), 3, time.Minute); len(got) != 3 {
		t.Errorf("claim limit 3 returned %d", len(got))
	}
	if got := h.claim("w", msNow().Add(2*time.Hour), 0, time.Minute); len(got) != 0 {
		t.Errorf("claim limit 0 returned %d", len(got))
	}
}

// testQueueReopen: deliveries, leases, attempts, events, jobs and cursors
// are durable, and IDs keep increasing.
func testQueueReopen(t *testing.T, h *harness) {
	ctx := context.Background()
	now := msNow()
	h.relay("alpha", now, "a@example.org", "b@example.org")
	got := h.claim("w", now, 1, time.Hour)
	if len(got) != 1 {
		t.Fatalf("claimed %v", deliveryIDs(got))
	}
	first := got[0].ID
	if err := h.st.CompleteAttempt(ctx, first, "w", store.Outcome{Attempt: store.Attempt{Time: now, Host: "mx:25", Reply: "451 later"},
		State: store.DeliveryDeferred, NextAttempt: now.Add(time.Hour),
		Events: []*store.Event{{Type: store.EventDeferred, Recipient: "a@example.org", Time: now, Reply: "451 later"}}}); err != nil {
		t.Fatal(err)
	}
	leased := h.claim("w", now, 1, time.Hour) // the other one, leased across the reopen
	if len(leased) != 1 {
		t.Fatalf("second claim %v", deliveryIDs(leased))
	}
	if _, err := h.st.EnqueueWebhookJobs(ctx, "hook", nil, nil, 100, now); err != nil {
		t.Fatal(err)
	}
	beforeDeliveries := h.deliveries(store.DeliveryQuery{Scope: all})
	beforeEvents := h.events(store.EventQuery{Scope: all})
	beforeJobs, err := h.st.WebhookJobs(ctx, "hook", all, 0)
	if err != nil || len(beforeJobs) == 0 {
		t.Fatalf("jobs before reopen: %d (%v)", len(beforeJobs), err)
	}

	h.reopen()
	afterDeliveries := h.deliveries(store.DeliveryQuery{Scope: all})
	if len(afterDeliveries) != len(beforeDeliveries) {
		t.Fatalf("%d deliveries after reopen, want %d", len(afterDeliveries), len(beforeDeliveries))
	}
	for i := range afterDeliveries {
		if err := sameDelivery(afterDeliveries[i], beforeDeliveries[i]); err != nil {
			t.Errorf("delivery %d after reopen: %v", i, err)
		}
	}
	if err := sameEvents(h.events(store.EventQuery{Scope: all}), beforeEvents); err != nil {
		t.Errorf("events after reopen: %v", err)
	}
	if a, err := h.st.Attempts(ctx, first, all); err != nil || len(a) != 1 || a[0].Host != "mx:25" {
		t.Errorf("attempts after reopen: %+v (%v)", a, err)
	}
	afterJobs, err := h.st.WebhookJobs(ctx, "hook", all, 0)
	if err != nil || !reflect.DeepEqual(jobEvents(afterJobs), jobEvents(beforeJobs)) {
		t.Errorf("jobs after reopen: %v (%v), want %v", jobEvents(afterJobs), err, jobEvents(beforeJobs))
	}
	if n, err := h.st.EnqueueWebhookJobs(ctx, "hook", nil, nil, 100, now); err != nil || n != 0 {
		t.Errorf("the webhook cursor was lost: %d events consumed again (%v)", n, err)
	}
	if got := h.claim("other", now.Add(time.Minute), 10, time.Hour); len(got) != 0 {
		t.Errorf("a lease was lost in the reopen: claimed %v", deliveryIDs(got))
	}
	if err := h.st.CompleteAttempt(ctx, leased[0].ID, "w", store.Outcome{Attempt: store.Attempt{Time: now, Reply: "250 ok"},
		State: store.DeliverySent}); err != nil {
		t.Errorf("the lease holder cannot complete after the reopen: %v", err)
	}
	next := h.relay("alpha", now, "c@example.org")
	for _, d := range beforeDeliveries {
		if next.Deliveries[0].ID <= d.ID {
			t.Errorf("new delivery ID %d not above %d", next.Deliveries[0].ID, d.ID)
		}
	}
}

// testWebhookFanOutConcurrent: with events committed concurrently and two
// workers enqueueing for the same webhook at once, every event gets exactly
// one job.
func testWebhookFanOutConcurrent(t *testing.T, h *harness) {
	ctx := context.Background()
	const writers, perWriter = 6, 25
	msgs := make([]*store.Message, writers)
	for i := range msgs {
		msgs[i] = h.capture(fmt.Sprintf("login%d", i%3), "hook@example.org")
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written = map[int64]bool{}
		errs    []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			for i := 0; i < perWriter; i++ {
				evs := []*store.Event{event(msgs[w], store.EventOpened, "", msNow()), event(msgs[w], store.EventClicked, "", msNow())}
				if err := h.st.AddEvents(ctx, evs...); err != nil {
					fail(err)
					return
				}
				mu.Lock()
				for _, e := range evs {
					written[e.Seq] = true
				}
				mu.Unlock()
			}
		})
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()
	var enq sync.WaitGroup
	for w := 0; w < 2; w++ {
		enq.Go(func() {
			done := false
			for {
				select {
				case <-writing:
					done = true
				default:
				}
				n, err := h.st.EnqueueWebhookJobs(ctx, "hook", nil, nil, 7, msNow())
				if err != nil {
					fail(err)
					return
				}
				if done && n == 0 {
					return
				}
			}
		})
	}
	enq.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	jobs, err := h.st.WebhookJobs(ctx, "hook", all, 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, j := range jobs {
		if seen[j.EventSeq] {
			t.Errorf("event %d has two jobs", j.EventSeq)
		}
		seen[j.EventSeq] = true
		if !written[j.EventSeq] {
			t.Errorf("job for event %d that no writer made", j.EventSeq)
		}
	}
	for s := range written {
		if !seen[s] {
			t.Errorf("event %d has no job", s)
		}
	}
	if len(jobs) != writers*perWriter*2 {
		t.Errorf("%d jobs, want %d", len(jobs), writers*perWriter*2)
	}
	for i := 1; i < len(jobs); i++ {
		if jobs[i].ID >= jobs[i-1].ID {
			t.Fatalf("history not newest first: job %d after %d", jobs[i].ID, jobs[i-1].ID)
		}
	}
}

// testWebhookLeases: leases expire and are taken over, a lost lease
// refuses the outcome, sent and failed jobs are done, and the history
// honours scope and limits.
func testWebhookLeases(t *testing.T, h *harness) {
	ctx := context.Background()
	now := msNow()
	m := h.message("alpha", store.RouteCapture, "w@example.org")
	for i := 0; i < 1003; i++ {
		m.Events = append(m.Events, &store.Event{Type: store.EventCaptured, Recipient: "w@example.org", Time: now})
	}
	h.accept(m)
	b := h.message("beta", store.RouteCapture, "w@example.org")
	b.Events = []*store.Event{{Type: store.EventCaptured, Recipient: "w@example.org", Time: now}}
	h.accept(b)
	total := 0
	for {
		n, err := h.st.EnqueueWebhookJobs(ctx, "hook", []string{store.EventCaptured}, nil, 500, now)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 1004 {
		t.Fatalf("consumed %d events, want 1004", total)
	}
	for _, tt := range []struct {
		scope       store.Scope
		limit, want int
	}{{all, 0, 100}, {all, -1, 100}, {all, 5000, 1000}, {all, 3, 3}, {scopeOf("beta"), 0, 1}, {store.Scope{}, 0, 0}, {scopeOf("gamma"), 0, 0}} {
		jobs, err := h.st.WebhookJobs(ctx, "hook", tt.scope, tt.limit)
		if err != nil || len(jobs) != tt.want {
			t.Errorf("WebhookJobs(%+v, %d) = %d jobs (%v), want %d", tt.scope, tt.limit, len(jobs), err, tt.want)
		}
		for _, j := range jobs {
			if !tt.scope.Allows(j.Login) {
				t.Errorf("scope %+v sees a job of %s", tt.scope, j.Login)
			}
		}
	}
	if jobs, _ := h.st.WebhookJobs(ctx, "other-hook", all, 0); len(jobs) != 0 {
		t.Errorf("another webhook lists %d jobs", len(jobs))
	}

	claimed, err := h.st.ClaimWebhookJobs(ctx, "", "a", now, 2, time.Minute)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claim: %d (%v)", len(claimed), err)
	}
	if claimed[0].ID >= claimed[1].ID {
		t.Errorf("claimed %d before %d: want the oldest first", claimed[0].ID, claimed[1].ID)
	}
	if got, err := h.st.ClaimWebhookJobs(ctx, "", "a", now.Add(-time.Second), 10, time.Minute); err != nil || len(got) != 0 {
		t.Errorf("jobs due at now claimed a second earlier: %d (%v)", len(got), err)
	}
	// After the lease, b takes one over; a's outcome is refused.
	taken, err := h.st.ClaimWebhookJobs(ctx, "", "b", now.Add(2*time.Minute), 1, time.Minute)
	if err != nil || len(taken) != 1 || taken[0].ID != claimed[0].ID {
		t.Fatalf("take over after the lease: %+v (%v), want job %d", taken, err, claimed[0].ID)
	}
	if err := h.st.CompleteWebhookJob(ctx, claimed[0].ID, "a", "sent", 200, "", time.Time{}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("the old owner's outcome: %v, want ErrLeaseLost", err)
	}
	// a still holds the second one (expired but not taken over).
	if err := h.st.CompleteWebhookJob(ctx, claimed[1].ID, "a", "failed", 410, "gone", time.Time{}); err != nil {
		t.Errorf("completing an expired lease nobody took: %v", err)
	}
	if err := h.st.CompleteWebhookJob(ctx, taken[0].ID, "b", "sent", 200, "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	jobs, err := h.st.WebhookJobs(ctx, "hook", all, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		switch j.ID {
		case claimed[0].ID:
			if j.State != "sent" || j.Attempts != 1 || j.LastStatus != 200 {
				t.Errorf("sent job: %+v", j)
			}
		case claimed[1].ID:
			if j.State != "failed" || j.Attempts != 1 || j.LastStatus != 410 || j.LastError != "gone" {
				t.Errorf("failed job: %+v", j)
			}
		}
	}
	for _, j := range mustClaimJobs(t, h, "c", now.Add(time.Hour), 2000) {
		if j.ID == claimed[0].ID || j.ID == claimed[1].ID {
			t.Errorf("done job %d claimed again", j.ID)
		}
	}
	if err := h.st.CompleteWebhookJob(ctx, 1<<40, "a", "sent", 200, "", time.Time{}); !errors.Is(err, store.ErrLeaseLost) && !errors.Is(err, store.ErrNotFound) {
		t.Errorf("completing an unknown job: %v", err)
	}
}

func mustClaimJobs(t *testing.T, h *harness, owner string, now time.Time, limit int) []*store.WebhookJob {
	t.Helper()
	jobs, err := h.st.ClaimWebhookJobs(context.Background(), "", owner, now, limit, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// testSearchIsolationPaging: another login's mail never shows, whatever
// the query; a message in several inboxes is listed once; paging in both
// directions reaches every message once; limits hold.
func testSearchIsolationPaging(t *testing.T, h *harness) {
	ctx := context.Background()
	search := func(q store.SearchQuery) []*store.Message {
		t.Helper()
		msgs, err := h.st.Search(ctx, q)
		if err != nil {
			t.Fatalf("Search(%+v): %v", q, err)
		}
		return msgs
	}
	h.capture("beta", "zero@example.org") // so that alpha's first Seq - 1 > 0
	var alpha []*store.Message
	for i := 0; i < 23; i++ {
		m := h.message("alpha", store.RouteCapture, "one@example.org", "two@example.org", "three@example.org")
		m.Tags = []string{"secret"}
		alpha = append(alpha, h.accept(m))
		b := h.message("beta", store.RouteCapture, "one@example.org", "two@example.org")
		b.Tags = []string{"secret"}
		h.accept(b)
	}
	yes := true
	no := false
	for _, q := range []store.SearchQuery{
		{}, {Inbox: "one@example.org"}, {Login: "beta"}, {From: "beta"}, {To: "one@"}, {Subject: "message"},
		{Text: "hello"}, {Tag: "secret"}, {Since: msNow().Add(-time.Hour)}, {Until: msNow().Add(time.Hour)},
		{HasAttachment: &no}, {HasAttachment: &yes}, {AfterSeq: 1}, {BeforeSeq: 1 << 60},
	} {
		q.Scope = scopeOf("alpha")
		for _, m := range search(q) {
			if m.Login != "alpha" {
				t.Errorf("Search(%+v) as alpha returned beta's message %s", q, m.ID)
			}
		}
		q.Scope = store.Scope{}
		if got := search(q); len(got) != 0 {
			t.Errorf("Search(%+v) with the zero scope returned %d messages", q, len(got))
		}
	}
	// Newest first, pages of 5 by BeforeSeq, every message once.
	var down []string
	for before := int64(0); ; {
		page := search(store.SearchQuery{Scope: scopeOf("alpha"), BeforeSeq: before, Limit: 5})
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			if before > 0 && m.Seq >= before {
				t.Fatalf("Seq %d not below %d", m.Seq, before)
			}
			before = m.Seq
			down = append(down, m.ID)
		}
	}
	want := msgIDs(alpha...)
	slices.Reverse(want)
	if !reflect.DeepEqual(down, want) {
		t.Errorf("newest-first paging:\n got %q\nwant %q", down, want)
	}
	// Oldest first by AfterSeq, from just before the first message.
	var up []string
	for after := alpha[0].Seq - 1; ; {
		page := search(store.SearchQuery{Scope: scopeOf("alpha"), AfterSeq: after, Limit: 4})
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			if m.Seq <= after {
				t.Fatalf("Seq %d not above %d", m.Seq, after)
			}
			after = m.Seq
			up = append(up, m.ID)
		}
	}
	if !reflect.DeepEqual(up, msgIDs(alpha...)) {
		t.Errorf("oldest-first paging:\n got %q\nwant %q", up, msgIDs(alpha...))
	}
	// Limits: default 50, cap 1000.
	more := make([]*store.Message, 1000)
	for i := range more {
		more[i] = h.message("gamma", store.RouteCapture, "many@example.org")
	}
	acceptAll(t, h.st, more, 20)
	for _, tt := range []struct{ limit, want int }{{0, 50}, {-2, 50}, {3, 3}, {5000, 1000}} {
		if got := len(search(store.SearchQuery{Scope: all, Limit: tt.limit})); got != tt.want {
			t.Errorf("Limit %d: %d messages, want %d", tt.limit, got, tt.want)
		}
	}
	if got := len(search(store.SearchQuery{Scope: scopeOf("gamma"), Inbox: "MANY@example.org", Limit: 5000})); got != 1000 {
		t.Errorf("gamma's inbox search: %d, want 1000", got)
	}
}

// testPruneRules: pruning takes inbox entries and events with the
// messages, keeps exactly the newest MaxCount, works in batches (0 means
// the default), and never touches relayed mail or other logins.
func testPruneRules(t *testing.T, h *harness) {
	ctx := context.Background()
	now := msNow()
	var alpha []*store.Message
	for i := 0; i < 10; i++ {
		m := h.message("alpha", store.RouteCapture, "p@example.org", fmt.Sprintf("q%d@example.org", i%2))
		m.Received = now.Add(time.Duration(i-20) * time.Minute)
		m.Events = []*store.Event{{Type: store.EventCaptured, Recipient: "p@example.org", Time: m.Received}}
		alpha = append(alpha, h.accept(m))
	}
	var relayed []*store.Message
	for i := 0; i < 3; i++ {
		r := h.message("alpha", "mx", "p@example.org")
		r.Received = now.Add(-1000 * time.Hour)
		r.Deliveries = []*store.Delivery{{Route: "mx", Recipients: []store.RecipientDelivery{{Address: "p@example.org"}}}}
		r.Events = []*store.Event{{Type: store.EventQueued, Recipient: "p@example.org", Time: r.Received}}
		relayed = append(relayed, h.accept(r))
	}
	betaOld := h.message("beta", store.RouteCapture, "p@example.org")
	betaOld.Received = now.Add(-1000 * time.Hour)
	h.accept(betaOld)

	n, err := h.st.Prune(ctx, store.Retention{Login: "alpha", MaxCount: 4, MaxAge: 2000 * time.Hour}, now, 100)
	if err != nil || n != 6 {
		t.Fatalf("Prune(MaxCount 4) = %d (%v), want 6", n, err)
	}
	for i, m := range alpha {
		_, err := h.st.Get(ctx, m.ID, all)
		switch {
		case i < 6 && !errors.Is(err, store.ErrNotFound):
			t.Errorf("old message %d survived: %v", i, err)
		case i >= 6 && err != nil:
			t.Errorf("one of the newest 4 (%d) was pruned: %v", i, err)
		case i < 6:
			if evs := eventsOf(t, h.st, m.ID); len(evs) != 0 {
				t.Errorf("pruned message %d kept %d events", i, len(evs))
			}
		}
	}
	if c, err := h.st.InboxCount(ctx, "p@example.org", scopeOf("alpha")); err != nil || c != 4 {
		t.Errorf("p@ holds %d of alpha's messages (%v), want 4", c, err)
	}
	if got := ids(h.inbox(store.InboxQuery{Inbox: "q0@example.org", Scope: all})); !reflect.DeepEqual(got, msgIDs(alpha[8], alpha[6])) {
		t.Errorf("q0@ after pruning: %q", got)
	}
	for _, r := range relayed {
		if _, err := h.st.Get(ctx, r.ID, all); err != nil {
			t.Errorf("relayed message pruned: %v", err)
		}
		if evs := eventsOf(t, h.st, r.ID); len(evs) != 1 {
			t.Errorf("relayed message has %d events after pruning, want 1", len(evs))
		}
		if ds := h.deliveries(store.DeliveryQuery{Scope: all, MessageID: r.ID}); len(ds) != 1 {
			t.Errorf("relayed message has %d deliveries after pruning", len(ds))
		}
	}
	if _, err := h.st.Get(ctx, betaOld.ID, all); err != nil {
		t.Errorf("another login's message pruned: %v", err)
	}
	if n, err := h.st.Prune(ctx, store.Retention{Login: "alpha", MaxCount: 4}, now, 100); err != nil || n != 0 {
		t.Errorf("second Prune = %d (%v), want 0", n, err)
	}

	// Batches: 7 messages, keep 2, two per call.
	for i := 0; i < 7; i++ {
		h.capture("gamma", "g@example.org")
	}
	var calls []int
	for i := 0; i < 6; i++ {
		n, err := h.st.Prune(ctx, store.Retention{Login: "gamma", MaxCount: 2}, now, 2)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, n)
		if n == 0 {
			break
		}
	}
	if !reflect.DeepEqual(calls, []int{2, 2, 1, 0}) {
		t.Errorf("batched prune removed %v per call, want [2 2 1 0]", calls)
	}
	// Batch 0 means the default (more than a handful).
	for i := 0; i < 5; i++ {
		h.capture("delta", "d@example.org")
	}
	if n, err := h.st.Prune(ctx, store.Retention{Login: "delta", MaxCount: 1}, now, 0); err != nil || n != 4 {
		t.Errorf("Prune with batch 0 = %d (%v), want 4", n, err)
	}
	if c, _ := h.st.InboxCount(ctx, "d@example.org", all); c != 1 {
		t.Errorf("delta keeps %d, want 1", c)
	}
}

// testClosedWrites: after Close, every kind of write fails with ErrClosed.
func testClosedWrites(t *testing.T, h *harness) {
	ctx := context.Background()
	m := h.capture("alpha", "c@example.org")
	st := h.st
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	h.st = nil
	now := msNow()
	checks := map[string]error{
		"AddEvents":          st.AddEvents(ctx, event(m, store.EventOpened, "", now)),
		"ReleaseDeliveries":  st.ReleaseDeliveries(ctx, "w"),
		"ReleaseWebhookJobs": st.ReleaseWebhookJobs(ctx, "w"),
		"RetryNow":           st.RetryNow(ctx, 1, all, now),
		"SetRead":            st.SetRead(ctx, "c@example.org", m.ID, all, true),
		"DeleteInboxMessage": st.DeleteInboxMessage(ctx, "c@example.org", m.ID, all),
	}
	_, checks["ClaimDeliveries"] = st.ClaimDeliveries(ctx, "w", now, 1, time.Minute)
	_, checks["EnqueueWebhookJobs"] = st.EnqueueWebhookJobs(ctx, "hook", nil, nil, 10, now)
	_, checks["ClaimWebhookJobs"] = st.ClaimWebhookJobs(ctx, "", "w", now, 1, time.Minute)
	_, checks["DeleteInbox"] = st.DeleteInbox(ctx, "c@example.org", all)
	_, checks["Prune"] = st.Prune(ctx, store.Retention{Login: "alpha", MaxCount: 1}, now, 10)
	for name, err := range checks {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s on a closed store: %v, want ErrClosed", name, err)
		}
	}
	h.reopen()
	if _, err := h.st.Get(ctx, m.ID, all); err != nil {
		t.Errorf("the refused writes changed the store: %v", err)
	}
}
