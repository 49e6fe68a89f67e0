package web

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/store"
)

// serve runs the fixture's server on a loopback socket.
func (f *fixture) serve() string {
	f.t.Helper()
	hs := httptest.NewServer(f.srv)
	f.t.Cleanup(hs.Close)
	f.t.Cleanup(f.srv.Close) // end streams before the server waits for them
	return hs.URL
}

// waitResult is one answer of the wait route.
type waitResult struct {
	status int
	cursor string
	answer waitAnswer
	took   time.Duration
	err    error
}

// wait calls GET /api/v1/wait over HTTP.
func wait(base, key, query string) waitResult {
	start := time.Now()
	req, err := http.NewRequest("GET", base+"/api/v1/wait?"+query, nil)
	if err != nil {
		return waitResult{err: err}
	}
	req.Header.Set("Mailsac-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return waitResult{err: err}
	}
	defer res.Body.Close()
	out := waitResult{status: res.StatusCode, cursor: res.Header.Get(cursorHeader), took: time.Since(start)}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		out.err = err
		return out
	}
	if res.StatusCode == 200 {
		out.err = json.Unmarshal(body, &out.answer)
	} else if len(body) > 0 && res.StatusCode == 204 {
		out.err = io.ErrUnexpectedEOF
	}
	return out
}

// waitAsync starts a wait and returns its result channel once the server
// has registered it.
func (f *fixture) waitAsync(base, key, query string) <-chan waitResult {
	f.t.Helper()
	before := f.srv.hub.subscribers()
	ch := make(chan waitResult, 1)
	go func() { ch <- wait(base, key, query) }()
	deadline := time.Now().Add(5 * time.Second)
	for f.srv.hub.subscribers() <= before {
		if time.Now().After(deadline) {
			f.t.Fatal("the wait never subscribed")
		}
		time.Sleep(time.Millisecond)
	}
	// The subscription precedes the store read of "now"; let that read
	// finish so that the test's next message is after it.
	time.Sleep(20 * time.Millisecond)
	return ch
}

func TestWait(t *testing.T) {
	f := newFixture(t, nil)
	base := f.serve()
	const box = "wait@example.com"

	// timeout=0 answers at once with the current cursor.
	r := wait(base, keyAlice, "timeout=0&inbox="+box)
	if r.err != nil || r.status != 204 || r.cursor != "0" {
		t.Fatalf("empty store, timeout=0: %+v", r)
	}
	start := r.cursor

	// Before: mail that arrived before the call is found from an earlier
	// cursor, at once...
	m1 := f.plainMessage("alice", "plain.eml", t0, box)
	r = wait(base, keyAlice, "inbox="+box+"&since="+start)
	if r.status != 200 || !slices.Equal(ids(r.answer.Messages), idsOf(m1)) || r.answer.Cursor != strconv.FormatInt(m1.Seq, 10) || r.cursor != r.answer.Cursor {
		t.Fatalf("before, with since: %+v", r)
	}
	if r.answer.Messages[0].Inbox != box {
		t.Errorf("wait message without its inbox: %+v", r.answer.Messages[0])
	}
	// ...but not without one: that waits for new mail.
	r = wait(base, keyAlice, "inbox="+box+"&timeout=100ms")
	if r.status != 204 || r.cursor != strconv.FormatInt(m1.Seq, 10) {
		t.Fatalf("before, without since: %+v", r)
	}
	afterM1 := r.cursor

	// During: a waiting call wakes on Committed.
	ch := f.waitAsync(base, keyAlice, "inbox="+box+"&timeout=20s")
	m2 := f.plainMessage("alice", "welcome.eml", t0, box)
	r = <-ch
	if r.status != 200 || !slices.Equal(ids(r.answer.Messages), idsOf(m2)) || r.answer.Cursor != strconv.FormatInt(m2.Seq, 10) {
		t.Fatalf("during: %+v", r)
	}
	if r.took > 10*time.Second {
		t.Errorf("during: answered after %v", r.took)
	}

	// After: a message arriving between two calls is found by the next
	// call's cursor; several come oldest first.
	m3 := f.plainMessage("alice", "plain.eml", t0, box)
	m4 := f.plainMessage("alice", "plain.eml", t0, box)
	r = wait(base, keyAlice, "inbox="+box+"&since="+afterM1)
	if r.status != 200 || !slices.Equal(ids(r.answer.Messages), idsOf(m2, m3, m4)) {
		t.Fatalf("after: %+v", r)
	}
	r = wait(base, keyAlice, "inbox="+box+"&limit=1&since="+afterM1)
	if !slices.Equal(ids(r.answer.Messages), idsOf(m2)) || r.answer.Cursor != strconv.FormatInt(m2.Seq, 10) {
		t.Fatalf("after, limit 1: %+v", r)
	}
	// since=0 is the very start.
	r = wait(base, keyAlice, "inbox="+box+"&since=0&limit=2")
	if !slices.Equal(ids(r.answer.Messages), idsOf(m1, m2)) {
		t.Fatalf("since=0: %+v", r)
	}

	// Timeout: 204, no body, the cursor unchanged.
	last := strconv.FormatInt(m4.Seq, 10)
	r = wait(base, keyAlice, "inbox="+box+"&timeout=150ms&since="+last)
	if r.err != nil || r.status != 204 || r.cursor != last || r.took < 150*time.Millisecond {
		t.Fatalf("timeout: %+v", r)
	}

	// Filters: mail for another inbox, another login or another subject
	// does not end the wait.
	ch = f.waitAsync(base, keyAlice, "inbox="+box+"&subject=welcome&timeout=20s&since="+last)
	f.plainMessage("alice", "welcome.eml", t0, "other@example.com")
	f.plainMessage("bob", "welcome.eml", t0, box)
	f.plainMessage("alice", "plain.eml", t0, box)
	want := f.plainMessage("alice", "welcome.eml", t0, box)
	r = <-ch
	if r.status != 200 || !slices.Equal(ids(r.answer.Messages), idsOf(want)) {
		t.Fatalf("filtered wait: %+v", r)
	}

	// Isolation: Bob never sees Alice's mail.
	r = wait(base, keyBob, "inbox="+box+"&since=0")
	for _, m := range r.answer.Messages {
		if m.Login != "bob" {
			t.Errorf("Bob's wait returns %s's message", m.Login)
		}
	}

	// Close ends a pending wait with 204.
	ch = f.waitAsync(base, keyAlice, "inbox=nobody@example.com&timeout=60s")
	f.srv.Close()
	if r := <-ch; r.status != 204 {
		t.Fatalf("wait after Close: %+v", r)
	}

	for _, q := range []string{"timeout=10m", "timeout=soon", "timeout=-1s", "since=abc", "since=-1", "since=2026-01-01", "to=x&bogus=1"} {
		wantError(t, f.do("GET", "/api/v1/wait?"+q, keyAlice), 400)
	}
	wantError(t, f.do("GET", "/api/v1/wait", ""), 401)
}

// TestWaitAfterPrune: cursors are commit positions, so retention pruning
// older mail never hides the next message.
func TestWaitAfterPrune(t *testing.T) {
	rules := []store.Retention{{Login: "alice", MaxCount: 1}}
	f := newFixtureConfig(t, Config{Retention: func() []store.Retention { return rules }}, nil)
	base := f.serve()
	const box = "prune@example.com"
	f.plainMessage("alice", "plain.eml", t0, box)
	cursor := wait(base, keyAlice, "timeout=0&inbox="+box).cursor
	m2 := f.plainMessage("alice", "plain.eml", t0, box)
	m3 := f.plainMessage("alice", "plain.eml", t0, box)
	n, err := f.srv.Prune(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("Prune: %d, %v", n, err)
	}
	r := wait(base, keyAlice, "inbox="+box+"&since="+cursor)
	if r.status != 200 || !slices.Equal(ids(r.answer.Messages), idsOf(m3)) {
		t.Fatalf("wait after pruning %s: %+v", m2.ID, r)
	}
}

// sseEvent is one event read from the stream.
type sseEvent struct {
	event, id string
	data      streamEvent
}

// openStream connects to the event stream and returns its events.
func openStream(t *testing.T, base, key, query, lastID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events/stream"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Mailsac-Key", key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 100)
	go func() {
		defer close(ch)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
					t.Errorf("bad event data %q: %v", line, err)
				}
			}
		}
	}()
	return ch, cancel
}

func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return sseEvent{}
}

func TestStream(t *testing.T) {
	f := newFixture(t, nil)
	base := f.serve()
	old := f.plainMessage("alice", "plain.eml", t0, "a@example.com")

	before := f.srv.hub.subscribers()
	alice, stopA := openStream(t, base, keyAlice, "", "")
	defer stopA()
	bob, stopB := openStream(t, base, keyBob, "", "")
	defer stopB()
	inbox, stopI := openStream(t, base, keyAdmin, "?inbox=B@example.com", "")
	defer stopI()
	for f.srv.hub.subscribers() < before+3 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // past their reads of "now"

	a1 := f.trackedMessage("alice", t0, "a@example.com", "b@example.com")
	b1 := f.plainMessage("bob", "plain.eml", t0, "c@example.com")
	ev := next(t, alice)
	if ev.event != "message" || ev.id != strconv.FormatInt(a1.Seq, 10) || ev.data.ID != a1.ID ||
		!slices.Equal(ev.data.Inboxes, []string{"a@example.com", "b@example.com"}) || ev.data.Stats["links_tracked"] != 2 ||
		ev.data.Subject != "Your order has shipped" {
		t.Errorf("Alice's event %+v", ev)
	}
	if ev := next(t, bob); ev.data.ID != b1.ID {
		t.Errorf("Bob's first event is %s, want his own message %s", ev.data.ID, b1.ID)
	}
	if ev := next(t, inbox); ev.data.ID != a1.ID {
		t.Errorf("inbox stream: %+v", ev)
	}
	if old.Seq >= a1.Seq {
		t.Fatal("seq order")
	}

	// Reconnecting with Last-Event-ID replays what was missed, in order.
	a2 := f.plainMessage("alice", "plain.eml", t0, "a@example.com")
	if ev := next(t, alice); ev.data.ID != a2.ID {
		t.Errorf("Alice's second event %+v", ev)
	}
	re, stopR := openStream(t, base, keyAlice, "", strconv.FormatInt(old.Seq, 10))
	defer stopR()
	for _, want := range []*store.Message{a1, a2} {
		if ev := next(t, re); ev.data.ID != want.ID {
			t.Errorf("replay: %s, want %s", ev.data.ID, want.ID)
		}
	}

	wantError(t, f.do("GET", "/api/v1/events/stream?inbox=bad", keyAlice), 400)
	wantError(t, f.do("GET", "/api/v1/events/stream?x=1", keyAlice), 400)
	wantError(t, f.do("GET", "/api/v1/events/stream", ""), 401)

	// Close ends every stream.
	f.srv.Close()
	for _, ch := range []<-chan sseEvent{alice, bob, inbox, re} {
		for range ch {
		}
	}
}

// TestStreamOverflow: a client that does not read loses notices, not
// messages: it catches up from the store.
func TestStreamOverflow(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	sub := f.srv.hub.subscribe(store.Scope{All: true}, "", "")
	defer f.srv.hub.unsubscribe(sub)
	var sent []string
	for range subscriberBuffer + 5 {
		sent = append(sent, f.plainMessage("alice", "plain.eml", t0, "x@example.com").ID)
	}
	if len(sub.ch) != subscriberBuffer {
		t.Fatalf("%d notices queued, want %d", len(sub.ch), subscriberBuffer)
	}
	select {
	case <-sub.lost:
	default:
		t.Fatal("the overflow was not signalled")
	}
	// Committed never blocked, and the store has them all for catch-up.
	msgs, err := f.st.Search(ctx, store.SearchQuery{Scope: store.Scope{All: true}, AfterSeq: 1, Limit: 1000})
	if err != nil || len(msgs) != len(sent)-1 {
		t.Fatalf("catch-up search: %d, %v", len(msgs), err)
	}
}

func TestRetention(t *testing.T) {
	now := time.Now().UTC()
	rules := []store.Retention{{Login: "alice", MaxCount: 2}, {Login: "bob", MaxAge: time.Hour}}
	f := newFixtureConfig(t, Config{Retention: func() []store.Retention { return rules }, RetentionBatch: 2, RetentionEvery: 10 * time.Millisecond}, nil)
	var alice []*store.Message
	for i := range 5 {
		alice = append(alice, f.plainMessage("alice", "plain.eml", now.Add(time.Duration(i-10)*time.Hour), "a@example.com"))
	}
	relayed := f.capture(&store.Message{Login: "alice", Route: "smarthost", Received: now.Add(-100 * time.Hour),
		Recipients: []string{"r@example.org"}, Raw: readMessage(t, "plain.eml")})
	bobOld := f.plainMessage("bob", "plain.eml", now.Add(-2*time.Hour), "b@example.com")
	bobNew := f.plainMessage("bob", "plain.eml", now.Add(-time.Minute), "b@example.com")
	carol := f.plainMessage("carol", "plain.eml", now.Add(-1000*time.Hour), "c@example.com")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.RunRetention(ctx) }()
	exists := func(m *store.Message) bool {
		_, err := f.st.Get(context.Background(), m.ID, store.Scope{All: true})
		return err == nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for exists(alice[2]) || exists(bobOld) {
		if time.Now().After(deadline) {
			t.Fatal("retention did not prune within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunRetention: %v", err)
	}
	for _, m := range []*store.Message{alice[0], alice[1], alice[2], bobOld} {
		if exists(m) {
			t.Errorf("%s of %s survived", m.ID, m.Login)
		}
	}
	for _, m := range []*store.Message{alice[3], alice[4], bobNew, carol, relayed} {
		if !exists(m) {
			t.Errorf("%s of %s (route %s) was pruned", m.ID, m.Login, m.Route)
		}
	}
	if n, err := f.srv.Prune(context.Background()); n != 0 || err != nil {
		t.Errorf("second pass: %d, %v", n, err)
	}
	// Without rules, RunRetention returns at once.
	if err := newFixture(t, nil).srv.RunRetention(context.Background()); err != nil {
		t.Error(err)
	}
}
