package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/store"
)

// message5KB makes a captured message of about 5 KB to two recipients.
func message5KB(b testing.TB, i int) *store.Message {
	m := testMessage(b, fmt.Sprintf("login%d", i%3), store.RouteCapture, fmt.Sprintf("rcpt%d@example.org", i%50), "all@example.org")
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. 0123456789\r\n", 72)
	m.Raw = append(m.Raw, body...)
	m.Size = int64(len(m.Raw))
	m.Text = body[:1000]
	return m
}

// BenchmarkAccept5KB accepts 5 KB messages from 50 concurrent producers,
// each waiting for its own durable commit, as SMTP sessions do. The
// sub-benchmarks compare writer settings: group commit by one, two or four
// writer goroutines (up to 128 messages per transaction), and one
// transaction per message from 50 goroutines, which leaves grouping to
// PostgreSQL's own WAL flush (the seq lock serialises those commits).
func BenchmarkAccept5KB(b *testing.B) {
	for _, cfg := range []struct {
		name string
		opt  options
	}{
		{"writers=1,batch=128", options{writers: 1, maxBatch: 128}},
		{"writers=2,batch=128", options{writers: 2, maxBatch: 128}},
		{"writers=4,batch=128", options{writers: 4, maxBatch: 128}},
		{"writers=50,batch=1", options{writers: 50, maxBatch: 1}},
	} {
		b.Run(cfg.name, func(b *testing.B) {
			db := openTestOpts(b, testutil.PostgresSchema(b), cfg.opt)
			const producers = 50
			msgs := make([]*store.Message, b.N)
			for i := range msgs {
				msgs[i] = message5KB(b, i)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(int64(len(msgs[0].Raw)))
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime(b)
			for range producers {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(len(msgs)) {
							return
						}
						if err := db.Accept(context.Background(), msgs[i]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime returns the CPU time (user and system) this process has used;
// PostgreSQL's own CPU is not included. On a shared machine CPU per
// operation is steadier than wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// seedInbox inserts n captured messages straight into the tables (much
// faster than Accept): every one in bench@example.org and in one of 100
// other inboxes, submitted by login0 or login1 in turn.
func seedInbox(b testing.TB, db *DB, n int) {
	b.Helper()
	m := testMessage(b, "login0", store.RouteCapture, "bench@example.org")
	req, _, err := encodeRequest(m, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	summary := req.row.summary
	ctx := context.Background()
	_, err = db.pool.Exec(ctx, `
INSERT INTO messages (id, login, route, mail_from, recipients, remote_ip, helo, tls, received, size,
	summary, tags, body_text, return_path, metadata, processing, subject, from_text, to_text, has_attachment)
SELECT 'seed' || g, 'login' || (g % 2), 'capture', 'app@example.com', ARRAY['bench@example.org', 'r' || (g % 100) || '@example.org'],
	'192.0.2.1', 'client.example', true, now() - (($1 - g) || ' seconds')::interval, 5000,
	$2::jsonb, ARRAY['t1'], 'text', '', '{}', '{}', 'Subject ' || g, 'app@example.com', 'bench@example.org', false
FROM generate_series(1, $1) AS g`, n, summary)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO bodies (id, raw) SELECT id, convert_to(repeat('x', 5000), 'UTF8') FROM messages WHERE id LIKE 'seed%'`,
		`INSERT INTO inbox (inbox, seq, message_id, login, received)
SELECT unnest(recipients), seq, id, login, received FROM messages WHERE id LIKE 'seed%'`,
		`ANALYZE`,
	} {
		if _, err := db.pool.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInboxFirstPage reads the first page (50 entries) of an inbox
// holding 100,000 messages, for the admin scope and for one login's scope
// (half the inbox is another login's).
func BenchmarkInboxFirstPage(b *testing.B) {
	db := openTest(b, testutil.PostgresSchema(b))
	seedInbox(b, db, 100_000)
	for _, sc := range []struct {
		name  string
		scope store.Scope
	}{
		{"all", all},
		{"one-login", store.Scope{Logins: []string{"login1"}}},
	} {
		b.Run(sc.name, func(b *testing.B) {
			q := store.InboxQuery{Inbox: "bench@example.org", Scope: sc.scope, Limit: 50}
			for b.Loop() {
				entries, err := db.Inbox(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				if len(entries) != 50 {
					b.Fatalf("%d entries, want 50", len(entries))
				}
			}
		})
	}
}

// BenchmarkInboxes lists the first page of the inboxes of 100,000 messages
// (each in bench@ and in one of 100 others), for the admin scope (a page
// of 100 of 101 inboxes) and for one login's (its 51 inboxes).
func BenchmarkInboxes(b *testing.B) {
	db := openTest(b, testutil.PostgresSchema(b))
	seedInbox(b, db, 100_000)
	for _, sc := range []struct {
		name  string
		scope store.Scope
		want  int
	}{
		{"all", all, 100},
		{"one-login", store.Scope{Logins: []string{"login1"}}, 51},
	} {
		b.Run(sc.name, func(b *testing.B) {
			for b.Loop() {
				list, err := db.Inboxes(context.Background(), sc.scope, "", 0)
				if err != nil {
					b.Fatal(err)
				}
				if len(list) != sc.want {
					b.Fatalf("%d inboxes, want %d", len(list), sc.want)
				}
			}
		})
	}
}

// BenchmarkClaimComplete has 8 workers claim due deliveries ten at a time
// and complete each (an attempt, the delivery update and a deferred event,
// in one transaction); one op is one delivery. Completed deliveries are
// deferred into the past so that they are due again.
func BenchmarkClaimComplete(b *testing.B) {
	ctx := context.Background()
	db := openTest(b, testutil.PostgresSchema(b))
	for i := range 200 {
		m := testMessage(b, "login0", "smarthost", fmt.Sprintf("a%d@example.org", i), fmt.Sprintf("b%d@example.org", i))
		m.Received = m.Received.Add(-time.Hour)
		mustAccept(b, db, m)
	}
	past := time.Now().Add(-time.Minute)
	var done atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range 8 {
		owner := fmt.Sprintf("worker%d", w)
		wg.Go(func() {
			for done.Load() < int64(b.N) {
				ds, err := db.ClaimDeliveries(ctx, owner, time.Now(), 10, time.Minute)
				if err != nil {
					b.Error(err)
					return
				}
				for _, d := range ds {
					o := store.Outcome{
						Attempt:     store.Attempt{Time: time.Now(), Host: "mx.example.org:25", Reply: "451 4.7.1 try later", Duration: time.Millisecond},
						Recipients:  d.Recipients,
						State:       store.DeliveryDeferred,
						NextAttempt: past,
						Events:      []*store.Event{{Type: store.EventDeferred, Recipient: d.Recipients[0].Address, Time: time.Now(), Reply: "451 4.7.1 try later"}},
					}
					if err := db.CompleteAttempt(ctx, d.ID, owner, o); err != nil {
						b.Error(err)
						return
					}
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(done.Load())/time.Since(start).Seconds(), "deliveries/s")
}

// BenchmarkAddEvents appends one event (an open) per op from 50
// concurrent callers, as the tracking endpoints do; calls share group
// commits through the writer.
func BenchmarkAddEvents(b *testing.B) {
	db := openTest(b, testutil.PostgresSchema(b))
	m := mustAccept(b, db, testMessage(b, "login0", store.RouteCapture, "a@example.org"))
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 50 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				ev := &store.Event{MessageID: m.ID, Type: store.EventOpened, Time: time.Now(), IP: "192.0.2.1", UserAgent: "bench"}
				if err := db.AddEvents(context.Background(), ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
