package bounces

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/features/bounce"
	"github.com/smtpgate/smtpgate/proxy"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/sqlite"
)

// BenchmarkClassify is the CPU part of a bounce: ParseDSN and Classify of
// a Postfix DSN.
func BenchmarkClassify(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join(sampleDir, "postfix-user-unknown.eml"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		rep, perr := bounce.ParseDSN(raw)
		if e, ok := Classify(rep, perr, "nobody@example.org"); !ok || e.Type != store.EventBounced {
			b.Fatalf("event %+v", e)
		}
	}
}

// BenchmarkHandle is one bounce through Handle on SQLite: the message
// lookup, the parse and the durable event.
func BenchmarkHandle(b *testing.B) {
	st, err := sqlite.Open(context.Background(), b.TempDir(), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	codec, err := bounce.NewCodec([]byte(testSecret), testDomain)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	msg := &store.Message{ID: store.NewID(now), Login: "webapp", Route: "direct", MailFrom: "app@example.com",
		Recipients: []string{"nobody@example.org"}, Received: now, Raw: []byte("Subject: x\r\n\r\nx\r\n")}
	if err := st.Accept(context.Background(), msg); err != nil {
		b.Fatal(err)
	}
	verp, err := codec.Address(msg.ID, 0)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(sampleDir, "postfix-user-unknown.eml"))
	if err != nil {
		b.Fatal(err)
	}
	h := New(codec, st, zap.NewNop())
	env := &proxy.Envelope{Recipients: []string{verp}, RemoteAddr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 25}, Received: now}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Handle(context.Background(), env, bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
	}
}
