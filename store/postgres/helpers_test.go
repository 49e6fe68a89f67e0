package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// execSQL runs one statement on a connection of its own.
func execSQL(tb testing.TB, dsn, sql string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// schemas maps the suite's directories to schemas: the same directory
// always opens the same schema, created on first use and dropped when the
// test that created it ends.
type schemas struct {
	mu   sync.Mutex
	dsns map[string]string
}

func (s *schemas) dsn(t *testing.T, dir string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dsns == nil {
		s.dsns = map[string]string{}
	}
	if d, ok := s.dsns[dir]; ok {
		return d
	}
	d := testutil.PostgresSchema(t)
	s.dsns[dir] = d
	return d
}

// openTest opens a store on dsn with a test logger and closes it when the
// test ends (a second Close is harmless).
func openTest(tb testing.TB, dsn string) *DB {
	tb.Helper()
	return openTestOpts(tb, dsn, options{writers: defaultWriters, maxBatch: maxBatchMessages})
}

func openTestOpts(tb testing.TB, dsn string, opt options) *DB {
	tb.Helper()
	var log *zap.Logger
	if t, ok := tb.(*testing.T); ok {
		log = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	} else {
		log = zap.NewNop()
	}
	db, err := open(context.Background(), dsn, log, opt)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// testMessage makes a message from login to rcpts on route, with a summary
// parsed from its raw bytes and one event per recipient.
func testMessage(tb testing.TB, login, route string, rcpts ...string) *store.Message {
	tb.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	id := store.NewID(now)
	raw := []byte("From: App <app@" + login + ".example>\r\nTo: " + strings.Join(rcpts, ", ") +
		"\r\nSubject: Hello " + id + "\r\nMessage-ID: <" + id + "@test>\r\n\r\nBody of " + id + "\r\n")
	sum, err := summary.Parse(raw)
	if err != nil {
		tb.Fatalf("summary.Parse: %v", err)
	}
	m := &store.Message{
		ID: id, Login: login, Route: route, MailFrom: "bounce@" + login + ".example", Recipients: rcpts,
		RemoteIP: "192.0.2.1", Helo: "client.example", TLS: true, Received: now, Size: int64(len(raw)),
		Raw: raw, Summary: sum, Tags: []string{"t1"}, Text: "Body of " + id,
	}
	typ := store.EventQueued
	if route == store.RouteCapture {
		typ = store.EventCaptured
	}
	for _, r := range rcpts {
		m.Events = append(m.Events, &store.Event{Type: typ, Recipient: r, Time: now})
	}
	if route != store.RouteCapture {
		d := &store.Delivery{Route: route, Expires: now.Add(24 * time.Hour)}
		for i, r := range rcpts {
			d.Recipients = append(d.Recipients, store.RecipientDelivery{Address: r, Index: i})
		}
		m.Deliveries = []*store.Delivery{d}
	}
	return m
}

// mustAccept accepts m and fails the test on error.
func mustAccept(tb testing.TB, st *DB, m *store.Message) *store.Message {
	tb.Helper()
	if err := st.Accept(context.Background(), m); err != nil {
		tb.Fatalf("Accept(%s): %v", m.ID, err)
	}
	return m
}

var all = store.Scope{All: true}
