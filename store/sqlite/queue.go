package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/smtpgate/smtpgate/store"
)

var _ store.Queue = (*DB)(nil)

// Listing limits of store.DeliveryQuery.
const (
	defaultDeliveryLimit = 100
	maxDeliveryLimit     = 1000
)

const deliveryColumns = `id, message_id, login, route, domain, recipients, state, attempts, next_attempt, expires, last_reply, created, updated`

// scanDelivery reads deliveryColumns.
func scanDelivery(s scanner) (*store.Delivery, error) {
	d := &store.Delivery{}
	var recipients []byte
	var next, expires, created, updated int64
	if err := s.Scan(&d.ID, &d.MessageID, &d.Login, &d.Route, &d.Domain, &recipients, &d.State, &d.Attempts,
		&next, &expires, &d.LastReply, &created, &updated); err != nil {
		return nil, err
	}
	d.NextAttempt, d.Expires, d.Created, d.Updated = fromNano(next), fromNano(expires), fromNano(created), fromNano(updated)
	if err := jsonv2.Unmarshal(recipients, &d.Recipients); err != nil {
		return nil, fmt.Errorf("decode recipients of delivery %d: %w", d.ID, err)
	}
	return d, nil
}

// claimQuery is what claim leases: up to limit due rows of table
// (deliveries or webhook_jobs) to owner until now+lease. For webhook_jobs,
// a webhook other than "" claims only that webhook's jobs.
type claimQuery struct {
	table, webhook, owner string
	now                   time.Time
	limit                 int
	lease                 time.Duration
}

// claim leases the rows q names and returns their ids, oldest NextAttempt
// first.
func (db *DB) claim(ctx context.Context, tx *sql.Tx, q claimQuery) ([]int64, error) {
	if q.owner == "" {
		return nil, errors.New("empty lease owner")
	}
	n := unixNano(q.now)
	query, args := claimDue(q.table), []any{n, n, q.limit}
	if q.webhook != "" {
		query, args = claimDueOf, []any{q.webhook, n, n, q.limit}
	}
	rows, err := db.txQuery(ctx, tx, query, args...)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	until := unixNano(q.now.Add(q.lease))
	for _, id := range ids {
		if _, err := db.txExec(ctx, tx, setLease(q.table), q.owner, until, id); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// claimRows claims the rows q names in the writer and returns them in
// claim order, each read with scan from selectOne (the row with id ?).
// A limit of 0 or less claims nothing.
func claimRows[T any](ctx context.Context, db *DB, q claimQuery, selectOne string, scan func(scanner) (T, error)) ([]T, error) {
	if q.limit <= 0 {
		return []T{}, nil
	}
	var out []T
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		out = []T{}
		ids, err := db.claim(ctx, tx, q)
		if err != nil {
			return err
		}
		for _, id := range ids {
			v, err := scan(db.txQueryRow(ctx, tx, selectOne, id))
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ClaimDeliveries leases up to limit due deliveries (queued or deferred,
// NextAttempt <= now, not leased or lease expired) to owner until
// now+lease, oldest NextAttempt first. One UPDATE … RETURNING leases and
// reads them.
func (db *DB) ClaimDeliveries(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*store.Delivery, error) {
	if limit <= 0 {
		return []*store.Delivery{}, nil
	}
	n := unixNano(now)
	out, err := db.claimDeliveries(ctx, owner, claimDeliveries, unixNano(now.Add(lease)), n, n, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim deliveries: %w", err)
	}
	return out, nil
}

// ClaimDeliveriesByID leases those of ids that ClaimDeliveries could lease
// at now, found by primary key, and returns them oldest NextAttempt first.
func (db *DB) ClaimDeliveriesByID(ctx context.Context, owner string, ids []int64, now time.Time, lease time.Duration) ([]*store.Delivery, error) {
	if len(ids) == 0 {
		return []*store.Delivery{}, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim deliveries by id: %w", err)
	}
	n := unixNano(now)
	out, err := db.claimDeliveries(ctx, owner, claimDeliveriesByID, unixNano(now.Add(lease)), string(list), n, n)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim deliveries by id: %w", err)
	}
	return out, nil
}

// claimDeliveries runs query, an UPDATE … RETURNING deliveryColumns whose
// first argument is the lease owner, followed by args, in the writer, and
// returns the deliveries oldest NextAttempt first.
func (db *DB) claimDeliveries(ctx context.Context, owner, query string, args ...any) ([]*store.Delivery, error) {
	if owner == "" {
		return nil, errors.New("empty lease owner")
	}
	var out []*store.Delivery
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		out, err = db.claimTx(ctx, tx, owner, query, args...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// claimTx is claimDeliveries in tx.
func (db *DB) claimTx(ctx context.Context, tx *sql.Tx, owner, query string, args ...any) ([]*store.Delivery, error) {
	out := []*store.Delivery{}
	rows, err := db.txQuery(ctx, tx, query, append([]any{owner}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// RETURNING yields rows in no defined order.
	slices.SortFunc(out, func(a, b *store.Delivery) int {
		if c := a.NextAttempt.Compare(b.NextAttempt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// holdsLease checks that owner holds the lease on row id of table:
// store.ErrNotFound if there is no such row, store.ErrLeaseLost if another
// owner (or none) holds it.
func (db *DB) holdsLease(ctx context.Context, tx *sql.Tx, table string, id int64, owner string) error {
	var leaseOwner string
	err := db.txQueryRow(ctx, tx, selectLease(table), id).Scan(&leaseOwner)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	if owner == "" || leaseOwner != owner {
		return store.ErrLeaseLost
	}
	return nil
}

// CompleteAttempt applies o to delivery id if owner still holds its lease:
// the attempt is recorded, the delivery updated and released, and the
// events appended (their MessageID and Login set from the delivery). It
// returns store.ErrLeaseLost if another owner holds the delivery now.
func (db *DB) CompleteAttempt(ctx context.Context, id int64, owner string, o store.Outcome) error {
	return db.CompleteAttempts(ctx, owner, []store.Completion{{ID: id, Outcome: o}})[0]
}

// completion is a store.Completion encoded for the writer, with what the
// writer found out.
type completion struct {
	recipients []byte // JSON; nil: unchanged
	at         time.Time
	setNext    bool

	// Set by each run of the write.
	seqs             []int64
	messageID, login string
	err              error // store.ErrLeaseLost or store.ErrNotFound
}

// CompleteAttempts applies each outcome as CompleteAttempt does, all in one
// write (one savepoint of a group commit): a completion whose lease is
// lost or whose delivery is gone gets its own error and records nothing;
// any other failure fails them all.
func (db *DB) CompleteAttempts(ctx context.Context, owner string, cs []store.Completion) []error {
	errs, _, _ := db.CompleteAndClaim(ctx, owner, cs, nil, time.Time{}, 0)
	return errs
}

// CompleteAndClaim applies the outcomes as CompleteAttempts does and then
// claims ids as ClaimDeliveriesByID does, in one write: one savepoint of
// one group commit. A failure other than a completion's own lost lease or
// missing delivery fails the completions and the claim alike.
func (db *DB) CompleteAndClaim(ctx context.Context, owner string, cs []store.Completion, ids []int64,
	now time.Time, lease time.Duration) ([]error, []*store.Delivery, error) {
	errs := make([]error, len(cs))
	enc := make([]completion, len(cs))
	todo := make([]int, 0, len(cs))
	for i, c := range cs {
		if err := encodeCompletion(&enc[i], c.Outcome); err != nil {
			errs[i] = fmt.Errorf("sqlite: complete attempt %d: %w", c.ID, err)
			continue
		}
		todo = append(todo, i)
	}
	var list []byte
	if len(ids) > 0 {
		var err error
		if list, err = json.Marshal(ids); err != nil {
			return errs, nil, fmt.Errorf("sqlite: claim deliveries by id: %w", err)
		}
		if owner == "" {
			return errs, nil, errors.New("sqlite: claim deliveries by id: empty lease owner")
		}
	}
	if len(todo) == 0 && len(list) == 0 {
		return errs, []*store.Delivery{}, nil
	}
	claimed := []*store.Delivery{}
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, i := range todo {
			c := &enc[i]
			c.err = nil
			err := db.completeOne(ctx, tx, cs[i].ID, owner, cs[i].Outcome, c)
			if errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrNotFound) {
				c.err = err
				continue
			}
			if err != nil {
				return fmt.Errorf("complete attempt %d: %w", cs[i].ID, err)
			}
		}
		claimed = []*store.Delivery{}
		if len(list) == 0 {
			return nil
		}
		n := unixNano(now)
		var err error
		if claimed, err = db.claimTx(ctx, tx, owner, claimDeliveriesByID, unixNano(now.Add(lease)), string(list), n, n); err != nil {
			return fmt.Errorf("claim deliveries by id: %w", err)
		}
		return nil
	})
	for _, i := range todo {
		c := &enc[i]
		switch {
		case err != nil:
			errs[i] = fmt.Errorf("sqlite: complete attempt %d: %w", cs[i].ID, err)
		case c.err != nil:
			errs[i] = c.err
		default:
			for k, e := range cs[i].Outcome.Events {
				e.Seq, e.MessageID, e.Login = c.seqs[k], c.messageID, c.login
			}
		}
	}
	if err != nil {
		return errs, nil, fmt.Errorf("sqlite: complete and claim: %w", err)
	}
	return errs, claimed, nil
}

// encodeCompletion checks o and encodes it into c.
func encodeCompletion(c *completion, o store.Outcome) error {
	if o.Recipients != nil {
		var err error
		if c.recipients, err = json.Marshal(o.Recipients); err != nil {
			return err
		}
	}
	for _, e := range o.Events {
		if e == nil {
			return errors.New("nil event")
		}
	}
	c.at = o.Attempt.Time
	if c.at.IsZero() {
		c.at = time.Now()
	}
	c.setNext = o.State == store.DeliveryDeferred || !o.NextAttempt.IsZero()
	c.seqs = make([]int64, len(o.Events))
	return nil
}

// completeOne applies one outcome in tx: the delivery updated and released
// if owner holds it (store.ErrLeaseLost or store.ErrNotFound otherwise,
// with nothing written), the attempt recorded, the events appended.
func (db *DB) completeOne(ctx context.Context, tx *sql.Tx, id int64, owner string, o store.Outcome, c *completion) error {
	var messageSeq int64
	var attempts int
	err := db.txQueryRow(ctx, tx, completeDelivery, c.recipients, o.State, c.setNext, unixNano(o.NextAttempt),
		o.Attempt.Reply, unixNano(c.at), id, owner).Scan(&messageSeq, &c.messageID, &c.login, &attempts)
	if errors.Is(err, sql.ErrNoRows) {
		// Not ours: say whether it exists at all.
		if err := db.holdsLease(ctx, tx, "deliveries", id, owner); err != nil {
			return err
		}
		return store.ErrLeaseLost
	}
	if err != nil {
		return err
	}
	if _, err := db.txExec(ctx, tx, insertAttempt,
		id, attempts, unixNano(c.at), o.Attempt.Host, o.Attempt.Reply, int64(o.Attempt.Duration)); err != nil {
		return err
	}
	if len(o.Events) == 0 {
		return nil
	}
	ins := tx.StmtContext(ctx, db.stmts[insertEvent])
	for i, e := range o.Events {
		if c.seqs[i], err = insertEventRow(ctx, ins, messageSeq, c.messageID, c.login, e); err != nil {
			return err
		}
	}
	return nil
}

// ReleaseDeliveries returns every delivery leased to owner to the queue
// unchanged.
func (db *DB) ReleaseDeliveries(ctx context.Context, owner string) error {
	if err := db.release(ctx, "deliveries", owner); err != nil {
		return fmt.Errorf("sqlite: release deliveries of %s: %w", owner, err)
	}
	return nil
}

// release frees every row of table (deliveries or webhook_jobs) leased to
// owner. Nothing is ever leased to "" (claim refuses it), so releasing ""
// writes nothing, though it still fails with store.ErrClosed after Close.
func (db *DB) release(ctx context.Context, table, owner string) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if owner == "" {
			return nil
		}
		_, err := db.txExec(ctx, tx, releaseLeases(table), owner)
		return err
	})
}

// Deliveries lists deliveries in scope, ascending by ID.
func (db *DB) Deliveries(ctx context.Context, q store.DeliveryQuery) ([]*store.Delivery, error) {
	if !scopeSeesAnything(q.Scope) {
		return []*store.Delivery{}, nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultDeliveryLimit
	}
	limit = min(limit, maxDeliveryLimit)
	query := `SELECT ` + deliveryColumns + ` FROM deliveries WHERE id > ?`
	args := []any{q.AfterID}
	if len(q.States) > 0 {
		states, err := json.Marshal(q.States)
		if err != nil {
			return nil, fmt.Errorf("sqlite: deliveries: %w", err)
		}
		query += ` AND state IN (SELECT value FROM json_each(?))`
		args = append(args, states)
	}
	if q.MessageID != "" {
		query += ` AND message_id = ?`
		args = append(args, q.MessageID)
	}
	if !q.Scope.All {
		logins, err := json.Marshal(q.Scope.Logins)
		if err != nil {
			return nil, fmt.Errorf("sqlite: deliveries: %w", err)
		}
		query += ` AND login IN (SELECT value FROM json_each(?))`
		args = append(args, logins)
	}
	query += ` ORDER BY id LIMIT ?`
	out, err := queryScoped(ctx, db, q.Scope, scanDelivery, func(d *store.Delivery) string { return d.Login },
		query, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deliveries: %w", err)
	}
	return out, nil
}

// Attempts lists a delivery's attempts in order, or store.ErrNotFound if
// the delivery is not in scope.
func (db *DB) Attempts(ctx context.Context, id int64, scope store.Scope) ([]store.Attempt, error) {
	if !scopeSeesAnything(scope) {
		return nil, store.ErrNotFound
	}
	var login string
	err := db.rdb.QueryRowContext(ctx, `SELECT login FROM deliveries WHERE id = ?`, id).Scan(&login)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !scope.Allows(login) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: attempts of %d: %w", id, err)
	}
	rows, err := db.rdb.QueryContext(ctx, `SELECT time, host, reply, duration FROM attempts WHERE delivery_id = ? ORDER BY n`, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: attempts of %d: %w", id, err)
	}
	defer rows.Close()
	out := []store.Attempt{}
	for rows.Next() {
		a := store.Attempt{DeliveryID: id}
		var t, d int64
		if err := rows.Scan(&t, &a.Host, &a.Reply, &d); err != nil {
			return nil, fmt.Errorf("sqlite: attempts of %d: %w", id, err)
		}
		a.Time, a.Duration = fromNano(t), time.Duration(d)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: attempts of %d: %w", id, err)
	}
	return out, nil
}

// pendingDelivery loads a delivery in scope for RetryNow and
// CancelDelivery, checking that it is queued or deferred.
func (db *DB) pendingDelivery(ctx context.Context, tx *sql.Tx, id int64, scope store.Scope) (*store.Delivery, int64, error) {
	var messageSeq int64
	d, err := scanDelivery(db.txQueryRow(ctx, tx, selectDelivery, id))
	if errors.Is(err, sql.ErrNoRows) || err == nil && !scope.Allows(d.Login) {
		return nil, 0, store.ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	if d.State != store.DeliveryQueued && d.State != store.DeliveryDeferred {
		return nil, 0, store.ErrState
	}
	if err := db.txQueryRow(ctx, tx, `SELECT message_seq FROM deliveries WHERE id = ?`, id).Scan(&messageSeq); err != nil {
		return nil, 0, err
	}
	return d, messageSeq, nil
}

// RetryNow makes a queued or deferred delivery due now: store.ErrNotFound
// if it is not in scope, store.ErrState if it is in another state.
func (db *DB) RetryNow(ctx context.Context, id int64, scope store.Scope, now time.Time) error {
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, _, err := db.pendingDelivery(ctx, tx, id, scope); err != nil {
			return err
		}
		_, err := db.txExec(ctx, tx, `UPDATE deliveries SET next_attempt = ?, updated = ? WHERE id = ?`, unixNano(now), unixNano(now), id)
		return err
	})
	return queueError("retry", id, err)
}

// CancelDelivery cancels a queued or deferred delivery (store.ErrState
// otherwise): every pending recipient becomes failed, with a failed event.
func (db *DB) CancelDelivery(ctx context.Context, id int64, scope store.Scope, now time.Time) error {
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		d, messageSeq, err := db.pendingDelivery(ctx, tx, id, scope)
		if err != nil {
			return err
		}
		// An attempt in flight decides the recipients' fate: its outcome
		// must not be dropped, so the cancel waits for it.
		var inFlight bool
		if err := db.txQueryRow(ctx, tx, `SELECT lease_owner != '' AND lease_until > ? FROM deliveries WHERE id = ?`,
			unixNano(now), id).Scan(&inFlight); err != nil {
			return err
		}
		if inFlight {
			return store.ErrState
		}
		ins := tx.StmtContext(ctx, db.stmts[insertEvent])
		for i, r := range d.Recipients {
			if r.State != store.RecipientPending && r.State != "" {
				continue
			}
			d.Recipients[i].State, d.Recipients[i].Reply = store.RecipientFailed, "cancelled"
			e := &store.Event{Type: store.EventFailed, Recipient: r.Address, Time: now, Detail: "delivery cancelled"}
			if _, err := insertEventRow(ctx, ins, messageSeq, d.MessageID, d.Login, e); err != nil {
				return err
			}
		}
		recipients, err := json.Marshal(recipientsOrEmpty(d.Recipients))
		if err != nil {
			return err
		}
		_, err = db.txExec(ctx, tx, `UPDATE deliveries SET state = ?, recipients = ?, updated = ?, lease_owner = '', lease_until = 0
WHERE id = ?`, store.DeliveryCancelled, recipients, unixNano(now), id)
		return err
	})
	return queueError("cancel", id, err)
}

// queueError wraps err unless it is one of the store's sentinel answers.
func queueError(what string, id int64, err error) error {
	if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrState) {
		return err
	}
	return fmt.Errorf("sqlite: %s delivery %d: %w", what, id, err)
}
