package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/jackc/pgx/v5"

	"github.com/smtpgate/smtpgate/store"
)

// Limits of store.DeliveryQuery.
const (
	defaultDeliveryLimit = 100
	maxDeliveryLimit     = 1000
)

// What CancelDelivery records: the Reply of each pending recipient it
// fails, and the Detail of the failed event it appends for each.
const (
	CancelReply  = "cancelled"
	CancelDetail = "delivery cancelled"
)

// deliveryColumns are the columns scanDelivery reads.
const deliveryColumns = `d.id, d.message_id, d.login, d.route, d.domain, d.recipients, d.state, d.attempts,
d.next_attempt, d.expires, d.last_reply, d.created, d.updated`

// scanDelivery reads deliveryColumns.
func scanDelivery(row pgx.Row) (*store.Delivery, error) {
	d := &store.Delivery{}
	var rcpts []byte
	var attempts int32
	if err := row.Scan(&d.ID, &d.MessageID, &d.Login, &d.Route, &d.Domain, &rcpts, &d.State, &attempts,
		&d.NextAttempt, &d.Expires, &d.LastReply, &d.Created, &d.Updated); err != nil {
		return nil, err
	}
	d.Attempts = int(attempts)
	d.NextAttempt, d.Expires, d.Created, d.Updated = d.NextAttempt.UTC(), d.Expires.UTC(), d.Created.UTC(), d.Updated.UTC()
	if err := jsonv2.Unmarshal(rcpts, &d.Recipients); err != nil {
		return nil, fmt.Errorf("decode recipients of delivery %d: %w", d.ID, err)
	}
	return d, nil
}

// collectDeliveries reads every row of rows.
func collectDeliveries(rows pgx.Rows) ([]*store.Delivery, error) {
	defer rows.Close()
	out := []*store.Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ClaimDeliveries leases up to limit due deliveries (queued or deferred,
// NextAttempt <= now, not leased or lease expired) to owner until
// now+lease, oldest NextAttempt first. Rows another transaction is
// claiming are skipped (FOR UPDATE SKIP LOCKED), so claimers in several
// processes never lease one delivery twice.
func (db *DB) ClaimDeliveries(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*store.Delivery, error) {
	if err := db.usable("claim deliveries"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return []*store.Delivery{}, nil
	}
	rows, err := db.pool.Query(ctx, `
WITH due AS (
	SELECT id FROM deliveries
	WHERE state IN ('queued', 'deferred') AND next_attempt <= $1 AND (lease_until IS NULL OR lease_until <= $1)
	ORDER BY next_attempt, id
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d SET lease_owner = $3, lease_until = $4
FROM due WHERE d.id = due.id
RETURNING `+deliveryColumns, now, limit, clean(owner), now.Add(lease))
	if err != nil {
		return nil, fmt.Errorf("postgres: claim deliveries: %w", err)
	}
	out, err := collectDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim deliveries: %w", err)
	}
	slices.SortFunc(out, func(a, b *store.Delivery) int {
		if c := a.NextAttempt.Compare(b.NextAttempt); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	return out, nil
}

// ClaimDeliveriesByID leases those of ids that ClaimDeliveries could lease
// at now to owner until now+lease, skipping rows another transaction is
// claiming, and returns them oldest NextAttempt first.
func (db *DB) ClaimDeliveriesByID(ctx context.Context, owner string, ids []int64, now time.Time, lease time.Duration) ([]*store.Delivery, error) {
	if err := db.usable("claim deliveries by id"); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []*store.Delivery{}, nil
	}
	rows, err := db.pool.Query(ctx, `
WITH due AS (
	SELECT id FROM deliveries
	WHERE id = ANY($4) AND state IN ('queued', 'deferred') AND next_attempt <= $1 AND (lease_until IS NULL OR lease_until <= $1)
	FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d SET lease_owner = $2, lease_until = $3
FROM due WHERE d.id = due.id
RETURNING `+deliveryColumns, now, clean(owner), now.Add(lease), ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim deliveries by id: %w", err)
	}
	out, err := collectDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim deliveries by id: %w", err)
	}
	slices.SortFunc(out, func(a, b *store.Delivery) int {
		if c := a.NextAttempt.Compare(b.NextAttempt); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	return out, nil
}

// outcomeStates are the states an attempt may leave a delivery in.
var outcomeStates = []string{store.DeliveryQueued, store.DeliveryDeferred, store.DeliverySent, store.DeliveryBounced, store.DeliveryFailed}

// completeAttempt applies an outcome in one statement, after lockSeq in
// the writer's transaction: the delivery is updated only if $2 holds its
// lease, and the attempt and events are inserted only if it was. It
// reports whether it applied, whether the delivery exists, the delivery's
// message and login, and the events' Seqs.
const completeAttempt = `
WITH d AS (
	UPDATE deliveries SET
		recipients = COALESCE($3::text::jsonb, recipients),
		state = $4,
		attempts = attempts + 1,
		next_attempt = CASE WHEN $4 = 'deferred' OR $8 THEN $5 ELSE next_attempt END,
		last_reply = $6,
		updated = $7,
		lease_owner = NULL,
		lease_until = NULL
	WHERE id = $1 AND lease_owner = $2
	RETURNING attempts, message_id, login
), a AS (
	INSERT INTO attempts (delivery_id, n, time, host, reply, duration_ns)
	SELECT $1, d.attempts, $7, $9, $6, $10 FROM d
), e AS (
	INSERT INTO events (message_id, login, type, recipient, time, ip, user_agent, url, reply, detail)
	SELECT d.message_id, d.login, x.type, x.recipient, x.time, x.ip, x.ua, x.url, x.reply, x.detail
	FROM d, unnest($11::text[], $12::text[], $13::timestamptz[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[])
		WITH ORDINALITY AS x(type, recipient, time, ip, ua, url, reply, detail, ord)
	ORDER BY x.ord
	RETURNING seq
)
SELECT EXISTS (SELECT 1 FROM d), EXISTS (SELECT 1 FROM deliveries WHERE id = $1),
	COALESCE((SELECT message_id FROM d), ''), COALESCE((SELECT login FROM d), ''),
	ARRAY(SELECT seq FROM e ORDER BY seq)`

// CompleteAttempt applies o to delivery id if owner still holds its lease,
// in one transaction: the attempt is recorded, the delivery updated (its
// Attempts counted up), the events appended to the delivery's message (their
// MessageID, Login and Seq set), and the lease released. It returns
// store.ErrLeaseLost if owner does not hold the lease (the outcome is
// dropped) and store.ErrNotFound if the delivery does not exist. A lease
// that expired but was not taken over is still held. NextAttempt is set
// from o when the delivery is deferred or o.NextAttempt is not zero. Like
// Accept it goes through the group-commit writer, so that the outcomes of
// many workers share a transaction and a WAL flush.
func (db *DB) CompleteAttempt(ctx context.Context, id int64, owner string, o store.Outcome) error {
	if !slices.Contains(outcomeStates, o.State) {
		return fmt.Errorf("postgres: complete attempt on delivery %d: state %q is not an outcome", id, o.State)
	}
	var rcpts any // NULL keeps the recipients as they are
	if o.Recipients != nil {
		b, err := json.Marshal(o.Recipients)
		if err != nil {
			return fmt.Errorf("postgres: complete attempt on delivery %d: encode recipients: %w", id, err)
		}
		rcpts = string(cleanJSON(b))
	}
	at := o.Attempt.Time
	if at.IsZero() {
		at = time.Now()
	}
	n := len(o.Events)
	typ, rcpt, ip, ua, url, reply, detail := make([]string, n), make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	times := make([]time.Time, n)
	for i, ev := range o.Events {
		if ev == nil {
			return fmt.Errorf("postgres: complete attempt on delivery %d: nil event", id)
		}
		typ[i], rcpt[i], times[i], ip[i] = clean(ev.Type), clean(ev.Recipient), ev.Time, clean(ev.IP)
		ua[i], url[i], reply[i], detail[i] = clean(ev.UserAgent), clean(ev.URL), clean(ev.Reply), clean(ev.Detail)
	}
	req := &request{complete: []any{
		id, clean(owner), rcpts, o.State, o.NextAttempt, clean(o.Attempt.Reply), at, !o.NextAttempt.IsZero(),
		clean(o.Attempt.Host), int64(o.Attempt.Duration),
		typ, rcpt, times, ip, ua, url, reply, detail,
	}, nEvent: n}
	res, err := db.commits.Submit(ctx, req)
	if err == nil {
		err = res.err
	}
	if err != nil {
		return fmt.Errorf("postgres: complete attempt on delivery %d: %w", id, err)
	}
	for i, ev := range o.Events {
		ev.Seq, ev.MessageID, ev.Login = res.eventSeqs[i], res.messageID, res.login
	}
	return nil
}

// CompleteAttempts applies each outcome as CompleteAttempt does. They are
// queued to the group-commit writer together, so that they share its
// transactions; each reports its own result.
func (db *DB) CompleteAttempts(ctx context.Context, owner string, cs []store.Completion) []error {
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() { errs[i] = db.CompleteAttempt(ctx, c.ID, owner, c.Outcome) })
	}
	wg.Wait()
	return errs
}

// CompleteAndClaim records the outcomes as CompleteAttempts does, then
// claims ids as ClaimDeliveriesByID does: two transactions (the outcomes
// share the group-commit writer's).
func (db *DB) CompleteAndClaim(ctx context.Context, owner string, cs []store.Completion, ids []int64,
	now time.Time, lease time.Duration) ([]error, []*store.Delivery, error) {
	errs := db.CompleteAttempts(ctx, owner, cs)
	if len(ids) == 0 {
		return errs, []*store.Delivery{}, nil
	}
	claimed, err := db.ClaimDeliveriesByID(ctx, owner, ids, now, lease)
	return errs, claimed, err
}

// ReleaseDeliveries returns every delivery leased to owner to the queue
// unchanged.
func (db *DB) ReleaseDeliveries(ctx context.Context, owner string) error {
	if err := db.usable("release deliveries"); err != nil {
		return err
	}
	if _, err := db.pool.Exec(ctx, `UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1`, clean(owner)); err != nil {
		return fmt.Errorf("postgres: release deliveries of %s: %w", owner, err)
	}
	return nil
}

// Deliveries lists deliveries in scope by ascending ID. Limit 0 or less
// means 100, and at most 1000 are returned.
func (db *DB) Deliveries(ctx context.Context, q store.DeliveryQuery) ([]*store.Delivery, error) {
	if err := db.usable("deliveries"); err != nil {
		return nil, err
	}
	if !seesAnything(q.Scope) {
		return []*store.Delivery{}, nil
	}
	limit := clampLimit(q.Limit, defaultDeliveryLimit, maxDeliveryLimit)
	rows, err := db.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries d
WHERE d.id > $1 AND (cardinality($2::text[]) = 0 OR d.state = ANY($2)) AND ($3 = '' OR d.message_id = $3)
AND ($4 OR d.login = ANY($5))
ORDER BY d.id LIMIT $6`, q.AfterID, cleanAll(q.States), clean(q.MessageID), q.Scope.All, scopeLogins(q.Scope), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: deliveries: %w", err)
	}
	out, err := collectDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: deliveries: %w", err)
	}
	return slices.DeleteFunc(out, func(d *store.Delivery) bool { return !q.Scope.Allows(d.Login) }), nil
}

// Attempts lists a delivery's attempts in order; store.ErrNotFound if the
// delivery does not exist or is not in scope.
func (db *DB) Attempts(ctx context.Context, id int64, scope store.Scope) ([]store.Attempt, error) {
	if err := db.usable("attempts"); err != nil {
		return nil, err
	}
	if !seesAnything(scope) {
		return nil, store.ErrNotFound
	}
	var login string
	err := db.pool.QueryRow(ctx, `SELECT login FROM deliveries WHERE id = $1`, id).Scan(&login)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !scope.Allows(login) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: attempts of delivery %d: %w", id, err)
	}
	rows, err := db.pool.Query(ctx, `SELECT time, host, reply, duration_ns FROM attempts WHERE delivery_id = $1 ORDER BY n`, id)
	if err != nil {
		return nil, fmt.Errorf("postgres: attempts of delivery %d: %w", id, err)
	}
	defer rows.Close()
	out := []store.Attempt{}
	for rows.Next() {
		a := store.Attempt{DeliveryID: id}
		var ns int64
		if err := rows.Scan(&a.Time, &a.Host, &a.Reply, &ns); err != nil {
			return nil, fmt.Errorf("postgres: attempts of delivery %d: %w", id, err)
		}
		a.Time, a.Duration = a.Time.UTC(), time.Duration(ns)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: attempts of delivery %d: %w", id, err)
	}
	return out, nil
}

// lockDelivery locks delivery id for update in tx and returns it;
// store.ErrNotFound if it does not exist or scope does not allow it.
func lockDelivery(ctx context.Context, tx pgx.Tx, id int64, scope store.Scope) (*store.Delivery, error) {
	if !seesAnything(scope) {
		return nil, store.ErrNotFound
	}
	d, err := scanDelivery(tx.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries d WHERE d.id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !scope.Allows(d.Login) {
		return nil, store.ErrNotFound
	}
	return d, err
}

// pending reports whether a delivery in state may still be attempted.
func pending(state string) bool {
	return state == store.DeliveryQueued || state == store.DeliveryDeferred
}

// RetryNow makes a queued or deferred delivery due at now. It returns
// store.ErrNotFound if the delivery is not in scope and store.ErrState if
// it is not queued or deferred.
func (db *DB) RetryNow(ctx context.Context, id int64, scope store.Scope, now time.Time) error {
	if err := db.usable("retry"); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		d, err := lockDelivery(ctx, tx, id, scope)
		if err != nil {
			return err
		}
		if !pending(d.State) {
			return store.ErrState
		}
		_, err = tx.Exec(ctx, `UPDATE deliveries SET next_attempt = $2, updated = $2 WHERE id = $1`, id, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: retry delivery %d: %w", id, err)
	}
	return nil
}

// CancelDelivery cancels a queued or deferred delivery in one
// transaction: its pending recipients become failed (Reply CancelReply),
// each with a failed event. It returns store.ErrNotFound if the delivery
// is not in scope, and store.ErrState if it is in another state or leased
// at now (an attempt is in flight and its outcome must not be lost).
func (db *DB) CancelDelivery(ctx context.Context, id int64, scope store.Scope, now time.Time) error {
	if err := db.usable("cancel"); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// The seq lock before the row lock, in the writer's order: the
		// writer completes attempts under the seq lock.
		if _, err := tx.Exec(ctx, lockSeq, db.lockKey); err != nil {
			return err
		}
		d, err := lockDelivery(ctx, tx, id, scope)
		if err != nil {
			return err
		}
		var leased bool
		if err := tx.QueryRow(ctx, `SELECT lease_owner IS NOT NULL AND lease_until > $2 FROM deliveries WHERE id = $1`, id, now).Scan(&leased); err != nil {
			return err
		}
		if !pending(d.State) || leased {
			return store.ErrState
		}
		var events []*store.Event
		for i, r := range d.Recipients {
			if r.State != store.RecipientPending && r.State != "" {
				continue
			}
			d.Recipients[i].State, d.Recipients[i].Reply = store.RecipientFailed, CancelReply
			events = append(events, &store.Event{MessageID: d.MessageID, Type: store.EventFailed,
				Recipient: r.Address, Time: now, Detail: CancelDetail})
		}
		rcpts, err := json.Marshal(nonNilSlice(d.Recipients))
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE deliveries SET state = $2, recipients = $3::text::jsonb, updated = $4, lease_owner = NULL, lease_until = NULL
WHERE id = $1`, id, store.DeliveryCancelled, string(cleanJSON(rcpts)), now)
		if len(events) > 0 {
			if err := db.queueEvents(b, events); err != nil {
				return err
			}
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: cancel delivery %d: %w", id, err)
	}
	return nil
}
