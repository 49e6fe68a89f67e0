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

// msNow is the current time as backends keep it.
func msNow() time.Time { return ms(time.Now()) }

// events lists events and fails the test on error.
func (h *harness) events(q store.EventQuery) []*store.Event {
	h.t.Helper()
	evs, err := h.st.Events(context.Background(), q)
	if err != nil {
		h.t.Fatalf("Events(%+v): %v", q, err)
	}
	return evs
}

// addEvents appends events and fails the test on error.
func (h *harness) addEvents(evs ...*store.Event) {
	h.t.Helper()
	if err := h.st.AddEvents(context.Background(), evs...); err != nil {
		h.t.Fatalf("AddEvents: %v", err)
	}
}

// event makes an event of typ for message m (MessageID only: the store
// fills in the rest).
func event(m *store.Message, typ, rcpt string, at time.Time) *store.Event {
	return &store.Event{MessageID: m.ID, Type: typ, Recipient: rcpt, Time: at}
}

func seqs(evs []*store.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

// sameEvent reports how got differs from want, times compared as instants.
func sameEvent(got, want *store.Event) error {
	g, w := *got, *want
	if !g.Time.Equal(w.Time) || !g.Time.IsZero() && g.Time.Location() != time.UTC {
		return fmt.Errorf("event %d: Time %v, want %v (UTC)", w.Seq, g.Time, w.Time)
	}
	g.Time, w.Time = time.Time{}, time.Time{}
	if g != w {
		return fmt.Errorf("event:\n got %+v\nwant %+v", g, w)
	}
	return nil
}

// sameEvents compares two event lists element by element.
func sameEvents(got, want []*store.Event) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d events (seqs %v), want %d (seqs %v)", len(got), seqs(got), len(want), seqs(want))
	}
	var errs []error
	for i := range got {
		if err := sameEvent(got[i], want[i]); err != nil {
			errs = append(errs, fmt.Errorf("#%d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// testNewFields: every field of Message round-trips through Get,
// InboxMessage and the listings; Text, which no read returns, is found by a
// case-insensitive full-text search.
func testNewFields(t *testing.T, h *harness) {
	ctx := context.Background()
	m := h.message("alpha", store.RouteCapture, "fields@example.org")
	m.Text = "Grüße — “quoted” text\nsecond line, 100% _literal_ \\ backslash"
	m.ReturnPath = "b+" + m.ID + "@bounce.example"
	m.Metadata = map[string]string{"user_id": "42", "empty": "", "ünï": "cödé"}
	m.SendAt = msNow().Add(36 * time.Hour)
	m.Tags = []string{"a", "b"}
	m.Processing = store.Processing{
		Features: map[string]bool{"trackclicks": true, "trackopens": false},
		Directives: []store.DirectiveRecord{
			{Header: "X-Smtpgate-TrackOpens", Value: "yes", Directive: "trackopens", Outcome: "refused", Reason: "not overridable"},
			{Header: "X-Mailgun-Tag", Value: "a", Outcome: "applied"},
		},
		Stats: map[string]int{"links_tracked": 3},
		Notes: []string{"one", "two"},
	}
	h.accept(m)
	got, err := h.st.Get(ctx, m.ID, scopeOf("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sameMessage(got, m, true); err != nil {
		t.Errorf("Get: %v", err)
	}
	e, err := h.st.InboxMessage(ctx, "fields@example.org", m.ID, scopeOf("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sameMessage(e.Message, m, true); err != nil {
		t.Errorf("InboxMessage: %v", err)
	}
	entries := h.inbox(store.InboxQuery{Inbox: "fields@example.org", Scope: all})
	if len(entries) != 1 {
		t.Fatalf("%d entries", len(entries))
	}
	if err := sameMessage(entries[0].Message, m, false); err != nil {
		t.Errorf("Inbox listing: %v", err)
	}
	found, err := h.st.Search(ctx, store.SearchQuery{Scope: all, Inbox: "fields@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("Search found %d messages", len(found))
	}
	if err := sameMessage(found[0], m, false); err != nil {
		t.Errorf("Search listing: %v", err)
	}
	for _, needle := range []string{"“QUOTED” TEXT", "100% _literal_ \\ backslash", "second line"} {
		found, err = h.st.Search(ctx, store.SearchQuery{Scope: all, Text: needle})
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 || found[0].ID != m.ID {
			t.Errorf("Search(Text %q) found %d messages, want the one whose Text has it", needle, len(found))
		}
	}

	// A relayed message keeps them too, and a message without any of them
	// reads back without them.
	r := h.message("alpha", "smarthost", "out@example.org")
	r.ReturnPath, r.SendAt, r.Metadata, r.Processing, r.Text = "", time.Time{}, nil, store.Processing{}, ""
	h.accept(r)
	got, err = h.st.Get(ctx, r.ID, all)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameMessage(got, r, true); err != nil {
		t.Errorf("bare relayed message: %v", err)
	}
	h.reopen()
	got, err = h.st.Get(ctx, m.ID, all)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameMessage(got, m, true); err != nil {
		t.Errorf("after reopen: %v", err)
	}
}

// testAcceptEvents: events committed with Accept get their Seq, MessageID
// and Login, and read back in order with every field.
func testAcceptEvents(t *testing.T, h *harness) {
	at := msNow()
	m := h.message("alpha", store.RouteCapture, "a@example.org", "b@example.org")
	m.Events = []*store.Event{
		{Type: store.EventCaptured, Recipient: "a@example.org", Time: at},
		{Type: store.EventCaptured, Recipient: "b@example.org", Time: at},
		// A wrong MessageID and Login are overwritten by the store.
		{MessageID: "somebody-else", Login: "mallory", Type: store.EventDirective, Time: at, Detail: "refused X-Smtpgate-TrackOpens: yes (not overridable)"},
	}
	h.accept(m)
	var last int64
	for i, e := range m.Events {
		if e.Seq <= last {
			t.Errorf("event %d: Seq %d not above %d", i, e.Seq, last)
		}
		last = e.Seq
		if e.MessageID != m.ID || e.Login != "alpha" {
			t.Errorf("event %d: MessageID %q Login %q, want %q alpha", i, e.MessageID, e.Login, m.ID)
		}
	}
	got := h.events(store.EventQuery{MessageID: m.ID, Scope: all})
	if err := sameEvents(got, m.Events); err != nil {
		t.Error(err)
	}

	// The next message's events come after; a message without events has none.
	m2 := h.message("beta", "smarthost", "c@example.org")
	m2.Events = []*store.Event{{Type: store.EventQueued, Recipient: "c@example.org", Time: at, Detail: "smarthost"}}
	h.accept(m2)
	if m2.Events[0].Seq <= last {
		t.Errorf("second message's event Seq %d not above %d", m2.Events[0].Seq, last)
	}
	if evs := h.events(store.EventQuery{MessageID: h.capture("alpha", "d@example.org").ID, Scope: all}); len(evs) != 0 {
		t.Errorf("message without events has %d", len(evs))
	}

	// A failed Accept commits none of its events.
	dup := h.message("alpha", store.RouteCapture, "e@example.org")
	dup.ID = m.ID
	dup.Events = []*store.Event{{Type: store.EventCaptured, Recipient: "e@example.org", Time: at}}
	if err := h.st.Accept(context.Background(), dup); !errors.Is(err, store.ErrDuplicateID) {
		t.Fatalf("duplicate Accept: %v", err)
	}
	if got := h.events(store.EventQuery{Scope: all}); len(got) != 4 {
		t.Errorf("%d events in the store after the failed Accept, want 4: %+v", len(got), got)
	}
}

func testAddEvents(t *testing.T, h *harness) {
	a := h.capture("alpha", "a@example.org")
	b := h.accept(h.message("beta", "smarthost", "b@example.org"))
	at := msNow()
	evs := []*store.Event{
		{MessageID: a.ID, Type: store.EventOpened, Recipient: "a@example.org", Time: at, IP: "198.51.100.7", UserAgent: "Mozilla/5.0 (X11)"},
		{MessageID: b.ID, Login: "alpha", Type: store.EventClicked, Recipient: "b@example.org", Time: at.Add(time.Second),
			IP: "2001:db8::1", UserAgent: "curl/8", URL: "https://shop.example/p?a=1&b=%20"},
		{MessageID: b.ID, Type: store.EventBounced, Recipient: "b@example.org", Time: at.Add(2 * time.Second),
			Reply: "550 5.1.1 <b@example.org>: user unknown", Detail: "mx.example.org:25"},
	}
	h.addEvents(evs...)
	for i, e := range evs {
		if i > 0 && e.Seq <= evs[i-1].Seq {
			t.Errorf("Seqs not increasing in order: %v", seqs(evs))
		}
	}
	if evs[0].Login != "alpha" || evs[1].Login != "beta" || evs[2].Login != "beta" {
		t.Errorf("Logins %q %q %q, want alpha beta beta (from the messages)", evs[0].Login, evs[1].Login, evs[2].Login)
	}
	if err := sameEvents(h.events(store.EventQuery{Scope: all}), evs); err != nil {
		t.Error(err)
	}
	if err := sameEvents(h.events(store.EventQuery{MessageID: b.ID, Scope: all}), evs[1:]); err != nil {
		t.Errorf("by message: %v", err)
	}
	if err := h.st.AddEvents(context.Background()); err != nil {
		t.Errorf("AddEvents of nothing: %v", err)
	}
	// Later events keep increasing.
	more := event(a, store.EventClicked, "a@example.org", at)
	h.addEvents(more)
	if more.Seq <= evs[2].Seq {
		t.Errorf("later event Seq %d not above %d", more.Seq, evs[2].Seq)
	}
}

// testAddEventsNotFound: one unknown MessageID fails the whole call.
func testAddEventsNotFound(t *testing.T, h *harness) {
	a := h.capture("alpha", "a@example.org")
	before := h.events(store.EventQuery{Scope: all})
	for _, id := range []string{store.NewID(time.Now()), "", "' OR 1=1 --"} {
		err := h.st.AddEvents(context.Background(),
			event(a, store.EventOpened, "a@example.org", msNow()),
			&store.Event{MessageID: id, Type: store.EventOpened, Time: msNow()},
			event(a, store.EventClicked, "a@example.org", msNow()))
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("AddEvents with MessageID %q: %v, want ErrNotFound", id, err)
		}
	}
	if got := h.events(store.EventQuery{Scope: all}); len(got) != len(before) {
		t.Errorf("failed AddEvents left %d events, want %d", len(got), len(before))
	}
	// A message deleted meanwhile is unknown too.
	if err := h.st.DeleteInboxMessage(context.Background(), "a@example.org", a.ID, all); err != nil {
		t.Fatal(err)
	}
	if err := h.st.AddEvents(context.Background(), event(a, store.EventOpened, "", msNow())); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AddEvents to a deleted message: %v, want ErrNotFound", err)
	}
	b := h.capture("alpha", "b@example.org")
	h.addEvents(event(b, store.EventOpened, "b@example.org", msNow()))
}

func testEventsScope(t *testing.T, h *harness) {
	a := h.capture("alpha", "shared@example.org")
	b := h.capture("beta", "shared@example.org")
	bRelay := h.accept(h.message("beta", "smarthost", "x@example.org"))
	at := msNow()
	h.addEvents(event(a, store.EventOpened, "", at), event(b, store.EventOpened, "", at), event(bRelay, store.EventSent, "x@example.org", at))

	for name, sc := range map[string]store.Scope{"alpha": scopeOf("alpha"), "zero": {}, "gamma": scopeOf("gamma"),
		"prefix": scopeOf("bet"), "case": scopeOf("BETA"), "empty": scopeOf("")} {
		for _, e := range h.events(store.EventQuery{Scope: sc}) {
			if e.Login == "beta" || e.MessageID == b.ID || e.MessageID == bRelay.ID {
				t.Errorf("scope %s sees beta's event %+v", name, e)
			}
		}
		for _, m := range []*store.Message{b, bRelay} {
			if evs := h.events(store.EventQuery{MessageID: m.ID, Scope: sc}); len(evs) != 0 {
				t.Errorf("scope %s lists %d events of beta's message", name, len(evs))
			}
		}
	}
	if got := h.events(store.EventQuery{Scope: scopeOf("alpha")}); len(got) != 1 || got[0].MessageID != a.ID {
		t.Errorf("alpha sees %+v, want its one event", got)
	}
	if got := h.events(store.EventQuery{Scope: scopeOf("gamma", "beta")}); len(got) != 2 {
		t.Errorf("beta+gamma sees %d events, want 2", len(got))
	}
	if got := h.events(store.EventQuery{Scope: all}); len(got) != 3 {
		t.Errorf("admin sees %d events, want 3", len(got))
	}
}

func testEventsPaging(t *testing.T, h *harness) {
	m := h.capture("alpha", "a@example.org")
	other := h.capture("alpha", "b@example.org")
	const n = 1001
	evs := make([]*store.Event, n)
	for i := range evs {
		evs[i] = event(m, store.EventOpened, "a@example.org", msNow())
		evs[i].Detail = fmt.Sprint(i)
	}
	h.addEvents(evs...)
	h.addEvents(event(other, store.EventOpened, "", msNow()))

	// Paging by AfterSeq, Limit 10, over one message's events.
	var got []*store.Event
	after := int64(0)
	for page := 0; ; page++ {
		if page > n/10+2 {
			t.Fatal("paging does not end")
		}
		p := h.events(store.EventQuery{MessageID: m.ID, Scope: all, AfterSeq: after, Limit: 10})
		if len(p) == 0 {
			break
		}
		if len(p) > 10 {
			t.Fatalf("page of %d events, limit 10", len(p))
		}
		for _, e := range p {
			if e.Seq <= after {
				t.Fatalf("Seq %d not after %d", e.Seq, after)
			}
			after = e.Seq
		}
		got = append(got, p...)
	}
	if err := sameEvents(got, evs); err != nil {
		t.Errorf("paged events: %v", err)
	}
	if got := h.events(store.EventQuery{Scope: all}); len(got) != 1000 {
		t.Errorf("Limit 0 returned %d events, want the default 1000", len(got))
	}
	if got := h.events(store.EventQuery{Scope: all, Limit: -5}); len(got) != 1000 {
		t.Errorf("Limit -5 returned %d events, want the default 1000", len(got))
	}
	if got := h.events(store.EventQuery{Scope: all, Limit: 20000}); len(got) != n+1 {
		t.Errorf("Limit 20000 returned %d events, want all %d", len(got), n+1)
	}
	if got := h.events(store.EventQuery{Scope: all, AfterSeq: evs[n-1].Seq}); len(got) != 1 || got[0].MessageID != other.ID {
		t.Errorf("after the last event of m: %+v, want other's one event", got)
	}
}

// testEventsTail: readers following the event log with an AfterSeq
// cursor, as the wait API and the webhook fan-out do, see every event
// exactly once while writers append concurrently. This holds only if Seq
// order is commit order.
func testEventsTail(t *testing.T, h *harness) {
	const writers, perWriter = 8, 40
	msgs := make([]*store.Message, writers)
	for i := range msgs {
		msgs[i] = h.capture(fmt.Sprintf("login%d", i%2), "tail@example.org")
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written = map[int64]bool{}
		werr    error
	)
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			for i := 0; i < perWriter; i++ {
				var evs []*store.Event
				for j := 0; j <= i%3; j++ {
					evs = append(evs, event(msgs[w], store.EventOpened, "", msNow()))
				}
				var err error
				if i%5 == 4 { // events committed with a new message, too
					m := h.message(msgs[w].Login, store.RouteCapture, "tail@example.org")
					m.Events = evs
					err = h.st.Accept(context.Background(), m)
				} else {
					err = h.st.AddEvents(context.Background(), evs...)
				}
				mu.Lock()
				if err != nil && werr == nil {
					werr = err
				}
				for _, e := range evs {
					written[e.Seq] = true
				}
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	seen := map[int64]bool{}
	var cursor int64
	finished := false
	for {
		select {
		case <-done:
			finished = true
		default:
		}
		evs, err := h.st.Events(context.Background(), store.EventQuery{Scope: all, AfterSeq: cursor, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Seq <= cursor || seen[e.Seq] {
				t.Fatalf("event %d seen twice or out of order (cursor %d)", e.Seq, cursor)
			}
			seen[e.Seq] = true
			cursor = e.Seq
		}
		if finished && len(evs) == 0 {
			break
		}
	}
	if werr != nil {
		t.Fatal(werr)
	}
	for s := range written {
		if !seen[s] {
			t.Errorf("the tailing reader skipped event %d", s)
		}
	}
	if len(seen) != len(written) {
		t.Errorf("reader saw %d events, writers wrote %d", len(seen), len(written))
	}
}

func testEventBySeq(t *testing.T, h *harness) {
	m := h.accept(h.message("beta", "smarthost", "x@example.org"))
	e := &store.Event{MessageID: m.ID, Type: store.EventDeferred, Recipient: "x@example.org", Time: msNow(),
		Reply: "451 4.7.1 greylisted", Detail: "mx1.example.org:25"}
	h.addEvents(e)
	got, err := h.st.Event(context.Background(), e.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameEvent(got, e); err != nil {
		t.Error(err)
	}
	for _, seq := range []int64{0, -1, e.Seq + 1, 1 << 62} {
		if _, err := h.st.Event(context.Background(), seq); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Event(%d): %v, want ErrNotFound", seq, err)
		}
	}
}

// testEventSeqNeverReused: the newest events go with their message; the
// next event still gets a higher Seq, after a reopen too, so that a cursor
// past the deleted events cannot skip it.
func testEventSeqNeverReused(t *testing.T, h *harness) {
	keep := h.capture("alpha", "keep@example.org")
	h.addEvents(event(keep, store.EventOpened, "", msNow()))
	gone := h.capture("alpha", "gone@example.org")
	doomed := []*store.Event{event(gone, store.EventOpened, "", msNow()), event(gone, store.EventClicked, "", msNow())}
	h.addEvents(doomed...)
	if err := h.st.DeleteInboxMessage(context.Background(), "gone@example.org", gone.ID, all); err != nil {
		t.Fatal(err)
	}
	if evs := h.events(store.EventQuery{MessageID: gone.ID, Scope: all}); len(evs) != 0 {
		t.Errorf("deleted message still has %d events", len(evs))
	}
	if _, err := h.st.Event(context.Background(), doomed[1].Seq); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Event of a deleted message: %v, want ErrNotFound", err)
	}
	h.reopen()
	next := event(keep, store.EventClicked, "", msNow())
	h.addEvents(next)
	if next.Seq <= doomed[1].Seq {
		t.Errorf("event Seq %d reused after deleting Seq %d", next.Seq, doomed[1].Seq)
	}
	got := h.events(store.EventQuery{Scope: all, AfterSeq: doomed[1].Seq})
	if !reflect.DeepEqual(seqs(got), []int64{next.Seq}) {
		t.Errorf("events after the deleted ones: %v, want [%d]", seqs(got), next.Seq)
	}
	if !slices.IsSorted(seqs(h.events(store.EventQuery{Scope: all}))) {
		t.Error("events not in Seq order")
	}
}

// ms is t as backends keep it: UTC, to the millisecond.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// eventsOf lists every event of one message, in Seq order.
func eventsOf(t *testing.T, es store.EventStore, messageID string) []*store.Event {
	t.Helper()
	evs, err := es.Events(context.Background(), store.EventQuery{MessageID: messageID, Scope: all, Limit: 10000})
	if err != nil {
		t.Fatalf("Events(%s): %v", messageID, err)
	}
	return evs
}
