package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/internal/testutil"
)

// discardHandler reads and drops every message.
type discardHandler struct{}

func (discardHandler) Handle(_ context.Context, _ *Envelope, body io.Reader) (string, error) {
	if _, err := io.Copy(io.Discard, body); err != nil {
		return "", err
	}
	return "0123456789ABCDEF", nil
}

// benchServer starts a server with one STARTTLS listener and a discarding
// Handler.
func benchServer(b *testing.B) (addr string, clientTLS *tls.Config) {
	b.Helper()
	serverTLS, clientTLS := testutil.SelfSignedTLS(b)
	srv, err := New(Config{
		Hostname:  "mx.test",
		Listeners: []ListenerConfig{{Name: "submission", Address: "127.0.0.1:0", TLS: TLSStartTLS}},
		TLS:       serverTLS,
	}, newTestAuth(), discardHandler{}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	clientTLS.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	return srv.Addr("submission").String(), clientTLS
}

// sendBatch opens a connection (STARTTLS + AUTH PLAIN) and sends n messages.
func sendBatch(addr string, cfg *tls.Config, body string, n int) error {
	c, err := smtp.DialStartTLS(addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice", "secret")); err != nil {
		return err
	}
	for range n {
		if err := c.Mail("alice@example.com", nil); err != nil {
			return err
		}
		if err := c.Rcpt("rcpt@example.net", nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, body); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return c.Quit()
}

// body5KB is a 5 KB message of 78-byte lines.
func body5KB() string {
	line := strings.Repeat("lorem ipsum ", 6) + "dolor\r\n"
	return "From: alice@example.com\r\nTo: rcpt@example.net\r\nSubject: bench\r\n\r\n" + strings.Repeat(line, 5000/len(line))
}

// BenchmarkSessionSTARTTLSAuth5KB measures the whole front door over
// loopback, client included: STARTTLS (ECDSA P-256, session resumption),
// AUTH PLAIN and 10 messages of 5 KB per connection, one connection at a
// time. b.N counts messages.
func BenchmarkSessionSTARTTLSAuth5KB(b *testing.B) {
	addr, cfg := benchServer(b)
	body := body5KB()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	start := time.Now()
	for sent := 0; sent < b.N; sent += 10 {
		if err := sendBatch(addr, cfg, body, min(10, b.N-sent)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkSessionSTARTTLSAuth5KBParallel is the same with GOMAXPROCS×4
// concurrent connections.
func BenchmarkSessionSTARTTLSAuth5KBParallel(b *testing.B) {
	addr, cfg := benchServer(b)
	body := body5KB()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(4)
	var sent atomic.Int64
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			n++
			if n == 10 {
				if err := sendBatch(addr, cfg, body, n); err != nil {
					b.Error(err)
					return
				}
				sent.Add(int64(n))
				n = 0
			}
		}
		if n > 0 {
			if err := sendBatch(addr, cfg, body, n); err != nil {
				b.Error(err)
			}
			sent.Add(int64(n))
		}
	})
	b.ReportMetric(float64(sent.Load())/time.Since(start).Seconds(), "msgs/s")
}
