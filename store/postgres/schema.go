package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// migrations returns the schema changes in order; element i brings the
// schema from version i to version i+1. Existing entries must never change:
// append a new one instead. Names are unqualified: they resolve in the
// connection's current schema.
func migrations() []string {
	return []string{
		// 1: messages, bodies, the capture index, events, deliveries and
		// their attempts, webhook cursors and jobs.
		`
CREATE TABLE messages (
	seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- drawn under the seq lock: commit order
	id             text        NOT NULL UNIQUE,
	login          text        NOT NULL,
	route          text        NOT NULL,
	mail_from      text        NOT NULL,
	recipients     text[]      NOT NULL,          -- as submitted
	remote_ip      text        NOT NULL,
	helo           text        NOT NULL,
	tls            boolean     NOT NULL,
	received       timestamptz NOT NULL,
	size           bigint      NOT NULL,
	summary        jsonb       NOT NULL,          -- summary.Summary
	tags           text[]      NOT NULL,
	body_text      text        NOT NULL,          -- Message.Text
	return_path    text        NOT NULL,
	metadata       jsonb       NOT NULL,
	send_at        timestamptz,                   -- NULL: now
	processing     jsonb       NOT NULL,
	-- Search columns, filled from the summary by Accept.
	subject        text        NOT NULL,
	from_text      text        NOT NULL,          -- From addresses and names, envelope sender
	to_text        text        NOT NULL,          -- envelope recipients, To and Cc addresses
	has_attachment boolean     NOT NULL
);
-- Retention and search by login walk a login's captured mail by seq.
CREATE INDEX messages_capture_by_login ON messages (login, seq) WHERE route = 'capture';

-- Bodies live apart so that listings never touch them. They are inserted
-- before the seq lock is taken, hence keyed by id and checked at COMMIT.
CREATE TABLE bodies (
	id       text  PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
	raw      bytea NOT NULL,
	original bytea
);

-- The capture index. The primary key (inbox, seq) serves a page of an
-- inbox newest first as one backward index range scan.
CREATE TABLE inbox (
	inbox      text        NOT NULL,              -- lower-case recipient
	seq        bigint      NOT NULL REFERENCES messages (seq) ON DELETE CASCADE,
	message_id text        NOT NULL,
	login      text        NOT NULL,
	received   timestamptz NOT NULL,
	read       boolean     NOT NULL DEFAULT false,
	labels     jsonb       NOT NULL DEFAULT '[]',
	folder     text        NOT NULL DEFAULT 'inbox',
	PRIMARY KEY (inbox, seq)
);
CREATE INDEX inbox_by_seq ON inbox (seq);
CREATE INDEX inbox_by_login ON inbox (login, inbox, seq);

CREATE TABLE events (
	seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- drawn under the seq lock: commit order
	message_id text        NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
	login      text        NOT NULL,
	type       text        NOT NULL,
	recipient  text        NOT NULL,
	time       timestamptz NOT NULL,
	ip         text        NOT NULL,
	user_agent text        NOT NULL,
	url        text        NOT NULL,
	reply      text        NOT NULL,
	detail     text        NOT NULL
);
CREATE INDEX events_by_message ON events (message_id, seq);

CREATE TABLE deliveries (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	message_id   text        NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
	login        text        NOT NULL,
	route        text        NOT NULL,
	domain       text        NOT NULL,
	recipients   jsonb       NOT NULL,            -- []store.RecipientDelivery
	state        text        NOT NULL,
	attempts     integer     NOT NULL,
	next_attempt timestamptz NOT NULL,
	expires      timestamptz NOT NULL,
	last_reply   text        NOT NULL,
	created      timestamptz NOT NULL,
	updated      timestamptz NOT NULL,
	lease_owner  text,
	lease_until  timestamptz
);
-- Due deliveries: only queued and deferred ones are ever claimed, oldest
-- next_attempt first.
CREATE INDEX deliveries_due ON deliveries (next_attempt, id) WHERE state IN ('queued', 'deferred');
CREATE INDEX deliveries_by_message ON deliveries (message_id);
CREATE INDEX deliveries_by_owner ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE attempts (
	delivery_id bigint      NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	n           integer     NOT NULL,
	time        timestamptz NOT NULL,
	host        text        NOT NULL,
	reply       text        NOT NULL,
	duration_ns bigint      NOT NULL,
	PRIMARY KEY (delivery_id, n)
);

CREATE TABLE webhook_cursors (
	webhook   text   PRIMARY KEY,
	after_seq bigint NOT NULL
);
CREATE TABLE webhook_jobs (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	webhook      text        NOT NULL,
	event_seq    bigint      NOT NULL,
	login        text        NOT NULL,
	state        text        NOT NULL,
	attempts     integer     NOT NULL DEFAULT 0,
	next_attempt timestamptz NOT NULL,
	last_status  integer     NOT NULL DEFAULT 0,
	last_error   text        NOT NULL DEFAULT '',
	created      timestamptz NOT NULL,
	updated      timestamptz NOT NULL,
	lease_owner  text,
	lease_until  timestamptz,
	UNIQUE (webhook, event_seq)
);
CREATE INDEX webhook_jobs_due ON webhook_jobs (next_attempt, id) WHERE state IN ('queued', 'deferred');
CREATE INDEX webhook_jobs_by_webhook ON webhook_jobs (webhook, id);
CREATE INDEX webhook_jobs_by_owner ON webhook_jobs (lease_owner) WHERE lease_owner IS NOT NULL;
`,
		// 2: due webhook jobs by webhook, for the claims of one endpoint.
		`
CREATE INDEX webhook_jobs_due_by_webhook ON webhook_jobs (webhook, next_attempt, id) WHERE state IN ('queued', 'deferred');
`,
	}
}

// migrate creates the schema_version table if needed and applies every
// migration above the stored version, each in its own transaction, under
// an advisory lock so that instances starting together migrate once.
func (db *DB) migrate(ctx context.Context) error {
	steps := migrations()
	for {
		done, err := db.migrateStep(ctx, steps)
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next migration; done reports that none is left.
func (db *DB) migrateStep(ctx context.Context, steps []string) (done bool, err error) {
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, db.lockKey); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		var version int
		err := tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&version)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read schema version: %w", err)
		}
		if version > len(steps) {
			return fmt.Errorf("schema version %d is newer than this program's %d", version, len(steps))
		}
		if version == len(steps) {
			done = true
			return nil
		}
		if _, err := tx.Exec(ctx, steps[version]); err != nil {
			return fmt.Errorf("migrate to version %d: %w", version+1, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM schema_version`); err != nil {
			return fmt.Errorf("migrate to version %d: %w", version+1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, version+1); err != nil {
			return fmt.Errorf("migrate to version %d: %w", version+1, err)
		}
		db.log.Info("store schema migrated", zap.String("schema", db.schema), zap.Int("version", version+1))
		return nil
	})
	return done, err
}

// trigramIndexes are the search columns that get a pg_trgm GIN index when
// the extension is available, so that ILIKE '%…%' need not read every row.
var trigramIndexes = [...]string{"subject", "from_text", "to_text"}

// ensureTrigram makes pg_trgm available if it can (the extension exists,
// or this role may create it) and indexes the search columns with it. It
// reports whether the indexes are in place; without them search falls
// back to plain ILIKE scans. The first Open after pg_trgm becomes
// available builds the indexes, blocking writes to messages meanwhile.
func (db *DB) ensureTrigram(ctx context.Context) (bool, error) {
	extSchema, err := db.trigramSchema(ctx)
	if err != nil || extSchema == "" {
		return false, err
	}
	// Under the lock: CREATE INDEX IF NOT EXISTS is not safe against a
	// concurrent one.
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSeq, db.lockKey); err != nil {
			return err
		}
		for _, col := range trigramIndexes {
			q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS messages_trgm_%s ON messages USING gin (%s %s.gin_trgm_ops) WHERE route = 'capture'`,
				col, col, pgx.Identifier{extSchema}.Sanitize())
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("create trigram index on %s: %w", col, err)
			}
		}
		return nil
	})
	return err == nil, err
}

// trigramSchema returns the schema pg_trgm is installed in, installing it
// into public if the role may; "" if it is not available.
func (db *DB) trigramSchema(ctx context.Context) (string, error) {
	const where = `SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'`
	var schema string
	err := db.pool.QueryRow(ctx, where).Scan(&schema)
	if err == nil {
		return schema, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("look up pg_trgm: %w", err)
	}
	// Installed into public, never into a store's own schema: dropping
	// that schema would take the extension (and other stores' indexes)
	// with it.
	_, err = db.pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public`)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return "public", nil
	case errors.As(err, &pgErr) && (pgErr.Code == "42501" || pgErr.Code == "0A000" || pgErr.Code == "58P01" || pgErr.Code == "3F000"):
		// insufficient_privilege, feature_not_supported, undefined_file
		// (extension not installed on the server), invalid_schema_name.
		db.log.Info("pg_trgm not available; search uses plain ILIKE", zap.Error(err))
		return "", nil
	case errors.As(err, &pgErr) && pgErr.Code == "23505":
		// Another instance created it at the same time.
		if err := db.pool.QueryRow(ctx, where).Scan(&schema); err != nil {
			return "", fmt.Errorf("look up pg_trgm: %w", err)
		}
		return schema, nil
	default:
		return "", fmt.Errorf("create extension pg_trgm: %w", err)
	}
}
