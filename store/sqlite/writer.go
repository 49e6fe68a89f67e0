package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/smtpgate/smtpgate/store"
)

// States of a request, moved on by compare-and-swap so that a caller who
// gives up and the writer never both own it.
const (
	stateQueued    int32 = iota
	stateTaken           // the writer will report a result
	stateAbandoned       // the caller gave up; the writer skips it
)

// request is one Accept waiting for the writer.
type request struct {
	row   row
	state atomic.Int32
	done  chan result // buffered: the writer never blocks on it
}

// result is what the writer reports for one request.
type result struct {
	seq int64
	err error
}

// row is a message encoded for its INSERTs, made by the caller's goroutine
// so that the writer only executes statements.
type row struct {
	id, login, route, mailFrom, remoteIP, helo string
	tls                                        bool
	received, size                             int64
	recipients, summary, tags                  []byte // JSON
	raw, original                              []byte
	inboxes                                    []string // capture index entries
}

// Accept commits msg durably and sets msg.Seq. It waits in the writer's
// queue; if ctx ends while the message is still queued, Accept returns the
// context's error and the message is not stored. Once its group is being
// committed, Accept reports the true outcome whatever ctx does.
func (db *DB) Accept(ctx context.Context, msg *store.Message) error {
	r, err := encodeRow(msg)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: accept %s: %w", msg.ID, err)
	}
	req := &request{row: r, done: make(chan result, 1)}

	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return fmt.Errorf("sqlite: accept %s: %w", msg.ID, store.ErrClosed)
	}
	db.senders.Add(1)
	db.mu.RUnlock()
	select {
	case db.queue <- req:
		db.senders.Done()
	case <-ctx.Done():
		db.senders.Done()
		return fmt.Errorf("sqlite: accept %s: %w", msg.ID, ctx.Err())
	}

	var res result
	select {
	case res = <-req.done:
	case <-ctx.Done():
		if req.state.CompareAndSwap(stateQueued, stateAbandoned) {
			return fmt.Errorf("sqlite: accept %s: %w", msg.ID, ctx.Err())
		}
		res = <-req.done // already being committed: report the truth
	}
	if res.err != nil {
		return res.err
	}
	msg.Seq = res.seq
	return nil
}

// encodeRow validates msg and encodes it for the writer.
func encodeRow(msg *store.Message) (row, error) {
	if msg == nil || msg.ID == "" {
		return row{}, errors.New("sqlite: accept: message without an id")
	}
	r := row{
		id: msg.ID, login: msg.Login, route: msg.Route, mailFrom: msg.MailFrom,
		remoteIP: msg.RemoteIP, helo: msg.Helo, tls: msg.TLS,
		received: msg.Received.UnixMilli(), size: msg.Size,
		raw: msg.Raw, original: msg.Original,
	}
	if r.raw == nil {
		r.raw = []byte{}
	}
	if len(r.original) == 0 {
		r.original = nil
	}
	var err error
	if r.recipients, err = json.Marshal(nonNil(msg.Recipients)); err != nil {
		return row{}, fmt.Errorf("sqlite: accept %s: encode recipients: %w", msg.ID, err)
	}
	if r.tags, err = json.Marshal(nonNil(msg.Tags)); err != nil {
		return row{}, fmt.Errorf("sqlite: accept %s: encode tags: %w", msg.ID, err)
	}
	if r.summary, err = json.Marshal(msg.Summary); err != nil {
		return row{}, fmt.Errorf("sqlite: accept %s: encode summary: %w", msg.ID, err)
	}
	if msg.Route == store.RouteCapture {
		r.inboxes = store.Inboxes(msg.Recipients)
	}
	return r, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writer is the one goroutine that commits messages. It takes every
// request queued (within the batch limits) into one transaction.
func (db *DB) writer() {
	defer close(db.stopped)
	batch := make([]*request, 0, maxBatchMessages)
	for {
		batch = batch[:0]
		select {
		case r := <-db.queue:
			batch = db.collect(append(batch, r))
		case <-db.stop:
			// Close guarantees nothing more is sent: drain and exit.
			for {
				select {
				case r := <-db.queue:
					db.commit(db.collect(append(batch[:0], r)))
				default:
					return
				}
			}
		}
		db.commit(batch)
	}
}

// collect adds queued requests to batch without waiting, up to the limits.
func (db *DB) collect(batch []*request) []*request {
	bytes := len(batch[0].row.raw) + len(batch[0].row.original)
	for len(batch) < maxBatchMessages && bytes < maxBatchBytes {
		select {
		case r := <-db.queue:
			batch = append(batch, r)
			bytes += len(r.row.raw) + len(r.row.original)
		default:
			return batch
		}
	}
	return batch
}

// commit writes a batch in one transaction and releases its callers. If the
// transaction fails, each request is retried in a transaction of its own so
// that every caller gets its own true result.
func (db *DB) commit(batch []*request) {
	live := batch[:0]
	for _, r := range batch {
		if r.state.CompareAndSwap(stateQueued, stateTaken) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	start := time.Now()
	seqs, err := db.insert(live)
	if err == nil {
		for i, r := range live {
			r.done <- result{seq: seqs[i]}
		}
		if d := time.Since(start); d > time.Second {
			db.log.Warn("slow group commit", zap.Int("messages", len(live)), zap.Duration("took", d))
		}
		return
	}
	if len(live) == 1 {
		live[0].done <- result{err: err}
		return
	}
	db.log.Warn("group commit failed; retrying one by one", zap.Int("messages", len(live)), zap.Error(err))
	for _, r := range live {
		seqs, err := db.insert([]*request{r})
		if err != nil {
			r.done <- result{err: err}
			continue
		}
		r.done <- result{seq: seqs[0]}
	}
}

// insert commits the rows of batch in one transaction and returns their
// Seqs. On error nothing of the batch is stored.
func (db *DB) insert(batch []*request) ([]int64, error) {
	// The writer does not take a caller's context: once a batch starts it
	// finishes, so that results are truthful.
	ctx := context.Background()
	tx, err := db.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: accept: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	seqs := make([]int64, len(batch))
	seq := db.lastSeq
	for i, r := range batch {
		seq++
		if err := db.insertRow(ctx, tx, seq, &r.row); err != nil {
			return nil, err
		}
		seqs[i] = seq
	}
	if _, err := tx.StmtContext(ctx, db.stmts[updateLastSeq]).ExecContext(ctx, seq); err != nil {
		return nil, fmt.Errorf("sqlite: accept: update last_seq: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: accept: commit: %w", err)
	}
	db.lastSeq = seq
	return seqs, nil
}

const (
	insertMessage = `INSERT INTO messages (seq, id, login, route, mail_from, recipients, remote_ip, helo, tls, received, size, summary, tags)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertBody    = `INSERT INTO bodies (seq, raw, original) VALUES (?, ?, ?)`
	insertInbox   = `INSERT INTO inbox (inbox, seq, message_id, login) VALUES (?, ?, ?, ?)`
	updateLastSeq = `UPDATE counters SET value = ? WHERE name = 'last_seq'`
)

// insertRow inserts one message, its body and its inbox entries.
func (db *DB) insertRow(ctx context.Context, tx *sql.Tx, seq int64, r *row) error {
	_, err := tx.StmtContext(ctx, db.stmts[insertMessage]).ExecContext(ctx, seq, r.id, r.login, r.route, r.mailFrom, r.recipients,
		r.remoteIP, r.helo, r.tls, r.received, r.size, r.summary, r.tags)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("sqlite: accept %s: %w", r.id, store.ErrDuplicateID)
		}
		return fmt.Errorf("sqlite: accept %s: insert message: %w", r.id, err)
	}
	if _, err := tx.StmtContext(ctx, db.stmts[insertBody]).ExecContext(ctx, seq, r.raw, r.original); err != nil {
		return fmt.Errorf("sqlite: accept %s: insert body: %w", r.id, err)
	}
	if len(r.inboxes) == 0 {
		return nil
	}
	ins := tx.StmtContext(ctx, db.stmts[insertInbox])
	for _, inbox := range r.inboxes {
		if _, err := ins.ExecContext(ctx, inbox, seq, r.id, r.login); err != nil {
			return fmt.Errorf("sqlite: accept %s: insert inbox %s: %w", r.id, inbox, err)
		}
	}
	return nil
}

// isUniqueViolation reports whether err is SQLite's UNIQUE constraint error.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}
