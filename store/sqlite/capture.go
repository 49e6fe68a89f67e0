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
	if !scopeSeesAnything(scope) {
		return store.ErrNotFound
	}
	inbox = store.NormalizeInbox(inbox)
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var seq int64
		var login string
		err := tx.QueryRowContext(ctx, `SELECT i.seq, i.login FROM messages m JOIN inbox i ON i.inbox = ? AND i.seq = m.seq
WHERE m.id = ?`, inbox, id).Scan(&seq, &login)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !scope.Allows(login) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM inbox WHERE inbox = ? AND seq = ?`, inbox, seq); err != nil {
			return err
		}
		return deleteOrphans(ctx, tx, []int64{seq})
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("sqlite: delete %s from %s: %w", id, inbox, err)
	}
	return err
}

// deleteOrphans removes the captured messages among seqs that no inbox
// holds any more; their bodies and events go by cascade.
func deleteOrphans(ctx context.Context, tx *sql.Tx, seqs []int64) error {
	for _, seq := range seqs {
		if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE seq = ? AND route = ?
AND NOT EXISTS (SELECT 1 FROM inbox WHERE seq = ?)`, seq, store.RouteCapture, seq); err != nil {
			return fmt.Errorf("delete message %d: %w", seq, err)
		}
	}
	return nil
}

var _ store.Capture = (*DB)(nil)

// defaultPruneBatch is the batch of Prune when the caller gives none.
const defaultPruneBatch = 1000

// Listing limits of store.SearchQuery.
const (
	defaultSearchLimit = 50
	maxSearchLimit     = 1000
)

// likePattern makes a LIKE pattern matching s as a substring. LIKE folds
// ASCII letters only, so the match is case-insensitive for ASCII.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// addressMatch is an SQL condition: an address or name in the summary's
// address list at path contains the pattern bound to both ?.
func addressMatch(path string) string {
	return `EXISTS (SELECT 1 FROM json_each(m.summary, '` + path + `') a
WHERE json_extract(a.value, '$.address') LIKE ? ESCAPE '\' OR json_extract(a.value, '$.name') LIKE ? ESCAPE '\')`
}

// Search finds captured messages (without Raw, Original and Text). Every
// non-zero field of q narrows the result; string matches are substrings,
// case-insensitive for ASCII letters. With AfterSeq the result is oldest
// first from AfterSeq, otherwise newest first below BeforeSeq.
func (db *DB) Search(ctx context.Context, q store.SearchQuery) ([]*store.Message, error) {
	if !scopeSeesAnything(q.Scope) {
		return []*store.Message{}, nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultSearchLimit
	}
	limit = min(limit, maxSearchLimit)
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	add(`m.route = ?`, store.RouteCapture)
	if !q.Scope.All {
		logins, err := json.Marshal(q.Scope.Logins)
		if err != nil {
			return nil, fmt.Errorf("sqlite: search: %w", err)
		}
		add(`m.login IN (SELECT value FROM json_each(?))`, logins)
	}
	if q.Inbox != "" {
		add(`EXISTS (SELECT 1 FROM inbox i WHERE i.inbox = ? AND i.seq = m.seq)`, store.NormalizeInbox(q.Inbox))
	}
	if q.Login != "" {
		add(`m.login = ?`, q.Login)
	}
	if q.From != "" {
		p := likePattern(q.From)
		add(`(m.mail_from LIKE ? ESCAPE '\' OR `+addressMatch("$.from")+`)`, p, p, p)
	}
	if q.To != "" {
		p := likePattern(q.To)
		add(`(EXISTS (SELECT 1 FROM json_each(m.recipients) r WHERE r.value LIKE ? ESCAPE '\') OR `+
			addressMatch("$.to")+` OR `+addressMatch("$.cc")+`)`, p, p, p, p, p)
	}
	if q.Subject != "" {
		add(`json_extract(m.summary, '$.subject') LIKE ? ESCAPE '\'`, likePattern(q.Subject))
	}
	if q.Text != "" {
		p := likePattern(q.Text)
		add(`(json_extract(m.summary, '$.subject') LIKE ? ESCAPE '\' OR (SELECT b.text FROM bodies b WHERE b.seq = m.seq) LIKE ? ESCAPE '\')`, p, p)
	}
	if q.Tag != "" {
		add(`EXISTS (SELECT 1 FROM json_each(m.tags) t WHERE t.value = ?)`, q.Tag)
	}
	if !q.Since.IsZero() {
		add(`m.received >= ?`, q.Since.UnixMilli())
	}
	if !q.Until.IsZero() {
		add(`m.received < ?`, q.Until.UnixMilli())
	}
	if q.HasAttachment != nil {
		op := "="
		if *q.HasAttachment {
			op = ">"
		}
		add(`COALESCE(json_array_length(m.summary, '$.attachments'), 0) ` + op + ` 0`)
	}
	order := `DESC`
	if q.AfterSeq > 0 {
		add(`m.seq > ?`, q.AfterSeq)
		order = `ASC`
	} else if q.BeforeSeq > 0 {
		add(`m.seq < ?`, q.BeforeSeq)
	}
	query := `SELECT ` + messageColumns + ` FROM messages m WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY m.seq ` + order + ` LIMIT ?`
	rows, err := db.rdb.QueryContext(ctx, query, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", err)
	}
	defer rows.Close()
	out := []*store.Message{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: search: %w", err)
		}
		if q.Scope.Allows(m.Login) {
			out = append(out, m)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", err)
	}
	return out, nil
}

// Inboxes lists the inboxes holding mail of the scope's logins (of login
// only, if not ""), most recently used first. limit 0 or less means 100; at
// most 1000.
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
	query := `SELECT i.inbox AS inbox, COUNT(*) AS n, SUM(i.read = 0) AS unread, MAX(i.seq) AS last FROM inbox i`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query = `SELECT g.inbox, g.n, g.unread, g.last, m.received FROM (` + query + ` GROUP BY i.inbox) g
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
		rows, err := tx.QueryContext(ctx, `SELECT seq, login FROM inbox WHERE inbox = ?`, inbox)
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
			if _, err := tx.ExecContext(ctx, `DELETE FROM inbox WHERE inbox = ? AND seq = ?`, inbox, seq); err != nil {
				return err
			}
		}
		n = len(seqs)
		return deleteOrphans(ctx, tx, seqs)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete inbox %s: %w", inbox, err)
	}
	return n, nil
}

// SetRead marks one inbox entry read or unread: store.ErrNotFound if the
// inbox does not hold the message or scope does not allow its login.
func (db *DB) SetRead(ctx context.Context, inbox, id string, scope store.Scope, read bool) error {
	if !scopeSeesAnything(scope) {
		return store.ErrNotFound
	}
	inbox = store.NormalizeInbox(inbox)
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var seq int64
		var login string
		err := tx.QueryRowContext(ctx, `SELECT i.seq, i.login FROM messages m JOIN inbox i ON i.inbox = ? AND i.seq = m.seq
WHERE m.id = ?`, inbox, id).Scan(&seq, &login)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !scope.Allows(login) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE inbox SET read = ? WHERE inbox = ? AND seq = ?`, read, inbox, seq)
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
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE seq IN (SELECT seq FROM messages
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
