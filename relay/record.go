package relay

import (
	"context"
	"sync"
	"time"

	"github.com/smtpgate/smtpgate/store"
)

// maxRecordBatch bounds the outcomes recorded in one write.
const maxRecordBatch = 128

// recordTimeout bounds one write of outcomes.
const recordTimeout = 30 * time.Second

// recorder records attempt outcomes in batches: the outcomes that finish
// while a write is in progress go together in the next one
// (store.Queue.CompleteAttempts), so that the relay queues one write per
// group of attempts instead of one per attempt. There is no waiting for a
// batch to fill: a lone outcome is written at once. Each attempt waits for
// its own result, so an outcome is durable before its attempt counts as
// done.
type recorder struct {
	q     store.Queue
	owner string
	in    chan *record
	wg    sync.WaitGroup
}

// record is one outcome waiting to be written.
type record struct {
	c    store.Completion
	done chan error
}

// newRecorder starts a recorder; close stops it.
func newRecorder(q store.Queue, owner string) *recorder {
	r := &recorder{q: q, owner: owner, in: make(chan *record, maxRecordBatch)}
	r.wg.Go(r.run)
	return r
}

// complete records o for delivery id and returns the store's answer.
func (r *recorder) complete(id int64, o store.Outcome) error {
	rec := &record{c: store.Completion{ID: id, Outcome: o}, done: make(chan error, 1)}
	r.in <- rec
	return <-rec.done
}

// close stops the recorder once every outcome handed to it is written; no
// complete may be called after it.
func (r *recorder) close() {
	close(r.in)
	r.wg.Wait()
}

func (r *recorder) run() {
	batch := make([]*record, 0, maxRecordBatch)
	cs := make([]store.Completion, 0, maxRecordBatch)
	for first := range r.in {
		batch = append(batch[:0], first)
	more:
		for len(batch) < maxRecordBatch {
			select {
			case rec, ok := <-r.in:
				if !ok {
					break more
				}
				batch = append(batch, rec)
			default:
				break more
			}
		}
		cs = cs[:0]
		for _, rec := range batch {
			cs = append(cs, rec.c)
		}
		// Outcomes are recorded whatever happens to the attempts' context
		// (an interrupted attempt still records what it achieved).
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		errs := r.q.CompleteAttempts(ctx, r.owner, cs)
		cancel()
		for i, rec := range batch {
			rec.done <- errs[i]
		}
		clear(batch)
		clear(cs)
	}
}
