package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
)

// States of a request, moved on by compare-and-swap so that a caller who
// gives up and a writer never both own it.
const (
	stateQueued    int32 = iota
	stateTaken           // a writer will report a result
	stateAbandoned       // the caller gave up; the writer skips it
)

// request is one Accept waiting for a writer.
type request struct {
	id       string
	raw      []byte
	original []byte
	args     []any // of insertMessage
	size     int   // raw bytes, for the batch limit
	state    atomic.Int32
	done     chan result // buffered: the writer never blocks on it
}

// result is what a writer reports for one request.
type result struct {
	seq         int64
	eventSeqs   []int64
	deliveryIDs []int64
	err         error
}

// The statements of a group commit. insertMessage writes the message row
// and every seq-bearing or dependent row of it in one statement, and
// returns the Seqs and delivery ids drawn, in the order of the input
// slices.
const (
	lockSeq    = `SELECT pg_advisory_xact_lock($1)`
	insertBody = `INSERT INTO bodies (id, raw, original) VALUES ($1, $2, $3)`

	insertMessage = `
WITH m AS (
	INSERT INTO messages (id, login, route, mail_from, recipients, remote_ip, helo, tls, received, size,
		summary, tags, body_text, return_path, metadata, send_at, processing, subject, from_text, to_text, has_attachment)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
		$11::text::jsonb, $12, $13, $14, $15::text::jsonb, $16, $17::text::jsonb, $18, $19, $20, $21)
	RETURNING seq
), i AS (
	INSERT INTO inbox (inbox, seq, message_id, login, received)
	SELECT x, m.seq, $1, $2, $9 FROM m, unnest($22::text[]) AS x
), e AS (
	INSERT INTO events (message_id, login, type, recipient, time, ip, user_agent, url, reply, detail)
	SELECT $1, $2, x.type, x.recipient, x.time, x.ip, x.ua, x.url, x.reply, x.detail
	FROM m, unnest($23::text[], $24::text[], $25::timestamptz[], $26::text[], $27::text[], $28::text[], $29::text[], $30::text[])
		WITH ORDINALITY AS x(type, recipient, time, ip, ua, url, reply, detail, ord)
	ORDER BY x.ord
	RETURNING seq
), d AS (
	INSERT INTO deliveries (message_id, login, route, domain, recipients, state, attempts, next_attempt, expires,
		last_reply, created, updated)
	SELECT $1, $2, x.route, x.domain, x.rcpts::jsonb, x.state, x.attempts, x.next, x.expires, x.reply, $36, $36
	FROM m, unnest($31::text[], $32::text[], $33::text[], $34::text[], $35::integer[], $37::timestamptz[],
		$38::timestamptz[], $39::text[])
		WITH ORDINALITY AS x(route, domain, rcpts, state, attempts, next, expires, reply, ord)
	ORDER BY x.ord
	RETURNING id
)
SELECT m.seq,
	ARRAY(SELECT seq FROM e ORDER BY seq),
	ARRAY(SELECT id FROM d ORDER BY id)
FROM m`
)

// Accept commits msg durably with its inbox entries (capture route), its
// Events and its Deliveries, and sets msg.Seq and the fields the store
// assigns to events and deliveries. It waits in the writers' queue; if ctx
// ends while the message is still queued, Accept returns the context's
// error and the message is not stored. Once its group is being committed,
// Accept reports the true outcome whatever ctx does.
func (db *DB) Accept(ctx context.Context, msg *store.Message) error {
	req, created, err := encodeRequest(msg, time.Now().UTC())
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: accept %s: %w", msg.ID, err)
	}

	db.mu.RLock()
	if db.closed.Load() {
		db.mu.RUnlock()
		return fmt.Errorf("postgres: accept %s: %w", msg.ID, store.ErrClosed)
	}
	db.senders.Add(1)
	db.mu.RUnlock()
	select {
	case db.queue <- req:
		db.senders.Done()
	case <-ctx.Done():
		db.senders.Done()
		return fmt.Errorf("postgres: accept %s: %w", msg.ID, ctx.Err())
	}

	var res result
	select {
	case res = <-req.done:
	case <-ctx.Done():
		if req.state.CompareAndSwap(stateQueued, stateAbandoned) {
			return fmt.Errorf("postgres: accept %s: %w", msg.ID, ctx.Err())
		}
		res = <-req.done // already being committed: report the truth
	}
	if res.err != nil {
		return res.err
	}
	if len(res.eventSeqs) != len(msg.Events) || len(res.deliveryIDs) != len(msg.Deliveries) {
		// Cannot happen: the statement inserts one row per element.
		return fmt.Errorf("postgres: accept %s: committed %d events and %d deliveries of %d and %d",
			msg.ID, len(res.eventSeqs), len(res.deliveryIDs), len(msg.Events), len(msg.Deliveries))
	}
	msg.Seq = res.seq
	for i, ev := range msg.Events {
		ev.Seq, ev.MessageID, ev.Login = res.eventSeqs[i], msg.ID, msg.Login
	}
	for i, d := range msg.Deliveries {
		d.ID, d.MessageID, d.Login, d.Created, d.Updated = res.deliveryIDs[i], msg.ID, msg.Login, created, created
	}
	return nil
}

// encodeRequest validates msg and encodes it for a writer. created is the
// time recorded as its deliveries' Created and Updated.
func encodeRequest(msg *store.Message, now time.Time) (req *request, created time.Time, err error) {
	if msg == nil || msg.ID == "" {
		return nil, time.Time{}, errors.New("postgres: accept: message without an id")
	}
	fail := func(what string, err error) (*request, time.Time, error) {
		return nil, time.Time{}, fmt.Errorf("postgres: accept %s: encode %s: %w", msg.ID, what, err)
	}
	summary, err := json.Marshal(msg.Summary)
	if err != nil {
		return fail("summary", err)
	}
	metadata, err := json.Marshal(nonNilMap(msg.Metadata))
	if err != nil {
		return fail("metadata", err)
	}
	processing, err := json.Marshal(msg.Processing)
	if err != nil {
		return fail("processing", err)
	}
	var inboxes []string
	if msg.Route == store.RouteCapture {
		inboxes = store.Inboxes(cleanAll(msg.Recipients))
	}
	created = msg.Received.UTC()
	if created.IsZero() {
		created = now
	}

	n := len(msg.Events)
	evType, evRcpt, evIP, evUA, evURL, evReply, evDetail := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	evTime := make([]time.Time, n)
	for i, ev := range msg.Events {
		if ev == nil {
			return fail("events", errors.New("nil event"))
		}
		evType[i], evRcpt[i], evIP[i], evUA[i] = clean(ev.Type), clean(ev.Recipient), clean(ev.IP), clean(ev.UserAgent)
		evURL[i], evReply[i], evDetail[i], evTime[i] = clean(ev.URL), clean(ev.Reply), clean(ev.Detail), ev.Time
	}

	n = len(msg.Deliveries)
	dRoute, dDomain, dRcpts, dState, dReply := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	dAttempts := make([]int32, n)
	dNext, dExpires := make([]time.Time, n), make([]time.Time, n)
	for i, d := range msg.Deliveries {
		if d == nil {
			return fail("deliveries", errors.New("nil delivery"))
		}
		deliveryDefaults(d, msg)
		rcpts, err := json.Marshal(nonNilSlice(d.Recipients))
		if err != nil {
			return fail("delivery recipients", err)
		}
		dRoute[i], dDomain[i], dRcpts[i], dState[i], dReply[i] = clean(d.Route), clean(d.Domain), string(cleanJSON(rcpts)), clean(d.State), clean(d.LastReply)
		dAttempts[i], dNext[i], dExpires[i] = int32(d.Attempts), d.NextAttempt, d.Expires
	}

	raw := msg.Raw
	if raw == nil {
		raw = []byte{}
	}
	var original []byte
	if len(msg.Original) > 0 {
		original = msg.Original
	}
	req = &request{
		id:       clean(msg.ID),
		raw:      raw,
		original: original,
		size:     len(raw) + len(original),
		done:     make(chan result, 1),
		args: []any{
			clean(msg.ID), clean(msg.Login), clean(msg.Route), clean(msg.MailFrom), cleanAll(msg.Recipients),
			clean(msg.RemoteIP), clean(msg.Helo), msg.TLS, msg.Received, msg.Size,
			string(cleanJSON(summary)), cleanAll(msg.Tags), clean(msg.Text), clean(msg.ReturnPath),
			string(cleanJSON(metadata)), nullTime(msg.SendAt), string(cleanJSON(processing)),
			clean(msg.Summary.Subject), clean(fromText(msg)), clean(toText(msg)), len(msg.Summary.Attachments) > 0,
			inboxes,
			evType, evRcpt, evTime, evIP, evUA, evURL, evReply, evDetail,
			dRoute, dDomain, dRcpts, dState, dAttempts, created, dNext, dExpires, dReply,
		},
	}
	return req, created, nil
}

// deliveryDefaults fills in what Accept defaults in a delivery of msg: an
// empty State is queued, an empty recipient State pending, and a zero
// NextAttempt is msg.SendAt, or msg.Received when that is zero too.
func deliveryDefaults(d *store.Delivery, msg *store.Message) {
	if d.State == "" {
		d.State = store.DeliveryQueued
	}
	for i := range d.Recipients {
		if d.Recipients[i].State == "" {
			d.Recipients[i].State = store.RecipientPending
		}
	}
	if d.NextAttempt.IsZero() {
		d.NextAttempt = msg.SendAt
		if d.NextAttempt.IsZero() {
			d.NextAttempt = msg.Received
		}
	}
}

// fromText is what SearchQuery.From matches: the From addresses and names
// and the envelope sender, one per line.
func fromText(msg *store.Message) string {
	parts := []string{msg.MailFrom}
	for _, a := range msg.Summary.From {
		parts = append(parts, a.Address, a.Name)
	}
	return strings.Join(parts, "\n")
}

// toText is what SearchQuery.To matches: the envelope recipients and the
// To and Cc addresses, one per line.
func toText(msg *store.Message) string {
	parts := append([]string{}, msg.Recipients...)
	for _, a := range msg.Summary.To {
		parts = append(parts, a.Address)
	}
	for _, a := range msg.Summary.Cc {
		parts = append(parts, a.Address)
	}
	return strings.Join(parts, "\n")
}

// nullTime maps the zero time to NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// writer commits queued Accepts in groups until Close.
func (db *DB) writer() {
	batch := make([]*request, 0, db.maxBatch)
	for {
		select {
		case r := <-db.queue:
			db.commit(db.collect(append(batch[:0], r)))
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
	}
}

// collect adds queued requests to batch without waiting, up to the limits.
func (db *DB) collect(batch []*request) []*request {
	size := batch[0].size
	for len(batch) < db.maxBatch && size < maxBatchBytes {
		select {
		case r := <-db.queue:
			batch = append(batch, r)
			size += r.size
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
	results, err := db.insert(live)
	if err == nil {
		for i, r := range live {
			r.done <- results[i]
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
	db.log.Info("group commit failed; retrying one by one", zap.Int("messages", len(live)), zap.Error(err))
	for _, r := range live {
		results, err := db.insert([]*request{r})
		if err != nil {
			r.done <- result{err: err}
			continue
		}
		r.done <- results[0]
	}
}

// insert commits batch in one transaction, its statements sent as one
// pgx.Batch: bodies first, then the seq lock, then the message statements.
// Nothing of the batch is stored if it fails.
func (db *DB) insert(batch []*request) ([]result, error) {
	// Not a caller's context: once a batch starts it finishes, so that
	// results are truthful.
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	results := make([]result, len(batch))
	b := &pgx.Batch{}
	for _, r := range batch {
		b.Queue(insertBody, r.id, r.raw, r.original)
	}
	b.Queue(lockSeq, db.lockKey)
	for i, r := range batch {
		b.Queue(insertMessage, r.args...).QueryRow(func(row pgx.Row) error {
			return row.Scan(&results[i].seq, &results[i].eventSeqs, &results[i].deliveryIDs)
		})
	}
	if err := db.sendTx(ctx, b); err != nil {
		if isUniqueViolation(err) {
			id := batch[0].id
			if len(batch) > 1 {
				id = fmt.Sprintf("%d messages", len(batch))
			}
			return nil, fmt.Errorf("postgres: accept %s: %w", id, store.ErrDuplicateID)
		}
		return nil, fmt.Errorf("postgres: accept: commit %d messages: %w", len(batch), err)
	}
	return results, nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// sendTx runs b in one transaction, committed only if every statement and
// every result callback succeeded.
func (db *DB) sendTx(ctx context.Context, b *pgx.Batch) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
}
