package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/sqlite"
	"github.com/smtpgate/smtpgate/summary"
)

// BenchmarkAccept5KB measures durable Accepts of 5 KB messages from about
// 50 concurrent producers (the SMTP sessions). It reports msgs/s and the
// latency percentiles a producer sees.
func BenchmarkAccept5KB(b *testing.B) {
	db, err := sqlite.Open(context.Background(), b.TempDir(), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	raw := fiveKB("bench")
	sum, err := summary.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	const producers = 50
	b.SetParallelism((producers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var (
		n   atomic.Int64
		mu  sync.Mutex
		lat []time.Duration
	)
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	cpu := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			i := n.Add(1)
			m := newMessage(raw, sum, fmt.Sprintf("user%d@example.org", i%1000))
			start := time.Now()
			if err := db.Accept(context.Background(), m); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(start))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	b.StopTimer()
	reportCPU(b, cpu, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// cpuTime returns the CPU time (user and system) the process has used. On a
// shared machine CPU per operation is steadier than wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU time per operation since start.
func reportCPU(b *testing.B, start time.Duration, n int) {
	if n > 0 {
		b.ReportMetric(float64(cpuTime(b)-start)/float64(n), "cpu-ns/op")
	}
}

// largeStore is a store of 100,000 captured messages in 1,000 inboxes, 6/7
// of them from login "app" and the rest from "other".
type largeStore struct {
	db      *sqlite.DB
	inboxes []string
	ids     map[string][]string // inbox -> message ids
}

const (
	largeMessages = 100_000
	largeInboxes  = 1_000
)

// buildLargeStore creates the schema with Open, bulk-inserts the messages
// directly in large unsynchronised transactions, and reopens the store.
func buildLargeStore(b *testing.B) *largeStore {
	b.Helper()
	dir := b.TempDir()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dir, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	db.Close()

	start := time.Now()
	conn, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName)+"?_pragma=synchronous(OFF)&_pragma=journal_mode(WAL)")
	if err != nil {
		b.Fatal(err)
	}
	conn.SetMaxOpenConns(1)
	raw := fiveKB("large")[:1500]
	sum, err := summary.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	sumJSON, _ := json.Marshal(sum)
	ls := &largeStore{ids: map[string][]string{}}
	for i := 0; i < largeInboxes; i++ {
		ls.inboxes = append(ls.inboxes, fmt.Sprintf("user%d@example.org", i))
	}
	received := time.Now().Add(-time.Hour)
	const perTx = 10_000
	for base := 0; base < largeMessages; base += perTx {
		tx, err := conn.Begin()
		if err != nil {
			b.Fatal(err)
		}
		insMsg, _ := tx.Prepare(`INSERT INTO messages (seq, id, login, route, mail_from, recipients, remote_ip, helo, tls, received, size, summary, tags) VALUES (?, ?, ?, 'capture', 'noreply@shop.example', ?, '127.0.0.1', 'app.example', 1, ?, ?, ?, '["order"]')`)
		insBody, _ := tx.Prepare(`INSERT INTO bodies (seq, raw) VALUES (?, ?)`)
		insInbox, _ := tx.Prepare(`INSERT INTO inbox (inbox, seq, message_id, login) VALUES (?, ?, ?, ?)`)
		for i := base; i < base+perTx; i++ {
			seq := int64(i + 1)
			at := received.Add(time.Duration(i) * time.Millisecond)
			id := store.NewID(at)
			inbox := ls.inboxes[i%largeInboxes]
			login := "app"
			if i%7 == 6 {
				login = "other"
			} else {
				ls.ids[inbox] = append(ls.ids[inbox], id)
			}
			rcpts, _ := json.Marshal([]string{inbox})
			for _, st := range []struct {
				s    *sql.Stmt
				args []any
			}{
				{insMsg, []any{seq, id, login, rcpts, at.UnixMilli(), len(raw), sumJSON}},
				{insBody, []any{seq, raw}},
				{insInbox, []any{inbox, seq, id, login}},
			} {
				if _, err := st.s.Exec(st.args...); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := tx.Exec(`UPDATE counters SET value = ? WHERE name = 'last_seq'`, base+perTx); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := conn.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	conn.Close()
	b.Logf("built a store of %d messages in %v", largeMessages, time.Since(start).Round(time.Millisecond))

	ls.db, err = sqlite.Open(ctx, dir, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ls.db.Close() })
	return ls
}

// BenchmarkInboxFirstPage lists the first page (the default 100 entries)
// of an inbox, scoped to one login, on a store of 100,000 messages.
func BenchmarkInboxFirstPage(b *testing.B) {
	ls := buildLargeStore(b)
	scope := store.Scope{Logins: []string{"app"}}
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		inbox := ls.inboxes[i%len(ls.inboxes)]
		i++
		entries, err := ls.db.Inbox(ctx, store.InboxQuery{Inbox: inbox, Scope: scope})
		if err != nil {
			b.Fatal(err)
		}
		if want := min(100, len(ls.ids[inbox])); len(entries) != want {
			b.Fatalf("inbox %s: %d entries, want %d", inbox, len(entries), want)
		}
	}
	reportCPU(b, cpu, i)
}

// BenchmarkInboxMessage reads one message with its body from an inbox on a
// store of 100,000 messages.
func BenchmarkInboxMessage(b *testing.B) {
	ls := buildLargeStore(b)
	scope := store.Scope{Logins: []string{"app"}}
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		inbox := ls.inboxes[i%len(ls.inboxes)]
		ids := ls.ids[inbox]
		id := ids[(i/len(ls.inboxes))%len(ids)]
		i++
		e, err := ls.db.InboxMessage(ctx, inbox, id, scope)
		if err != nil {
			b.Fatal(err)
		}
		if len(e.Message.Raw) != 1500 {
			b.Fatalf("raw is %d bytes", len(e.Message.Raw))
		}
	}
	reportCPU(b, cpu, i)
}

// acceptMany accepts n messages made by mk from 32 producers, through the
// real write path (group commit, fsync).
func acceptMany(b *testing.B, db *sqlite.DB, n int, mk func(i int) *store.Message) {
	b.Helper()
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := 0; w < 32; w++ {
		wg.Go(func() {
			for i := range next {
				if err := db.Accept(context.Background(), mk(i)); err != nil {
					failed.Store(err)
				}
			}
		})
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.Logf("accepted %d messages in %v", n, time.Since(start).Round(time.Millisecond))
}

// words is the vocabulary of the benchmark texts.
func words() []string {
	var out []string
	for _, a := range []string{"order", "ship", "track", "pay", "bill", "cart", "deal", "sale", "news", "club"} {
		for _, s := range []string{"", "ed", "ing", "s", "er", "ment", "able", "ful", "less", "ly"} {
			for _, p := range []string{"", "re", "pre", "un", "over"} {
				out = append(out, p+a+s)
			}
		}
	}
	return out
}

// benchText is message i's readable text: about 600 bytes of words, with
// "rarezebra" in one message of 1000.
func benchText(vocab []string, i int) string {
	var sb strings.Builder
	x := uint32(i*2654435761 + 1)
	for sb.Len() < 600 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		sb.WriteString(vocab[x%uint32(len(vocab))])
		sb.WriteByte(' ')
	}
	if i%1000 == 999 {
		sb.WriteString("RareZebra")
	}
	return sb.String()
}

// BenchmarkSearchText searches the subject and text of a store of 100,000
// captured messages, scoped to one login: a word that most messages hold
// (the first page fills at once), one that a message in 1,000 holds, and
// one that none holds (every message is read).
func BenchmarkSearchText(b *testing.B) {
	db, err := sqlite.Open(context.Background(), b.TempDir(), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	raw := fiveKB("search")[:1500]
	sum, err := summary.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	vocab := words()
	acceptMany(b, db, largeMessages, func(i int) *store.Message {
		m := newMessage(raw, sum, fmt.Sprintf("user%d@example.org", i%largeInboxes))
		m.Text = benchText(vocab, i)
		if i%7 == 6 {
			m.Login = "other"
		}
		return m
	})
	scope := store.Scope{Logins: []string{"app"}}
	for _, tt := range []struct {
		name, text string
		min        int
	}{{"common", "order", 50}, {"rare", "rarezebra", 50}, {"absent", "no-such-word", 0}} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuTime(b)
			n := 0
			for b.Loop() {
				n++
				msgs, err := db.Search(context.Background(), store.SearchQuery{Scope: scope, Text: tt.text})
				if err != nil {
					b.Fatal(err)
				}
				if len(msgs) < tt.min || tt.min == 0 && len(msgs) != 0 {
					b.Fatalf("%q: %d messages", tt.text, len(msgs))
				}
			}
			reportCPU(b, cpu, n)
		})
	}
}

// BenchmarkClaimComplete claims deliveries from a queue of 100,000 due
// deliveries and completes each one (sent, with one event), as relay
// workers do: one op is one claim of a batch of as many deliveries as there
// are workers, each completed by its own worker at the same time (so their
// outcomes share group commits). cpu-ns/delivery is the cost of one
// delivery.
func BenchmarkClaimComplete(b *testing.B) {
	db, err := sqlite.Open(context.Background(), b.TempDir(), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	raw := fiveKB("relay")[:1500]
	sum, err := summary.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	due := time.Now().Add(-time.Hour)
	acceptMany(b, db, largeMessages, func(i int) *store.Message {
		rcpt := fmt.Sprintf("user%d@example.org", i)
		m := newMessage(raw, sum, rcpt)
		m.Route = "mx"
		m.Deliveries = []*store.Delivery{{Route: "mx", Domain: "example.org", NextAttempt: due.Add(time.Duration(i) * time.Millisecond),
			Expires: due.Add(48 * time.Hour), Recipients: []store.RecipientDelivery{{Address: rcpt}}}}
		return m
	})
	for _, workers := range []int{1, 8} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			ctx := context.Background()
			now := time.Now()
			b.ReportAllocs()
			cpu := cpuTime(b)
			done := 0
			for b.Loop() {
				claimed, err := db.ClaimDeliveries(ctx, "bench", now, workers, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				if len(claimed) == 0 {
					b.Fatalf("queue empty after %d", done)
				}
				var wg sync.WaitGroup
				for _, d := range claimed {
					wg.Go(func() {
						rcpt := d.Recipients[0].Address
						o := store.Outcome{
							Attempt:    store.Attempt{Time: now, Host: "mx.example.org:25", Reply: "250 2.0.0 ok", Duration: 80 * time.Millisecond},
							Recipients: []store.RecipientDelivery{{Address: rcpt, State: store.RecipientSent, Reply: "250 2.0.0 ok"}},
							State:      store.DeliverySent,
							Events:     []*store.Event{{Type: store.EventSent, Recipient: rcpt, Time: now, Reply: "250 2.0.0 ok"}},
						}
						if err := db.CompleteAttempt(ctx, d.ID, "bench", o); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
				done += len(claimed)
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(done), "cpu-ns/delivery")
			b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkInboxes lists the 100 most recently used inboxes of one login,
// with their counts, on a store of 100,000 messages in 1,000 inboxes.
func BenchmarkInboxes(b *testing.B) {
	ls := buildLargeStore(b)
	scope := store.Scope{Logins: []string{"app"}}
	ctx := context.Background()
	b.ReportAllocs()
	cpu := cpuTime(b)
	n := 0
	for b.Loop() {
		n++
		list, err := ls.db.Inboxes(ctx, scope, "", 0)
		if err != nil {
			b.Fatal(err)
		}
		if len(list) != 100 {
			b.Fatalf("%d inboxes", len(list))
		}
	}
	reportCPU(b, cpu, n)
}
