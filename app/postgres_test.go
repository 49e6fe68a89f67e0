package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/smtpgate/smtpgate/store"
)

// pgDSN returns a DSN for a fresh schema of the test PostgreSQL server, or
// skips (fails in CI) when there is none.
func pgDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("SMTPGATE_PG_DSN")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("SMTPGATE_PG_DSN is not set: CI must run the PostgreSQL tests")
		}
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL: %v", err)
		}
		t.Skipf("no PostgreSQL at %s: %v", dsn, err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "smtpgate_app_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}

func TestCaptureOnPostgres(t *testing.T) {
	dsn := pgDSN(t)
	tmpl := strings.Replace(trackingPolicy, `  http {`, fmt.Sprintf("  store {\n    driver = \"postgres\"\n    dsn    = %q\n  }\n  http {", dsn), 1)
	a := startApp(t, tmpl)
	id := send(t, a, "news", "news@example.com", "reader@example.com", newsletter)
	entries, err := a.Store().Inbox(context.Background(), store.InboxQuery{Inbox: "reader@example.com", Scope: store.Scope{Logins: []string{"news"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Message.ID != id || entries[0].Message.Summary.Subject != "Weekly" {
		t.Fatalf("inbox on PostgreSQL: %+v", entries)
	}
	m, err := a.Store().Get(context.Background(), id, store.Scope{All: true})
	if err != nil || !strings.Contains(string(m.Raw), "/track/c/") || m.Processing.Stats["links_tracked"] != 1 {
		t.Fatalf("message on PostgreSQL: %v %+v", err, m)
	}
}
