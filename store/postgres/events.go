package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/smtpgate/smtpgate/store"
)

// Limits of store.EventQuery.
const (
	defaultEventLimit = 1000
	maxEventLimit     = 10000
)

// eventColumns are the columns scanEvent reads.
const eventColumns = `seq, message_id, login, type, recipient, time, ip, user_agent, url, reply, detail`

// insertEvents appends events to the messages they name, all or nothing:
// when any message does not exist no row is inserted. It must run after
// lockSeq in the same transaction. $1 are the message ids, $10 the number
// of distinct ids.
const insertEvents = `
INSERT INTO events (message_id, login, type, recipient, time, ip, user_agent, url, reply, detail)
SELECT m.id, m.login, x.type, x.recipient, x.time, x.ip, x.ua, x.url, x.reply, x.detail
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
	WITH ORDINALITY AS x(mid, type, recipient, time, ip, ua, url, reply, detail, ord)
JOIN messages m ON m.id = x.mid
WHERE (SELECT count(*) FROM messages WHERE id = ANY($1)) = $10
ORDER BY x.ord
RETURNING seq, login`

// eventArgs encodes events for insertEvents.
func eventArgs(events []*store.Event) ([]any, error) {
	n := len(events)
	mid, typ, rcpt, ip, ua, url, reply, detail := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	at := make([]time.Time, n)
	distinct := map[string]bool{}
	for i, ev := range events {
		if ev == nil {
			return nil, errors.New("nil event")
		}
		mid[i], typ[i], rcpt[i], at[i] = clean(ev.MessageID), clean(ev.Type), clean(ev.Recipient), ev.Time
		ip[i], ua[i], url[i], reply[i], detail[i] = clean(ev.IP), clean(ev.UserAgent), clean(ev.URL), clean(ev.Reply), clean(ev.Detail)
		distinct[mid[i]] = true
	}
	return []any{mid, typ, rcpt, at, ip, ua, url, reply, detail, len(distinct)}, nil
}

// queueEvents adds lockSeq and insertEvents to b; at Close the events get
// their Seq and Login, or the batch fails with store.ErrNotFound.
func (db *DB) queueEvents(b *pgx.Batch, events []*store.Event) error {
	args, err := eventArgs(events)
	if err != nil {
		return err
	}
	b.Queue(lockSeq, db.lockKey)
	b.Queue(insertEvents, args...).Query(func(rows pgx.Rows) error {
		i := 0
		for rows.Next() {
			if i >= len(events) {
				return errors.New("more events inserted than given")
			}
			if err := rows.Scan(&events[i].Seq, &events[i].Login); err != nil {
				return err
			}
			i++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if i != len(events) {
			return store.ErrNotFound
		}
		return nil
	})
	return nil
}

// AddEvents appends events to existing messages in one transaction and sets
// their Seq (in the order given) and Login. It returns store.ErrNotFound,
// and adds nothing, if any MessageID does not exist. Like Accept it goes
// through the group-commit writer, so that events from many callers share
// a transaction and a WAL flush.
func (db *DB) AddEvents(ctx context.Context, events ...*store.Event) error {
	if len(events) == 0 {
		return db.usable("add events")
	}
	args, err := eventArgs(events)
	if err != nil {
		return fmt.Errorf("postgres: add events: %w", err)
	}
	res, err := db.commits.Submit(ctx, &request{events: args, nEvent: len(events)})
	if err == nil {
		err = res.err // this write failed alone inside its group
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: add events: %w", err)
	}
	for i, ev := range events {
		ev.Seq, ev.Login = res.eventSeqs[i], res.logins[i]
	}
	return nil
}

// scanEvent reads eventColumns.
func scanEvent(row pgx.Row) (*store.Event, error) {
	ev := &store.Event{}
	if err := row.Scan(&ev.Seq, &ev.MessageID, &ev.Login, &ev.Type, &ev.Recipient, &ev.Time, &ev.IP, &ev.UserAgent,
		&ev.URL, &ev.Reply, &ev.Detail); err != nil {
		return nil, err
	}
	ev.Time = ev.Time.UTC()
	return ev, nil
}

// Events lists events in Seq order, only of messages the scope allows.
// Limit 0 or less means 1000, and at most 10000 are returned.
func (db *DB) Events(ctx context.Context, q store.EventQuery) ([]*store.Event, error) {
	if err := db.usable("events"); err != nil {
		return nil, err
	}
	if !seesAnything(q.Scope) {
		return []*store.Event{}, nil
	}
	limit := clampLimit(q.Limit, defaultEventLimit, maxEventLimit)
	rows, err := db.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
WHERE seq > $1 AND ($2 = '' OR message_id = $2) AND ($3 OR login = ANY($4))
ORDER BY seq LIMIT $5`, q.AfterSeq, clean(q.MessageID), q.Scope.All, scopeLogins(q.Scope), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: events: %w", err)
	}
	defer rows.Close()
	out := make([]*store.Event, 0, min(limit, 64))
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: events: %w", err)
		}
		if q.Scope.Allows(ev.Login) {
			out = append(out, ev)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: events: %w", err)
	}
	return out, nil
}

// Event returns one event by Seq, or store.ErrNotFound.
func (db *DB) Event(ctx context.Context, seq int64) (*store.Event, error) {
	if err := db.usable("event"); err != nil {
		return nil, err
	}
	ev, err := scanEvent(db.pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE seq = $1`, seq))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: event %d: %w", seq, err)
	}
	return ev, nil
}

// isForeignKeyViolation reports whether err is PostgreSQL's
// foreign_key_violation.
func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}
