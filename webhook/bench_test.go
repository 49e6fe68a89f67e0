package webhook

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/store"
)

// BenchmarkDeliver measures events delivered per second to one fast local
// receiver, from committed events to recorded outcomes: fan-out, claim,
// event read, signing, the HTTP round trip and the completion, all on the
// real SQLite store (synchronous=FULL).
func BenchmarkDeliver(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) testStore
	}{
		{"sqlite", func(b *testing.B) testStore { return openSQLite(b, b.TempDir()) }},
		{"postgres", func(b *testing.B) testStore { return openPostgres(b, testutil.PostgresSchema(b)) }},
	}
	for _, s := range stores {
		for _, endpoints := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/endpoints=%d", s.name, endpoints), func(b *testing.B) {
				benchmarkDeliver(b, s.open(b), endpoints)
			})
		}
	}
}

func benchmarkDeliver(b *testing.B, st testStore, endpoints int) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got.Add(1)
	}))
	defer srv.Close()
	const perMessage = 50
	types := make([]string, perMessage)
	for i := range types {
		types[i] = store.EventSent
	}
	for n := 0; n < b.N; n += perMessage {
		emit(b, st, "app1", types[:min(perMessage, b.N-n)]...)
	}
	var eps []Endpoint
	for i := range endpoints {
		eps = append(eps, Endpoint{Name: "h" + string(rune('a'+i)), URL: srv.URL, Secret: []byte("k")})
	}
	cfg := Config{Endpoints: eps, Owner: "bench", Poll: 10 * time.Millisecond}
	w := New(cfg, st, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)

	b.ResetTimer()
	start := time.Now()
	go func() { done <- w.Run(ctx) }()
	want := int64(b.N * endpoints)
	for got.Load() < want {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(want)/elapsed.Seconds(), "events/s")
}
