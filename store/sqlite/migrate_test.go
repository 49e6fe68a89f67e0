package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// TestMigrateFromVersion1 writes a database as version 1 of the schema
// left it, opens it, and checks that the old message reads back, is found
// by Search (the search table is filled from the old columns), and that new
// messages follow it.
func TestMigrateFromVersion1(t *testing.T) {
	dir := t.TempDir()
	raw, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`CREATE TABLE schema_version (version INTEGER NOT NULL)`, migrations()[0],
		`INSERT INTO schema_version (version) VALUES (1)`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	received := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	sum := summary.Summary{
		From:        []summary.Address{{Name: "Shop Team", Address: "Team@Shop.example"}},
		To:          []summary.Address{{Address: "bob@example.org"}},
		Cc:          []summary.Address{{Name: "Carol", Address: "carol@example.org"}},
		Subject:     "Your INVOICE 7",
		Attachments: []summary.Attachment{{Filename: "a.pdf", ContentType: "application/pdf", Size: 3, MD5: "x"}},
	}
	sumJSON, _ := json.Marshal(sum)
	const id = "01jqz8x3k2m4n5p6q7r8s9t0va"
	rawMsg := []byte("Subject: Your INVOICE 7\r\n\r\nhi\r\n")
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO messages (seq, id, login, route, mail_from, recipients, remote_ip, helo, tls, received, size, summary, tags)
VALUES (7, ?, 'app', 'capture', 'bounce@shop.example', '["Bob@Example.org","dave@example.org"]', '192.0.2.1', 'h', 1, ?, ?, ?, '["x"]')`,
			[]any{id, received.UnixMilli(), len(rawMsg), sumJSON}},
		{`INSERT INTO bodies (seq, raw) VALUES (7, ?)`, []any{rawMsg}},
		{`INSERT INTO inbox (inbox, seq, message_id, login) VALUES ('bob@example.org', 7, ?, 'app')`, []any{id}},
		{`UPDATE counters SET value = 7 WHERE name = 'last_seq'`, nil},
	} {
		if _, err := raw.Exec(q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	db, err := Open(context.Background(), dir, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var version int
	if err := db.rdb.QueryRow(`SELECT version FROM schema_version`).Scan(&version); err != nil || version != len(migrations()) {
		t.Fatalf("schema version %d (%v), want %d", version, err, len(migrations()))
	}
	all := store.Scope{All: true}
	m, err := db.Get(ctx, id, all)
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 7 || m.Summary.Subject != sum.Subject || m.Text != "" || m.ReturnPath != "" || !m.SendAt.IsZero() ||
		len(m.Metadata) != 0 || len(m.Processing.Features) != 0 {
		t.Errorf("old message after migration: %+v", m)
	}
	yes := true
	for _, q := range []store.SearchQuery{
		{Subject: "invoice"}, {Text: "Invoice 7"}, {From: "shop team"}, {From: "team@shop"}, {From: "bounce@"},
		{To: "dave@"}, {To: "bob@example"}, {To: "carol"}, {HasAttachment: &yes}, {Inbox: "BOB@example.org"}, {Tag: "x"},
		{Login: "app", Since: received, Until: received.Add(time.Millisecond)},
	} {
		q.Scope = all
		got, err := db.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != id {
			t.Errorf("Search(%+v) after migration: %d messages", q, len(got))
		}
	}
	no := false
	if got, _ := db.Search(ctx, store.SearchQuery{Scope: all, HasAttachment: &no}); len(got) != 0 {
		t.Errorf("HasAttachment false found %d", len(got))
	}
	next := &store.Message{ID: store.NewID(time.Now()), Login: "app", Route: store.RouteCapture, Recipients: []string{"bob@example.org"},
		Received: time.Now().UTC(), Raw: rawMsg, Text: "Ünïcode TEXT"}
	if err := db.Accept(ctx, next); err != nil {
		t.Fatal(err)
	}
	if next.Seq <= 7 {
		t.Errorf("new Seq %d after the migrated 7", next.Seq)
	}
	if got, _ := db.Search(ctx, store.SearchQuery{Scope: all, Text: "ÜNÏCODE text"}); len(got) != 1 || got[0].ID != next.ID {
		t.Errorf("Unicode case-insensitive text search found %d", len(got))
	}
}
