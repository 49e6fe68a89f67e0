package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/smtpgate/smtpgate/store"
)

var _ store.EventStore = (*DB)(nil)

// Listing limits of store.EventQuery.
const (
	defaultEventLimit = 1000
	maxEventLimit     = 10000
)

const eventColumns = `seq, message_id, login, type, recipient, time, ip, user_agent, url, reply, detail`

// scanEvent reads eventColumns.
func scanEvent(s scanner) (*store.Event, error) {
	e := &store.Event{}
	var t int64
	if err := s.Scan(&e.Seq, &e.MessageID, &e.Login, &e.Type, &e.Recipient, &t, &e.IP, &e.UserAgent, &e.URL, &e.Reply, &e.Detail); err != nil {
		return nil, err
	}
	e.Time = fromNano(t)
	return e, nil
}

// AddEvents appends events to existing messages in one transaction and sets
// their Seq and Login. If any MessageID does not exist, nothing is added and
// the error is store.ErrNotFound.
func (db *DB) AddEvents(ctx context.Context, events ...*store.Event) error {
	if len(events) == 0 {
		return nil
	}
	for _, e := range events {
		if e == nil {
			return errors.New("sqlite: add events: nil event")
		}
	}
	seqs := make([]int64, len(events))
	logins := make([]string, len(events))
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		ins := tx.StmtContext(ctx, db.stmts[insertEvent])
		for i, e := range events {
			var messageSeq int64
			err := db.txQueryRow(ctx, tx, selectMessageOfEvent, e.MessageID).Scan(&messageSeq, &logins[i])
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrNotFound
			}
			if err != nil {
				return err
			}
			if seqs[i], err = insertEventRow(ctx, ins, messageSeq, e.MessageID, logins[i], e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return err
		}
		return fmt.Errorf("sqlite: add events: %w", err)
	}
	for i, e := range events {
		e.Seq, e.Login = seqs[i], logins[i]
	}
	return nil
}

// Events lists events in Seq order, only of messages the scope allows.
func (db *DB) Events(ctx context.Context, q store.EventQuery) ([]*store.Event, error) {
	if !scopeSeesAnything(q.Scope) {
		return []*store.Event{}, nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultEventLimit
	}
	limit = min(limit, maxEventLimit)
	query := `SELECT ` + eventColumns + ` FROM events WHERE seq > ?`
	args := []any{q.AfterSeq}
	if q.MessageID != "" {
		query += ` AND message_seq = (SELECT seq FROM messages WHERE id = ?)`
		args = append(args, q.MessageID)
	}
	switch {
	case q.Scope.All:
	case len(q.Scope.Logins) == 1:
		// One login walks events_by_login in Seq order and stops at the
		// limit; a list of logins needs a sort.
		query += ` AND login = ?`
		args = append(args, q.Scope.Logins[0])
	default:
		logins, err := json.Marshal(q.Scope.Logins)
		if err != nil {
			return nil, fmt.Errorf("sqlite: events: %w", err)
		}
		query += ` AND login IN (SELECT value FROM json_each(?))`
		args = append(args, logins)
	}
	query += ` ORDER BY seq LIMIT ?`
	out, err := queryScoped(ctx, db, q.Scope, scanEvent, func(e *store.Event) string { return e.Login },
		query, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	return out, nil
}

// Event returns one event by Seq, or store.ErrNotFound.
func (db *DB) Event(ctx context.Context, seq int64) (*store.Event, error) {
	if seq <= 0 || seq == math.MaxInt64 {
		return nil, store.ErrNotFound
	}
	e, err := scanEvent(db.rdb.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events WHERE seq = ?`, seq))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: event %d: %w", seq, err)
	}
	return e, nil
}
