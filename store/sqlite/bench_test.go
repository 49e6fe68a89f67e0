package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
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
