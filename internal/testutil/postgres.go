package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresDSN is the test server used when SMTPGATE_PG_DSN is
// unset.
const DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresDSN returns the DSN of the test PostgreSQL server:
// SMTPGATE_PG_DSN, or DefaultPostgresDSN when that is unset. If the
// server does not answer, the test fails when the CI environment variable
// is set or SMTPGATE_PG_DSN names the server, and is skipped otherwise.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	dsn, explicit := os.Getenv("SMTPGATE_PG_DSN"), true
	if dsn == "" {
		dsn, explicit = DefaultPostgresDSN, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if explicit || os.Getenv("CI") != "" {
			tb.Fatalf("PostgreSQL at %s does not answer: %v (with SMTPGATE_PG_DSN or CI set, the PostgreSQL tests fail rather than skip)", dsn, err)
		}
		tb.Skipf("SMTPGATE_PG_DSN unset and no PostgreSQL at %s: %v", dsn, err)
	}
	conn.Close(ctx)
	return dsn
}

// PostgresSchema creates a schema of its own for one test on the test
// server (see PostgresDSN for when it fails or skips), drops it with
// everything in it when the test ends, and returns a DSN whose
// search_path is that schema.
func PostgresSchema(tb testing.TB) string {
	tb.Helper()
	dsn := PostgresDSN(tb)
	var b [6]byte
	rand.Read(b[:])
	schema := "smtpgate_test_" + hex.EncodeToString(b[:])
	execSQL(tb, dsn, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	tb.Cleanup(func() {
		execSQL(tb, dsn, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	return WithSearchPath(tb, dsn, schema)
}

// WithSearchPath returns dsn (a URL or a key=value string) with
// search_path set to schema.
func WithSearchPath(tb testing.TB, dsn, schema string) string {
	tb.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			tb.Fatalf("parse DSN: %v", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// execSQL runs one statement on a connection of its own.
func execSQL(tb testing.TB, dsn, sql string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}
