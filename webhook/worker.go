package webhook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
)

// Defaults for the zero values of Config and Endpoint.
const (
	DefaultPoll        = time.Second
	DefaultLease       = 2 * time.Minute
	DefaultTimeout     = 10 * time.Second // of the default HTTP client
	DefaultMaxAge      = 24 * time.Hour
	DefaultConcurrency = 4 // requests in flight to one endpoint
	// MaxResponseBody is how much of a response body is read and kept in
	// the job's LastError.
	MaxResponseBody = 4 << 10
)

const (
	// fanOutBatch is how many events one EnqueueWebhookJobs call reads;
	// the worker takes turns between endpoints, so that no endpoint's
	// fan-out waits for all of another's.
	fanOutBatch = 128
	claimBatch  = 256   // jobs per ClaimWebhookJobs call at most
	maxHeld     = 10000 // jobs one endpoint holds at most
	// initialLatency is the answer time assumed of an endpoint until it
	// has answered: it sizes the first claims.
	initialLatency = 100 * time.Millisecond
	// orphanSweep is how often the worker looks for due jobs of webhooks
	// that are no longer configured, to fail them.
	orphanSweep = time.Minute
	// leaseMargin is kept free at the end of a lease for reading the
	// event and recording the outcome: a job whose lease has less than
	// the HTTP timeout plus this left is not sent.
	leaseMargin = time.Second
)

// Endpoint is one webhook: where its events go and which ones.
type Endpoint struct {
	Name   string // unique; the jobs and the history are kept under it
	URL    string // http or https
	Secret []byte // HMAC key; empty sends unsigned requests
	// Events selects event types (store.EventSent, …); empty or "*" = all.
	Events []string
	// Logins selects the logins whose messages' events are sent; empty or
	// "*" = all.
	Logins []string
	// MaxAge is how long after the event it is sent or retried; 0 =
	// DefaultMaxAge. An event older than that when its turn comes is not
	// sent at all.
	MaxAge time.Duration
	// Concurrency bounds the requests in flight to this endpoint; 0 =
	// DefaultConcurrency. One of them carries first attempts, one at a time
	// in Seq order; the others carry retries.
	Concurrency int
}

// Config configures a Worker. Only Endpoints is required.
type Config struct {
	Endpoints []Endpoint
	// Owner names this worker in job leases; it must differ between the
	// processes that share a store. Default: host name, pid and a random
	// number.
	Owner string
	// Poll is how often the worker looks for new events and due retries
	// when Notify is not called; 0 = DefaultPoll.
	Poll time.Duration
	// Lease is how long a claimed job stays reserved to this worker; a job
	// of a worker that died is retried once it runs out. 0 = DefaultLease;
	// it must leave room for two HTTP timeouts.
	Lease time.Duration
	// Backoff is the delay after failed attempt number n (1 for the first);
	// nil = DefaultBackoff.
	Backoff func(attempt int) time.Duration
	// HTTPClient sends the requests; nil = a client with DefaultTimeout.
	// Its Timeout bounds each attempt (DefaultTimeout if 0), and redirects
	// are never followed, whatever its CheckRedirect.
	HTTPClient *http.Client
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// MessageInfo returns what a payload says about a message besides the
	// event (Message-ID header, subject, tags, metadata); nil leaves those
	// fields empty. An error wrapping store.ErrNotFound (the message was
	// deleted) sends the payload without them; any other error defers the
	// attempt.
	MessageInfo func(ctx context.Context, messageID string) (Info, error)
}

// Worker delivers the events of a store to the endpoints of a Config. It
// talks only to the store and the endpoints, in goroutines of its own, so
// nothing it does can hold up an SMTP session.
type Worker struct {
	cfg     Config
	st      store.Webhooks
	log     *zap.Logger
	client  *http.Client
	timeout time.Duration
	wake    chan struct{}
}

// New returns a worker for cfg on st. Nothing runs before Run.
func New(cfg Config, st store.Webhooks, log *zap.Logger) *Worker {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("webhook-%s-%d-%08x", host, os.Getpid(), rand.Uint32())
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client := NewHTTPClient(DefaultTimeout)
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		client = &c
		if client.Timeout <= 0 {
			client.Timeout = DefaultTimeout
		}
		client.CheckRedirect = noRedirects
	}
	return &Worker{
		cfg:     cfg,
		st:      st,
		log:     log,
		client:  client,
		timeout: client.Timeout,
		wake:    make(chan struct{}, 1),
	}
}

// Notify tells the worker that events were committed, so that it fans them
// out now rather than at the next poll. It never blocks and may be called
// from any goroutine, before or during Run.
func (w *Worker) Notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is cancelled, then waits for the requests in
// flight to finish and be recorded (at most one HTTP timeout) and returns
// nil. It returns an error at once if the configuration is invalid. Store
// errors are logged and retried at the next poll; they never end Run. Run
// is called once per Worker; to apply a new configuration, cancel it and
// run a new Worker (jobs and cursors live in the store).
func (w *Worker) Run(ctx context.Context) error {
	lanes, err := w.lanes()
	if err != nil {
		return err
	}
	// Requests in flight outlive ctx so that their outcome is recorded
	// rather than left to the lease: a 2xx answered during shutdown is not
	// sent again.
	dctx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for _, l := range lanes {
		l.start(dctx, &wg)
	}
	w.log.Info("webhook worker started", zap.Int("endpoints", len(lanes)), zap.String("owner", w.cfg.Owner))

	timer := time.NewTimer(0)
	defer timer.Stop()
	var swept time.Time
	for ctx.Err() == nil {
		if now := w.cfg.Now(); now.Sub(swept) >= orphanSweep || now.Before(swept) {
			w.failOrphans(ctx, lanes, now)
			swept = now
		}
		if w.round(ctx, lanes) {
			continue // a full batch: there may be more due at once
		}
		timer.Reset(w.cfg.Poll)
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-timer.C:
		}
	}

	for _, l := range lanes {
		l.stop()
	}
	wg.Wait()
	// The jobs still leased (queued in a lane, or waiting for their lease
	// to run out) go back to the queue at once, for the next worker.
	rctx, cancel := context.WithTimeout(dctx, 5*time.Second)
	defer cancel()
	if err := w.st.ReleaseWebhookJobs(rctx, w.cfg.Owner); err != nil {
		w.log.Warn("releasing webhook jobs", zap.Error(err))
	}
	w.log.Info("webhook worker stopped")
	return nil
}

// lanes validates the endpoints and returns a lane for each, by name.
func (w *Worker) lanes() (map[string]*lane, error) {
	if need := 2 * (w.timeout + leaseMargin); w.cfg.Lease < need {
		return nil, fmt.Errorf("webhook: lease %s is too short for an HTTP timeout of %s (at least %s)", w.cfg.Lease, w.timeout, need)
	}
	lanes := make(map[string]*lane, len(w.cfg.Endpoints))
	for _, ep := range w.cfg.Endpoints {
		if ep.Name == "" {
			return nil, errors.New("webhook: an endpoint has no name")
		}
		if _, dup := lanes[ep.Name]; dup {
			return nil, fmt.Errorf("webhook: endpoint %q is defined twice", ep.Name)
		}
		u, err := url.Parse(ep.URL)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // without the URL, which may hold a password
			}
			return nil, fmt.Errorf("webhook: endpoint %q: bad URL: %w", ep.Name, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("webhook: endpoint %q: URL %q is not an absolute http or https URL", ep.Name, u.Redacted())
		}
		types, err := eventTypes(ep.Events)
		if err != nil {
			return nil, fmt.Errorf("webhook: endpoint %q: %w", ep.Name, err)
		}
		if ep.MaxAge <= 0 {
			ep.MaxAge = DefaultMaxAge
		}
		if ep.Concurrency <= 0 {
			ep.Concurrency = DefaultConcurrency
		}
		if len(ep.Secret) == 0 {
			w.log.Warn("webhook endpoint has no secret: its requests are not signed", zap.String("webhook", ep.Name))
		}
		lanes[ep.Name] = newLane(w, ep, types, loginFilter(ep.Logins))
	}
	return lanes, nil
}

// EventTypes returns the event types an Endpoint's Events may name
// (besides "*").
func EventTypes() []string {
	return []string{
		store.EventQueued, store.EventCaptured, store.EventDirective, store.EventSent, store.EventDeferred,
		store.EventBounced, store.EventFailed, store.EventOpened, store.EventClicked, store.EventReply,
	}
}

// eventTypes returns the store's type filter for an endpoint's Events: nil
// for all.
func eventTypes(events []string) ([]string, error) {
	if len(events) == 0 || slices.Contains(events, "*") {
		return nil, nil
	}
	known := EventTypes()
	for _, e := range events {
		if !slices.Contains(known, e) {
			return nil, fmt.Errorf("unknown event type %q: not one of %s or \"*\"", e, strings.Join(known, ", "))
		}
	}
	return slices.Clone(events), nil
}

// loginFilter returns the store's login filter for an endpoint's Logins:
// nil for all.
func loginFilter(logins []string) []string {
	if len(logins) == 0 || slices.Contains(logins, "*") {
		return nil
	}
	return slices.Clone(logins)
}

// round fans new events out to jobs and hands due jobs to the lanes. It
// reports whether it should run again at once.
func (w *Worker) round(ctx context.Context, lanes map[string]*lane) bool {
	now := w.cfg.Now()
	names := slices.Sorted(maps.Keys(lanes))
	pending := slices.Clone(names)
	for len(pending) > 0 {
		more := pending[:0]
		for _, name := range pending {
			n, err := w.st.EnqueueWebhookJobs(ctx, name, lanes[name].types, lanes[name].logins, fanOutBatch, now)
			if err != nil {
				if ctx.Err() != nil {
					return false
				}
				// The other endpoints go on; this one tries again next round.
				w.log.Error("fanning events out to webhook jobs", zap.String("webhook", name), zap.Error(err))
				continue
			}
			if n == fanOutBatch {
				more = append(more, name)
			}
		}
		pending = more
	}

	// Each endpoint claims its own jobs, oldest first, as many as its lane
	// has room for: a full lane claims nothing, so one endpoint's backlog
	// never leaves another endpoint's jobs leased and unsent.
	leaseUntil := now.Add(w.cfg.Lease)
	again := false
	for _, name := range names {
		l := lanes[name]
		limit := min(l.free(), claimBatch)
		if limit <= 0 {
			continue // the lane wakes the loop when it has room again
		}
		jobs, err := w.st.ClaimWebhookJobs(ctx, name, w.cfg.Owner, now, limit, w.cfg.Lease)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			w.log.Error("claiming webhook jobs", zap.String("webhook", name), zap.Error(err))
			continue
		}
		for _, j := range jobs {
			l.add(j, leaseUntil)
		}
		if len(jobs) == limit && l.free() > 0 {
			again = true // more may be due, and there is room for them
		}
	}
	return again
}

// failOrphans fails the due jobs of webhooks that are no longer
// configured: nothing would ever send them. It claims the oldest due jobs
// of every webhook with a lease that runs out at once, so that the jobs of
// configured endpoints among them stay free for their own claims (by this
// worker or another), and fails the others.
func (w *Worker) failOrphans(ctx context.Context, lanes map[string]*lane, now time.Time) {
	jobs, err := w.st.ClaimWebhookJobs(ctx, "", w.cfg.Owner, now, claimBatch, 0)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Error("looking for jobs of removed webhooks", zap.Error(err))
		}
		return
	}
	for _, j := range jobs {
		if lanes[j.Webhook] == nil {
			w.finish(ctx, j, "failed", fmt.Sprintf("not sent: webhook %q is no longer configured", j.Webhook))
		}
	}
}

// finish records a job that is not sent at all.
func (w *Worker) finish(ctx context.Context, j *store.WebhookJob, state, why string) {
	w.log.Warn("webhook job not sent", zap.String("webhook", j.Webhook), zap.Int64("job", j.ID),
		zap.Int64("seq", j.EventSeq), zap.String("reason", why))
	if err := w.st.CompleteWebhookJob(ctx, j.ID, w.cfg.Owner, state, 0, why, time.Time{}); err != nil {
		w.log.Error("recording webhook job", zap.Int64("job", j.ID), zap.Error(err))
	}
}
