// Package postgres is the scale-out store.Store backend: PostgreSQL through
// github.com/jackc/pgx/v5 (pgxpool). Several smtpgate instances may share
// one database; everything they must agree on is decided by PostgreSQL.
//
// # Durability
//
// Accept returns nil only after PostgreSQL has acknowledged the COMMIT of
// the transaction holding the message, its body, its inbox entries, its
// events and its deliveries. synchronous_commit is left as the server has it
// (on by default); Open refuses a server where it is off.
//
// # Commit-ordered Seq
//
// Message.Seq and Event.Seq come from identity sequences, but a sequence
// alone is not commit-ordered: a transaction that drew N+1 can commit before
// the one that drew N, and a reader polling "Seq > cursor" would move its
// cursor past N and never see it. Every transaction that draws a Seq
// (Accept, AddEvents, CompleteAttempt, CancelDelivery) therefore takes one
// transaction-level advisory lock (pg_advisory_xact_lock, keyed by the
// schema) right before its seq-bearing INSERTs and holds it until its
// COMMIT. PostgreSQL makes a transaction visible before it releases its
// locks, so the holder of Seq N is visible before anyone can draw N+1: Seq
// order is commit order across connections and across processes.
//
// # Group commit
//
// The lock serialises COMMITs (and their WAL flush), so throughput comes
// from batching, not from many connections: Accept, AddEvents and
// CompleteAttempt are queued to a writer goroutine that takes up to 128
// queued writes (or 8 MiB of bodies) and commits them in one transaction:
// BEGIN, one pgx.Batch with one statement per table for all the messages
// of the group (their columns go as arrays and are unnested) and one per
// AddEvents or CompleteAttempt, then COMMIT: three round trips and one WAL
// flush for the group. Bodies are inserted before the lock is taken, so
// another instance's writer can ship its batch while one flushes. An
// AddEvents naming a missing message, or a CompleteAttempt whose lease is
// lost, fails alone inside the group. If a whole batch fails, each write is
// retried alone so that every caller gets its own true result
// (ErrDuplicateID for the duplicate, nil for the others). Transactions that
// take the seq lock and row locks take the seq lock first.
//
// BenchmarkAccept5KB (50 producers, 5 KB messages, 2 shared cores) gave
// 2,000-5,300 msgs/s with one writer, no better with two or four, and
// 210-600 msgs/s with one transaction per message from 50 connections,
// where the seq lock leaves PostgreSQL's own group flush nothing to group.
//
// # Sharing a database
//
// ClaimDeliveries and ClaimWebhookJobs use SELECT … FOR UPDATE SKIP LOCKED,
// EnqueueWebhookJobs locks the webhook's cursor row: several instances can
// work the same queues. Schema migrations run under an advisory lock too.
//
// # Text
//
// PostgreSQL text cannot hold NUL bytes or invalid UTF-8. Text fields
// (addresses, subjects, tags, event fields) are stored with such bytes
// replaced by U+FFFD; Raw and Original are bytea and always byte-exact.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/internal/groupcommit"
)

const (
	defaultWriters   = 1       // writer goroutines (see BenchmarkAccept5KB)
	maxBatchMessages = 128     // messages per group commit at most
	maxBatchBytes    = 8 << 20 // raw bytes per group commit, roughly
	queueSize        = 4096    // writes (Accept, AddEvents, CompleteAttempt) waiting for a writer
	readConns        = 8       // pool connections beyond the writers' own
	// writeTimeout bounds one group commit. A commit cut short reports an
	// error to its callers even if PostgreSQL committed it, which at worst
	// makes a client send the message twice, never loses it.
	writeTimeout = 2 * time.Minute
)

// DB is a store.Store kept in a PostgreSQL schema. It implements store.Store,
// store.EventStore, store.Queue, store.Webhooks and store.Capture, and is
// safe for concurrent use by many goroutines and many processes.
type DB struct {
	pool    *pgxpool.Pool
	log     *zap.Logger
	schema  string
	lockKey int64 // the advisory lock that orders Seq; derived from schema
	trgm    bool  // pg_trgm indexes serve the search columns

	commits *groupcommit.Committer[*request, result] // the writer goroutines
	once    sync.Once
}

var (
	_ store.Store      = (*DB)(nil)
	_ store.EventStore = (*DB)(nil)
	_ store.Queue      = (*DB)(nil)
	_ store.Webhooks   = (*DB)(nil)
	_ store.Capture    = (*DB)(nil)
)

// options tune the writer; tests and benchmarks compare settings with them.
type options struct {
	writers  int // writer goroutines
	maxBatch int // messages per transaction
}

// Open connects to the database named by dsn (a PostgreSQL URL or key=value
// string; pool_* settings of pgxpool are honoured), verifies the
// connection and synchronous_commit, and migrates the schema forward to
// the current version. The tables live in the first schema of the
// connection's search_path ("public" unless the DSN sets search_path).
func Open(ctx context.Context, dsn string, log *zap.Logger) (*DB, error) {
	return open(ctx, dsn, log, options{writers: defaultWriters, maxBatch: maxBatchMessages})
}

func open(ctx context.Context, dsn string, log *zap.Logger, opt options) (*DB, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse dsn: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = int32(opt.writers + readConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	db := &DB{pool: pool, log: log}
	if err := db.init(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	db.commits = groupcommit.New(groupcommit.Config[*request, result]{
		Run: db.insert, Size: requestSize, MaxRequests: opt.maxBatch, MaxBytes: maxBatchBytes,
		QueueSize: queueSize, Writers: opt.writers, Log: log,
	})
	log.Info("store opened", zap.String("driver", "postgres"), zap.String("host", cfg.ConnConfig.Host),
		zap.String("database", cfg.ConnConfig.Database), zap.String("schema", db.schema), zap.Bool("trigram", db.trgm))
	return db, nil
}

// init checks the server and migrates the schema.
func (db *DB) init(ctx context.Context) error {
	var schema *string
	var syncCommit string
	err := db.pool.QueryRow(ctx, `SELECT current_schema(), current_setting('synchronous_commit')`).Scan(&schema, &syncCommit)
	if err != nil {
		return fmt.Errorf("postgres: verify connection: %w", err)
	}
	if schema == nil {
		return errors.New("postgres: no schema to use: the first schema of search_path does not exist")
	}
	if syncCommit == "off" {
		return errors.New("postgres: synchronous_commit is off: a committed message could be lost in a crash")
	}
	db.schema = *schema
	db.lockKey = lockKey(db.schema)
	if err := db.migrate(ctx); err != nil {
		return fmt.Errorf("postgres: schema %s: %w", db.schema, err)
	}
	trgm, err := db.ensureTrigram(ctx)
	if err != nil {
		return fmt.Errorf("postgres: schema %s: %w", db.schema, err)
	}
	db.trgm = trgm
	return nil
}

// lockKey derives the advisory lock key that orders Seq in schema, so
// that stores in different schemas of one database never wait for each
// other.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("smtpgate seq lock\x00"))
	h.Write([]byte(schema))
	return int64(h.Sum64())
}

// Schema returns the schema the store's tables live in.
func (db *DB) Schema() string { return db.schema }

// Close stops taking writes, commits every write already queued, and
// closes the pool. Later calls do nothing. It always returns nil.
func (db *DB) Close() error {
	db.once.Do(func() {
		db.commits.Close() // commits what is queued; later writes get store.ErrClosed
		db.pool.Close()
		db.log.Info("store closed", zap.String("driver", "postgres"), zap.String("schema", db.schema))
	})
	return nil
}

// usable returns store.ErrClosed once Close has begun.
func (db *DB) usable(op string) error {
	if db.commits.Closed() {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrClosed)
	}
	return nil
}
