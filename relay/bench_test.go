package relay_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/relay"
	"github.com/smtpgate/smtpgate/relay/dkim"
	"github.com/smtpgate/smtpgate/relay/internal/smtptest"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/sqlite"
)

// fiveKB is a 5 KB text message from sender.test.
func fiveKB(i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: App <app@sender.test>\r\nTo: user%d@rcpt.test\r\nSubject: Your order %d\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench-%d@sender.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", i, i, i)
	line := "Thank you for your order. This line pads the message to a realistic size.\r\n"
	for b.Len() < 5*1024 {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// BenchmarkRelayToSink measures the worker end to end: claim from SQLite,
// read the message, Ed25519-sign it, deliver it to Postfix's smtp-sink in
// plain text, record the outcome and events; 50 deliveries at once, with
// idle sessions reused (the default) or a new connection per message, and
// with the messages handed to Remember as the app does when it commits
// them (read from the cache, not the store). msgs/s is the figure to read;
// cpu-ns/op is the process's CPU time per message while relaying.
func BenchmarkRelayToSink(b *testing.B) {
	b.Run("reuse", func(b *testing.B) { benchRelayToSink(b, 0, false) })
	b.Run("reuse-remembered", func(b *testing.B) { benchRelayToSink(b, 0, true) })
	b.Run("connection-per-message", func(b *testing.B) { benchRelayToSink(b, -1, false) })
}

func benchRelayToSink(b *testing.B, idleTimeout time.Duration, remember bool) {
	sink := smtptest.StartSink(b, false)
	db, err := sqlite.Open(context.Background(), b.TempDir(), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	keySigner, _, err := dkim.Generate(dkim.AlgorithmEd25519, 0)
	if err != nil {
		b.Fatal(err)
	}
	route := relay.Route{Name: "sink", Address: sink.Addr, TLS: relay.TLSNone, Helo: "bench.test", Concurrency: 50}

	// Commit b.N messages first (16 producers, so that the store's group
	// commit batches them); only the relaying is timed.
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, 16)
	committed := make(chan *store.Message, b.N)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				now := time.Now().UTC()
				raw := fiveKB(i)
				m := &store.Message{ID: store.NewID(now), Login: "app", Route: "sink", MailFrom: "app@sender.test",
					Recipients: []string{fmt.Sprintf("user%d@rcpt.test", i)}, Received: now, Size: int64(len(raw)), Raw: raw}
				m.Deliveries = relay.Deliveries(m, route)
				if err := db.Accept(context.Background(), m); err != nil {
					errs <- err
					return
				}
				committed <- m
			}
		}()
	}
	for i := range b.N {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}

	q := &countingQueue{Queue: db, done: make(chan struct{}, b.N)}
	w, err := relay.NewWorker(relay.Config{
		Settings:     relay.Settings{Routes: []relay.Route{route}, Signer: dkim.NewSigner([]*dkim.Key{{Domain: "sender.test", Selector: "b", Algorithm: dkim.AlgorithmEd25519, Signer: keySigner}}, dkim.Options{})},
		PollInterval: 10 * time.Millisecond, MaxInFlight: 100, Owner: "bench", IdleTimeout: idleTimeout,
		MessageCache: 1 << 30, // every message, whatever b.N
	}, q, db, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	close(committed)
	for m := range committed {
		if remember {
			w.Remember(m)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime(b)
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	for range b.N {
		<-q.done
	}
	elapsed, used := time.Since(start), cpuTime(b)-cpu
	b.StopTimer()
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	left, err := db.Deliveries(context.Background(), store.DeliveryQuery{Scope: store.Scope{All: true},
		States: []string{store.DeliveryQueued, store.DeliveryDeferred, store.DeliveryFailed, store.DeliveryBounced}, Limit: 10})
	if err != nil {
		b.Fatal(err)
	}
	if len(left) != 0 {
		b.Fatalf("deliveries not sent: %+v", left[0])
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(used)/float64(b.N), "cpu-ns/op")
}

// cpuTime returns the CPU time (user and system) this process has used;
// smtp-sink's is not included. On a shared machine CPU per message is
// steadier than wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingQueue is the real store, reporting each recorded attempt.
type countingQueue struct {
	store.Queue
	done chan struct{}
}

func (q *countingQueue) CompleteAndClaim(ctx context.Context, owner string, cs []store.Completion, ids []int64,
	now time.Time, lease time.Duration) ([]error, []*store.Delivery, error) {
	errs, claimed, err := q.Queue.CompleteAndClaim(ctx, owner, cs, ids, now, lease)
	for _, err := range errs {
		if err == nil {
			q.done <- struct{}{}
		}
	}
	return errs, claimed, err
}
