package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/smtpgate/smtpgate/store"
)

// errBad is the error of a batch that holds a negative request.
var errBad = errors.New("negative request")

// ledger is a backend: a batch is a transaction that stores every request
// of it, or none if any is negative. A request of 1000 or more fails alone
// (its Res says so) without failing the batch. Run can be held at its
// start to let requests pile up in the queue.
type ledger struct {
	mu      sync.Mutex
	batches [][]int      // every batch Run was given, in order
	stored  map[int]bool // what committed batches stored
	hold    chan struct{}
	entered chan struct{} // receives when Run starts while hold is set
}

// res is a test request's result.
type res struct {
	n   int
	err error
}

func newLedger() *ledger {
	return &ledger{stored: map[int]bool{}}
}

func (l *ledger) run(batch []int) ([]res, error) {
	l.mu.Lock()
	hold, entered := l.hold, l.entered
	l.mu.Unlock()
	if hold != nil {
		entered <- struct{}{}
		<-hold
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches = append(l.batches, slices.Clone(batch))
	if slices.ContainsFunc(batch, func(n int) bool { return n < 0 }) {
		return nil, errBad
	}
	out := make([]res, len(batch))
	for i, n := range batch {
		if n >= 1000 {
			out[i].err = fmt.Errorf("request %d failed alone", n)
			continue
		}
		l.stored[n] = true
		out[i].n = n * 10
	}
	return out, nil
}

// holdRuns makes every following Run wait for release; it returns the
// channel that Run signals on when it starts.
func (l *ledger) holdRuns() (entered <-chan struct{}, release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hold, l.entered = make(chan struct{}), make(chan struct{}, 64)
	hold := l.hold
	return l.entered, func() {
		l.mu.Lock()
		l.hold = nil
		l.mu.Unlock()
		close(hold)
	}
}

func (l *ledger) snapshot() ([][]int, map[int]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.batches), maps.Clone(l.stored)
}

func newCommitter(t *testing.T, l *ledger, cfg Config[int, res]) *Committer[int, res] {
	t.Helper()
	cfg.Run = l.run
	if cfg.Size == nil {
		cfg.Size = func(int) int { return 1 }
	}
	if cfg.MaxRequests == 0 {
		cfg.MaxRequests = 128
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 1 << 20
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 64
	}
	cfg.Log = zaptest.NewLogger(t)
	c := New(cfg)
	t.Cleanup(c.Close)
	return c
}

// waitFor polls cond until it holds, failing the test after a long time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// outcome of one Submit in a goroutine.
type submitted struct {
	req int
	res res
	err error
}

// submit runs Submit in a goroutine; its outcome arrives on the channel.
func submit(ctx context.Context, c *Committer[int, res], req int) <-chan submitted {
	ch := make(chan submitted, 1)
	go func() {
		r, err := c.Submit(ctx, req)
		ch <- submitted{req, r, err}
	}()
	return ch
}

// pileUp holds Run on a first request (0) and queues reqs behind it; it
// returns the first request's outcome, the others' and the function that
// lets Run go on.
func pileUp(t *testing.T, l *ledger, c *Committer[int, res], reqs ...int) (first <-chan submitted, rest []<-chan submitted, release func()) {
	t.Helper()
	entered, release := l.holdRuns()
	first = submit(context.Background(), c, 0)
	<-entered
	for i, n := range reqs {
		rest = append(rest, submit(context.Background(), c, n))
		waitFor(t, fmt.Sprintf("request %d queued", n), func() bool { return c.Queued() == i+1 })
	}
	return first, rest, release
}

// TestBatching queues requests while a batch is being committed: they all
// share the next batch, in queue order, and each caller gets its own
// result.
func TestBatching(t *testing.T) {
	l := newLedger()
	c := newCommitter(t, l, Config[int, res]{})
	first, rest, release := pileUp(t, l, c, 1, 2, 3, 4, 5)
	release()
	if o := <-first; o.err != nil || o.res.n != 0 {
		t.Fatalf("first request: %+v", o)
	}
	for _, ch := range rest {
		o := <-ch
		if o.err != nil || o.res.n != o.req*10 {
			t.Errorf("request %d: %+v, want result %d", o.req, o, o.req*10)
		}
	}
	batches, _ := l.snapshot()
	want := [][]int{{0}, {1, 2, 3, 4, 5}}
	if !slices.EqualFunc(batches, want, slices.Equal) {
		t.Errorf("batches %v, want %v", batches, want)
	}
}

// TestLimits checks that a batch stops at MaxRequests requests and once
// the sizes reach MaxBytes.
func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config[int, res]
		want [][]int
	}{
		{"count", Config[int, res]{MaxRequests: 2}, [][]int{{0}, {1, 2}, {3, 4}, {5}}},
		// Sizes are the request numbers: a batch takes requests while
		// its sum is below 5.
		{"bytes", Config[int, res]{MaxBytes: 5, Size: func(n int) int { return n }}, [][]int{{0}, {1, 2, 3}, {4, 5}}},
		{"one big request", Config[int, res]{MaxBytes: 1, Size: func(n int) int { return 100 }}, [][]int{{0}, {1}, {2}, {3}, {4}, {5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLedger()
			c := newCommitter(t, l, tc.cfg)
			first, rest, release := pileUp(t, l, c, 1, 2, 3, 4, 5)
			release()
			for _, ch := range append(rest, first) {
				if o := <-ch; o.err != nil {
					t.Errorf("request %d: %v", o.req, o.err)
				}
			}
			batches, _ := l.snapshot()
			if !slices.EqualFunc(batches, tc.want, slices.Equal) {
				t.Errorf("batches %v, want %v", batches, tc.want)
			}
		})
	}
}

// TestCancelWhileQueued: a caller whose context ends while its request is
// queued gets the context's error and the request never runs; a caller
// whose request is already taken gets the true result although its
// context ended.
func TestCancelWhileQueued(t *testing.T) {
	l := newLedger()
	c := newCommitter(t, l, Config[int, res]{})
	entered, release := l.holdRuns()
	takenCtx, cancelTaken := context.WithCancel(context.Background())
	taken := submit(takenCtx, c, 1)
	<-entered // a writer has taken request 1 and is running it

	queuedCtx, cancelQueued := context.WithCancel(context.Background())
	queued := submit(queuedCtx, c, 2)
	waitFor(t, "request 2 queued", func() bool { return c.Queued() == 1 })
	cancelQueued()
	if o := <-queued; !errors.Is(o.err, context.Canceled) {
		t.Fatalf("queued request: %+v, want context.Canceled", o)
	}
	cancelTaken() // too late: request 1 is being committed
	release()
	if o := <-taken; o.err != nil || o.res.n != 10 {
		t.Fatalf("taken request: %+v, want result 10 and no error", o)
	}
	// The writer finds the abandoned request in the queue and skips it.
	if o := <-submit(context.Background(), c, 3); o.err != nil {
		t.Fatal(o.err)
	}
	batches, stored := l.snapshot()
	if want := [][]int{{1}, {3}}; !slices.EqualFunc(batches, want, slices.Equal) {
		t.Errorf("batches %v, want %v", batches, want)
	}
	if stored[2] {
		t.Error("the abandoned request was stored")
	}
}

// TestContextDoneBeforeSubmit: a context that has already ended queues
// nothing.
func TestContextDoneBeforeSubmit(t *testing.T) {
	l := newLedger()
	c := newCommitter(t, l, Config[int, res]{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Submit(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit = %v, want context.Canceled", err)
	}
	c.Close()
	if batches, _ := l.snapshot(); len(batches) != 0 {
		t.Errorf("batches %v, want none", batches)
	}
}

// TestFallback: a batch that fails is run again one request at a time, so
// that the bad request gets the error and the others are stored; a request
// that fails alone inside a batch reports its own error.
func TestFallback(t *testing.T) {
	l := newLedger()
	c := newCommitter(t, l, Config[int, res]{})
	first, rest, release := pileUp(t, l, c, 1, -2, 3, 1004)
	release()
	if o := <-first; o.err != nil {
		t.Fatal(o.err)
	}
	for _, ch := range rest {
		o := <-ch
		switch o.req {
		case -2:
			if !errors.Is(o.err, errBad) {
				t.Errorf("bad request: %+v, want errBad", o)
			}
		case 1004:
			if o.err != nil || o.res.err == nil {
				t.Errorf("request failing alone: %+v, want its own error in the result", o)
			}
		default:
			if o.err != nil || o.res.n != o.req*10 {
				t.Errorf("request %d: %+v", o.req, o)
			}
		}
	}
	batches, stored := l.snapshot()
	want := [][]int{{0}, {1, -2, 3, 1004}, {1}, {-2}, {3}, {1004}}
	if !slices.EqualFunc(batches, want, slices.Equal) {
		t.Errorf("batches %v, want %v", batches, want)
	}
	if !stored[1] || !stored[3] || stored[-2] {
		t.Errorf("stored %v, want 1 and 3 but not -2", stored)
	}
}

// TestWrongResultCount: a Run that returns fewer results than requests
// fails the batch instead of leaving a caller without an answer.
func TestWrongResultCount(t *testing.T) {
	c := New(Config[int, res]{
		Run:  func(batch []int) ([]res, error) { return nil, nil },
		Size: func(int) int { return 1 }, MaxRequests: 8, MaxBytes: 8, QueueSize: 8,
	})
	defer c.Close()
	if _, err := c.Submit(context.Background(), 1); err == nil {
		t.Fatal("Submit = nil, want an error for the missing result")
	}
}

// TestClose: Close commits every request already queued and then refuses
// new ones with store.ErrClosed; a second Close returns at once.
func TestClose(t *testing.T) {
	l := newLedger()
	c := newCommitter(t, l, Config[int, res]{MaxRequests: 2})
	first, rest, release := pileUp(t, l, c, 1, 2, 3, 4, 5)
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	waitFor(t, "Close to begin", c.Closed)
	if _, err := c.Submit(context.Background(), 6); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Submit after Close = %v, want store.ErrClosed", err)
	}
	release()
	<-closed
	for _, ch := range append(rest, first) {
		if o := <-ch; o.err != nil || o.res.n != o.req*10 {
			t.Errorf("request %d: %+v", o.req, o)
		}
	}
	_, stored := l.snapshot()
	for n := range 6 {
		if !stored[n] {
			t.Errorf("queued request %d was not committed by Close", n)
		}
	}
	if stored[6] {
		t.Error("a request submitted after Close was stored")
	}
	c.Close()
}

// TestWriters: several writers commit batches at the same time, and every
// request is run exactly once.
func TestWriters(t *testing.T) {
	l := newLedger()
	c := newCommitter(t, l, Config[int, res]{Writers: 3, MaxRequests: 4})
	entered, release := l.holdRuns()
	var outs []<-chan submitted
	for n := range 3 {
		outs = append(outs, submit(context.Background(), c, n))
		<-entered // each writer in turn takes one request and waits
	}
	for n := 3; n < 40; n++ {
		outs = append(outs, submit(context.Background(), c, n))
	}
	release()
	for _, ch := range outs {
		if o := <-ch; o.err != nil || o.res.n != o.req*10 {
			t.Errorf("request %d: %+v", o.req, o)
		}
	}
	batches, _ := l.snapshot()
	var seen []int
	for _, b := range batches {
		if len(b) > 4 {
			t.Errorf("batch %v is over MaxRequests", b)
		}
		seen = append(seen, b...)
	}
	slices.Sort(seen)
	if len(seen) != 40 || seen[0] != 0 || seen[39] != 39 || len(slices.Compact(seen)) != 40 {
		t.Errorf("requests run %v, want 0..39 once each", seen)
	}
}

// BenchmarkSubmit measures the committer's own cost per request with 50
// concurrent callers and a Run that does nothing.
func BenchmarkSubmit(b *testing.B) {
	c := New(Config[int, struct{}]{
		Run:  func(batch []int) ([]struct{}, error) { return make([]struct{}, len(batch)), nil },
		Size: func(int) int { return 5000 }, MaxRequests: 128, MaxBytes: 8 << 20, QueueSize: 4096,
	})
	defer c.Close()
	b.SetParallelism(25)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Submit(context.Background(), 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestLinger: after a batch of five, a writer with a Linger waits for the
// next batch to grow back to five; the wait ends at Linger, and at Close
// with what it has. A first request (no batch before it) never waits.
func TestLinger(t *testing.T) {
	t.Run("grows back", func(t *testing.T) {
		l := newLedger()
		c := newCommitter(t, l, Config[int, res]{Linger: time.Hour})
		first, rest, release := pileUp(t, l, c, 1, 2, 3, 4, 5)
		l.mu.Lock()
		l.hold = nil
		l.mu.Unlock()
		release()
		for _, ch := range append(rest, first) {
			<-ch
		}
		var later []<-chan submitted
		for n := 6; n <= 10; n++ {
			later = append(later, submit(context.Background(), c, n))
			if n == 6 {
				// Alone, 6 waits for company.
				time.Sleep(50 * time.Millisecond)
				if batches, _ := l.snapshot(); len(batches) != 2 {
					t.Fatalf("request 6 committed alone at once: %v", batches)
				}
			}
		}
		for _, ch := range later {
			if o := <-ch; o.err != nil {
				t.Errorf("request %d: %v", o.req, o.err)
			}
		}
		batches, _ := l.snapshot()
		if len(batches) != 3 || len(batches[2]) != 5 {
			t.Errorf("batches %v, want {0} {1..5} and the five later requests together", batches)
		}
	})
	t.Run("times out", func(t *testing.T) {
		l := newLedger()
		c := newCommitter(t, l, Config[int, res]{Linger: 20 * time.Millisecond})
		first, rest, release := pileUp(t, l, c, 1, 2, 3)
		l.mu.Lock()
		l.hold = nil
		l.mu.Unlock()
		release()
		for _, ch := range append(rest, first) {
			<-ch
		}
		start := time.Now()
		if o := <-submit(context.Background(), c, 7); o.err != nil {
			t.Fatal(o.err)
		}
		if d := time.Since(start); d < 20*time.Millisecond || d > 10*time.Second {
			t.Errorf("a lone request after a batch of 3 took %v, want about the 20ms linger", d)
		}
	})
	t.Run("first request does not wait", func(t *testing.T) {
		l := newLedger()
		c := newCommitter(t, l, Config[int, res]{Linger: time.Hour})
		select {
		case o := <-submit(context.Background(), c, 1):
			if o.err != nil {
				t.Fatal(o.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a first request waited for company")
		}
	})
	t.Run("close ends the wait", func(t *testing.T) {
		l := newLedger()
		c := newCommitter(t, l, Config[int, res]{Linger: time.Hour})
		first, rest, release := pileUp(t, l, c, 1, 2)
		l.mu.Lock()
		l.hold = nil
		l.mu.Unlock()
		release()
		for _, ch := range append(rest, first) {
			<-ch
		}
		ch := submit(context.Background(), c, 3)
		// Give the writer time to take 3 and start its hour-long wait.
		time.Sleep(50 * time.Millisecond)
		done := make(chan struct{})
		go func() { c.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close waited for the linger")
		}
		if o := <-ch; o.err != nil || o.res.n != 30 {
			t.Errorf("request 3 after Close: %+v, want committed", o)
		}
	})
}
