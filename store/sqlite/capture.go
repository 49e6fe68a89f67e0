package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/smtpgate/smtpgate/store"
)

// DeleteInboxMessage removes a message from one inbox, and removes the
// message itself when no inbox holds it any more. It returns
// store.ErrNotFound if the inbox does not hold the message or scope does not
// allow its login.
func (db *DB) DeleteInboxMessage(ctx context.Context, inbox, id string, scope store.Scope) error {
	inbox = store.NormalizeInbox(inbox)
	err := db.writeInboxEntry(ctx, inbox, id, scope, func(ctx context.Context, tx *sql.Tx, seq int64) error {
		if _, err := db.txExec(ctx, tx, deleteInboxEntry, inbox, seq); err != nil {
			return err
		}
		return db.deleteOrphans(ctx, tx, []int64{seq})
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("sqlite: delete %s from %s: %w", id, inbox, err)
	}
	return err
}

// writeInboxEntry runs op in the writer on the entry of message id in
// inbox (already normalised), given the message's seq. It returns
// store.ErrNotFound, and does not run op, if the inbox does not hold the
// message or scope does not allow its login.
func (db *DB) writeInboxEntry(ctx context.Context, inbox, id string, scope store.Scope,
	op func(ctx context.Context, tx *sql.Tx, seq int64) error) error {
	if !scopeSeesAnything(scope) {
		return store.ErrNotFound
	}
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var seq int64
		var login string
		err := db.txQueryRow(ctx, tx, selectInboxEntry, inbox, id).Scan(&seq, &login)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !scope.Allows(login) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		return op(ctx, tx, seq)
	})
}

// deleteOrphans removes the captured messages among seqs that no inbox
// holds any more; their bodies and events go by cascade.
func (db *DB) deleteOrphans(ctx context.Context, tx *sql.Tx, seqs []int64) error {
	for _, seq := range seqs {
		if _, err := db.txExec(ctx, tx, deleteOrphan, seq, store.RouteCapture, seq); err != nil {
			return fmt.Errorf("delete message %d: %w", seq, err)
		}
	}
	return nil
}

var _ store.Capture = (*DB)(nil)

// defaultPruneBatch is the batch of Prune when the caller gives none.
const defaultPruneBatch = 1000

// Inboxes lists the inboxes holding mail of the scope's logins (of login
// only, if not ""), most recently used first. limit 0 or less means 100; at
// most 1000.
//
// The inboxes of a page are the first limit distinct ones met walking the
// capture index newest first, which usually means reading a few rows per
// inbox; only they are then counted. When the newest rows hold too few
// inboxes for that to pay (a few inboxes with most of the mail), the whole
// index is grouped instead.
func (db *DB) Inboxes(ctx context.Context, scope store.Scope, login string, limit int) ([]store.InboxSummary, error) {
	if !scopeSeesAnything(scope) || login != "" && !scope.Allows(login) {
		return []store.InboxSummary{}, nil
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	var where []string
	var args []any
	if !scope.All {
		logins, err := json.Marshal(scope.Logins)
		if err != nil {
			return nil, fmt.Errorf("sqlite: inboxes: %w", err)
		}
		where = append(where, `i.login IN (SELECT value FROM json_each(?))`)
		args = append(args, logins)
	}
	if login != "" {
		where = append(where, `i.login = ?`)
		args = append(args, login)
	}
	cond := ""
	if len(where) > 0 {
		cond = ` WHERE ` + strings.Join(where, " AND ")
	}
	names, err := db.recentInboxes(ctx, cond, args, limit)
	if err != nil {
		return nil, err
	}
	group := `SELECT i.inbox AS inbox, COUNT(*) AS n, SUM(i.read = 0) AS unread, MAX(i.seq) AS last FROM inbox i` + cond
	if names != nil {
		// Only the inboxes found: one range of the index each.
		b, err := json.Marshal(names)
		if err != nil {
			return nil, fmt.Errorf("sqlite: inboxes: %w", err)
		}
		and := " WHERE "
		if cond != "" {
			and = " AND "
		}
		group += and + `i.inbox IN (SELECT value FROM json_each(?))`
		args = append(args, b)
	}
	query := `SELECT g.inbox, g.n, g.unread, g.last, m.received FROM (` + group + ` GROUP BY i.inbox) g
JOIN messages m ON m.seq = g.last ORDER BY g.last DESC LIMIT ?`
	rows, err := db.rdb.QueryContext(ctx, query, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: inboxes: %w", err)
	}
	defer rows.Close()
	out := []store.InboxSummary{}
	for rows.Next() {
		var s store.InboxSummary
		var received int64
		if err := rows.Scan(&s.Inbox, &s.Messages, &s.Unread, &s.LastSeq, &received); err != nil {
			return nil, fmt.Errorf("sqlite: inboxes: %w", err)
		}
		s.Latest = time.UnixMilli(received).UTC()
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: inboxes: %w", err)
	}
	return out, nil
}

// recentRowsPerInbox bounds the walk of recentInboxes: rows read per inbox
// wanted, on average, before grouping the whole index is the better plan.
const recentRowsPerInbox = 20

// recentInboxes walks the capture index newest first (with the conditions
// cond on its rows) and returns the first limit distinct inboxes, in the
// order met; or all of them, if the walk ends first; or nil when it read
// limit*recentRowsPerInbox rows without finding limit inboxes.
func (db *DB) recentInboxes(ctx context.Context, cond string, args []any, limit int) ([]string, error) {
	rows, err := db.rdb.QueryContext(ctx, `SELECT i.inbox FROM inbox i INDEXED BY inbox_by_message`+cond+` ORDER BY i.seq DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: inboxes: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	names := []string{}
	for read := 0; rows.Next(); read++ {
		if read == limit*recentRowsPerInbox {
			return nil, nil
		}
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("sqlite: inboxes: %w", err)
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
			if len(names) == limit {
				return names, nil
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: inboxes: %w", err)
	}
	return names, nil
}

// InboxCount counts the messages of one inbox in scope.
func (db *DB) InboxCount(ctx context.Context, inbox string, scope store.Scope) (int, error) {
	if !scopeSeesAnything(scope) {
		return 0, nil
	}
	query := `SELECT COUNT(*) FROM inbox i WHERE i.inbox = ?`
	args := []any{store.NormalizeInbox(inbox)}
	if !scope.All {
		logins, err := json.Marshal(scope.Logins)
		if err != nil {
			return 0, fmt.Errorf("sqlite: inbox count: %w", err)
		}
		query += ` AND i.login IN (SELECT value FROM json_each(?))`
		args = append(args, logins)
	}
	var n int
	if err := db.rdb.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: inbox count: %w", err)
	}
	return n, nil
}

// DeleteInbox removes every message in scope from one inbox, and the
// messages no other inbox holds, and returns how many entries it removed.
func (db *DB) DeleteInbox(ctx context.Context, inbox string, scope store.Scope) (int, error) {
	if !scopeSeesAnything(scope) {
		return 0, nil
	}
	inbox = store.NormalizeInbox(inbox)
	var n int
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		n = 0
		rows, err := db.txQuery(ctx, tx, `SELECT seq, login FROM inbox WHERE inbox = ?`, inbox)
		if err != nil {
			return err
		}
		var seqs []int64
		for rows.Next() {
			var seq int64
			var login string
			if err := rows.Scan(&seq, &login); err != nil {
				rows.Close()
				return err
			}
			if scope.Allows(login) {
				seqs = append(seqs, seq)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, seq := range seqs {
			if _, err := db.txExec(ctx, tx, deleteInboxEntry, inbox, seq); err != nil {
				return err
			}
		}
		n = len(seqs)
		return db.deleteOrphans(ctx, tx, seqs)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete inbox %s: %w", inbox, err)
	}
	return n, nil
}

// SetRead marks one inbox entry read or unread: store.ErrNotFound if the
// inbox does not hold the message or scope does not allow its login.
func (db *DB) SetRead(ctx context.Context, inbox, id string, scope store.Scope, read bool) error {
	inbox = store.NormalizeInbox(inbox)
	err := db.writeInboxEntry(ctx, inbox, id, scope, func(ctx context.Context, tx *sql.Tx, seq int64) error {
		_, err := db.txExec(ctx, tx, setRead, read, inbox, seq)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("sqlite: set read %s in %s: %w", id, inbox, err)
	}
	return err
}

// Prune deletes captured messages of r.Login beyond its limits (older than
// MaxAge, or beyond the newest MaxCount), oldest first, at most batch per
// call, and returns how many. Relayed messages are never touched.
func (db *DB) Prune(ctx context.Context, r store.Retention, now time.Time, batch int) (int, error) {
	if r.MaxCount <= 0 && r.MaxAge <= 0 {
		return 0, nil
	}
	if batch <= 0 {
		batch = defaultPruneBatch
	}
	var n int
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		n = 0
		var conds []string
		args := []any{r.Login, store.RouteCapture}
		if r.MaxAge > 0 {
			conds = append(conds, `received < ?`)
			args = append(args, now.Add(-r.MaxAge).UnixMilli())
		}
		if r.MaxCount > 0 {
			// Everything older than the MaxCount-th newest message.
			conds = append(conds, `seq < (SELECT seq FROM messages WHERE login = ? AND route = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`)
			args = append(args, r.Login, store.RouteCapture, r.MaxCount-1)
		}
		res, err := db.txExec(ctx, tx, `DELETE FROM messages WHERE seq IN (SELECT seq FROM messages
WHERE login = ? AND route = ? AND (`+strings.Join(conds, " OR ")+`) ORDER BY seq LIMIT ?)`, append(args, batch)...)
		if err != nil {
			return err
		}
		deleted, err := res.RowsAffected()
		n = int(deleted)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune %s: %w", r.Login, err)
	}
	return n, nil
}
