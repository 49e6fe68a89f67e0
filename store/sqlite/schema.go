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
	}
}

// migrate creates the schema_version table if needed and applies every
// migration above the stored version, each in its own transaction.
func migrate(ctx context.Context, db *sql.DB, log *zap.Logger) error {
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
