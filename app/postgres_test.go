package app

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/store"
)

// pgDSN returns a DSN for a fresh schema of the test PostgreSQL server
// (dropped after the test); it fails in CI when the server is down.
func pgDSN(t *testing.T) string { return testutil.PostgresSchema(t) }

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
