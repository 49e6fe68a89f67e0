package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// migrations returns the schema changes in order; element i brings the
// schema from version i to version i+1. Existing entries must never change:
// append a new one instead.
func migrations() []string {
	return []string{
		// 1: messages, their bodies and the capture index.
		`
CREATE TABLE messages (
	seq        INTEGER PRIMARY KEY,          -- commit order, never reused
	id         TEXT    NOT NULL UNIQUE,
	login      TEXT    NOT NULL,
	route      TEXT    NOT NULL,
	mail_from  TEXT    NOT NULL,
	recipients TEXT    NOT NULL,             -- JSON array, as submitted
	remote_ip  TEXT    NOT NULL,
	helo       TEXT    NOT NULL,
	tls        INTEGER NOT NULL,
	received   INTEGER NOT NULL,             -- Unix milliseconds
	size       INTEGER NOT NULL,
	summary    TEXT    NOT NULL,             -- JSON summary.Summary
	tags       TEXT    NOT NULL              -- JSON array
);
-- Bodies live apart so that listing pages stay dense and never touch them.
CREATE TABLE bodies (
	seq      INTEGER PRIMARY KEY REFERENCES messages(seq) ON DELETE CASCADE,
	raw      BLOB NOT NULL,
	original BLOB
);
-- The capture index, clustered by (inbox, seq) so that a page of an inbox,
-- newest first, is one backwards range scan. seq and message_id name the
-- same message, so (inbox, seq) is as unique as (inbox, message_id).
CREATE TABLE inbox (
	inbox      TEXT    NOT NULL,             -- lower-case recipient
	seq        INTEGER NOT NULL REFERENCES messages(seq) ON DELETE CASCADE,
	message_id TEXT    NOT NULL,
	login      TEXT    NOT NULL,
	read       INTEGER NOT NULL DEFAULT 0,
	labels     TEXT    NOT NULL DEFAULT '[]', -- JSON array
	folder     TEXT    NOT NULL DEFAULT 'inbox',
	PRIMARY KEY (inbox, seq)
) WITHOUT ROWID;
CREATE INDEX inbox_by_message ON inbox (seq);
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('last_seq', 0);
`,
		// 2: message metadata, events, relay deliveries and attempts,
		// webhook jobs. Times in new columns are Unix nanoseconds, 0 for
		// the zero time.
		`
ALTER TABLE messages ADD COLUMN return_path TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';  -- JSON object
ALTER TABLE messages ADD COLUMN send_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN processing TEXT NOT NULL DEFAULT '{}'; -- JSON store.Processing
ALTER TABLE bodies ADD COLUMN text TEXT NOT NULL DEFAULT '';
CREATE INDEX messages_by_login ON messages (login, seq);
CREATE TABLE events (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
	message_seq INTEGER NOT NULL REFERENCES messages(seq) ON DELETE CASCADE,
	message_id  TEXT    NOT NULL,
	login       TEXT    NOT NULL,
	type        TEXT    NOT NULL,
	recipient   TEXT    NOT NULL,
	time        INTEGER NOT NULL,
	ip          TEXT    NOT NULL,
	user_agent  TEXT    NOT NULL,
	url         TEXT    NOT NULL,
	reply       TEXT    NOT NULL,
	detail      TEXT    NOT NULL
);
CREATE INDEX events_by_message ON events (message_seq, seq);
CREATE INDEX events_by_login ON events (login, seq);
CREATE TABLE deliveries (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	message_seq  INTEGER NOT NULL REFERENCES messages(seq) ON DELETE CASCADE,
	message_id   TEXT    NOT NULL,
	login        TEXT    NOT NULL,
	route        TEXT    NOT NULL,
	domain       TEXT    NOT NULL,
	recipients   TEXT    NOT NULL,           -- JSON []store.RecipientDelivery
	state        TEXT    NOT NULL,
	attempts     INTEGER NOT NULL,
	next_attempt INTEGER NOT NULL,
	expires      INTEGER NOT NULL,
	last_reply   TEXT    NOT NULL,
	created      INTEGER NOT NULL,
	updated      INTEGER NOT NULL,
	lease_owner  TEXT    NOT NULL DEFAULT '',
	lease_until  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX deliveries_due ON deliveries (next_attempt, id) WHERE state IN ('queued', 'deferred');
CREATE INDEX deliveries_by_message ON deliveries (message_seq);
CREATE INDEX deliveries_by_owner ON deliveries (lease_owner) WHERE lease_owner != '';
CREATE TABLE attempts (
	delivery_id INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
	n           INTEGER NOT NULL,
	time        INTEGER NOT NULL,
	host        TEXT    NOT NULL,
	reply       TEXT    NOT NULL,
	duration    INTEGER NOT NULL,              -- nanoseconds
	PRIMARY KEY (delivery_id, n)
) WITHOUT ROWID;
CREATE TABLE webhook_cursors (
	webhook  TEXT PRIMARY KEY,
	last_seq INTEGER NOT NULL                  -- the last event consumed
) WITHOUT ROWID;
CREATE TABLE webhook_jobs (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	webhook      TEXT    NOT NULL,
	event_seq    INTEGER NOT NULL,
	login        TEXT    NOT NULL,
	state        TEXT    NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_status  INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT    NOT NULL DEFAULT '',
	created      INTEGER NOT NULL,
	updated      INTEGER NOT NULL,
	lease_owner  TEXT    NOT NULL DEFAULT '',
	lease_until  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhook_jobs_due ON webhook_jobs (next_attempt, id) WHERE state IN ('queued', 'deferred');
CREATE INDEX webhook_jobs_by_webhook ON webhook_jobs (webhook, id);
CREATE INDEX webhook_jobs_by_owner ON webhook_jobs (lease_owner) WHERE lease_owner != '';
`,
		// 3: the search table of captured messages: what a SearchQuery
		// matches, lower-cased, dense, scanned newest first. Accept fills
		// it; here it is filled from what version 2 stored (SQL lower()
		// folds ASCII only, Accept folds Unicode).
		`
CREATE TABLE search (
	seq      INTEGER PRIMARY KEY REFERENCES messages(seq) ON DELETE CASCADE,
	login    TEXT    NOT NULL,
	received INTEGER NOT NULL,             -- Unix milliseconds
	attach   INTEGER NOT NULL,             -- 1 if the summary lists attachments
	sender   TEXT    NOT NULL,             -- envelope sender, From names and addresses, one per line
	rcpt     TEXT    NOT NULL,             -- envelope recipients, To and Cc names and addresses
	subject  TEXT    NOT NULL,
	text     TEXT    NOT NULL              -- Message.Text; last, so that other scans skip it
);
INSERT INTO search (seq, login, received, attach, sender, rcpt, subject, text)
SELECT m.seq, m.login, m.received,
	COALESCE(json_array_length(m.summary, '$.attachments'), 0) > 0,
	lower(m.mail_from || COALESCE((SELECT group_concat(char(10) || COALESCE(json_extract(a.value, '$.name'), '') || char(10) ||
		COALESCE(json_extract(a.value, '$.address'), ''), '') FROM json_each(m.summary, '$.from') a), '')),
	lower(COALESCE((SELECT group_concat(r.value, char(10)) FROM json_each(m.recipients) r), '') ||
		COALESCE((SELECT group_concat(char(10) || COALESCE(json_extract(a.value, '$.name'), '') || char(10) ||
			COALESCE(json_extract(a.value, '$.address'), ''), '') FROM json_each(m.summary, '$.to') a), '') ||
		COALESCE((SELECT group_concat(char(10) || COALESCE(json_extract(a.value, '$.name'), '') || char(10) ||
			COALESCE(json_extract(a.value, '$.address'), ''), '') FROM json_each(m.summary, '$.cc') a), '')),
	lower(COALESCE(json_extract(m.summary, '$.subject'), '')),
	lower(b.text)
FROM messages m JOIN bodies b ON b.seq = m.seq
WHERE m.route = 'capture';
`,
		// 4: due webhook jobs by webhook, for the claims of one endpoint.
		`
CREATE INDEX webhook_jobs_due_by_webhook ON webhook_jobs (webhook, next_attempt, id) WHERE state IN ('queued', 'deferred');
`,
	}
}

// migrate creates the schema_version table if needed and applies every
// migration above the stored version, each in its own transaction.
func migrate(ctx context.Context, db *sql.DB, log *zap.Logger) error {
	if err := setPageSize(ctx, db); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	steps := migrations()
	for {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate: begin: %w", err)
		}
		version, err := schemaVersion(ctx, tx)
		if err != nil {
			tx.Rollback()
			return err
		}
		if version > len(steps) {
			tx.Rollback()
			return fmt.Errorf("schema version %d is newer than this program's %d", version, len(steps))
		}
		if version == len(steps) {
			return tx.Rollback()
		}
		if _, err := tx.ExecContext(ctx, steps[version]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to version %d: %w", version+1, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM schema_version`); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to version %d: %w", version+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, version+1); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to version %d: %w", version+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate to version %d: commit: %w", version+1, err)
		}
		log.Info("store schema migrated", zap.Int("version", version+1))
	}
}

// schemaVersion reads the stored schema version; 0 for a new database.
func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// loadLastSeq returns the highest Seq ever given out, so that Seq keeps
// increasing across restarts even when the newest messages were deleted.
func loadLastSeq(ctx context.Context, db *sql.DB) (int64, error) {
	var counter, max int64
	if err := db.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'last_seq'`).Scan(&counter); err != nil {
		return 0, fmt.Errorf("read last_seq: %w", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM messages`).Scan(&max); err != nil {
		return 0, fmt.Errorf("read max seq: %w", err)
	}
	return maxInt64(counter, max), nil
}

func maxInt64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// pageSize is the page size of a new database. 16 KiB pages hold a typical
// message body (5 KB) in one page instead of an overflow chain of two, so a
// group commit writes about a third of the WAL frames, each one pwrite.
const pageSize = 16384

// setPageSize gives a brand-new, empty database the larger page size. WAL
// mode fixes the page size, so an empty file is switched back to rollback
// mode, resized by VACUUM (free on an empty file) and returned to WAL. An
// existing database keeps its page size.
func setPageSize(ctx context.Context, db *sql.DB) error {
	var tables, ps int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&tables); err != nil {
		return fmt.Errorf("page size: %w", err)
	}
	if err := db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&ps); err != nil {
		return fmt.Errorf("page size: %w", err)
	}
	if tables > 0 || ps == pageSize {
		return nil
	}
	for _, q := range []string{`PRAGMA journal_mode=DELETE`, fmt.Sprintf(`PRAGMA page_size=%d`, pageSize), `VACUUM`, `PRAGMA journal_mode=WAL`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("page size: %s: %w", q, err)
		}
	}
	return nil
}
