package web

import (
	"context"
	"math/bits"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// benchMessages is how many messages the benchmark store holds, all in
// the one inbox the benchmarks read.
const benchMessages = 10_000

// benchFixture returns a fixture whose inbox bench@example.com holds
// benchMessages copies of welcome.eml, and their ids.
func benchFixture(b *testing.B) (*fixture, []string) {
	b.Helper()
	f := newFixture(b, nil)
	raw := readMessage(b, "welcome.eml")
	sum, err := summary.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	ids := acceptConcurrently(b, f.st, benchMessages, 8, func(i int) *store.Message {
		received := t0.Add(time.Duration(i) * time.Second)
		return &store.Message{ID: store.NewID(received), Login: "alice", Route: store.RouteCapture,
			Recipients: []string{"bench@example.com"}, RemoteIP: "192.0.2.10", TLS: true,
			Received: received, Size: int64(len(raw)), Raw: raw, Summary: sum}
	})
	return f, ids
}

// acceptConcurrently accepts n messages, msg(i) for i from 0 to n-1, from
// workers goroutines, so that concurrent Accepts share the store's group
// commits as SMTP sessions do, and returns their ids by i.
func acceptConcurrently(b *testing.B, st store.Store, n, workers int, msg func(i int) *store.Message) []string {
	b.Helper()
	ids := make([]string, n)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				m := msg(i)
				if err := st.Accept(context.Background(), m); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				ids[i] = m.ID
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatalf("seed: %v", err)
	default:
	}
	return ids
}

// BenchmarkInboxFirstPage lists the newest 20 messages of a 10,000-message
// inbox through the HTTP handler.
func BenchmarkInboxFirstPage(b *testing.B) {
	f, _ := benchFixture(b)
	var h latencyHistogram
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		rec := f.do("GET", "/api/addresses/bench@example.com/messages", keyAlice)
		h.add(time.Since(start))
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	h.report(b)
}

// BenchmarkGetMessage reads one message object, picked at random among
// 10,000, through the HTTP handler.
func BenchmarkGetMessage(b *testing.B) {
	f, ids := benchFixture(b)
	rng := rand.New(rand.NewPCG(1, 2))
	var h latencyHistogram
	b.ReportAllocs()
	for b.Loop() {
		target := "/api/addresses/bench@example.com/messages/" + ids[rng.IntN(len(ids))]
		start := time.Now()
		rec := f.do("GET", target, keyAlice)
		h.add(time.Since(start))
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	h.report(b)
}

// BenchmarkSanitizeNewsletter sanitises testdata/sanitize/newsletter.html.
func BenchmarkSanitizeNewsletter(b *testing.B) {
	data, err := os.ReadFile("testdata/sanitize/newsletter.html")
	if err != nil {
		b.Fatal(err)
	}
	src := string(data)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		sanitizeHTML(src, testImages)
	}
}

// latencyHistogram counts durations in log-linear buckets: 16 buckets per
// power of two, so a quantile is read to within 1/16 (about 6%).
type latencyHistogram struct {
	counts [64 * histSub]uint64
	n      uint64
}

const histSub = 16

func (h *latencyHistogram) add(d time.Duration) {
	h.counts[histBucket(uint64(max(d, 1)))]++
	h.n++
}

// histBucket maps v >= 1 to its bucket.
func histBucket(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - 5 // v >> e is in [16, 32)
	return (e+1)*histSub + int(v>>uint(e)) - histSub
}

// histUpper is the largest value of bucket i.
func histUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return (m+1)<<uint(e) - 1
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *latencyHistogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return time.Duration(histUpper(i))
		}
	}
	return 0
}

func (h *latencyHistogram) report(b *testing.B) {
	b.ReportMetric(float64(h.quantile(0.50).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(h.quantile(0.99).Nanoseconds()), "p99-ns")
}

// TestLatencyHistogram checks the bucket arithmetic of the benchmarks'
// histogram.
func TestLatencyHistogram(t *testing.T) {
	for _, v := range []uint64{1, 15, 16, 17, 31, 32, 33, 1000, 123456, 1 << 40} {
		i := histBucket(v)
		if histUpper(i) < v || (i > 0 && histUpper(i-1) >= v) {
			t.Errorf("value %d in bucket %d with range (%d, %d]", v, i, histUpper(i-1), histUpper(i))
		}
	}
	var h latencyHistogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*1.07 {
			t.Errorf("quantile(%v) = %v, want %v to 7%% above", tc.q, got, tc.want)
		}
	}
}
