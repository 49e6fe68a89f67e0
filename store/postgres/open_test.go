package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/store"
)

// TestOpenConcurrentMigratesOnce: instances starting together on an empty
// schema all open it, and the schema is migrated exactly once.
func TestOpenConcurrentMigratesOnce(t *testing.T) {
	dsn := testutil.PostgresSchema(t)
	var wg sync.WaitGroup
	dbs := make([]*DB, 4)
	errs := make([]error, len(dbs))
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = Open(context.Background(), dsn, zap.NewNop()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	var rows, version int
	if err := dbs[0].pool.QueryRow(context.Background(), `SELECT count(*), max(version) FROM schema_version`).Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || version != len(migrations()) {
		t.Errorf("schema_version has %d rows, version %d; want 1 row, version %d", rows, version, len(migrations()))
	}
	// They all work on the same data.
	m := mustAccept(t, dbs[1], testMessage(t, "alpha", store.RouteCapture, "a@example.org"))
	if _, err := dbs[3].Get(context.Background(), m.ID, all); err != nil {
		t.Errorf("another instance cannot read the message: %v", err)
	}
}

// TestRefusesNewerSchema: a schema written by a newer program is not
// opened (and not changed) by an older one.
func TestRefusesNewerSchema(t *testing.T) {
	dsn := testutil.PostgresSchema(t)
	openTest(t, dsn).Close()
	execSQL(t, dsn, `UPDATE schema_version SET version = 999`)
	if db, err := Open(context.Background(), dsn, zap.NewNop()); err == nil {
		db.Close()
		t.Fatal("Open accepted schema version 999")
	} else if !strings.Contains(err.Error(), "999") {
		t.Errorf("error does not name the version: %v", err)
	}
}

// TestOpenRefusals: Open fails with a clear error, and leaves nothing
// behind, for a schema that does not exist, synchronous_commit off, and an
// unreachable or malformed DSN.
func TestOpenRefusals(t *testing.T) {
	base := testutil.PostgresDSN(t)
	dsn := testutil.PostgresSchema(t)
	for name, d := range map[string]string{
		"missing schema":  testutil.WithSearchPath(t, base, "smtpgate_test_never_created"),
		"async commit":    strings.Replace(dsn, "?", "?synchronous_commit=off&", 1),
		"malformed":       "postgres://%zz",
		"nothing listens": "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5",
	} {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(d, "?") && name == "async commit" {
				t.Skip("DSN is not a URL")
			}
			db, err := Open(context.Background(), d, zap.NewNop())
			if err == nil {
				db.Close()
				t.Fatalf("Open(%s) succeeded", d)
			}
			t.Logf("Open: %v", err)
		})
	}
}

// TestTrigramIndexes: when pg_trgm is available the search columns get
// their GIN index, and a substring search on a large table uses it.
func TestTrigramIndexes(t *testing.T) {
	ctx := context.Background()
	dsn := testutil.PostgresSchema(t)
	db := openTest(t, dsn)
	if !db.trgm {
		t.Skip("pg_trgm is not available on this server")
	}
	for _, col := range trigramIndexes {
		var n int
		err := db.pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = $2`,
			db.schema, "messages_trgm_"+col).Scan(&n)
		if err != nil || n != 1 {
			t.Errorf("index messages_trgm_%s: %d, %v", col, n, err)
		}
	}
	// Reopening (and so re-running ensureTrigram) is harmless.
	db2 := openTest(t, dsn)
	if !db2.trgm {
		t.Error("second Open lost the trigram indexes")
	}
	seedInbox(t, db, 20000)
	var plan strings.Builder
	rows, err := db.pool.Query(ctx, `EXPLAIN SELECT seq FROM messages m WHERE m.route = 'capture' AND m.subject ILIKE '%ject 1234%'`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		fmt.Fprintln(&plan, l)
	}
	if !strings.Contains(plan.String(), "messages_trgm_subject") {
		t.Errorf("substring search does not use the trigram index:\n%s", plan.String())
	}
}

// TestLockKeyPerSchema: stores in different schemas take different seq
// locks, so they never wait for each other.
func TestLockKeyPerSchema(t *testing.T) {
	a, b := openTest(t, testutil.PostgresSchema(t)), openTest(t, testutil.PostgresSchema(t))
	if a.lockKey == b.lockKey || a.schema == b.schema {
		t.Errorf("schemas %s and %s share lock key %d", a.schema, b.schema, a.lockKey)
	}
}

// TestConcurrentDeletesLeaveNoOrphan deletes one message from its two
// inboxes at the same time, over and over: whichever delete commits
// second must see the first and remove the message itself.
func TestConcurrentDeletesLeaveNoOrphan(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testutil.PostgresSchema(t))
	for range 30 {
		m := mustAccept(t, db, testMessage(t, "alpha", store.RouteCapture, "one@example.org", "two@example.org"))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Go(func() { errs[0] = db.DeleteInboxMessage(ctx, "one@example.org", m.ID, all) })
		wg.Go(func() { _, errs[1] = db.DeleteInbox(ctx, "two@example.org", all) })
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Get(ctx, m.ID, all); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("message still there after both inbox entries were deleted: %v", err)
		}
	}
}
