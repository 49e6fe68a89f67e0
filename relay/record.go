package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
)

// Batching of the worker's writes.
const (
	// maxRecordBatch bounds the outcomes recorded in one write.
	maxRecordBatch = 128
	// recordLinger is how long an outcome, or a delivery handed to
	// Remember, may wait for others to share its write. Every write the
	// relay queues may cost a commit of its own (an fsync and every page
	// it touched) when nothing else is being committed; gathering a few
	// milliseconds of work makes it one write, which mostly rides along
	// with the gateway's commits.
	recordLinger = 5 * time.Millisecond
	// recordTimeout bounds one write.
	recordTimeout = 30 * time.Second
)

// recorder is the worker's writer. It records attempt outcomes and claims
// the deliveries handed to Remember (store.Queue.CompleteAndClaim): an
// outcome or a handed-over delivery waits up to recordLinger, or until
// maxRecordBatch outcomes wait, and goes with all the others waiting then
// in one write. Claimed deliveries go to the worker's Run loop
// (Worker.arrive).
//
// An attempt does not wait for its outcome to be recorded: its delivery
// stays leased to the worker until then, so nothing else takes it
// meanwhile, and a crash in between re-sends only what was not yet
// recorded (at least once). close writes what is waiting; the worker calls
// it before it releases its leases.
type recorder struct {
	w       *Worker
	in      chan *record
	closing atomic.Bool
	wg      sync.WaitGroup
	once    sync.Once
}

// record is one outcome waiting to be written, and what to do with the
// store's answer.
type record struct {
	c     store.Completion
	since time.Time
	done  func(error)
}

// newRecorder starts the recorder of w; close stops it.
func newRecorder(w *Worker) *recorder {
	r := &recorder{w: w, in: make(chan *record, 4*maxRecordBatch)}
	r.wg.Go(r.run)
	return r
}

// submit queues o for delivery id; done gets the store's answer (from the
// recorder's goroutine, so it must not block). It blocks only while
// 4*maxRecordBatch outcomes are waiting already.
func (r *recorder) submit(id int64, o store.Outcome, done func(error)) {
	r.in <- &record{c: store.Completion{ID: id, Outcome: o}, since: time.Now(), done: done}
}

// close writes every outcome submitted so far, claims nothing more, and
// stops the recorder; no submit may follow it. Later calls return at once.
func (r *recorder) close() {
	r.once.Do(func() {
		r.closing.Store(true)
		close(r.in)
		r.wg.Wait()
	})
}

func (r *recorder) run() {
	w := r.w
	batch := make([]*record, 0, maxRecordBatch)
	cs := make([]store.Completion, 0, maxRecordBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for open := true; open; {
		batch = batch[:0]
		var since time.Time
		select {
		case first, ok := <-r.in:
			if !ok {
				return
			}
			batch, since = append(batch, first), first.since
		case <-w.handed:
			since = time.Now()
		}
		linger.Reset(max(0, recordLinger-time.Since(since)))
	fill:
		for len(batch) < maxRecordBatch {
			select {
			case rec, ok := <-r.in:
				if !ok {
					open = false // closing: write what there is now
					break fill
				}
				batch = append(batch, rec)
			case <-w.handed:
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()

		var ids []int64
		if !r.closing.Load() {
			ids = w.takeHints()
		}
		if len(batch) == 0 && len(ids) == 0 {
			continue
		}
		cs = cs[:0]
		for _, rec := range batch {
			cs = append(cs, rec.c)
		}
		// Outcomes are recorded whatever happens to the attempts' context
		// (an interrupted attempt still records what it achieved).
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		errs, claimed, err := w.q.CompleteAndClaim(ctx, w.cfg.Owner, cs, ids, w.cfg.Now(), w.cfg.Lease)
		cancel()
		for i, rec := range batch {
			rec.done(errs[i])
		}
		clear(batch)
		clear(cs)
		if len(ids) > 0 {
			if err != nil {
				w.log.Error("relay: claim deliveries by id", zap.Error(err))
				w.scan.Store(true) // a scan finds them
			}
			w.arrive(len(ids), claimed)
		}
	}
}
