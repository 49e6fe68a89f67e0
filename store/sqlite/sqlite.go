// Package sqlite is the embedded store.Store backend: one SQLite database
// file (modernc.org/sqlite, pure Go) in WAL mode with synchronous=FULL, so a
// committed transaction is on disk.
//
// Every write goes through one writer goroutine that commits in groups:
// every request waiting in the queue (up to maxBatchMessages requests or
// maxBatchBytes bytes) shares one transaction and one fsync, and each caller
// is released with its own result once that transaction commits. Accept
// writes a message with its inbox entries, search row, events and
// deliveries; every other write (AddEvents, the queue's claims and
// outcomes, webhook fan-out, deletes, read marks, Prune) runs under a
// savepoint of its own, so that its failure undoes only its own changes.
// SQLite thus never sees two writers, and message and event Seqs, given
// out in that one goroutine, increase in commit order.
//
// Reads use a separate pool of query-only connections and never wait for the
// writer. A third connection runs passive WAL checkpoints in the
// background.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/internal/groupcommit"
)

// FileName is the name of the database file inside the store directory.
const FileName = "smtpgate.db"

const (
	maxBatchMessages = 128     // messages per group commit at most
	maxBatchBytes    = 8 << 20 // raw bytes per group commit, roughly
	queueSize        = 4096    // Accepts waiting for the writer
	// commitLinger is how long the writer may wait for a group to grow
	// back to the size of the one before (groupcommit.Config.Linger).
	commitLinger  = time.Millisecond
	readConns     = 4 // connections in the read pool
	busyTimeoutMS = 10000
	// checkpointEvery is how often the checkpointer copies the WAL into
	// the database file. The writer's own automatic checkpoint is off so
	// that no Accept waits for one.
	checkpointEvery = 500 * time.Millisecond
	// walSizeLimit is the size the WAL file is truncated to after a reset.
	walSizeLimit = 64 << 20
)

// DB is a store.Store kept in one SQLite database. It is safe for
// concurrent use.
type DB struct {
	path string
	log  *zap.Logger
	wdb  *sql.DB // one connection, used by the writer goroutine and deletes
	rdb  *sql.DB // query-only pool
	cdb  *sql.DB // one connection for the checkpointer

	stmts map[string]*sql.Stmt // writes, prepared on wdb
	reads map[string]*sql.Stmt // reads, prepared on rdb

	commits *groupcommit.Committer[*request, result] // the one writer goroutine
	lastSeq int64                                    // owned by the writer goroutine
	stop    chan struct{}                            // closed by Close: the checkpointer exits
	ckDone  chan struct{}                            // closed by the checkpointer when it has exited

	once sync.Once
	err  error // the result of Close
}

var _ store.Store = (*DB)(nil)

// Open opens (creating if needed) the store in dir: the directory, the
// database file dir/smtpgate.db, and its schema, migrated forward to the
// current version. It fails if the file system cannot give WAL mode.
func Open(ctx context.Context, dir string, log *zap.Logger) (*DB, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create store directory: %w", err)
	}
	path, err := filepath.Abs(filepath.Join(dir, FileName))
	if err != nil {
		return nil, fmt.Errorf("sqlite: store path: %w", err)
	}
	wdb, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if err := checkPragmas(ctx, wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	if err := migrate(ctx, wdb, log); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	lastSeq, err := loadLastSeq(ctx, wdb)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	rdb, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	rdb.SetMaxOpenConns(readConns)
	rdb.SetMaxIdleConns(readConns)
	rdb.SetConnMaxIdleTime(0)
	rdb.SetConnMaxLifetime(0)
	if err := rdb.PingContext(ctx); err != nil {
		wdb.Close()
		rdb.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	cdb, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		wdb.Close()
		rdb.Close()
		return nil, fmt.Errorf("sqlite: open %s for checkpoints: %w", path, err)
	}
	cdb.SetMaxOpenConns(1)
	db := &DB{
		path:    path,
		log:     log,
		wdb:     wdb,
		rdb:     rdb,
		cdb:     cdb,
		stop:    make(chan struct{}),
		ckDone:  make(chan struct{}),
		lastSeq: lastSeq,
	}
	if err := db.prepare(ctx); err != nil {
		_ = errors.Join(wdb.Close(), rdb.Close(), cdb.Close())
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	// One writer: SQLite never sees two, and Seqs increase in commit order.
	db.commits = groupcommit.New(groupcommit.Config[*request, result]{
		Run: db.run, Size: requestSize, MaxRequests: maxBatchMessages, MaxBytes: maxBatchBytes,
		QueueSize: queueSize, Writers: 1, Linger: commitLinger, Log: log,
	})
	go db.checkpointer()
	log.Info("store opened", zap.String("path", path), zap.Int64("last_seq", lastSeq))
	return db, nil
}

// dsn builds the connection string. Write connections use BEGIN IMMEDIATE
// so a transaction takes the write lock up front; read connections are
// query-only.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "cache_size(-32768)") // 32 MiB of pages per connection
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "wal_autocheckpoint(0)")
		q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", walSizeLimit))
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: q.Encode()}
	return u.String()
}

// checkPragmas verifies that the settings durability depends on are in
// force: WAL, synchronous=FULL and foreign keys.
func checkPragmas(ctx context.Context, db *sql.DB) error {
	var mode string
	var sync, fk int
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("read synchronous: %w", err)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("read foreign_keys: %w", err)
	}
	if mode != "wal" || sync != 2 || fk != 1 {
		return fmt.Errorf("got journal_mode=%s synchronous=%d foreign_keys=%d, want wal, 2 (FULL), 1", mode, sync, fk)
	}
	return nil
}

// prepare prepares the writer's statements on its one connection and the
// read statements on the read pool.
func (db *DB) prepare(ctx context.Context) error {
	db.stmts = map[string]*sql.Stmt{}
	db.reads = map[string]*sql.Stmt{}
	for _, set := range []struct {
		db      *sql.DB
		queries []string
		into    map[string]*sql.Stmt
	}{
		{db.wdb, writeStatements(), db.stmts},
		{db.rdb, readQueries(), db.reads},
	} {
		for _, q := range set.queries {
			st, err := set.db.PrepareContext(ctx, q)
			if err != nil {
				_ = db.closeStatements()
				return fmt.Errorf("prepare %q: %w", q, err)
			}
			set.into[q] = st
		}
	}
	return nil
}

// closeStatements closes every prepared statement.
func (db *DB) closeStatements() error {
	var errs []error
	for _, m := range []map[string]*sql.Stmt{db.stmts, db.reads} {
		for _, st := range m {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// checkpointer copies the WAL into the database file in the background
// (a passive checkpoint never blocks the writer or readers) until Close.
func (db *DB) checkpointer() {
	defer close(db.ckDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			var busy, logPages, done int
			// Bounded by the ticker and Close; a passive checkpoint is
			// short and needs no caller context.
			err := db.cdb.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &done)
			if err != nil {
				db.log.Warn("wal checkpoint failed", zap.Error(err))
			}
		}
	}
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close stops accepting messages, commits every Accept already queued,
// and closes the database. Calling it again returns the first result.
func (db *DB) Close() error {
	db.once.Do(func() {
		db.commits.Close() // commits what is queued; later writes get store.ErrClosed
		close(db.stop)
		<-db.ckDone
		// The writer connection closes last: SQLite then checkpoints the
		// WAL into the database file and removes it.
		db.err = errors.Join(db.closeStatements(), db.cdb.Close(), db.rdb.Close(), db.wdb.Close())
		if db.err != nil {
			db.err = fmt.Errorf("sqlite: close %s: %w", db.path, db.err)
		}
		db.log.Info("store closed", zap.String("path", db.path))
	})
	return db.err
}
