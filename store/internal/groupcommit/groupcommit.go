// Package groupcommit commits writes in groups. Callers queue requests with
// Submit and wait; writer goroutines take every request waiting in the
// queue, up to a count and a byte limit, and hand them to the backend as
// one batch (one transaction, one fsync or WAL flush), then release each
// caller with its own result.
//
// A request moves from queued to taken (a writer will report its result)
// or to abandoned (its caller gave up while it was still queued) by
// compare-and-swap, so a caller who gives up and a writer never both own
// it: once a writer has taken a request, Submit reports the true outcome
// whatever the caller's context does. If a whole batch fails, each request
// is run again in a batch of its own so that every caller gets its own
// true result (one bad request does not fail its neighbours).
//
// Close stops taking requests, commits every request already queued and
// waits for the writers to exit.
package groupcommit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
)

// States of a request, moved on by compare-and-swap.
const (
	stateQueued    int32 = iota
	stateTaken           // a writer will report a result
	stateAbandoned       // the caller gave up; the writers skip it
)

// slowCommit is how long a batch may take before it is logged.
const slowCommit = time.Second

// Config is what a Committer needs from its backend.
type Config[Req, Res any] struct {
	// Run executes a batch, normally in one transaction, and returns one
	// result per request in batch order, or an error if nothing of the
	// batch was stored. A request that fails alone without failing the
	// transaction reports that in its Res. Run is called from the writer
	// goroutines only (with Writers 1, never concurrently), never with an
	// empty batch, and must not keep batch after it returns.
	Run func(batch []Req) ([]Res, error)
	// Size is what a request counts against MaxBytes.
	Size func(Req) int
	// MaxRequests is the most requests in one batch (at least 1).
	MaxRequests int
	// MaxBytes bounds the sum of Size over a batch, roughly: a writer
	// stops adding requests once the sum reaches it.
	MaxBytes int
	// QueueSize is how many requests may wait for a writer before Submit
	// blocks.
	QueueSize int
	// Writers is the number of writer goroutines (at least 1).
	Writers int
	// Linger is how long a writer may wait for more requests when a batch
	// comes out smaller than its previous one (PostgreSQL's commit_delay
	// with its commit_siblings test, in the committer's own terms): under
	// a steady load the groups stay as large as the load makes them, so
	// the fixed cost of a commit (its WAL frames, its fsync) is shared by
	// as many messages as before instead of being paid again for a
	// smaller group. A writer whose previous batch had one request never
	// waits, so a lone request is not delayed. 0 means never wait.
	Linger time.Duration
	// Log receives slow commits and batches retried one by one; nil
	// means no logging.
	Log *zap.Logger
}

// Committer queues requests and commits them in groups. It is safe for
// concurrent use.
type Committer[Req, Res any] struct {
	cfg     Config[Req, Res]
	queue   chan *request[Req, Res]
	stop    chan struct{}  // closed by Close: the writers drain and exit
	writers sync.WaitGroup // the writer goroutines

	mu      sync.RWMutex
	closed  atomic.Bool
	senders sync.WaitGroup // Submits between the closed check and the queue
	once    sync.Once
}

// request is one queued Req with its state and the channel that returns its
// outcome.
type request[Req, Res any] struct {
	req   Req
	state atomic.Int32
	done  chan outcome[Res] // buffered: a writer never blocks on it
}

// outcome is what a writer reports for one request.
type outcome[Res any] struct {
	res Res
	err error
}

// New starts a Committer's writer goroutines.
func New[Req, Res any](cfg Config[Req, Res]) *Committer[Req, Res] {
	cfg.MaxRequests = max(cfg.MaxRequests, 1)
	cfg.Writers = max(cfg.Writers, 1)
	cfg.QueueSize = max(cfg.QueueSize, 0)
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	c := &Committer[Req, Res]{
		cfg:   cfg,
		queue: make(chan *request[Req, Res], cfg.QueueSize),
		stop:  make(chan struct{}),
	}
	for range cfg.Writers {
		c.writers.Go(c.writer)
	}
	return c
}

// Submit queues req and waits for its result. If ctx ends while req is
// still queued, Submit returns the context's error and req is never run;
// once a writer has taken it, Submit waits for the true outcome whatever
// ctx does. The error is the context's, store.ErrClosed after Close, or
// the error of the batch that failed with req alone in it.
func (c *Committer[Req, Res]) Submit(ctx context.Context, req Req) (Res, error) {
	var zero Res
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	r := &request[Req, Res]{req: req, done: make(chan outcome[Res], 1)}
	c.mu.RLock()
	if c.closed.Load() {
		c.mu.RUnlock()
		return zero, store.ErrClosed
	}
	c.senders.Add(1)
	c.mu.RUnlock()
	select {
	case c.queue <- r:
		c.senders.Done()
	case <-ctx.Done():
		c.senders.Done()
		return zero, ctx.Err()
	}
	select {
	case o := <-r.done:
		return o.res, o.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(stateQueued, stateAbandoned) {
			return zero, ctx.Err()
		}
		o := <-r.done // already being committed: report the truth
		return o.res, o.err
	}
}

// Closed reports whether Close has begun.
func (c *Committer[Req, Res]) Closed() bool { return c.closed.Load() }

// Queued returns the number of requests waiting for a writer.
func (c *Committer[Req, Res]) Queued() int { return len(c.queue) }

// Close stops taking requests (Submit then returns store.ErrClosed),
// commits every request already queued, and returns once the writers have
// exited. Later calls return at once.
func (c *Committer[Req, Res]) Close() {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed.Store(true)
		c.mu.Unlock()
		c.senders.Wait() // no request can reach the queue after this
		close(c.stop)
		c.writers.Wait()
	})
}

// writer commits queued requests in groups until Close.
func (c *Committer[Req, Res]) writer() {
	batch := make([]*request[Req, Res], 0, c.cfg.MaxRequests)
	reqs := make([]Req, 0, c.cfg.MaxRequests)
	prev := 0 // the size of the previous batch
	for {
		select {
		case r := <-c.queue:
			b := c.linger(c.collect(append(batch[:0], r)), prev)
			prev = len(b)
			c.commit(b, reqs)
		case <-c.stop:
			// Close guarantees nothing more is sent: drain and exit.
			for {
				select {
				case r := <-c.queue:
					c.commit(c.collect(append(batch[:0], r)), reqs)
				default:
					return
				}
			}
		}
	}
}

// collect adds queued requests to batch without waiting, up to the limits.
func (c *Committer[Req, Res]) collect(batch []*request[Req, Res]) []*request[Req, Res] {
	size := c.cfg.Size(batch[0].req)
	for len(batch) < c.cfg.MaxRequests && size < c.cfg.MaxBytes {
		select {
		case r := <-c.queue:
			batch = append(batch, r)
			size += c.cfg.Size(r.req)
		default:
			return batch
		}
	}
	return batch
}

// linger waits up to Linger for batch to reach want requests (the previous
// batch's size), within the limits; it returns early on Close.
func (c *Committer[Req, Res]) linger(batch []*request[Req, Res], want int) []*request[Req, Res] {
	want = min(want, c.cfg.MaxRequests)
	if c.cfg.Linger <= 0 || want < 2 || len(batch) >= want {
		return batch
	}
	size := 0
	for _, r := range batch {
		size += c.cfg.Size(r.req)
	}
	t := time.NewTimer(c.cfg.Linger)
	defer t.Stop()
	for len(batch) < want && size < c.cfg.MaxBytes {
		select {
		case r := <-c.queue:
			batch = append(batch, r)
			size += c.cfg.Size(r.req)
		case <-t.C:
			return batch
		case <-c.stop:
			return batch
		}
	}
	return batch
}

// commit runs the live requests of batch (those whose callers have not
// given up) as one batch and releases their callers. If the batch fails,
// each request is run again alone. reqs is scratch space for Run's
// argument.
func (c *Committer[Req, Res]) commit(batch []*request[Req, Res], reqs []Req) {
	live := batch[:0]
	for _, r := range batch {
		if r.state.CompareAndSwap(stateQueued, stateTaken) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	reqs = reqs[:0]
	for _, r := range live {
		reqs = append(reqs, r.req)
	}
	start := time.Now()
	results, err := c.run(reqs)
	clear(reqs) // keep no request alive until the next batch
	if err == nil {
		for i, r := range live {
			r.done <- outcome[Res]{res: results[i]}
		}
		if d := time.Since(start); d > slowCommit {
			c.cfg.Log.Warn("slow group commit", zap.Int("requests", len(live)), zap.Duration("took", d))
		}
		return
	}
	if len(live) == 1 {
		live[0].done <- outcome[Res]{err: err}
		return
	}
	c.cfg.Log.Info("group commit failed; retrying one by one", zap.Int("requests", len(live)), zap.Error(err))
	for _, r := range live {
		results, err := c.run([]Req{r.req})
		if err != nil {
			r.done <- outcome[Res]{err: err}
			continue
		}
		r.done <- outcome[Res]{res: results[0]}
	}
}

// run calls Run and checks that it returned one result per request.
func (c *Committer[Req, Res]) run(batch []Req) ([]Res, error) {
	results, err := c.cfg.Run(batch)
	if err == nil && len(results) != len(batch) {
		return nil, fmt.Errorf("groupcommit: %d results for a batch of %d", len(results), len(batch))
	}
	return results, err
}
