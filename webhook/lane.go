package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
)

// lane holds and delivers the jobs of one endpoint, with goroutines of its
// own, so that a slow or dead endpoint only ever delays itself.
type lane struct {
	w      *Worker
	ep     Endpoint
	types  []string        // the store's type filter; nil = all
	logins []string        // the store's login filter; nil = all
	wg     *sync.WaitGroup // Run's: senders and recorders

	mu      sync.Mutex
	cond    *sync.Cond      // signalled when a job is queued or the lane stops
	held    map[int64]*held // claimed jobs: queued, in flight or being recorded
	firsts  []*held         // queued first attempts, in Seq order
	retries []*held         // queued retries, in claim order
	// failing is set while the endpoint's last attempt failed: its events
	// are out of order anyway, so every sender takes first attempts too.
	failing bool
	latency time.Duration // moving average of the endpoint's answer time
	stopped bool
}

// held is a claimed job, queued or in flight.
type held struct {
	job        *store.WebhookJob
	leaseUntil time.Time
}

// outcome is what becomes of a job after an attempt.
type outcome struct {
	state  string // sent, deferred or failed
	status int    // HTTP status, 0 if none
	text   string // the job's LastError
	next   time.Time
	// took is how long the request took; 0 if none was made. Only an
	// outcome with a request says whether the endpoint works.
	took time.Duration
}

func newLane(w *Worker, ep Endpoint, types, logins []string) *lane {
	l := &lane{w: w, ep: ep, types: types, logins: logins, held: make(map[int64]*held), latency: initialLatency}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// capacity is how many jobs the lane holds at most: about as many as it
// sends in half a lease at its measured pace, so that a job it takes is
// sent before its lease runs out. l.mu is held.
func (l *lane) capacity() int {
	parallel := 1 // first attempts, one at a time
	if l.failing {
		parallel = l.ep.Concurrency
	}
	n := int(l.w.cfg.Lease/2/max(l.latency, 100*time.Microsecond)) * parallel
	return min(max(n, 2*l.ep.Concurrency), maxHeld)
}

// free returns how many more jobs the lane takes now.
func (l *lane) free() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(l.capacity()-len(l.held), 0)
}

// add queues a job claimed for the lane. A job it already holds (claimed
// again after its lease ran out) gets the new lease. The worker claims no
// more than free allowed, so add does not check the capacity again (it
// may have shrunk since): a job claimed for the lane is never left unsent
// for want of room. A stopped lane leaves the job to Run's release.
func (l *lane) add(j *store.WebhookJob, leaseUntil time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.held[j.ID]; ok {
		h.leaseUntil = leaseUntil
		return
	}
	if l.stopped {
		return
	}
	h := &held{job: j, leaseUntil: leaseUntil}
	l.held[j.ID] = h
	if j.Attempts == 0 {
		i := len(l.firsts)
		for i > 0 && l.firsts[i-1].job.EventSeq > j.EventSeq {
			i--
		}
		l.firsts = slices.Insert(l.firsts, i, h)
	} else {
		l.retries = append(l.retries, h)
	}
	l.cond.Broadcast()
}

// take returns the next job for a sender, or nil once the lane stops. The
// ordered sender takes first attempts, in Seq order, before retries; the
// others take only retries, unless the endpoint is failing.
func (l *lane) take(ordered bool) (*store.WebhookJob, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.stopped {
		var h *held
		switch {
		case (ordered || l.failing) && len(l.firsts) > 0:
			h, l.firsts = l.firsts[0], l.firsts[1:]
		case len(l.retries) > 0:
			h, l.retries = l.retries[0], l.retries[1:]
		default:
			l.cond.Wait()
			continue
		}
		return h.job, h.leaseUntil
	}
	return nil, time.Time{}
}

// done forgets a job the lane no longer holds.
func (l *lane) done(j *store.WebhookJob) {
	l.mu.Lock()
	wasFull := len(l.held) >= l.capacity()
	delete(l.held, j.ID)
	l.mu.Unlock()
	if wasFull {
		l.w.Notify() // the worker may have left jobs for want of room
	}
}

// stop makes the senders exit after their current attempt.
func (l *lane) stop() {
	l.mu.Lock()
	l.stopped = true
	l.cond.Broadcast()
	l.mu.Unlock()
}

// start starts the lane's Concurrency senders in wg.
func (l *lane) start(ctx context.Context, wg *sync.WaitGroup) {
	l.wg = wg
	for i := range l.ep.Concurrency {
		wg.Go(func() {
			for {
				j, leaseUntil := l.take(i == 0)
				if j == nil {
					return
				}
				l.deliver(ctx, j, leaseUntil)
			}
		})
	}
}

// deliver makes one attempt and has its outcome recorded while the sender
// goes on with the next job (the store commits outcomes in groups).
func (l *lane) deliver(ctx context.Context, j *store.WebhookJob, leaseUntil time.Time) {
	log := l.w.log.With(zap.String("webhook", l.ep.Name), zap.Int64("job", j.ID), zap.Int64("seq", j.EventSeq), zap.Int("attempt", j.Attempts+1))
	if left := leaseUntil.Sub(l.w.cfg.Now()); left < l.w.timeout+leaseMargin {
		// Sending now could outlast the lease and race another worker;
		// the job is claimed again once the lease runs out.
		log.Debug("webhook job left for its lease to run out", zap.Duration("lease_left", left))
		l.done(j)
		return
	}
	o := l.attempt(ctx, j)
	if o.took > 0 {
		// Learn the endpoint's pace, and whether it fails, before the
		// next take.
		l.mu.Lock()
		l.latency += (o.took - l.latency) / 8
		if failing := o.state != "sent"; failing != l.failing {
			l.failing = failing
			l.cond.Broadcast()
		}
		l.mu.Unlock()
	}
	l.wg.Go(func() {
		l.record(ctx, log, j, o)
		l.done(j)
	})
}

// attempt sends the job's event once and decides what becomes of the job.
func (l *lane) attempt(ctx context.Context, j *store.WebhookJob) outcome {
	ev, err := l.w.st.Event(ctx, j.EventSeq)
	if errors.Is(err, store.ErrNotFound) {
		return outcome{state: "failed", text: fmt.Sprintf("not sent: event %d is no longer in the store", j.EventSeq)}
	}
	if err != nil {
		return l.retry(j, nil, 0, fmt.Sprintf("not sent: reading event %d: %v", j.EventSeq, err), 0)
	}
	if j.Attempts == 0 && l.w.cfg.Now().After(born(j, ev).Add(l.ep.MaxAge)) {
		return outcome{state: "failed", text: fmt.Sprintf("not sent: the event is older than max age %s", l.ep.MaxAge)}
	}
	var info Info
	if f := l.w.cfg.MessageInfo; f != nil {
		info, err = f(ctx, ev.MessageID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			info = Info{}
		case err != nil:
			return l.retry(j, ev, 0, fmt.Sprintf("not sent: reading message %s: %v", ev.MessageID, err), 0)
		}
	}
	body, err := NewPayload(j.ID, l.ep.Name, ev, info).Marshal()
	if err != nil {
		return outcome{state: "failed", text: err.Error()}
	}
	start := time.Now()
	r := l.w.post(ctx, l.ep, j, ev.Type, body)
	took := max(time.Since(start), time.Nanosecond)
	var o outcome
	switch {
	case r.err == nil && r.status >= 200 && r.status < 300:
		o = outcome{state: "sent", status: r.status}
	case r.status == 410:
		o = outcome{state: "failed", status: r.status, text: r.text + " (410 Gone: not retried)"}
	default:
		o = l.retry(j, ev, r.status, r.text, r.retryAfter)
	}
	o.took = took
	return o
}

// retry defers a job after a failed attempt, or fails it when the next
// attempt would come more than MaxAge after its event.
func (l *lane) retry(j *store.WebhookJob, ev *store.Event, status int, text string, after time.Duration) outcome {
	now := l.w.cfg.Now()
	next := now.Add(max(l.w.cfg.Backoff(j.Attempts+1), after))
	if deadline := born(j, ev).Add(l.ep.MaxAge); next.After(deadline) {
		return outcome{state: "failed", status: status,
			text: fmt.Sprintf("%s (gave up after %d attempts: the next would come more than max age %s after the event)", text, j.Attempts+1, l.ep.MaxAge)}
	}
	return outcome{state: "deferred", status: status, text: text, next: next}
}

// born is when the job's event happened (when the job was created if the
// event is unknown or has no time): MaxAge counts from then.
func born(j *store.WebhookJob, ev *store.Event) time.Time {
	if ev == nil || ev.Time.IsZero() {
		return j.Created
	}
	return ev.Time
}

// record completes the job in the store, retrying a store error briefly:
// a job left leased is sent again once its lease runs out.
func (l *lane) record(ctx context.Context, log *zap.Logger, j *store.WebhookJob, o outcome) {
	var err error
	for try := range 3 {
		if try > 0 {
			time.Sleep(time.Duration(try) * 100 * time.Millisecond)
		}
		err = l.w.st.CompleteWebhookJob(ctx, j.ID, l.w.cfg.Owner, o.state, o.status, o.text, o.next)
		if err == nil || errors.Is(err, store.ErrLeaseLost) {
			break
		}
	}
	fields := []zap.Field{zap.String("state", o.state), zap.Int("status", o.status)}
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		log.Warn("webhook attempt made after the lease was lost; another worker may send it again", append(fields, zap.Error(err))...)
	case err != nil:
		log.Error("recording a webhook attempt; it will be sent again when its lease runs out", append(fields, zap.Error(err))...)
	case o.state == "sent":
		log.Debug("webhook delivered", fields...)
	case o.state == "deferred":
		log.Info("webhook deferred", append(fields, zap.String("error", shorten(o.text, 200)), zap.Time("next", o.next))...)
	default:
		log.Warn("webhook failed", append(fields, zap.String("error", shorten(o.text, 200)))...)
	}
}

// shorten cuts s to at most n bytes for a log line.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
