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

func webhooksOf(t *testing.T, h *harness) store.Webhooks {
	w, ok := h.st.(store.Webhooks)
	if !ok {
		t.Skip("backend does not implement store.Webhooks")
	}
	return w
}

// withEvents accepts a captured message of login with one event of each
// type and returns the events.
func (h *harness) withEvents(login string, types ...string) []*store.Event {
	h.t.Helper()
	m := h.message(login, store.RouteCapture, "hook@example.org")
	for _, typ := range types {
		m.Events = append(m.Events, &store.Event{Type: typ, Recipient: "hook@example.org", Time: ms(time.Now())})
	}
	h.accept(m)
	return m.Events
}

func jobEvents(jobs []*store.WebhookJob) []int64 {
	out := []int64{}
	for _, j := range jobs {
		out = append(out, j.EventSeq)
	}
	return out
}

func testEnqueueWebhookJobs(t *testing.T, h *harness) {
	w := webhooksOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	first := h.withEvents("alpha", store.EventCaptured, store.EventDirective, store.EventCaptured)
	n, err := w.EnqueueWebhookJobs(ctx, "events", []string{store.EventCaptured}, nil, 100, now)
	if err != nil || n != 3 {
		t.Fatalf("first enqueue consumed %d (%v), want 3", n, err)
	}
	if n, err := w.EnqueueWebhookJobs(ctx, "events", []string{store.EventCaptured}, nil, 100, now); err != nil || n != 0 {
		t.Errorf("second enqueue consumed %d (%v), want 0", n, err)
	}
	second := h.withEvents("beta", store.EventCaptured, store.EventCaptured, store.EventCaptured)
	if n, err := w.EnqueueWebhookJobs(ctx, "events", []string{store.EventCaptured}, nil, 2, now); err != nil || n != 2 {
		t.Errorf("limit 2 consumed %d (%v)", n, err)
	}
	if n, err := w.EnqueueWebhookJobs(ctx, "events", []string{store.EventCaptured}, nil, 100, now); err != nil || n != 1 {
		t.Errorf("the rest: consumed %d (%v), want 1", n, err)
	}
	jobs, err := w.WebhookJobs(ctx, "events", all, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{second[2].Seq, second[1].Seq, second[0].Seq, first[2].Seq, first[0].Seq}
	if got := jobEvents(jobs); !reflect.DeepEqual(got, want) {
		t.Errorf("jobs (newest first) for events %v, want %v", got, want)
	}
	for _, j := range jobs {
		if j.Webhook != "events" || j.State != "queued" || j.Attempts != 0 || j.ID <= 0 || !j.NextAttempt.Equal(now) {
			t.Errorf("new job %+v", j)
		}
	}
	if got, _ := w.WebhookJobs(ctx, "events", scopeOf("alpha"), 0); !reflect.DeepEqual(jobEvents(got), []int64{first[2].Seq, first[0].Seq}) {
		t.Errorf("alpha's jobs %v", jobEvents(got))
	}
	if got, _ := w.WebhookJobs(ctx, "events", store.Scope{}, 0); len(got) != 0 {
		t.Errorf("zero scope sees %d jobs", len(got))
	}
	// Another webhook has its own cursor; no types means every type.
	if n, err := w.EnqueueWebhookJobs(ctx, "audit", nil, nil, 100, now); err != nil || n != 6 {
		t.Errorf("second webhook consumed %d (%v), want 6", n, err)
	}
	if got, _ := w.WebhookJobs(ctx, "audit", all, 0); len(got) != 6 {
		t.Errorf("audit has %d jobs, want 6", len(got))
	}
	// Event gives the payload source.
	e, err := w.Event(ctx, first[1].Seq)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameEvent(e, first[1]); err != nil {
		t.Error(err)
	}
	if _, err := w.Event(ctx, 1<<40); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Event(unknown): %v, want ErrNotFound", err)
	}
}

func testWebhookJobLifecycle(t *testing.T, h *harness) {
	w := webhooksOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	h.withEvents("alpha", store.EventCaptured, store.EventCaptured)
	if _, err := w.EnqueueWebhookJobs(ctx, "events", nil, nil, 100, now); err != nil {
		t.Fatal(err)
	}
	jobs, err := w.ClaimWebhookJobs(ctx, "", "sender-a", now, 1, time.Minute)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v (%v)", jobEvents(jobs), err)
	}
	j := jobs[0]
	other, err := w.ClaimWebhookJobs(ctx, "", "sender-b", now, 10, time.Hour)
	if err != nil || len(other) != 1 || other[0].ID == j.ID {
		t.Fatalf("second claim: %v (%v), want the other job only", jobEvents(other), err)
	}
	if err := w.CompleteWebhookJob(ctx, j.ID, "sender-b", "sent", 200, "", time.Time{}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("completing another sender's job: %v, want ErrLeaseLost", err)
	}
	next := now.Add(time.Minute)
	if err := w.CompleteWebhookJob(ctx, j.ID, "sender-a", "deferred", 503, "service unavailable", next); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.ClaimWebhookJobs(ctx, "", "sender-c", next.Add(-time.Second), 10, time.Minute); len(got) != 0 {
		t.Errorf("a deferred job was claimed before its time: %v", jobEvents(got))
	}
	again, err := w.ClaimWebhookJobs(ctx, "", "sender-c", next, 10, time.Minute)
	if err != nil || len(again) != 1 || again[0].ID != j.ID || again[0].Attempts != 1 || again[0].LastStatus != 503 ||
		again[0].LastError != "service unavailable" || again[0].State != "deferred" {
		t.Fatalf("claim at next: %+v (%v)", again, err)
	}
	if err := w.CompleteWebhookJob(ctx, j.ID, "sender-c", "sent", 204, "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.ClaimWebhookJobs(ctx, "", "sender-d", next.Add(time.Hour), 10, time.Minute); len(got) != 1 || got[0].ID == j.ID {
		t.Errorf("after sending: claimable %v, want only the other job (its lease expired)", jobEvents(got))
	}
	list, _ := w.WebhookJobs(ctx, "events", all, 10)
	for _, x := range list {
		if x.ID == j.ID && (x.State != "sent" || x.Attempts != 2 || x.LastStatus != 204) {
			t.Errorf("sent job: %+v", x)
		}
	}
}

func jobIDs(jobs []*store.WebhookJob) []int64 {
	out := []int64{}
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

// testReleaseWebhookJobs: ReleaseWebhookJobs makes the owner's leased jobs
// claimable at once, unchanged, and leaves other owners' leases alone.
func testReleaseWebhookJobs(t *testing.T, h *harness) {
	w := webhooksOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	h.withEvents("alpha", store.EventCaptured, store.EventSent, store.EventOpened, store.EventClicked)
	if _, err := w.EnqueueWebhookJobs(ctx, "events", nil, nil, 100, now); err != nil {
		t.Fatal(err)
	}
	a, err := w.ClaimWebhookJobs(ctx, "", "a", now, 2, time.Hour)
	if err != nil || len(a) != 2 {
		t.Fatalf("a claimed %v (%v)", jobIDs(a), err)
	}
	b, err := w.ClaimWebhookJobs(ctx, "", "b", now, 1, time.Hour)
	if err != nil || len(b) != 1 {
		t.Fatalf("b claimed %v (%v)", jobIDs(b), err)
	}
	if err := w.ReleaseWebhookJobs(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{"nobody", ""} {
		if err := w.ReleaseWebhookJobs(ctx, owner); err != nil {
			t.Errorf("releasing %q, who holds nothing: %v", owner, err)
		}
	}
	// At the same instant, well inside the hour-long leases: a's jobs and
	// the one nobody claimed, oldest first; not b's.
	all4, err := w.WebhookJobs(ctx, "events", all, 0)
	if err != nil || len(all4) != 4 {
		t.Fatalf("jobs: %v (%v)", jobIDs(all4), err)
	}
	var want []int64
	for _, j := range all4 {
		if j.ID != b[0].ID {
			want = append(want, j.ID)
		}
	}
	slices.Sort(want)
	got, err := w.ClaimWebhookJobs(ctx, "", "c", now, 10, time.Hour)
	if err != nil || !reflect.DeepEqual(jobIDs(got), want) {
		t.Fatalf("after releasing a, c claimed %v (%v); want %v: a's %v and the unclaimed job, not b's %d",
			jobIDs(got), err, want, jobIDs(a), b[0].ID)
	}
	for _, j := range got {
		if j.State != "queued" || j.Attempts != 0 || !j.NextAttempt.Equal(now) || j.LastStatus != 0 || j.LastError != "" {
			t.Errorf("released job changed: %+v", j)
		}
	}
	if err := w.CompleteWebhookJob(ctx, a[0].ID, "a", "sent", 200, "", time.Time{}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("a completing a released job: %v, want ErrLeaseLost", err)
	}
	if err := w.CompleteWebhookJob(ctx, a[0].ID, "c", "sent", 200, "", time.Time{}); err != nil {
		t.Errorf("c completing the job it claimed after the release: %v", err)
	}
	if err := w.CompleteWebhookJob(ctx, b[0].ID, "b", "sent", 200, "", time.Time{}); err != nil {
		t.Errorf("b lost its lease to a's release: %v", err)
	}
}

// testEnqueueLoginFilter: events of logins outside the filter create no
// job at all, but are consumed (the cursor moves past them); the type and
// login filters apply together; an empty filter is no filter.
func testEnqueueLoginFilter(t *testing.T, h *harness) {
	w := webhooksOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	a := h.withEvents("alpha", store.EventCaptured, store.EventOpened)
	b := h.withEvents("beta", store.EventCaptured, store.EventOpened)
	g := h.withEvents("gamma", store.EventCaptured, store.EventOpened)
	A := h.withEvents("ALPHA", store.EventCaptured)
	for _, tt := range []struct {
		webhook       string
		types, logins []string
		want          []*store.Event
	}{
		{"two-logins", nil, []string{"gamma", "alpha"}, []*store.Event{a[0], a[1], g[0], g[1]}},
		{"login-and-type", []string{store.EventOpened}, []string{"beta"}, []*store.Event{b[1]}},
		{"nobody", nil, []string{"delta", "alph", ""}, nil},
		{"empty-filter", nil, []string{}, []*store.Event{a[0], a[1], b[0], b[1], g[0], g[1], A[0]}},
		{"case", []string{store.EventCaptured}, []string{"ALPHA"}, []*store.Event{A[0]}},
	} {
		n, err := w.EnqueueWebhookJobs(ctx, tt.webhook, tt.types, tt.logins, 100, now)
		if err != nil || n != 7 {
			t.Errorf("%s: consumed %d (%v), want all 7 events", tt.webhook, n, err)
		}
		if n, err := w.EnqueueWebhookJobs(ctx, tt.webhook, tt.types, tt.logins, 100, now); err != nil || n != 0 {
			t.Errorf("%s: a second enqueue consumed %d (%v): the cursor did not move past filtered events", tt.webhook, n, err)
		}
		jobs, err := w.WebhookJobs(ctx, tt.webhook, all, 0)
		if err != nil {
			t.Fatal(err)
		}
		slices.Reverse(jobs)
		want := []int64{}
		for _, e := range tt.want {
			want = append(want, e.Seq)
		}
		if got := jobEvents(jobs); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: jobs for events %v, want %v", tt.webhook, got, want)
		}
		for _, j := range jobs {
			if len(tt.logins) > 0 && !slices.Contains(tt.logins, j.Login) {
				t.Errorf("%s: a job of login %q", tt.webhook, j.Login)
			}
		}
	}
	// Later events go through the same filter.
	later := h.withEvents("beta", store.EventOpened)
	h.withEvents("alpha", store.EventOpened)
	if n, err := w.EnqueueWebhookJobs(ctx, "login-and-type", []string{store.EventOpened}, []string{"beta"}, 100, now); err != nil || n != 2 {
		t.Errorf("later events: consumed %d (%v), want 2", n, err)
	}
	jobs, _ := w.WebhookJobs(ctx, "login-and-type", all, 0)
	if got := jobEvents(jobs); !reflect.DeepEqual(got, []int64{later[0].Seq, b[1].Seq}) {
		t.Errorf("login-and-type jobs (newest first) %v, want %v", got, []int64{later[0].Seq, b[1].Seq})
	}
}

// claimJobs claims jobs of webhook and fails the test on error.
func claimJobs(t *testing.T, w store.Webhooks, webhook, owner string, now time.Time, limit int) []*store.WebhookJob {
	t.Helper()
	jobs, err := w.ClaimWebhookJobs(context.Background(), webhook, owner, now, limit, time.Minute)
	if err != nil {
		t.Fatalf("ClaimWebhookJobs(%q, %s): %v", webhook, owner, err)
	}
	return jobs
}

// onlyOf reports the jobs among jobs that are not of webhook.
func onlyOf(t *testing.T, what, webhook string, jobs []*store.WebhookJob) {
	t.Helper()
	for _, j := range jobs {
		if j.Webhook != webhook {
			t.Errorf("%s: claimed job %d of webhook %q, want only %q's", what, j.ID, j.Webhook, webhook)
		}
	}
}

// testClaimPerWebhook: a claim for one webhook never returns another
// webhook's jobs, however much older they are, and returns its own in Seq
// order; "" claims every webhook's.
func testClaimPerWebhook(t *testing.T, h *harness) {
	w := webhooksOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	evs := h.withEvents("alpha", store.EventQueued, store.EventSent, store.EventOpened, store.EventClicked, store.EventOpened, store.EventSent)
	// The backlog of "slow" is older than anything of "fast".
	for _, e := range []struct {
		webhook string
		types   []string
		at      time.Time
	}{{"slow", nil, now.Add(-time.Hour)}, {"fast", nil, now}, {"opens", []string{store.EventOpened}, now}} {
		if n, err := w.EnqueueWebhookJobs(ctx, e.webhook, e.types, nil, 100, e.at); err != nil || n != len(evs) {
			t.Fatalf("enqueue %s: %d (%v)", e.webhook, n, err)
		}
	}
	var seqs []int64
	for _, e := range evs {
		seqs = append(seqs, e.Seq)
	}
	first := claimJobs(t, w, "fast", "a", now, 4)
	onlyOf(t, "fast, limit 4", "fast", first)
	if got := jobEvents(first); !reflect.DeepEqual(got, seqs[:4]) {
		t.Errorf("fast's first claim is for events %v, want the first four in Seq order %v", got, seqs[:4])
	}
	rest := claimJobs(t, w, "fast", "b", now, 100)
	onlyOf(t, "fast, limit 100", "fast", rest)
	if got := jobEvents(rest); !reflect.DeepEqual(got, seqs[4:]) {
		t.Errorf("fast's second claim is for events %v, want %v", got, seqs[4:])
	}
	for _, webhook := range []string{"fast", "nothing", "' OR 1=1 --", "FAST", "fas"} {
		if got := claimJobs(t, w, webhook, "c", now, 100); len(got) != 0 {
			t.Errorf("claim for %q with only other webhooks' jobs due: %d jobs of %q", webhook, len(got), got[0].Webhook)
		}
	}
	slow := claimJobs(t, w, "slow", "c", now, 100)
	onlyOf(t, "slow", "slow", slow)
	if got := jobEvents(slow); !reflect.DeepEqual(got, seqs) {
		t.Errorf("slow's claim is for events %v, want %v", got, seqs)
	}
	// "" claims whatever is left: only the jobs of "opens" here.
	left := claimJobs(t, w, "", "d", now, 100)
	onlyOf(t, "any webhook, after the others", "opens", left)
	if got := jobEvents(left); !reflect.DeepEqual(got, []int64{evs[2].Seq, evs[4].Seq}) {
		t.Errorf("the claim for every webhook got events %v, want the opens %v", got, []int64{evs[2].Seq, evs[4].Seq})
	}

	// Deferred jobs and expired leases, per webhook: after the leases run
	// out, fast's jobs come back (the deferred one only when due), and
	// still none of slow's.
	next := now.Add(time.Hour)
	if err := w.CompleteWebhookJob(ctx, first[1].ID, "a", "deferred", 500, "oops", next); err != nil {
		t.Fatal(err)
	}
	if err := w.CompleteWebhookJob(ctx, first[0].ID, "a", "sent", 200, "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	later, err := w.ClaimWebhookJobs(ctx, "fast", "e", now.Add(30*time.Minute), 100, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	onlyOf(t, "fast after the leases", "fast", later)
	if got := jobEvents(later); !reflect.DeepEqual(got, seqs[2:]) {
		t.Errorf("fast after the leases ran out: events %v, want %v (not the sent one, not the deferred one yet)", got, seqs[2:])
	}
	due := claimJobs(t, w, "fast", "f", next, 100)
	if len(due) != 1 || due[0].ID != first[1].ID || due[0].Attempts != 1 || due[0].State != "deferred" {
		t.Errorf("fast at the deferred job's time: %v, want job %d", jobIDs(due), first[1].ID)
	}
}

// testClaimPerWebhookConcurrently: claimers of one webhook and claimers of
// every webhook, at once, never lease a job twice, and the per-webhook
// claimers get only their webhook's jobs.
func testClaimPerWebhookConcurrently(t *testing.T, h *harness) {
	w := webhooksOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	for i := 0; i < 10; i++ {
		h.withEvents(fmt.Sprintf("login%d", i%3), store.EventQueued, store.EventSent, store.EventOpened)
	}
	for _, webhook := range []string{"one", "two", "three"} {
		if n, err := w.EnqueueWebhookJobs(ctx, webhook, nil, nil, 100, now); err != nil || n != 30 {
			t.Fatalf("enqueue %s: %d (%v)", webhook, n, err)
		}
	}
	var (
		mu     sync.Mutex
		leased = map[int64]string{}
		errs   []error
		wg     sync.WaitGroup
	)
	for i, webhook := range []string{"one", "one", "two", "", ""} {
		owner := fmt.Sprintf("worker%d", i)
		wg.Go(func() {
			for {
				jobs, err := w.ClaimWebhookJobs(ctx, webhook, owner, now, 3, time.Hour)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, j := range jobs {
					if prev, dup := leased[j.ID]; dup {
						errs = append(errs, fmt.Errorf("job %d leased to %s and %s", j.ID, prev, owner))
					}
					leased[j.ID] = owner
					if webhook != "" && j.Webhook != webhook {
						errs = append(errs, fmt.Errorf("%s claimed for %q a job of %q", owner, webhook, j.Webhook))
					}
				}
				mu.Unlock()
				if err != nil || len(jobs) == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	if len(leased) != 90 {
		t.Errorf("%d jobs leased, want all 90", len(leased))
	}
}
