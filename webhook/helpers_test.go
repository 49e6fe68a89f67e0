package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/postgres"
	"github.com/smtpgate/smtpgate/store/sqlite"
	"github.com/smtpgate/smtpgate/summary"
)

// testStore is what the tests need of a store: messages with events, and
// the webhook jobs.
type testStore interface {
	store.Store
	store.EventStore
	store.Webhooks
}

// opener opens the store named key; opening a key again after closing it
// reaches the same data. Stores are closed when the test ends (closing one
// earlier is harmless).
type opener func(key string) testStore

// eachStore runs fn on the real SQLite store and on the real PostgreSQL
// store (skipped when no server answers, except in CI).
func eachStore(t *testing.T, fn func(t *testing.T, open opener)) {
	t.Run("sqlite", func(t *testing.T) {
		dirs := map[string]string{}
		fn(t, func(key string) testStore {
			if dirs[key] == "" {
				dirs[key] = t.TempDir()
			}
			return openSQLite(t, dirs[key])
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsns := map[string]string{}
		fn(t, func(key string) testStore {
			if dsns[key] == "" {
				dsns[key] = testutil.PostgresSchema(t)
			}
			return openPostgres(t, dsns[key])
		})
	})
}

func openSQLite(tb testing.TB, dir string) testStore {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), dir, zap.NewNop())
	if err != nil {
		tb.Fatalf("opening the SQLite store: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func openPostgres(tb testing.TB, dsn string) testStore {
	tb.Helper()
	db, err := postgres.Open(context.Background(), dsn, zap.NewNop())
	if err != nil {
		tb.Fatalf("opening the PostgreSQL store: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// emit commits a captured message from login with one event of each type
// (to rcpt@example.org) and returns it; its events have their Seq set.
func emit(tb testing.TB, st testStore, login string, types ...string) *store.Message {
	tb.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond) // as every store keeps it
	id := store.NewID(now)
	raw := fmt.Appendf(nil, "From: app@%s.example\r\nTo: rcpt@example.org\r\nSubject: Hello %s\r\n"+
		"Message-ID: <%s@%s.example>\r\n\r\nHi\r\n", login, id, id, login)
	sum, err := summary.Parse(raw)
	if err != nil {
		tb.Fatal(err)
	}
	m := &store.Message{
		ID: id, Login: login, Route: store.RouteCapture, MailFrom: "app@" + login + ".example",
		Recipients: []string{"rcpt@example.org"}, Received: now, Size: int64(len(raw)), Raw: raw, Summary: sum,
		Tags: []string{"t1", "welcome"}, Metadata: map[string]string{"user": "42"},
	}
	for _, typ := range types {
		m.Events = append(m.Events, &store.Event{Type: typ, Recipient: "rcpt@example.org", Time: now, Detail: "test " + typ})
	}
	if err := st.Accept(context.Background(), m); err != nil {
		tb.Fatalf("Accept: %v", err)
	}
	return m
}

// seqs returns the Seq of every event of msgs, in order.
func seqs(msgs ...*store.Message) []int64 {
	var out []int64
	for _, m := range msgs {
		for _, e := range m.Events {
			out = append(out, e.Seq)
		}
	}
	return out
}

// delivery is one request a receiver got.
type delivery struct {
	id      string // Smtpgate-Delivery
	attempt int    // Smtpgate-Attempt
	event   string // Smtpgate-Event
	header  http.Header
	body    []byte
	payload Payload
	verify  error // Verify's verdict on the signature
}

// receiver is a webhook endpoint on loopback that checks signatures and
// records every request.
type receiver struct {
	tb     testing.TB
	secret []byte
	srv    *httptest.Server
	// answer returns the status for the n-th request (1-based); nil = 200.
	answer func(n int, d delivery) int

	mu  sync.Mutex
	got []delivery
}

func newReceiver(tb testing.TB, secret string, answer func(n int, d delivery) int) *receiver {
	r := &receiver{tb: tb, secret: []byte(secret), answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	tb.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d := delivery{id: req.Header.Get(HeaderDelivery), event: req.Header.Get(HeaderEvent), header: req.Header.Clone(), body: body}
	d.attempt, _ = strconv.Atoi(req.Header.Get(HeaderAttempt))
	d.verify = Verify(r.secret, req.Header.Get(HeaderSignature), body, time.Now(), time.Minute)
	if err := json.Unmarshal(body, &d.payload); err != nil {
		d.verify = fmt.Errorf("payload: %w", err)
	}
	r.mu.Lock()
	r.got = append(r.got, d)
	n := len(r.got)
	r.mu.Unlock()
	status := http.StatusOK
	if d.verify != nil {
		status = http.StatusUnauthorized
	} else if r.answer != nil {
		status = r.answer(n, d)
	}
	w.WriteHeader(status)
}

// deliveries returns a copy of what the receiver got so far.
func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// count returns how many requests the receiver got.
func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// checkSigned fails the test for every request whose signature or payload
// did not verify.
func (r *receiver) checkSigned() {
	r.tb.Helper()
	for _, d := range r.deliveries() {
		if d.verify != nil {
			r.tb.Errorf("delivery %s attempt %d: %v", d.id, d.attempt, d.verify)
		}
	}
}

// payloadSeqs returns the seq of every request, in arrival order.
func payloadSeqs(ds []delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.payload.Seq
	}
	return out
}

// deadURL returns an http URL of a loopback port that nothing listens on.
func deadURL(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/hook"
}

// testConfig is a fast configuration for tests: short poll and backoff.
func testConfig(eps ...Endpoint) Config {
	return Config{
		Endpoints:  eps,
		Owner:      "test",
		Poll:       20 * time.Millisecond,
		Lease:      10 * time.Second,
		Backoff:    func(int) time.Duration { return 20 * time.Millisecond },
		HTTPClient: &http.Client{Timeout: 2 * time.Second},
	}
}

// startWorker runs a worker until the returned stop is called (or the
// test ends) and checks that Run returned nil.
func startWorker(tb testing.TB, cfg Config, st store.Webhooks) (*Worker, func()) {
	tb.Helper()
	w := New(cfg, st, zaptest.NewLogger(tb, zaptest.Level(zap.InfoLevel)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("Run: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	return w, stop
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (a liveness guard, not a timing assertion).
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// jobs returns the webhook's job history, oldest first.
func jobs(tb testing.TB, st store.Webhooks, webhook string) []*store.WebhookJob {
	tb.Helper()
	js, err := st.WebhookJobs(context.Background(), webhook, store.Scope{All: true}, 1000)
	if err != nil {
		tb.Fatalf("WebhookJobs(%s): %v", webhook, err)
	}
	for i, j := 0, len(js)-1; i < j; i, j = i+1, j-1 {
		js[i], js[j] = js[j], js[i]
	}
	return js
}

// settled reports whether the webhook has want jobs, none of them queued
// or leased for a first attempt (every one was attempted at least once)
// and all in one of states.
func settled(tb testing.TB, st store.Webhooks, webhook string, want int, states ...string) bool {
	js := jobs(tb, st, webhook)
	if len(js) != want {
		return false
	}
	for _, j := range js {
		ok := false
		for _, s := range states {
			ok = ok || j.State == s
		}
		if !ok || j.Attempts == 0 {
			return false
		}
	}
	return true
}
