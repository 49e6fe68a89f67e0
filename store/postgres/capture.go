package postgres

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smtpgate/smtpgate/store"
)

// Limits of the capture methods.
const (
	defaultSearchLimit = 50
	maxSearchLimit     = 1000
	defaultInboxesLim  = 100
	maxInboxesLim      = 1000
	defaultPruneBatch  = 1000
)

// whereBuilder collects SQL conditions and their arguments.
type whereBuilder struct {
	conds []string
	args  []any
}

// arg adds an argument and returns its placeholder.
func (w *whereBuilder) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

// add adds a condition; each %s in cond is replaced by a placeholder for
// the next of args.
func (w *whereBuilder) add(cond string, args ...any) {
	ph := make([]any, len(args))
	for i, a := range args {
		ph[i] = w.arg(a)
	}
	w.conds = append(w.conds, fmt.Sprintf(cond, ph...))
}

// scope restricts rows by the login column col to the scope's logins.
func (w *whereBuilder) scope(col string, s store.Scope) {
	if !s.All {
		w.add(col+" = ANY(%s)", scopeLogins(s))
	}
}

func (w *whereBuilder) sql() string {
	return strings.Join(w.conds, "\n\tAND ")
}

// Search finds captured messages, without Raw, Original and Text. Only the
// conditions a query sets reach the SQL, so each combination gets its own
// plan: a substring condition can use the pg_trgm index of its column.
func (db *DB) Search(ctx context.Context, q store.SearchQuery) ([]*store.Message, error) {
	if err := db.usable("search"); err != nil {
		return nil, err
	}
	if !seesAnything(q.Scope) {
		return []*store.Message{}, nil
	}
	limit := clampLimit(q.Limit, defaultSearchLimit, maxSearchLimit)
	w := &whereBuilder{}
	w.add("m.route = %s", store.RouteCapture)
	w.scope("m.login", q.Scope)
	if q.Inbox != "" {
		w.add("EXISTS (SELECT 1 FROM inbox i WHERE i.inbox = %s AND i.seq = m.seq)", store.NormalizeInbox(clean(q.Inbox)))
	}
	if q.Login != "" {
		w.add("m.login = %s", clean(q.Login))
	}
	if q.From != "" {
		w.add(`m.from_text ILIKE %s`, likePattern(q.From))
	}
	if q.To != "" {
		w.add(`m.to_text ILIKE %s`, likePattern(q.To))
	}
	if q.Subject != "" {
		w.add(`m.subject ILIKE %s`, likePattern(q.Subject))
	}
	if q.Text != "" {
		p := w.arg(likePattern(q.Text))
		w.conds = append(w.conds, fmt.Sprintf(`(m.subject ILIKE %s OR m.body_text ILIKE %s)`, p, p))
	}
	if q.Tag != "" {
		w.add("%s = ANY(m.tags)", clean(q.Tag))
	}
	if !q.Since.IsZero() {
		w.add("m.received >= %s", q.Since)
	}
	if !q.Until.IsZero() {
		w.add("m.received < %s", q.Until)
	}
	if q.HasAttachment != nil {
		w.add("m.has_attachment = %s", *q.HasAttachment)
	}
	order := "DESC"
	if q.AfterSeq > 0 {
		w.add("m.seq > %s", q.AfterSeq)
		order = "ASC"
	} else if q.BeforeSeq > 0 {
		w.add("m.seq < %s", q.BeforeSeq)
	}
	sql := `SELECT ` + messageColumns + ` FROM messages m WHERE ` + w.sql() +
		` ORDER BY m.seq ` + order + ` LIMIT ` + w.arg(limit)
	rows, err := db.pool.Query(ctx, sql, w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: search: %w", err)
	}
	defer rows.Close()
	out := make([]*store.Message, 0, min(limit, 64))
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: search: %w", err)
		}
		if q.Scope.Allows(m.Login) && m.Route == store.RouteCapture {
			out = append(out, m)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: search: %w", err)
	}
	return out, nil
}

// Inboxes lists the inboxes holding mail of the scope's logins (of login
// only, if not ""), most recently used first, counting only that mail.
// Limit 0 or less means 100, and at most 1000 are returned.
func (db *DB) Inboxes(ctx context.Context, scope store.Scope, login string, limit int) ([]store.InboxSummary, error) {
	if err := db.usable("inboxes"); err != nil {
		return nil, err
	}
	out := []store.InboxSummary{}
	if !seesAnything(scope) || login != "" && !scope.Allows(login) {
		return out, nil
	}
	w := &whereBuilder{}
	w.conds = append(w.conds, "true")
	w.scope("i.login", scope)
	if login != "" {
		w.add("i.login = %s", clean(login))
	}
	limit = clampLimit(limit, defaultInboxesLim, maxInboxesLim)
	names, err := db.recentInboxes(ctx, w, limit)
	if err != nil {
		return nil, err
	}
	if names != nil {
		// Only the inboxes found: one range of the primary key each.
		w.add("i.inbox = ANY(%s)", names)
	}
	// The time of each inbox's newest message comes from that one row,
	// not from aggregating the times of all its rows.
	sql := `SELECT g.inbox, g.n, g.unread, l.received, g.last FROM (
	SELECT i.inbox, count(*) AS n, count(*) FILTER (WHERE NOT i.read) AS unread, max(i.seq) AS last
	FROM inbox i WHERE ` + w.sql() + `
	GROUP BY i.inbox ORDER BY max(i.seq) DESC LIMIT ` + w.arg(limit) + `) g
JOIN inbox l ON l.inbox = g.inbox AND l.seq = g.last
ORDER BY g.last DESC`
	rows, err := db.pool.Query(ctx, sql, w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: inboxes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s store.InboxSummary
		var n, unread int64
		if err := rows.Scan(&s.Inbox, &n, &unread, &s.Latest, &s.LastSeq); err != nil {
			return nil, fmt.Errorf("postgres: inboxes: %w", err)
		}
		s.Messages, s.Unread, s.Latest = int(n), int(unread), s.Latest.UTC()
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: inboxes: %w", err)
	}
	return out, nil
}

// recentRowsPerInbox bounds the walk of recentInboxes: rows read per inbox
// wanted, on average, before grouping the whole index is the better plan.
const recentRowsPerInbox = 20

// recentInboxes walks the capture index newest first (rows matching w) and
// returns the first limit distinct inboxes met; or all of them, if there
// are fewer; or nil when limit*recentRowsPerInbox rows held fewer than
// limit inboxes (a few inboxes with most of the mail: grouping the whole
// index is then the better plan). w is not changed.
func (db *DB) recentInboxes(ctx context.Context, w *whereBuilder, limit int) ([]string, error) {
	walk := &whereBuilder{conds: slices.Clone(w.conds), args: slices.Clone(w.args)}
	budget := limit * recentRowsPerInbox
	rows, err := db.pool.Query(ctx, `SELECT i.inbox FROM inbox i WHERE `+walk.sql()+`
ORDER BY i.seq DESC LIMIT `+walk.arg(budget), walk.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: inboxes: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	names := []string{}
	read := 0
	for rows.Next() {
		read++
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("postgres: inboxes: %w", err)
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
		return nil, fmt.Errorf("postgres: inboxes: %w", err)
	}
	if read == budget {
		return nil, nil
	}
	return names, nil
}

// InboxCount counts the messages of one inbox in scope.
func (db *DB) InboxCount(ctx context.Context, inbox string, scope store.Scope) (int, error) {
	if err := db.usable("inbox count"); err != nil {
		return 0, err
	}
	if !seesAnything(scope) {
		return 0, nil
	}
	w := &whereBuilder{}
	w.add("i.inbox = %s", store.NormalizeInbox(clean(inbox)))
	w.scope("i.login", scope)
	var n int64
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM inbox i WHERE `+w.sql(), w.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count inbox %s: %w", inbox, err)
	}
	return int(n), nil
}

// DeleteInbox removes every message in scope from one inbox, removes the
// messages no inbox holds any more, and returns how many entries it
// removed.
func (db *DB) DeleteInbox(ctx context.Context, inbox string, scope store.Scope) (int, error) {
	if err := db.usable("delete inbox"); err != nil {
		return 0, err
	}
	if !seesAnything(scope) {
		return 0, nil
	}
	inbox = store.NormalizeInbox(clean(inbox))
	w := &whereBuilder{}
	w.add("i.inbox = %s", inbox)
	w.scope("i.login", scope)
	var n int
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// Lock the messages in seq order first (like DeleteInboxMessage) so
		// that the orphan check below sees concurrent deletes.
		rows, err := tx.Query(ctx, `SELECT m.seq FROM messages m JOIN inbox i ON i.seq = m.seq
WHERE `+w.sql()+` ORDER BY m.seq FOR UPDATE OF m`, w.args...)
		if err != nil {
			return err
		}
		seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		if len(seqs) == 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, `DELETE FROM inbox WHERE inbox = $1 AND seq = ANY($2)`, inbox, seqs)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		return deleteOrphans(ctx, tx, seqs)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: delete inbox %s: %w", inbox, err)
	}
	return n, nil
}

// SetRead marks one inbox entry read or unread; store.ErrNotFound if the
// inbox does not hold the message or scope does not allow it.
func (db *DB) SetRead(ctx context.Context, inbox, id string, scope store.Scope, read bool) error {
	if err := db.usable("set read"); err != nil {
		return err
	}
	if !seesAnything(scope) {
		return store.ErrNotFound
	}
	w := &whereBuilder{}
	w.add("i.inbox = %s", store.NormalizeInbox(clean(inbox)))
	w.add("i.seq = (SELECT seq FROM messages WHERE id = %s)", clean(id))
	w.scope("i.login", scope)
	tag, err := db.pool.Exec(ctx, `UPDATE inbox i SET read = `+w.arg(read)+` WHERE `+w.sql(), w.args...)
	if err != nil {
		return fmt.Errorf("postgres: set read %s in %s: %w", id, inbox, err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// Prune deletes captured messages of r.Login received before now-MaxAge or
// older than its newest MaxCount, at most batch (0 or less: 1000) per
// call, oldest first, and returns how many. Relayed messages are never
// touched. Rows another transaction holds are skipped, not waited for.
func (db *DB) Prune(ctx context.Context, r store.Retention, now time.Time, batch int) (int, error) {
	if err := db.usable("prune"); err != nil {
		return 0, err
	}
	if r.MaxCount <= 0 && r.MaxAge <= 0 {
		return 0, nil
	}
	if batch <= 0 {
		batch = defaultPruneBatch
	}
	var cutoff any // NULL: no age limit
	if r.MaxAge > 0 {
		cutoff = now.Add(-r.MaxAge)
	}
	keep := int64(math.MaxInt32)
	if r.MaxCount > 0 {
		keep = int64(r.MaxCount)
	}
	tag, err := db.pool.Exec(ctx, `
WITH keep_from AS (
	SELECT seq FROM messages
	WHERE login = $1 AND route = $2
	ORDER BY seq DESC OFFSET $4 - 1 LIMIT 1
), victims AS (
	SELECT seq FROM messages
	WHERE login = $1 AND route = $2
	AND (received < $3::timestamptz OR seq < COALESCE((SELECT seq FROM keep_from), 0))
	ORDER BY seq LIMIT $5
	FOR UPDATE SKIP LOCKED
)
DELETE FROM messages m USING victims v WHERE m.seq = v.seq`, clean(r.Login), store.RouteCapture, cutoff, keep, batch)
	if err != nil {
		return 0, fmt.Errorf("postgres: prune mail of %s: %w", r.Login, err)
	}
	return int(tag.RowsAffected()), nil
}
