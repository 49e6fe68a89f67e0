package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/relay/dkim"
	"github.com/smtpgate/smtpgate/relay/smtpclient"
	"github.com/smtpgate/smtpgate/store"
)

// Worker delivers the relay queue: it claims due deliveries from the store,
// runs their attempts concurrently within the routes' limits, and records
// each outcome. Several workers (processes) may share one store, each with
// its own Owner.
type Worker struct {
	cfg  Config
	q    store.Queue
	st   MessageSource
	log  *zap.Logger
	wake chan struct{}
	// scan asks Run for a claim that looks through the queue (Notify
	// without hints).
	scan atomic.Bool
	// cache holds the messages handed to Remember; nil when off.
	cache *messageCache

	// slots is how many more deliveries the worker may claim:
	// Config.MaxInFlight less those claimed and not yet finished.
	slots atomic.Int64
	// handed tells the recorder that Remember handed deliveries over.
	handed chan struct{}

	hintMu  sync.Mutex
	hints   []int64           // due deliveries handed to Remember, to claim by id
	arrived []*store.Delivery // claimed by the recorder, for Run

	mu      sync.RWMutex
	set     *settings // the Settings in force, compiled
	retired []retired // clients of replaced routes, until their idle sessions are closed
}

// retired is a client replaced by Reload.
type retired struct {
	client *smtpclient.Client
	since  time.Time
}

// settings is a compiled Settings.
type settings struct {
	routes        map[string]*route
	signer        *dkim.Signer
	signingDomain func(login string) string
	bounce        VERP
}

// NewWorker checks cfg and returns a Worker; Run starts it.
func NewWorker(cfg Config, q store.Queue, st MessageSource, log *zap.Logger) (*Worker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, q: q, st: st, log: log, wake: make(chan struct{}, 1), handed: make(chan struct{}, 1),
		cache: newMessageCache(cfg.MessageCache, cfg.MessageCacheTTL)}
	if err := w.Reload(cfg.Settings); err != nil {
		return nil, err
	}
	return w, nil
}

// Reload replaces the routes, the signer and the VERP codec (a policy
// reload). Attempts in progress finish with what they started with. On an
// error nothing changes.
func (w *Worker) Reload(s Settings) error {
	routes, err := compileRoutes(s.Routes, &w.cfg)
	if err != nil {
		return err
	}
	signer := s.Signer
	if signer == nil {
		signer = dkim.NewSigner(nil, dkim.Options{}) // normalises line endings only
	}
	w.mu.Lock()
	if w.set != nil {
		for _, r := range w.set.routes {
			w.retired = append(w.retired, retired{client: r.client, since: time.Now()})
		}
	}
	w.set = &settings{routes: routes, signer: signer, signingDomain: s.SigningDomain, bounce: s.Bounce}
	w.mu.Unlock()
	return nil
}

// closeIdle ends the idle SMTP sessions that timed out (all of them when
// all is set) and every idle session of replaced routes; a replaced route
// is forgotten once no attempt can still be using it.
func (w *Worker) closeIdle(all bool) {
	w.mu.Lock()
	set := w.set
	old := w.retired
	kept := w.retired[:0:0]
	for _, r := range w.retired {
		if !all && time.Since(r.since) < w.cfg.AttemptTimeout {
			kept = append(kept, r)
		}
	}
	w.retired = kept
	w.mu.Unlock()
	for _, r := range set.routes {
		r.client.CloseIdle(all)
	}
	for _, r := range old {
		r.client.CloseIdle(true)
	}
}

func (w *Worker) settings() *settings {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.set
}

// maxHints bounds the deliveries handed to Remember and not yet claimed;
// past it they are left to a claim that looks through the queue.
const maxHints = 10000

// Notify tells the worker that new work may be due (a message was just
// accepted, a delivery retried through the API), so that it looks at the
// queue now rather than at its next poll. Work that Remember handed over
// is claimed by id, without looking through the queue. It never blocks.
func (w *Worker) Notify() {
	if !w.hinted() {
		w.scan.Store(true)
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Remember hands the worker a message that was just committed with its
// deliveries: those already due are claimed by id, without looking through
// the queue, in the worker's next batched write (store.Queue.
// CompleteAndClaim), and the message is kept in the worker's bounded cache
// (Config.MessageCache), so that their first attempts need not read it
// back from the store. msg must be the message as committed (with its
// deliveries' IDs, and Raw for the cache) and must not be modified
// afterwards (committed messages never change); its Raw is kept, not
// copied. It never blocks for long; call Notify as well to wake the
// worker.
func (w *Worker) Remember(msg *store.Message) {
	if msg == nil || len(msg.Deliveries) == 0 {
		return
	}
	if msg.Raw != nil {
		w.cache.put(msg, len(msg.Deliveries), time.Now())
	}
	now := w.cfg.Now()
	w.hintMu.Lock()
	for _, d := range msg.Deliveries {
		switch {
		case d.ID <= 0 || d.NextAttempt.After(now):
			// Not claimable yet: a scan finds it when it is due.
		case len(w.hints) < maxHints:
			w.hints = append(w.hints, d.ID)
		default:
			w.scan.Store(true)
		}
	}
	hinted := len(w.hints) > 0
	w.hintMu.Unlock()
	if hinted {
		w.signalHanded()
	}
}

// signalHanded tells the recorder that deliveries wait to be claimed by
// id.
func (w *Worker) signalHanded() {
	select {
	case w.handed <- struct{}{}:
	default:
	}
}

// reserve takes up to n of the worker's free slots and returns how many it
// took; give back what goes unused with w.slots.Add.
func (w *Worker) reserve(n int) int {
	for {
		free := w.slots.Load()
		k := min(int64(n), free)
		if k <= 0 {
			return 0
		}
		if w.slots.CompareAndSwap(free, free-k) {
			return int(k)
		}
	}
}

// takeHints returns as many of the ids handed to Remember as the worker
// has free slots for, oldest first, and forgets them; their slots are
// taken (arrive gives back those not claimed).
func (w *Worker) takeHints() []int64 {
	w.hintMu.Lock()
	defer w.hintMu.Unlock()
	n := w.reserve(len(w.hints))
	if n == 0 {
		return nil
	}
	ids := slices.Clone(w.hints[:n])
	w.hints = append(w.hints[:0], w.hints[n:]...)
	return ids
}

// arrive hands Run the deliveries the recorder claimed out of asked ids
// (whose slots it had taken) and gives back the slots of the others.
func (w *Worker) arrive(asked int, claimed []*store.Delivery) {
	w.slots.Add(int64(asked - len(claimed)))
	if len(claimed) == 0 {
		return
	}
	w.hintMu.Lock()
	w.arrived = append(w.arrived, claimed...)
	w.hintMu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// takeArrived returns the deliveries the recorder claimed since the last
// call.
func (w *Worker) takeArrived() []*store.Delivery {
	w.hintMu.Lock()
	defer w.hintMu.Unlock()
	ds := w.arrived
	w.arrived = nil
	return ds
}

// hinted reports whether deliveries handed to Remember wait to be claimed.
func (w *Worker) hinted() bool {
	w.hintMu.Lock()
	defer w.hintMu.Unlock()
	return len(w.hints) > 0
}

// job is a claimed delivery.
type job struct {
	d          *store.Delivery
	route      *route // set when it starts; nil when the route is not configured
	leaseUntil time.Time
}

// finished is what an attempt reports back to the scheduler.
type finished struct {
	j        *job
	slowDown bool
}

// Run delivers until ctx ends. Then it stops claiming, lets the attempts
// in progress finish for up to ShutdownGrace, interrupts the rest (their
// outcome is still recorded: what was sent stays sent, the rest is due
// again at once), and returns the deliveries it claimed but never started
// to the queue. It returns nil after a clean shutdown. Call it once.
func (w *Worker) Run(ctx context.Context) error {
	lim := newLimits(w.cfg.SlowDownPeriod)
	done := make(chan finished)
	attemptCtx, interrupt := context.WithCancelCause(context.WithoutCancel(ctx))
	defer interrupt(nil)

	var held []*job // claimed, waiting for a concurrency or rate slot
	running := 0
	more := true // the queue may hold due work
	poll := time.NewTicker(w.cfg.PollInterval)
	defer poll.Stop()
	rate := time.NewTimer(time.Hour)
	rate.Stop()
	claimBatch := max(1, w.cfg.MaxInFlight/10)
	w.slots.Store(int64(w.cfg.MaxInFlight))
	// The recorder records the outcomes and claims what Remember hands
	// over. It outlives every attempt; shutdown closes it (writing the
	// outcomes still waiting) before it releases the leases.
	rec := newRecorder(w)
	defer rec.close()

	for {
		set := w.settings()
		now := time.Now()
		held = w.hold(held, w.takeArrived())
		var wait time.Duration
		held, wait = w.dispatch(attemptCtx, lim, set, rec, held, &running, done, now)
		if wait > 0 {
			rate.Reset(wait)
		}

		// A claim that looks through the queue: at start, at each poll, and
		// when Notify had nothing handed over.
		if free := int(w.slots.Load()); more && free > 0 && (free >= claimBatch || running+len(held) == 0) {
			n := w.reserve(free)
			claimed, err := w.q.ClaimDeliveries(ctx, w.cfg.Owner, w.cfg.Now(), n, w.cfg.Lease)
			w.slots.Add(int64(n - len(claimed)))
			switch {
			case err != nil && ctx.Err() == nil:
				w.log.Error("relay: claim deliveries", zap.Error(err))
				more = false // try again at the next poll
			case err == nil:
				held = w.hold(held, claimed)
				more = len(claimed) == n
				if len(claimed) > 0 {
					continue // start them
				}
			}
		}

		select {
		case <-ctx.Done():
			return w.shutdown(ctx, interrupt, done, rec, running, len(held))
		case <-w.wake:
			if w.scan.Swap(false) {
				more = true
			}
		case <-poll.C:
			more = true
			lim.prune(set.routes, time.Now())
			w.closeIdle(false)
		case <-rate.C:
		case f := <-done:
			running--
			w.slots.Add(1)
			if w.hinted() {
				w.signalHanded() // a slot for what waits to be claimed
			}
			if f.j.route != nil {
				lim.done(f.j.route, f.j.d.Domain, f.slowDown, time.Now())
				if f.slowDown {
					w.log.Info("relay: destination asked to slow down",
						zap.String("route", f.j.route.Name), zap.String("domain", f.j.d.Domain),
						zap.Int("concurrency", lim.bound(f.j.route, f.j.d.Domain, time.Now())))
				}
			}
		}
	}
}

// hold adds the claimed deliveries to the held jobs.
func (w *Worker) hold(held []*job, claimed []*store.Delivery) []*job {
	leaseUntil := time.Now().Add(w.cfg.Lease)
	for _, d := range claimed {
		held = append(held, &job{d: d, leaseUntil: leaseUntil})
	}
	return held
}

// dispatch starts the held jobs that fit the limits, in claim order, and
// returns those still waiting and, when some wait only for the rate, the
// shortest such wait.
func (w *Worker) dispatch(ctx context.Context, lim *limits, set *settings, rec *recorder, held []*job, running *int, done chan<- finished, now time.Time) ([]*job, time.Duration) {
	var wait time.Duration
	kept := held[:0]
	for _, j := range held {
		// The route in force now (a reload may have changed or removed
		// it); nil is recorded as a temporary failure, outside the limits.
		j.route = set.routes[j.d.Route]
		if j.route != nil {
			ok, rw := lim.admit(j.route, j.d.Domain, now)
			if !ok {
				if rw > 0 && (wait == 0 || rw < wait) {
					wait = rw
				}
				if now.Add(w.cfg.AttemptTimeout).After(j.leaseUntil) {
					// It could not finish within its lease any more: drop
					// it; it is claimed again when the lease expires.
					w.log.Debug("relay: lease ran out while throttled", zap.Int64("delivery", j.d.ID))
					w.slots.Add(1)
					continue
				}
				kept = append(kept, j)
				continue
			}
			lim.start(j.route, j.d.Domain, now)
		}
		*running++
		go func() {
			slow := w.attempt(ctx, set, rec, j)
			done <- finished{j: j, slowDown: slow}
		}()
	}
	clear(held[len(kept):])
	return kept, wait
}

// shutdown waits for the attempts in progress, interrupting them after the
// grace period, and releases the leases of the rest.
func (w *Worker) shutdown(ctx context.Context, interrupt context.CancelCauseFunc, done <-chan finished, rec *recorder, running, held int) error {
	w.log.Info("relay: stopping", zap.Int("in_progress", running), zap.Int("waiting", held))
	grace := time.NewTimer(w.cfg.ShutdownGrace)
	defer grace.Stop()
	for running > 0 {
		select {
		case <-done:
			running--
		case <-grace.C:
			w.log.Warn("relay: interrupting attempts after the shutdown grace period", zap.Int("in_progress", running))
			interrupt(errShutdown)
		}
	}
	// Every outcome is recorded before the leases go: a delivery released
	// with its outcome still waiting would be sent again.
	rec.close()
	w.closeIdle(true)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := w.q.ReleaseDeliveries(rctx, w.cfg.Owner); err != nil {
		return fmt.Errorf("relay: release deliveries at shutdown: %w", err)
	}
	return nil
}

// errShutdown is the cause of attempts interrupted at shutdown.
var errShutdown = errors.New("relay: shutting down")
