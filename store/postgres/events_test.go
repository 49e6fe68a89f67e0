package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/store"
)

// TestAddEventsFailAlone: AddEvents calls share group commits; one that
// names a missing message gets store.ErrNotFound and adds nothing, while
// the calls committed with it succeed with their own Seqs and Logins.
func TestAddEventsFailAlone(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testutil.PostgresSchema(t))
	alpha := mustAccept(t, db, testMessage(t, "alpha", store.RouteCapture, "a@example.org"))
	beta := mustAccept(t, db, testMessage(t, "beta", "smarthost", "b@example.org"))
	const n = 60
	calls := make([][]*store.Event, n)
	errs := make([]error, n)
	bad := func(i int) bool { return i%7 == 3 }
	for i := range calls {
		target := alpha.ID
		if i%2 == 1 {
			target = beta.ID
		}
		calls[i] = []*store.Event{
			{MessageID: target, Type: store.EventOpened, Time: time.Now(), IP: "192.0.2.9"},
			{MessageID: target, Type: store.EventClicked, Time: time.Now(), URL: "https://example.org/"},
		}
		if bad(i) {
			calls[i][1].MessageID = store.NewID(time.Now())
		}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range calls {
		wg.Go(func() {
			<-start
			errs[i] = db.AddEvents(ctx, calls[i]...)
		})
	}
	close(start)
	wg.Wait()
	seen := map[int64]bool{}
	for i, evs := range calls {
		if bad(i) {
			if !errors.Is(errs[i], store.ErrNotFound) {
				t.Errorf("call %d with a missing message: %v, want ErrNotFound", i, errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("call %d: %v", i, errs[i])
			continue
		}
		want := "alpha"
		if i%2 == 1 {
			want = "beta"
		}
		for k, ev := range evs {
			if ev.Login != want || ev.Seq == 0 || seen[ev.Seq] || k > 0 && ev.Seq <= evs[k-1].Seq {
				t.Errorf("call %d event %d: Seq %d Login %q (want %s, increasing, unique)", i, k, ev.Seq, ev.Login, want)
			}
			seen[ev.Seq] = true
			got, err := db.Event(ctx, ev.Seq)
			if err != nil || got.MessageID != ev.MessageID || got.Type != ev.Type || got.Login != want {
				t.Errorf("Event(%d) = %+v, %v; want %+v", ev.Seq, got, err, ev)
			}
		}
	}
	stored, err := db.Events(ctx, store.EventQuery{Scope: all, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(alpha.Events) + len(beta.Events) + len(seen); len(stored) != want {
		t.Errorf("%d events stored, want %d (nothing of the failed calls)", len(stored), want)
	}
}
