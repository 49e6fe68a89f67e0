package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/store"
)

func TestRetriedUntilDelivered(t *testing.T) { eachStore(t, testRetriedUntilDelivered) }

func testRetriedUntilDelivered(t *testing.T, open opener) {
	st := open("a")
	rcv := newReceiver(t, "k1", func(n int, _ delivery) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	m := emit(t, st, "app1", store.EventSent)
	startWorker(t, testConfig(Endpoint{Name: "h", URL: rcv.srv.URL, Secret: []byte("k1")}), st)

	waitFor(t, "the job to be sent", func() bool { return settled(t, st, "h", 1, "sent") })
	rcv.checkSigned()
	ds := rcv.deliveries()
	if len(ds) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(ds))
	}
	js := jobs(t, st, "h")
	j := js[0]
	if j.Attempts != 3 || j.LastStatus != 200 || j.EventSeq != m.Events[0].Seq {
		t.Errorf("history: attempts %d, last status %d, seq %d; want 3, 200, %d", j.Attempts, j.LastStatus, j.EventSeq, m.Events[0].Seq)
	}
	for i, d := range ds {
		if d.attempt != i+1 {
			t.Errorf("request %d has Smtpgate-Attempt %d", i+1, d.attempt)
		}
		if d.id != strconv.FormatInt(j.ID, 10) || d.payload.ID != d.id {
			t.Errorf("request %d: delivery header %q, payload id %q, want both %d", i+1, d.id, d.payload.ID, j.ID)
		}
		if string(d.body) != string(ds[0].body) {
			t.Errorf("request %d body differs from the first: retries must send the same bytes", i+1)
		}
	}
	p := ds[0].payload
	if p.Event != store.EventSent || p.Seq != m.Events[0].Seq || p.MessageID != m.ID || p.Login != "app1" ||
		p.Recipient != "rcpt@example.org" || !p.Timestamp.Equal(m.Events[0].Time) || p.Webhook != "h" {
		t.Errorf("payload %+v does not describe event %+v", p, m.Events[0])
	}
	h := ds[0].header
	if h.Get("Content-Type") != "application/json" || h.Get("User-Agent") != UserAgent || h.Get(HeaderEvent) != "sent" {
		t.Errorf("headers: %v", h)
	}
}

func TestGoneFailsAtOnce(t *testing.T) { eachStore(t, testGoneFailsAtOnce) }

func testGoneFailsAtOnce(t *testing.T, open opener) {
	st := open("a")
	rcv := newReceiver(t, "k", func(int, delivery) int { return http.StatusGone })
	emit(t, st, "app1", store.EventSent, store.EventOpened)
	startWorker(t, testConfig(Endpoint{Name: "gone", URL: rcv.srv.URL, Secret: []byte("k")}), st)

	waitFor(t, "both jobs to fail", func() bool { return settled(t, st, "gone", 2, "failed") })
	for _, j := range jobs(t, st, "gone") {
		if j.Attempts != 1 || j.LastStatus != http.StatusGone || !strings.Contains(j.LastError, "410") {
			t.Errorf("job %d: attempts %d, status %d, error %q; want one attempt ending in 410", j.ID, j.Attempts, j.LastStatus, j.LastError)
		}
	}
	if n := rcv.count(); n != 2 {
		t.Errorf("receiver got %d requests, want 2 (one per event, no retry)", n)
	}
}

func TestGivesUpAfterMaxAge(t *testing.T) { eachStore(t, testGivesUpAfterMaxAge) }

func testGivesUpAfterMaxAge(t *testing.T, open opener) {
	st := open("a")
	rcv := newReceiver(t, "k", func(int, delivery) int { return http.StatusServiceUnavailable })
	m := emit(t, st, "app1", store.EventBounced)
	cfg := testConfig(Endpoint{Name: "down", URL: rcv.srv.URL, Secret: []byte("k"), MaxAge: 300 * time.Millisecond})
	cfg.Backoff = func(int) time.Duration { return 50 * time.Millisecond }
	startWorker(t, cfg, st)

	waitFor(t, "the job to fail", func() bool { return settled(t, st, "down", 1, "failed") })
	j := jobs(t, st, "down")[0]
	if j.Attempts < 2 || j.Attempts != rcv.count() || j.LastStatus != http.StatusServiceUnavailable ||
		!strings.Contains(j.LastError, "gave up") {
		t.Errorf("job: attempts %d (receiver saw %d), status %d, error %q; want several 503 attempts, then gave up",
			j.Attempts, rcv.count(), j.LastStatus, j.LastError)
	}
	if last := rcv.deliveries()[rcv.count()-1]; last.attempt != j.Attempts {
		t.Errorf("last request was attempt %d, history says %d", last.attempt, j.Attempts)
	}
	// It gives up at the first failure after which the next attempt (50 ms
	// later) would fall after the event's 300 ms max age.
	if giveUp := m.Events[0].Time.Add(250 * time.Millisecond); j.Updated.Before(giveUp) {
		t.Errorf("gave up at %s, before %s (event + max age - backoff)", j.Updated, giveUp)
	}
}

func TestStaleEventNotSent(t *testing.T) { eachStore(t, testStaleEventNotSent) }

func testStaleEventNotSent(t *testing.T, open opener) {
	st := open("a")
	rcv := newReceiver(t, "k", nil)
	m := emit(t, st, "app1")
	old := &store.Event{MessageID: m.ID, Type: store.EventOpened, Time: time.Now().Add(-2 * time.Hour)}
	fresh := &store.Event{MessageID: m.ID, Type: store.EventClicked, Time: time.Now(), URL: "https://a.example/"}
	if err := st.AddEvents(context.Background(), old, fresh); err != nil {
		t.Fatal(err)
	}
	startWorker(t, testConfig(Endpoint{Name: "h", URL: rcv.srv.URL, Secret: []byte("k"), MaxAge: time.Hour}), st)

	waitFor(t, "both jobs to settle", func() bool { return settled(t, st, "h", 2, "sent", "failed") })
	js := jobs(t, st, "h")
	if js[0].EventSeq != old.Seq || js[0].State != "failed" || !strings.Contains(js[0].LastError, "older than max age") {
		t.Errorf("old event: %+v, want failed as older than max age", js[0])
	}
	if js[1].EventSeq != fresh.Seq || js[1].State != "sent" {
		t.Errorf("fresh event: %+v, want sent", js[1])
	}
	if ds := rcv.deliveries(); len(ds) != 1 || ds[0].payload.Seq != fresh.Seq || ds[0].payload.URL != "https://a.example/" {
		t.Errorf("receiver got %v, want only the fresh event", payloadSeqs(ds))
	}
}

// TestSlowAndDeadEndpoints runs a healthy endpoint beside one whose port is
// closed and one that answers after 5 s, with a 200 ms client timeout.
func TestSlowAndDeadEndpoints(t *testing.T) { eachStore(t, testSlowAndDeadEndpoints) }

func testSlowAndDeadEndpoints(t *testing.T, open opener) {
	st := open("a")
	healthy := newReceiver(t, "k", nil)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then the server notices when the client hangs up
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	var msgs []*store.Message
	for i := range 10 {
		msgs = append(msgs, emit(t, st, "app"+strconv.Itoa(i%2), store.EventQueued, store.EventSent))
	}
	want := seqs(msgs...)
	cfg := testConfig(
		Endpoint{Name: "dead", URL: deadURL(t), Secret: []byte("k")},
		Endpoint{Name: "slow", URL: slow.URL, Secret: []byte("k")},
		Endpoint{Name: "healthy", URL: healthy.srv.URL, Secret: []byte("k")},
	)
	cfg.HTTPClient = &http.Client{Timeout: 200 * time.Millisecond}
	cfg.Backoff = func(int) time.Duration { return time.Hour }
	startWorker(t, cfg, st)

	waitFor(t, "the healthy endpoint to get every event", func() bool { return settled(t, st, "healthy", len(want), "sent") })
	got := payloadSeqs(healthy.deliveries())
	slices.Sort(got)
	if !slices.Equal(slices.Compact(got), want) {
		t.Errorf("healthy endpoint got seqs %v, want %v", got, want)
	}
	healthy.checkSigned()
	waitFor(t, "every job of the dead and slow endpoints to be attempted", func() bool {
		return settled(t, st, "dead", len(want), "deferred") && settled(t, st, "slow", len(want), "deferred")
	})
	for _, j := range jobs(t, st, "dead") {
		if j.LastStatus != 0 || !strings.Contains(j.LastError, "connection refused") || j.Attempts != 1 {
			t.Errorf("dead endpoint job: status %d attempts %d error %q", j.LastStatus, j.Attempts, j.LastError)
		}
	}
	for _, j := range jobs(t, st, "slow") {
		if j.LastStatus != 0 || !strings.Contains(j.LastError, "no answer within 200ms") || j.Attempts != 1 {
			t.Errorf("slow endpoint job: status %d attempts %d error %q", j.LastStatus, j.Attempts, j.LastError)
		}
	}
}

// TestBlockedEndpointDoesNotHoldOthers: an endpoint that holds every
// request open until the healthy one has all events (the client timeout
// is 30 s) must not keep the healthy one from getting them, in Seq order.
func TestBlockedEndpointDoesNotHoldOthers(t *testing.T) {
	eachStore(t, testBlockedEndpointDoesNotHoldOthers)
}

func testBlockedEndpointDoesNotHoldOthers(t *testing.T, open opener) {
	st := open("a")
	healthy := newReceiver(t, "k", nil)
	release := make(chan struct{})
	var blockedHits atomic.Int32
	blocked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		blockedHits.Add(1)
		<-release
	}))
	defer blocked.Close()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	cfg := testConfig(
		Endpoint{Name: "blocked", URL: blocked.URL, Secret: []byte("k")},
		Endpoint{Name: "healthy", URL: healthy.srv.URL, Secret: []byte("k")},
	)
	cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	cfg.Lease = time.Minute + 10*time.Second
	cfg.Poll = time.Hour // only Notify wakes the worker
	w, stop := startWorker(t, cfg, st)

	var msgs []*store.Message
	for batch := range 5 {
		for range 8 {
			msgs = append(msgs, emit(t, st, "app1", store.EventQueued, store.EventSent, store.EventOpened))
		}
		w.Notify()
		if batch == 0 {
			waitFor(t, "the blocked endpoint to hold a request", func() bool { return blockedHits.Load() > 0 })
		}
	}
	want := seqs(msgs...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(20 * time.Second)
		for healthy.count() < len(want) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}()
	<-done
	got := payloadSeqs(healthy.deliveries())
	close(release)
	released = true
	if !slices.Equal(got, want) {
		t.Fatalf("while another endpoint was blocked, the healthy one got %d events %v, want %d in Seq order %v",
			len(got), got, len(want), want)
	}
	healthy.checkSigned()
	stop()
	if n := blockedHits.Load(); n < 1 || n > int32(DefaultConcurrency) {
		t.Errorf("the blocked endpoint saw %d requests in flight, want between 1 and %d", n, DefaultConcurrency)
	}
}

func TestFilters(t *testing.T) { eachStore(t, testFilters) }

func testFilters(t *testing.T, open opener) {
	st := open("a")
	all := newReceiver(t, "ka", nil)
	filtered := newReceiver(t, "kf", nil)
	var msgs []*store.Message
	var want []int64
	for _, login := range []string{"app1", "app2", "app1", "app3"} {
		m := emit(t, st, login, store.EventQueued, store.EventSent, store.EventBounced, store.EventOpened)
		msgs = append(msgs, m)
		if login == "app1" {
			want = append(want, m.Events[2].Seq)
		}
	}
	startWorker(t, testConfig(
		Endpoint{Name: "all", URL: all.srv.URL, Secret: []byte("ka"), Events: []string{"*"}},
		Endpoint{Name: "bounces", URL: filtered.srv.URL, Secret: []byte("kf"), Events: []string{"bounced"}, Logins: []string{"app1"}},
	), st)

	waitFor(t, "the unfiltered endpoint to get everything", func() bool { return settled(t, st, "all", 16, "sent") })
	// Only app1's bounces have jobs: the other logins' events made none.
	waitFor(t, "the filtered endpoint's jobs to settle", func() bool { return settled(t, st, "bounces", len(want), "sent") })
	all.checkSigned()
	filtered.checkSigned()
	ds := filtered.deliveries()
	if got := payloadSeqs(ds); !slices.Equal(got, want) {
		t.Errorf("filtered endpoint got seqs %v, want %v (app1's bounces)", got, want)
	}
	for _, d := range ds {
		if d.payload.Event != store.EventBounced || d.payload.Login != "app1" {
			t.Errorf("filtered endpoint got %s of %s", d.payload.Event, d.payload.Login)
		}
	}
	if got := payloadSeqs(all.deliveries()); !slices.Equal(got, seqs(msgs...)) {
		t.Errorf("unfiltered endpoint got %v, want %v", got, seqs(msgs...))
	}
}

// TestRestart stops a worker in the middle of a stream, closes and reopens
// the store, and checks that a new worker sends every event exactly once.
func TestRestart(t *testing.T) { eachStore(t, testRestart) }

func testRestart(t *testing.T, open opener) {
	st := open("a")
	rcv := newReceiver(t, "k", func(int, delivery) int {
		time.Sleep(2 * time.Millisecond) // so that the stop finds requests in flight
		return http.StatusOK
	})
	cfg := testConfig(Endpoint{Name: "h", URL: rcv.srv.URL, Secret: []byte("k")})
	cfg.HTTPClient = &http.Client{Timeout: 500 * time.Millisecond}
	cfg.Lease = 3 * time.Second
	cfg.Owner = "first"
	_, stop := startWorker(t, cfg, st)
	var msgs []*store.Message
	for range 30 {
		msgs = append(msgs, emit(t, st, "app1", store.EventSent))
	}
	waitFor(t, "some deliveries", func() bool { return rcv.count() >= 5 })
	stop()
	before := rcv.count()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = open("a")
	for range 10 {
		msgs = append(msgs, emit(t, st, "app1", store.EventSent))
	}
	cfg.Owner = "second"
	startWorker(t, cfg, st)
	want := seqs(msgs...)
	waitFor(t, "every event to be sent", func() bool { return settled(t, st, "h", len(want), "sent") })
	rcv.checkSigned()
	got := payloadSeqs(rcv.deliveries())
	if before >= len(want) {
		t.Logf("the first worker sent everything before it stopped (%d)", before)
	}
	sorted := slices.Sorted(slices.Values(got))
	if !slices.Equal(sorted, want) {
		t.Errorf("receiver got %d deliveries %v, want each of %d events exactly once: %v", len(got), got, len(want), want)
	}
	for _, j := range jobs(t, st, "h") {
		if j.Attempts != 1 {
			t.Errorf("job %d (seq %d) took %d attempts, want 1", j.ID, j.EventSeq, j.Attempts)
		}
	}
}

func TestNotifyWakesTheWorker(t *testing.T) { eachStore(t, testNotifyWakesTheWorker) }

func testNotifyWakesTheWorker(t *testing.T, open opener) {
	st := open("a")
	rcv := newReceiver(t, "k", nil)
	cfg := testConfig(Endpoint{Name: "h", URL: rcv.srv.URL, Secret: []byte("k")})
	cfg.Poll = time.Hour
	first := emit(t, st, "app1", store.EventSent)
	w, _ := startWorker(t, cfg, st)
	// The first round runs at start; after it only Notify can wake the worker.
	waitFor(t, "the first event", func() bool { return settled(t, st, "h", 1, "sent") })
	second := emit(t, st, "app1", store.EventOpened)
	w.Notify()
	waitFor(t, "the event after Notify", func() bool { return settled(t, st, "h", 2, "sent") })
	if got := payloadSeqs(rcv.deliveries()); !slices.Equal(got, seqs(first, second)) {
		t.Errorf("got %v, want %v", got, seqs(first, second))
	}
}

func TestPayloadFromStore(t *testing.T) { eachStore(t, testPayloadFromStore) }

func testPayloadFromStore(t *testing.T, open opener) {
	st := open("a")
	rcv := newReceiver(t, "k", nil)
	m := emit(t, st, "app1", store.EventSent)
	cfg := testConfig(Endpoint{Name: "h", URL: rcv.srv.URL, Secret: []byte("k")})
	cfg.MessageInfo = StoreInfo(st)
	startWorker(t, cfg, st)

	waitFor(t, "the delivery", func() bool { return settled(t, st, "h", 1, "sent") })
	p := rcv.deliveries()[0].payload
	if p.MessageIDHeader != "<"+m.ID+"@app1.example>" || p.Subject != "Hello "+m.ID ||
		!slices.Equal(p.Tags, m.Tags) || p.Metadata["user"] != "42" || p.Detail != "test sent" {
		t.Errorf("payload %+v lacks the message's header id, subject, tags or metadata", p)
	}
}

func TestRedirectNotFollowed(t *testing.T) { eachStore(t, testRedirectNotFollowed) }

func testRedirectNotFollowed(t *testing.T, open opener) {
	st := open("a")
	target := newReceiver(t, "k", nil)
	redirect := httptest.NewServer(http.RedirectHandler(target.srv.URL, http.StatusFound))
	defer redirect.Close()
	emit(t, st, "app1", store.EventSent)
	cfg := testConfig(Endpoint{Name: "r", URL: redirect.URL, Secret: []byte("k")})
	cfg.Backoff = func(int) time.Duration { return time.Hour }
	// A caller's client that would follow redirects: the worker must not.
	cfg.HTTPClient = &http.Client{Timeout: time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
	startWorker(t, cfg, st)

	waitFor(t, "the attempt", func() bool { return settled(t, st, "r", 1, "deferred") })
	j := jobs(t, st, "r")[0]
	if j.LastStatus != http.StatusFound || !strings.Contains(j.LastError, "redirects are not followed") {
		t.Errorf("job: status %d error %q", j.LastStatus, j.LastError)
	}
	if n := target.count(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

func TestErrorBodyKeptAndCapped(t *testing.T) { eachStore(t, testErrorBodyKeptAndCapped) }

func testErrorBodyKeptAndCapped(t *testing.T, open opener) {
	st := open("a")
	long := "db locked " + strings.Repeat("x", 10000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, long, http.StatusInternalServerError)
	}))
	defer srv.Close()
	emit(t, st, "app1", store.EventSent)
	cfg := testConfig(Endpoint{Name: "e", URL: srv.URL, Secret: []byte("k")})
	cfg.Backoff = func(int) time.Duration { return time.Hour }
	startWorker(t, cfg, st)

	waitFor(t, "the attempt", func() bool { return settled(t, st, "e", 1, "deferred") })
	j := jobs(t, st, "e")[0]
	if !strings.HasPrefix(j.LastError, "HTTP 500 Internal Server Error: db locked xxx") || len(j.LastError) > MaxResponseBody+100 {
		t.Errorf("last error (%d bytes) %.60q…, want the status and at most %d bytes of body", len(j.LastError), j.LastError, MaxResponseBody)
	}
	if j.NextAttempt.Before(time.Now().Add(50 * time.Minute)) {
		t.Errorf("next attempt %s, want about an hour from now (the test's backoff)", j.NextAttempt)
	}
}

func TestRetryAfterLengthensBackoff(t *testing.T) { eachStore(t, testRetryAfterLengthensBackoff) }

func testRetryAfterLengthensBackoff(t *testing.T, open opener) {
	st := open("a")
	rcv := newReceiver(t, "k", nil)
	rcv.answer = func(int, delivery) int { return http.StatusTooManyRequests }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "600")
		rcv.serve(w, r)
	}))
	defer srv.Close()
	emit(t, st, "app1", store.EventSent)
	startWorker(t, testConfig(Endpoint{Name: "busy", URL: srv.URL, Secret: []byte("k")}), st)

	waitFor(t, "the attempt", func() bool { return settled(t, st, "busy", 1, "deferred") })
	j := jobs(t, st, "busy")[0]
	if j.LastStatus != http.StatusTooManyRequests || j.NextAttempt.Before(time.Now().Add(9*time.Minute)) {
		t.Errorf("job: status %d, next attempt %s; want 429 and Retry-After's 10 minutes over the 20 ms backoff", j.LastStatus, j.NextAttempt)
	}
}

func TestRemovedWebhookJobsFail(t *testing.T) { eachStore(t, testRemovedWebhookJobsFail) }

func testRemovedWebhookJobsFail(t *testing.T, open opener) {
	st := open("a")
	emit(t, st, "app1", store.EventSent)
	cfg := testConfig(Endpoint{Name: "old", URL: deadURL(t)})
	cfg.Backoff = func(int) time.Duration { return 0 } // due again at once
	_, stop := startWorker(t, cfg, st)
	waitFor(t, "an attempt", func() bool { return settled(t, st, "old", 1, "deferred") })
	stop()

	rcv := newReceiver(t, "k", nil)
	cfg = testConfig(Endpoint{Name: "new", URL: rcv.srv.URL, Secret: []byte("k")})
	cfg.Owner = "second"
	startWorker(t, cfg, st)
	waitFor(t, "the old webhook's job to fail", func() bool { return settled(t, st, "old", 1, "failed") })
	if j := jobs(t, st, "old")[0]; !strings.Contains(j.LastError, `webhook "old" is no longer configured`) {
		t.Errorf("old job error %q", j.LastError)
	}
	waitFor(t, "the new webhook's delivery", func() bool { return settled(t, st, "new", 1, "sent") })
}

func TestRunRejectsBadConfig(t *testing.T) {
	ok := Endpoint{Name: "a", URL: "https://hooks.example/x"}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no name", Config{Endpoints: []Endpoint{{URL: "https://h.example/"}}}, "no name"},
		{"duplicate", Config{Endpoints: []Endpoint{ok, ok}}, `"a" is defined twice`},
		{"relative URL", Config{Endpoints: []Endpoint{{Name: "b", URL: "/hook"}}}, "not an absolute http or https URL"},
		{"ftp URL", Config{Endpoints: []Endpoint{{Name: "b", URL: "ftp://h.example/"}}}, "not an absolute http or https URL"},
		{"password kept out", Config{Endpoints: []Endpoint{{Name: "b", URL: "ftp://u:hunter2@h.example/"}}}, "u:xxxxx@"},
		{"unparsable URL", Config{Endpoints: []Endpoint{{Name: "b", URL: "https://u:hunter2@h.example:port/"}}}, "bad URL"},
		{"unknown event", Config{Endpoints: []Endpoint{{Name: "b", URL: "https://h.example/", Events: []string{"accepted"}}}}, `unknown event type "accepted"`},
		{"short lease", Config{Endpoints: []Endpoint{ok}, Lease: 15 * time.Second}, "lease 15s is too short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := New(tc.cfg, nil, nil).Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %v, want an error containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the URL's password", err)
			}
		})
	}
}
