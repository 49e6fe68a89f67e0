package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	msgauthdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/smtpgate/smtpgate/internal/dnstest"
	"github.com/smtpgate/smtpgate/relay/dkim"
	"github.com/smtpgate/smtpgate/store"
)

// receiver is a real SMTP server that keeps what it gets.
type receiver struct {
	mu   sync.Mutex
	msgs [][]byte
	rcpt []string
	got  chan struct{}
}

func (r *receiver) NewSession(*smtp.Conn) (smtp.Session, error) { return &rsession{r: r}, nil }

type rsession struct {
	r    *receiver
	rcpt []string
}

func (s *rsession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *rsession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpt = append(s.rcpt, to)
	return nil
}
func (s *rsession) Data(rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.msgs = append(s.r.msgs, b)
	s.r.rcpt = append(s.r.rcpt, s.rcpt...)
	s.r.mu.Unlock()
	s.r.got <- struct{}{}
	return nil
}
func (s *rsession) Reset()        { s.rcpt = nil }
func (s *rsession) Logout() error { return nil }

const relayPolicy = `
server {
  hostname = "app.test"
  mode     = "relay"
  data_dir = "%[1]s"
  listen "submission" {
    address = "127.0.0.1:0"
    tls     = "starttls"
  }
  http {
    address    = "127.0.0.1:0"
    public_url = "http://t.app.test"
  }
}
tracking {
  secret = "0123456789abcdef0123456789abcdef"
}
features "tracked" {
  track_clicks = true
  track_opens  = true
}
relay "upstream" {
  address = "RELAY_ADDR"
  tls     = "none"
}
dkim "example.com" {
  selector  = "s2026"
  algorithm = "ed25519"
  key_file  = "KEY_FILE"
}
credential "news" {
  password_hash = "%[2]s"
  features      = "tracked"
  route         = "upstream"
}
`

func TestRelayEndToEnd(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testRelayEndToEnd(t, "") })
	t.Run("postgres", func(t *testing.T) {
		testRelayEndToEnd(t, fmt.Sprintf("  store {\n    driver = \"postgres\"\n    dsn    = %q\n  }\n", pgDSN(t)))
	})
}

func testRelayEndToEnd(t *testing.T, storeBlock string) {
	rcv := &receiver{got: make(chan struct{}, 4)}
	srv := smtp.NewServer(rcv)
	srv.Domain = "sink.test"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	signer, keyPEM, err := dkim.Generate("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "dkim.key")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	txt, err := dkim.DNSRecord(signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t)
	dns.AddTXT(dkim.RecordName("s2026", "example.com"), txt)

	tmpl := strings.NewReplacer("RELAY_ADDR", ln.Addr().String(), "KEY_FILE", keyFile,
		"  http {", storeBlock+"  http {").Replace(relayPolicy)
	a := startApp(t, tmpl)
	id := send(t, a, "news", "news@example.com", "reader@example.net",
		"From: News <news@example.com>\r\nTo: reader@example.net\r\nSubject: Relayed\r\nMIME-Version: 1.0\r\n"+
			"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><a href=\"https://example.com/x\">x</a></body></html>\r\n")

	select {
	case <-rcv.got:
	case <-time.After(15 * time.Second):
		t.Fatal("nothing relayed within 15s")
	}
	rcv.mu.Lock()
	got := rcv.msgs[0]
	rcpts := rcv.rcpt
	rcv.mu.Unlock()
	if len(rcpts) != 1 || rcpts[0] != "reader@example.net" {
		t.Fatalf("receiver got recipients %v", rcpts)
	}
	if !bytes.HasPrefix(got, []byte("DKIM-Signature:")) {
		t.Fatalf("relayed message does not start with a DKIM signature:\n%s", got[:min(len(got), 300)])
	}
	if !bytes.Contains(got, []byte("http://t.app.test/c/")) || !bytes.Contains(got, []byte("http://t.app.test/o/")) {
		t.Fatal("relayed message lacks tracked links or the open pixel")
	}
	verifs, err := msgauthdkim.VerifyWithOptions(bytes.NewReader(got), &msgauthdkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) { return dns.Resolver().LookupTXT(context.Background(), domain) },
	})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "example.com" {
		t.Fatalf("DKIM verification: %v %+v", err, verifs)
	}

	// The delivery and its sent event are recorded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds, err := a.Store().Deliveries(context.Background(), store.DeliveryQuery{MessageID: id, Scope: store.Scope{All: true}})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].State == store.DeliverySent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery not marked sent: %+v", ds)
		}
		time.Sleep(50 * time.Millisecond)
	}
	evs, _ := a.Store().Events(context.Background(), store.EventQuery{MessageID: id, Scope: store.Scope{All: true}})
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if strings.Join(types, ",") != "queued,sent" {
		t.Fatalf("events %v, want queued,sent", types)
	}
}
