package web

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// bigCapture is how many messages BenchmarkCapture100k stores.
const bigCapture = 100_000

// seedCapture stores n copies of tracked.eml for Alice, each in the inbox
// big@example.com and in one of 1000 others, with concurrent Accepts so
// that the store's group commit batches them.
func seedCapture(b *testing.B, f *fixture, n int) []string {
	b.Helper()
	raw := readMessage(b, "tracked.eml")
	sum, err := summary.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	c, err := summary.Extract(raw)
	if err != nil {
		b.Fatal(err)
	}
	text := readableText(c)
	start := time.Now()
	ids := acceptConcurrently(b, f.st, n, 32, func(i int) *store.Message {
		received := t0.Add(time.Duration(i) * time.Second)
		return &store.Message{ID: store.NewID(received), Login: "alice", Route: store.RouteCapture,
			Recipients: []string{"big@example.com", fmt.Sprintf("user%d@example.com", i%1000)},
			RemoteIP:   "192.0.2.10", TLS: true, Received: received, Size: int64(len(raw)), Raw: raw,
			Summary: sum, Text: text, Tags: []string{"bench"},
			Processing: store.Processing{Stats: map[string]int{"links_tracked": 2, "pixels_added": 1}}}
	})
	b.Logf("seeded %d messages in %v", n, time.Since(start).Round(time.Millisecond))
	return ids
}

// get fetches url with the key and drains the body, failing on a non-200.
func get(b *testing.B, client *http.Client, url, key string) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Mailsac-Key", key)
	res, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 {
		b.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
	}
}

// BenchmarkCapture100k measures, over a loopback socket with 100,000
// captured messages in the store (all in one inbox), the first page of
// that inbox and of a search, and opening a random message, in both APIs.
// p99-ns is the 99th percentile latency of one request.
func BenchmarkCapture100k(b *testing.B) {
	f := newFixture(b, nil)
	ids := seedCapture(b, f, bigCapture)
	base := f.serve()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, bc := range []struct {
		name string
		url  func() string
	}{
		{"v1-inbox-first-page", func() string { return base + "/api/v1/messages?inbox=big@example.com" }},
		{"mailsac-inbox-first-page", func() string { return base + "/api/addresses/big@example.com/messages" }},
		{"v1-search-subject", func() string { return base + "/api/v1/messages?subject=shipped&limit=20" }},
		{"v1-search-no-match", func() string { return base + "/api/v1/messages?subject=nothing-like-this&limit=20" }},
		{"v1-inboxes", func() string { return base + "/api/v1/inboxes?limit=20" }},
		{"v1-open-message", func() string { return base + "/api/v1/messages/" + ids[rng.IntN(len(ids))] }},
		{"mailsac-open-message", func() string {
			return base + "/api/addresses/big@example.com/messages/" + ids[rng.IntN(len(ids))]
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var h latencyHistogram
			b.ReportAllocs()
			for b.Loop() {
				url := bc.url()
				start := time.Now()
				get(b, client, url, keyAlice)
				h.add(time.Since(start))
			}
			h.report(b)
		})
	}
}

// BenchmarkWaitWake measures how long after Committed a waiting
// GET /api/v1/wait answers the client: wake-p99-ns.
func BenchmarkWaitWake(b *testing.B) {
	f := newFixture(b, nil)
	seedCapture(b, f, 1000)
	base := f.serve()
	raw := readMessage(b, "plain.eml")
	sum, err := summary.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	var h latencyHistogram
	for i := 0; b.Loop(); i++ {
		inbox := "wake" + strconv.Itoa(i) + "@example.com"
		ch := f.waitAsync(base, keyAlice, "inbox="+inbox+"&timeout=30s")
		m := &store.Message{ID: store.NewID(t0), Login: "alice", Route: store.RouteCapture, Recipients: []string{inbox},
			Received: t0, Size: int64(len(raw)), Raw: raw, Summary: sum}
		if err := f.st.Accept(context.Background(), m); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		f.srv.Committed(m)
		r := <-ch
		h.add(time.Since(committed))
		if r.status != 200 || len(r.answer.Messages) != 1 || r.answer.Messages[0].ID != m.ID {
			b.Fatalf("wait: %+v", r)
		}
	}
	b.ReportMetric(float64(h.quantile(0.50).Nanoseconds()), "wake-p50-ns")
	b.ReportMetric(float64(h.quantile(0.99).Nanoseconds()), "wake-p99-ns")
}

// BenchmarkStreamClients opens 200 event streams over loopback and reports
// the memory they cost the process (server and client sides together;
// heap and goroutine stacks, after a GC) and the time for one commit to
// reach all of them.
func BenchmarkStreamClients(b *testing.B) {
	const clients = 200
	f := newFixture(b, nil)
	base := f.serve()
	raw := readMessage(b, "plain.eml")
	sum, err := summary.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	inuse := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse
	}
	for b.Loop() {
		b.StopTimer()
		before := inuse()
		transport := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: clients}
		client := &http.Client{Transport: transport}
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan struct{}, clients)
		ready := make(chan struct{}, clients)
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events/stream", nil)
				req.Header.Set("Mailsac-Key", keyAlice)
				res, err := client.Do(req)
				if err != nil {
					return
				}
				defer res.Body.Close()
				buf := make([]byte, 4096)
				ready <- struct{}{}
				for {
					n, err := res.Body.Read(buf)
					if err != nil {
						return
					}
					if n > 0 && contains(buf[:n], "event: message") {
						got <- struct{}{}
					}
				}
			}()
		}
		for range clients {
			<-ready
		}
		for f.srv.hub.subscribers() < clients {
			time.Sleep(time.Millisecond)
		}
		after := inuse()
		b.ReportMetric(float64(after-before)/(1<<20), "MiB/200clients")
		b.StartTimer()
		m := &store.Message{ID: store.NewID(t0), Login: "alice", Route: store.RouteCapture, Recipients: []string{"s@example.com"},
			Received: t0, Size: int64(len(raw)), Raw: raw, Summary: sum}
		if err := f.st.Accept(context.Background(), m); err != nil {
			b.Fatal(err)
		}
		f.srv.Committed(m)
		for range clients {
			<-got
		}
		b.StopTimer()
		cancel()
		wg.Wait()
		transport.CloseIdleConnections()
		for f.srv.hub.subscribers() > 0 {
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
	}
}

func contains(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}
