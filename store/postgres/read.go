package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/jackc/pgx/v5"

	"github.com/smtpgate/smtpgate/store"
)

// Listing limits of store.InboxQuery.
const (
	defaultInboxLimit = 100
	maxInboxLimit     = 1000
)

// messageColumns are the columns of messages a listing reads; bodies are
// only joined in by Get and InboxMessage.
const messageColumns = `m.seq, m.id, m.login, m.route, m.mail_from, m.recipients, m.remote_ip, m.helo, m.tls,
m.received, m.size, m.summary, m.tags, m.return_path, m.metadata, m.send_at, m.processing`

// inboxColumns follow messageColumns in inbox listings.
const inboxColumns = `i.inbox, i.read, i.labels, i.folder`

// scanMessage reads messageColumns followed by extra destinations.
func scanMessage(row pgx.Row, extra ...any) (*store.Message, error) {
	m := &store.Message{}
	var summary, metadata, processing []byte
	var sendAt *time.Time
	dest := append([]any{&m.Seq, &m.ID, &m.Login, &m.Route, &m.MailFrom, &m.Recipients, &m.RemoteIP, &m.Helo, &m.TLS,
		&m.Received, &m.Size, &summary, &m.Tags, &m.ReturnPath, &metadata, &sendAt, &processing}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	m.Received = m.Received.UTC()
	if sendAt != nil {
		m.SendAt = sendAt.UTC()
	}
	if err := jsonv2.Unmarshal(summary, &m.Summary); err != nil {
		return nil, fmt.Errorf("decode summary of %s: %w", m.ID, err)
	}
	if err := jsonv2.Unmarshal(metadata, &m.Metadata); err != nil {
		return nil, fmt.Errorf("decode metadata of %s: %w", m.ID, err)
	}
	if len(m.Metadata) == 0 {
		m.Metadata = nil
	}
	if err := jsonv2.Unmarshal(processing, &m.Processing); err != nil {
		return nil, fmt.Errorf("decode processing of %s: %w", m.ID, err)
	}
	return m, nil
}

// scanEntry reads messageColumns and inboxColumns, then extra.
func scanEntry(row pgx.Row, extra ...any) (*store.InboxEntry, error) {
	e := &store.InboxEntry{}
	var labels []byte
	m, err := scanMessage(row, append([]any{&e.Inbox, &e.Read, &labels, &e.Folder}, extra...)...)
	if err != nil {
		return nil, err
	}
	e.Message = m
	if err := jsonv2.Unmarshal(labels, &e.Labels); err != nil {
		return nil, fmt.Errorf("decode labels of %s: %w", m.ID, err)
	}
	return e, nil
}

// Get returns a message with its Raw and Original, or
// store.ErrNotFound if it does not exist or scope does not allow its login.
func (db *DB) Get(ctx context.Context, id string, scope store.Scope) (*store.Message, error) {
	if err := db.usable("get"); err != nil {
		return nil, err
	}
	if !seesAnything(scope) {
		return nil, store.ErrNotFound
	}
	row := db.pool.QueryRow(ctx, `SELECT `+messageColumns+`, b.raw, b.original
FROM messages m JOIN bodies b ON b.id = m.id WHERE m.id = $1`, clean(id))
	var raw, original []byte
	m, err := scanMessage(row, &raw, &original)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get %s: %w", id, err)
	}
	if !scope.Allows(m.Login) {
		return nil, store.ErrNotFound
	}
	m.Raw, m.Original = nonNilBytes(raw), nilIfEmpty(original)
	return m, nil
}

// GetMeta returns a message without Raw, Original and Text (neither the
// bodies table nor the text column is read), or store.ErrNotFound if it
// does not exist or scope does not allow its login.
func (db *DB) GetMeta(ctx context.Context, id string, scope store.Scope) (*store.Message, error) {
	if err := db.usable("get without body"); err != nil {
		return nil, err
	}
	if !seesAnything(scope) {
		return nil, store.ErrNotFound
	}
	m, err := scanMessage(db.pool.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages m WHERE m.id = $1`, clean(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get %s without body: %w", id, err)
	}
	if !scope.Allows(m.Login) {
		return nil, store.ErrNotFound
	}
	return m, nil
}

// Inbox lists an inbox newest first, only messages whose login scope
// allows. Limit 0 or less means 100, and at most 1000 are returned.
func (db *DB) Inbox(ctx context.Context, q store.InboxQuery) ([]*store.InboxEntry, error) {
	if err := db.usable("inbox"); err != nil {
		return nil, err
	}
	if !seesAnything(q.Scope) {
		return []*store.InboxEntry{}, nil
	}
	limit := clampLimit(q.Limit, defaultInboxLimit, maxInboxLimit)
	before := q.BeforeSeq
	if before <= 0 {
		before = math.MaxInt64
	}
	inbox := store.NormalizeInbox(clean(q.Inbox))
	rows, err := db.pool.Query(ctx, `SELECT `+messageColumns+`, `+inboxColumns+`
FROM inbox i JOIN messages m ON m.seq = i.seq
WHERE i.inbox = $1 AND i.seq < $2 AND ($3 OR i.login = ANY($4))
ORDER BY i.seq DESC LIMIT $5`, inbox, before, q.Scope.All, scopeLogins(q.Scope), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: inbox %s: %w", inbox, err)
	}
	defer rows.Close()
	entries := make([]*store.InboxEntry, 0, min(limit, 64))
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: inbox %s: %w", inbox, err)
		}
		if !q.Scope.Allows(e.Message.Login) {
			continue // the SQL filter already did this; never trust one check
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: inbox %s: %w", inbox, err)
	}
	return entries, nil
}

// InboxMessage returns one message of an inbox with Raw and Original, or
// store.ErrNotFound if the inbox does not hold it or scope does
// not allow its login.
func (db *DB) InboxMessage(ctx context.Context, inbox, id string, scope store.Scope) (*store.InboxEntry, error) {
	if err := db.usable("inbox message"); err != nil {
		return nil, err
	}
	if !seesAnything(scope) {
		return nil, store.ErrNotFound
	}
	inbox = store.NormalizeInbox(clean(inbox))
	row := db.pool.QueryRow(ctx, `SELECT `+messageColumns+`, `+inboxColumns+`, b.raw, b.original
FROM messages m JOIN inbox i ON i.inbox = $1 AND i.seq = m.seq JOIN bodies b ON b.id = m.id
WHERE m.id = $2`, inbox, clean(id))
	var raw, original []byte
	e, err := scanEntry(row, &raw, &original)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: inbox %s message %s: %w", inbox, id, err)
	}
	if !scope.Allows(e.Message.Login) {
		return nil, store.ErrNotFound
	}
	e.Message.Raw, e.Message.Original = nonNilBytes(raw), nilIfEmpty(original)
	return e, nil
}

// DeleteInboxMessage removes a message from one inbox, and removes the
// message itself when no inbox holds it any more. It returns
// store.ErrNotFound if the inbox does not hold the message or scope does not
// allow its login.
func (db *DB) DeleteInboxMessage(ctx context.Context, inbox, id string, scope store.Scope) error {
	if err := db.usable("delete"); err != nil {
		return err
	}
	if !seesAnything(scope) {
		return store.ErrNotFound
	}
	inbox = store.NormalizeInbox(clean(inbox))
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// Lock the message row first so that two deletes from its last two
		// inboxes serialise, and the second sees the first's.
		var seq int64
		var login string
		err := tx.QueryRow(ctx, `SELECT m.seq, m.login FROM messages m
WHERE m.id = $1 AND EXISTS (SELECT 1 FROM inbox i WHERE i.inbox = $2 AND i.seq = m.seq) FOR UPDATE`, clean(id), inbox).Scan(&seq, &login)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if !scope.Allows(login) {
			return store.ErrNotFound
		}
		tag, err := tx.Exec(ctx, `DELETE FROM inbox WHERE inbox = $1 AND seq = $2`, inbox, seq)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound // deleted meanwhile
		}
		return deleteOrphans(ctx, tx, []int64{seq})
	})
	if errors.Is(err, store.ErrNotFound) {
		return store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: delete %s from %s: %w", id, inbox, err)
	}
	return nil
}

// deleteOrphans removes the captured messages among seqs that no inbox
// holds any more; their bodies, events and deliveries go by cascade.
func deleteOrphans(ctx context.Context, tx pgx.Tx, seqs []int64) error {
	_, err := tx.Exec(ctx, `DELETE FROM messages m WHERE m.seq = ANY($1) AND m.route = $2
AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.seq = m.seq)`, seqs, store.RouteCapture)
	if err != nil {
		return fmt.Errorf("delete messages no inbox holds: %w", err)
	}
	return nil
}

// seesAnything reports whether a scope can see any message at all.
func seesAnything(s store.Scope) bool {
	return s.All || len(s.Logins) > 0
}

// clampLimit applies a default to limit <= 0 and caps it.
func clampLimit(limit, def, max int) int {
	if limit <= 0 {
		return def
	}
	return min(limit, max)
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// scopeLogins returns the scope's logins as SQL text values.
func scopeLogins(s store.Scope) []string {
	return cleanAll(s.Logins)
}
