package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/store"
)

// claimAll has workers per handle claim batches of limit until the queue
// is empty, and returns which owner got each id; it fails the test if an
// id is leased twice.
func claimAll(t *testing.T, dbs []*DB, workers, limit int, now time.Time,
	claim func(db *DB, owner string) ([]int64, error)) map[int64]string {
	t.Helper()
	var mu sync.Mutex
	owners := map[int64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, len(dbs)*workers)
	for h, db := range dbs {
		for w := range workers {
			owner := fmt.Sprintf("instance%d-worker%d", h, w)
			wg.Go(func() {
				for {
					ids, err := claim(db, owner)
					if err != nil {
						errs <- err
						return
					}
					if len(ids) == 0 {
						return
					}
					mu.Lock()
					for _, id := range ids {
						if prev, dup := owners[id]; dup {
							errs <- fmt.Errorf("id %d leased to %s and to %s", id, prev, owner)
						}
						owners[id] = owner
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return owners
}

// TestClaimDeliveriesTwoInstances: two store handles on one database claim
// concurrently; no delivery is ever leased twice, and every due one is
// leased once.
func TestClaimDeliveriesTwoInstances(t *testing.T) {
	ctx := context.Background()
	dsn := testutil.PostgresSchema(t)
	dbs := []*DB{openTest(t, dsn), openTest(t, dsn)}
	now := time.Now().UTC().Add(time.Minute) // every message below is due by then
	var msgs []*store.Message
	for i := range 40 {
		m := testMessage(t, fmt.Sprintf("login%d", i%2), "smarthost", "a@example.org", "b@example.net")
		m.Deliveries = append(m.Deliveries, &store.Delivery{Route: "smarthost", Domain: "example.net",
			Recipients: []store.RecipientDelivery{{Address: "b@example.net", Index: 1}}, Expires: now.Add(time.Hour)})
		msgs = append(msgs, mustAccept(t, dbs[i%2], m))
	}
	// One delivery not due yet.
	later := testMessage(t, "login0", "smarthost", "later@example.org")
	later.SendAt = now.Add(time.Hour)
	mustAccept(t, dbs[0], later)

	claim := func(db *DB, owner string) ([]int64, error) {
		ds, err := db.ClaimDeliveries(ctx, owner, now, 3, time.Minute)
		ids := make([]int64, len(ds))
		for i, d := range ds {
			ids[i] = d.ID
			if d.State != store.DeliveryQueued || d.NextAttempt.After(now) {
				return nil, fmt.Errorf("claimed delivery %d in state %s due %v", d.ID, d.State, d.NextAttempt)
			}
		}
		return ids, err
	}
	owners := claimAll(t, dbs, 4, 3, now, claim)
	if len(owners) != 2*len(msgs) {
		t.Fatalf("%d deliveries leased, want %d", len(owners), 2*len(msgs))
	}
	if _, ok := owners[later.Deliveries[0].ID]; ok {
		t.Error("a delivery due in an hour was claimed")
	}

	// Every lease is held: nothing more to claim now.
	if ds, err := dbs[0].ClaimDeliveries(ctx, "other", now.Add(30*time.Second), 100, time.Minute); err != nil || len(ds) != 0 {
		t.Fatalf("claim while leased: %d deliveries, %v", len(ds), err)
	}
	var someID int64
	var someOwner string
	for id, o := range owners {
		someID, someOwner = id, o
		break
	}
	// An expired lease not taken over is still held by its owner.
	outcome := store.Outcome{Attempt: store.Attempt{Time: now.Add(2 * time.Minute), Reply: "451 4.3.0 later"},
		State: store.DeliveryDeferred, NextAttempt: now.Add(3 * time.Minute)}
	if err := dbs[1].CompleteAttempt(ctx, someID, someOwner, outcome); err != nil {
		t.Fatalf("CompleteAttempt by the owner of an expired lease: %v", err)
	}
	// Once leases expire, another instance takes the others over, and the
	// first owners' outcomes are refused.
	taken, err := dbs[1].ClaimDeliveries(ctx, "takeover", now.Add(2*time.Minute), 1000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(taken) != len(owners)-1 {
		t.Fatalf("takeover claimed %d, want %d", len(taken), len(owners)-1)
	}
	for _, d := range taken[:3] {
		err := dbs[0].CompleteAttempt(ctx, d.ID, owners[d.ID], store.Outcome{State: store.DeliverySent})
		if !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("CompleteAttempt by the former owner: %v, want ErrLeaseLost", err)
		}
	}
	if err := dbs[0].CompleteAttempt(ctx, 1<<40, "takeover", store.Outcome{State: store.DeliverySent}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CompleteAttempt of an unknown delivery: %v, want ErrNotFound", err)
	}
	// Released deliveries are claimable again at once.
	if err := dbs[1].ReleaseDeliveries(ctx, "takeover"); err != nil {
		t.Fatal(err)
	}
	again, err := dbs[0].ClaimDeliveries(ctx, "after-release", now.Add(2*time.Minute), 1000, time.Minute)
	if err != nil || len(again) != len(taken) {
		t.Fatalf("claim after release: %d, %v; want %d", len(again), err, len(taken))
	}
	for i := 1; i < len(again); i++ {
		if again[i].NextAttempt.Before(again[i-1].NextAttempt) {
			t.Fatalf("claimed out of NextAttempt order: %v after %v", again[i].NextAttempt, again[i-1].NextAttempt)
		}
	}
}

// TestClaimWebhookJobsTwoInstances: the same for webhook jobs, enqueued
// concurrently by both instances from one event stream.
func TestClaimWebhookJobsTwoInstances(t *testing.T) {
	ctx := context.Background()
	dsn := testutil.PostgresSchema(t)
	dbs := []*DB{openTest(t, dsn), openTest(t, dsn)}
	now := time.Now().UTC()
	events := 0
	for i := range 30 {
		m := mustAccept(t, dbs[i%2], testMessage(t, "alpha", store.RouteCapture, "a@example.org", "b@example.org"))
		events += len(m.Events)
	}
	// Both instances run the fan-out at once, in small steps.
	var wg sync.WaitGroup
	var mu sync.Mutex
	consumed := 0
	for _, db := range dbs {
		wg.Go(func() {
			for {
				n, err := db.EnqueueWebhookJobs(ctx, "hook", nil, nil, 7, now)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				consumed += n
				mu.Unlock()
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	if consumed != events {
		t.Fatalf("the instances consumed %d events, want %d", consumed, events)
	}
	claim := func(db *DB, owner string) ([]int64, error) {
		jobs, err := db.ClaimWebhookJobs(ctx, "", owner, now, 4, time.Minute)
		ids := make([]int64, len(jobs))
		for i, j := range jobs {
			ids[i] = j.ID
		}
		return ids, err
	}
	owners := claimAll(t, dbs, 3, 4, now, claim)
	if len(owners) != events {
		t.Fatalf("%d jobs leased, want one per event: %d", len(owners), events)
	}
	for id, owner := range owners {
		if err := dbs[0].CompleteWebhookJob(ctx, id, "not-"+owner, "sent", 200, "", time.Time{}); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("CompleteWebhookJob by a stranger: %v, want ErrLeaseLost", err)
		}
		if err := dbs[1].CompleteWebhookJob(ctx, id, owner, "sent", 200, "", time.Time{}); err != nil {
			t.Fatalf("CompleteWebhookJob: %v", err)
		}
	}
	jobs, err := dbs[0].WebhookJobs(ctx, "hook", all, 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, j := range jobs {
		if seen[j.EventSeq] {
			t.Errorf("event %d has two jobs", j.EventSeq)
		}
		seen[j.EventSeq] = true
		if j.State != "sent" || j.Attempts != 1 || j.LastStatus != 200 {
			t.Errorf("job %d = %+v, want sent after 1 attempt with 200", j.ID, j)
		}
	}
}
