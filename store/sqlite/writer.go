package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/smtpgate/smtpgate/store"
)

// request is one write for the group committer: an Accept (row) or
// another write (op).
type request struct {
	row *row
	op  func(ctx context.Context, tx *sql.Tx) error
}

// result is what the writer reports for one request.
type result struct {
	seq int64 // the message's Seq, for an Accept
	err error // the op's own error, rolled back to its savepoint
}

// requestSize is what a request counts against maxBatchBytes.
func requestSize(r *request) int {
	if r.row == nil {
		return 1024
	}
	n := len(r.row.raw) + len(r.row.original)
	if r.row.search != nil {
		n += len(r.row.search.text)
	}
	return n
}

// row is a message encoded for its INSERTs, made by the caller's goroutine
// so that the writer only executes statements.
type row struct {
	id, login, route, mailFrom, remoteIP, helo, returnPath string
	tls                                                    bool
	received, size, sendAt                                 int64
	recipients, summary, tags, metadata, processing        []byte // JSON
	raw, original                                          []byte
	inboxes                                                []string   // capture index entries
	search                                                 *searchRow // captured messages only
	events                                                 []*store.Event
	deliveries                                             []*store.Delivery // copies with the defaults filled in
	deliveryRecipients                                     [][]byte          // JSON of each delivery's Recipients
	created                                                time.Time

	// Set by the writer for a successful commit.
	eventSeqs   []int64
	deliveryIDs []int64
}

// Accept commits msg durably and sets msg.Seq, with its events and
// deliveries (whose Seq, ID, MessageID, Login, Created and Updated it
// sets). It waits in the writer's queue; if ctx ends while the message is
// still queued, Accept returns the context's error and the message is not
// stored. Once its group is being committed, Accept reports the true
// outcome whatever ctx does.
func (db *DB) Accept(ctx context.Context, msg *store.Message) error {
	r, err := encodeRow(msg)
	if err != nil {
		return err
	}
	res, err := db.commits.Submit(ctx, &request{row: r})
	if err != nil {
		return fmt.Errorf("sqlite: accept %s: %w", msg.ID, err)
	}
	msg.Seq = res.seq
	for i, e := range msg.Events {
		e.Seq, e.MessageID, e.Login = r.eventSeqs[i], msg.ID, msg.Login
	}
	for i, d := range msg.Deliveries {
		d.ID, d.MessageID, d.Login = r.deliveryIDs[i], msg.ID, msg.Login
		d.Created, d.Updated = r.created, r.created
		c := r.deliveries[i]
		d.State, d.NextAttempt, d.Recipients = c.State, c.NextAttempt, c.Recipients
	}
	return nil
}

// write runs op in the writer goroutine, inside the current group's
// transaction under a savepoint: if op fails, its changes are rolled back
// and only its caller sees the error. Results that op computes must be
// assigned anew on every run (a failed group is retried one by one). Like
// Accept, write honours ctx only while op is still queued.
func (db *DB) write(ctx context.Context, op func(ctx context.Context, tx *sql.Tx) error) error {
	res, err := db.commits.Submit(ctx, &request{op: op})
	if err != nil {
		return err
	}
	return res.err
}

// encodeRow validates msg and encodes it for the writer.
func encodeRow(msg *store.Message) (*row, error) {
	if msg == nil || msg.ID == "" {
		return nil, errors.New("sqlite: accept: message without an id")
	}
	r := &row{
		id: msg.ID, login: msg.Login, route: msg.Route, mailFrom: msg.MailFrom,
		remoteIP: msg.RemoteIP, helo: msg.Helo, tls: msg.TLS, returnPath: msg.ReturnPath,
		received: msg.Received.UnixMilli(), size: msg.Size, sendAt: unixNano(msg.SendAt),
		raw: msg.Raw, original: msg.Original,
		events:  msg.Events,
		created: time.Now().UTC(),
	}
	if r.raw == nil {
		r.raw = []byte{}
	}
	if len(r.original) == 0 {
		r.original = nil
	}
	for _, enc := range []struct {
		what string
		dst  *[]byte
		v    any
	}{
		{"recipients", &r.recipients, nonNil(msg.Recipients)},
		{"tags", &r.tags, nonNil(msg.Tags)},
		{"summary", &r.summary, msg.Summary},
		{"metadata", &r.metadata, nonNilMap(msg.Metadata)},
		{"processing", &r.processing, msg.Processing},
	} {
		b, err := json.Marshal(enc.v)
		if err != nil {
			return nil, fmt.Errorf("sqlite: accept %s: encode %s: %w", msg.ID, enc.what, err)
		}
		*enc.dst = b
	}
	for _, e := range msg.Events {
		if e == nil {
			return nil, fmt.Errorf("sqlite: accept %s: nil event", msg.ID)
		}
	}
	for _, d := range msg.Deliveries {
		if d == nil {
			return nil, fmt.Errorf("sqlite: accept %s: nil delivery", msg.ID)
		}
		c, err := newDelivery(msg, d)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(c.Recipients)
		if err != nil {
			return nil, fmt.Errorf("sqlite: accept %s: encode delivery recipients: %w", msg.ID, err)
		}
		r.deliveries = append(r.deliveries, c)
		r.deliveryRecipients = append(r.deliveryRecipients, b)
	}
	if msg.Route == store.RouteCapture {
		r.inboxes = store.Inboxes(msg.Recipients)
		r.search = newSearchRow(msg)
	}
	return r, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// unixNano encodes a time for an INTEGER column: 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNano decodes unixNano.
func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// run executes batch in one transaction. An Accept that fails fails the
// whole transaction (err); an op that fails is rolled back to its savepoint
// and reported in its own result.
func (db *DB) run(batch []*request) ([]result, error) {
	// The writer does not take a caller's context: once a batch starts it
	// finishes, so that results are truthful.
	ctx := context.Background()
	tx, err := db.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	results := make([]result, len(batch))
	seq := db.lastSeq
	var st *txStatements
	for i, r := range batch {
		if r.row != nil {
			if st == nil {
				st = db.txStatements(ctx, tx)
			}
			seq++
			if err := st.insertRow(ctx, seq, r.row); err != nil {
				return nil, err
			}
			results[i].seq = seq
			continue
		}
		results[i].err = db.runOp(ctx, tx, r.op)
	}
	if seq != db.lastSeq {
		if _, err := tx.StmtContext(ctx, db.stmts[updateLastSeq]).ExecContext(ctx, seq); err != nil {
			return nil, fmt.Errorf("update last_seq: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	db.lastSeq = seq
	return results, nil
}

// runOp runs op under a savepoint so that its failure undoes only its own
// changes.
func (db *DB) runOp(ctx context.Context, tx *sql.Tx, op func(context.Context, *sql.Tx) error) error {
	if _, err := db.txExec(ctx, tx, savepoint); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	opErr := op(ctx, tx)
	if opErr != nil {
		if _, err := db.txExec(ctx, tx, rollbackSavepoint); err != nil {
			return errors.Join(opErr, fmt.Errorf("rollback to savepoint: %w", err))
		}
	}
	if _, err := db.txExec(ctx, tx, releaseSavepoint); err != nil {
		return errors.Join(opErr, fmt.Errorf("release savepoint: %w", err))
	}
	return opErr
}

const (
	insertMessage = `INSERT INTO messages (seq, id, login, route, mail_from, recipients, remote_ip, helo, tls, received, size, summary, tags,
	return_path, metadata, send_at, processing)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// Message.Text is kept once, lower-cased in the search row of a
	// captured message; bodies.text stays '' (it held a second copy up to
	// schema version 3).
	insertBody     = `INSERT INTO bodies (seq, raw, original) VALUES (?, ?, ?)`
	insertInbox    = `INSERT INTO inbox (inbox, seq, message_id, login) VALUES (?, ?, ?, ?)`
	updateLastSeq  = `UPDATE counters SET value = ? WHERE name = 'last_seq'`
	insertEvent    = `INSERT INTO events (message_seq, message_id, login, type, recipient, time, ip, user_agent, url, reply, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertDelivery = `INSERT INTO deliveries (message_seq, message_id, login, route, domain, recipients, state, attempts, next_attempt, expires, last_reply, created, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// writeStatements are the statements prepared on the writer's connection.
func writeStatements() []string {
	return append([]string{insertMessage, insertBody, insertInbox, insertSearch, updateLastSeq, insertEvent, insertDelivery},
		queueStatements()...)
}

// txStatements are the writer's prepared statements bound to one
// transaction.
type txStatements struct {
	message, body, inbox, search, event, delivery *sql.Stmt
}

func (db *DB) txStatements(ctx context.Context, tx *sql.Tx) *txStatements {
	return &txStatements{
		message:  tx.StmtContext(ctx, db.stmts[insertMessage]),
		body:     tx.StmtContext(ctx, db.stmts[insertBody]),
		inbox:    tx.StmtContext(ctx, db.stmts[insertInbox]),
		search:   tx.StmtContext(ctx, db.stmts[insertSearch]),
		event:    tx.StmtContext(ctx, db.stmts[insertEvent]),
		delivery: tx.StmtContext(ctx, db.stmts[insertDelivery]),
	}
}

// insertRow inserts one message, its body, its inbox entries, its events
// and its deliveries.
func (st *txStatements) insertRow(ctx context.Context, seq int64, r *row) error {
	_, err := st.message.ExecContext(ctx, seq, r.id, r.login, r.route, r.mailFrom, r.recipients,
		r.remoteIP, r.helo, r.tls, r.received, r.size, r.summary, r.tags, r.returnPath, r.metadata, r.sendAt, r.processing)
	if err != nil {
		if isUniqueViolation(err) {
			return store.ErrDuplicateID
		}
		return fmt.Errorf("insert message: %w", err)
	}
	if _, err := st.body.ExecContext(ctx, seq, r.raw, r.original); err != nil {
		return fmt.Errorf("insert body: %w", err)
	}
	if len(r.inboxes) > 0 {
		for _, inbox := range r.inboxes {
			if _, err := st.inbox.ExecContext(ctx, inbox, seq, r.id, r.login); err != nil {
				return fmt.Errorf("insert inbox %s: %w", inbox, err)
			}
		}
	}
	if s := r.search; s != nil {
		if _, err := st.search.ExecContext(ctx, seq, r.login, r.received, s.attach, s.sender, s.rcpt, s.subject, s.text); err != nil {
			return fmt.Errorf("insert search row: %w", err)
		}
	}
	r.eventSeqs = r.eventSeqs[:0]
	for _, e := range r.events {
		s, err := insertEventRow(ctx, st.event, seq, r.id, r.login, e)
		if err != nil {
			return err
		}
		r.eventSeqs = append(r.eventSeqs, s)
	}
	r.deliveryIDs = r.deliveryIDs[:0]
	for i, d := range r.deliveries {
		created := unixNano(r.created)
		res, err := st.delivery.ExecContext(ctx, seq, r.id, r.login, d.Route, d.Domain,
			r.deliveryRecipients[i], d.State, d.Attempts, unixNano(d.NextAttempt), unixNano(d.Expires), d.LastReply, created, created)
		if err != nil {
			return fmt.Errorf("insert delivery: %w", err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("insert delivery: %w", err)
		}
		r.deliveryIDs = append(r.deliveryIDs, id)
	}
	return nil
}

// insertEventRow inserts one event of the message with seq messageSeq and
// returns the event's Seq.
func insertEventRow(ctx context.Context, st *sql.Stmt, messageSeq int64, messageID, login string, e *store.Event) (int64, error) {
	res, err := st.ExecContext(ctx, messageSeq, messageID, login, e.Type, e.Recipient, unixNano(e.Time),
		e.IP, e.UserAgent, e.URL, e.Reply, e.Detail)
	if err != nil {
		return 0, fmt.Errorf("insert event: %w", err)
	}
	s, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("insert event: %w", err)
	}
	return s, nil
}

// newDelivery copies a delivery of msg for Accept with the defaults filled
// in: state queued, recipients pending, and due at the message's SendAt,
// or at once.
func newDelivery(msg *store.Message, d *store.Delivery) (*store.Delivery, error) {
	c := *d
	if c.State == "" {
		c.State = store.DeliveryQueued
	}
	if c.State != store.DeliveryQueued && c.State != store.DeliveryDeferred {
		return nil, fmt.Errorf("sqlite: accept %s: a new delivery cannot be %q", msg.ID, c.State)
	}
	if c.NextAttempt.IsZero() {
		c.NextAttempt = msg.SendAt
	}
	if c.NextAttempt.IsZero() {
		c.NextAttempt = msg.Received
	}
	c.Recipients = make([]store.RecipientDelivery, len(d.Recipients))
	for i, rd := range d.Recipients {
		if rd.State == "" {
			rd.State = store.RecipientPending
		}
		c.Recipients[i] = rd
	}
	return &c, nil
}

func recipientsOrEmpty(r []store.RecipientDelivery) []store.RecipientDelivery {
	if r == nil {
		return []store.RecipientDelivery{}
	}
	return r
}

// isUniqueViolation reports whether err is SQLite's UNIQUE constraint error.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}
