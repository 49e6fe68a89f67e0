package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/emersion/go-message/textproto"
	msgauthdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/sqlite"
)

// relayDeliverTimeout bounds the wait, after a restart, for every message
// acknowledged so far to reach the receiving MTA. The restarted process
// releases the leases of the one it replaces, so this is seconds, not the
// relay's lease (15 minutes by default).
const relayDeliverTimeout = 15 * time.Second

// relayPolicyConf is what testdata/relay.hcl.tmpl is rendered from.
type relayPolicyConf struct {
	DataDir     string
	RelayAddr   string // the receiving MTA, host:port
	KeyFile     string // Ed25519 DKIM key for app1.test
	Selector    string
	Credentials []credential
}

// startRelayGate runs smtpgate in relay mode towards relayAddr, with app1's
// mail DKIM-signed by a key made with `smtpgate dkim keygen`. It returns the
// instance and the key's DNS TXT record.
func startRelayGate(t testing.TB, relayAddr string) (*instance, string) {
	t.Helper()
	dir := t.TempDir()
	conf := relayPolicyConf{
		DataDir:   filepath.Join(dir, "data"),
		RelayAddr: relayAddr,
		KeyFile:   filepath.Join(dir, "dkim.key"),
		Selector:  "s1",
	}
	out, code := runTool(t, 30*time.Second, smtpgateBin, "dkim", "keygen", "--domain", "app1.test", "--selector", conf.Selector, "--out", conf.KeyFile)
	if code != 0 {
		t.Fatalf("smtpgate dkim keygen exited %d:\n%s", code, out)
	}
	m := regexp.MustCompile(`IN TXT "(v=DKIM1;[^"]*)"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("smtpgate dkim keygen printed no TXT record:\n%s", out)
	}
	for _, c := range []credential{app1} {
		c.Hash = hashPassword(t, c.Password)
		conf.Credentials = append(conf.Credentials, c)
	}
	tmpl, err := template.ParseFiles(filepath.Join("testdata", "relay.hcl.tmpl"))
	if err != nil {
		t.Fatalf("policy template: %v", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, conf); err != nil {
		t.Fatalf("policy template: %v", err)
	}
	policyPath := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(policyPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	in := launch(t, dir, policyPath, conf.DataDir, "serve", "--policy", policyPath, "--log-level", "debug")
	return in, m[1]
}

// delivery is one message the receiving MTA accepted.
type delivery struct {
	rcpts []string
	raw   []byte
}

// mtaReceiver is the receiving MTA of relayed mail: a go-smtp server in the
// test process that keeps every delivery by the Message-ID header.
type mtaReceiver struct {
	addr string
	mu   sync.Mutex
	got  map[string][]delivery // by Message-ID, without angle brackets
	bad  []string              // deliveries without a usable Message-ID
}

// startReceiver listens on a loopback port until the test ends.
func startReceiver(t testing.TB) *mtaReceiver {
	t.Helper()
	r := &mtaReceiver{got: map[string][]delivery{}}
	srv := smtp.NewServer(r)
	srv.Domain = "mx.e2e.test"
	// Sessions cut by a SIGKILL are expected; the test checks what arrived.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 2 << 20
	srv.MaxRecipients = 100
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
	})
	return r
}

// NewSession implements smtp.Backend.
func (r *mtaReceiver) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &mtaSession{r: r}, nil
}

// mtaSession is one SMTP session at the receiver.
type mtaSession struct {
	r     *mtaReceiver
	rcpts []string
}

func (s *mtaSession) Mail(string, *smtp.MailOptions) error { return nil }

func (s *mtaSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *mtaSession) Data(rd io.Reader) error {
	raw, err := io.ReadAll(rd)
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	d := delivery{rcpts: s.rcpts, raw: raw}
	s.rcpts = nil
	id := ""
	if h, err := textproto.ReadHeader(bufioReader(raw)); err == nil {
		id = strings.Trim(strings.TrimSpace(h.Get("Message-Id")), "<>")
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if id == "" {
		s.r.bad = append(s.r.bad, tail(string(raw), 10))
		return nil
	}
	s.r.got[id] = append(s.r.got[id], d)
	return nil
}

func (s *mtaSession) Reset()        { s.rcpts = nil }
func (s *mtaSession) Logout() error { return nil }

// count is how often the message with the Message-ID id was delivered.
func (r *mtaReceiver) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got[id])
}

// waitDelivered waits until every acknowledged message was delivered at
// least once.
func (r *mtaReceiver) waitDelivered(t *testing.T, acked []ackedMessage) {
	t.Helper()
	deadline := time.Now().Add(relayDeliverTimeout)
	for {
		var missing []string
		for _, a := range acked {
			if r.count(crashMessageID(a.token)) == 0 {
				missing = append(missing, a.token+" ("+a.id+")")
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages not delivered %v after the restart (a delivery stuck in the queue), e.g. %v",
				len(missing), len(acked), relayDeliverTimeout, missing[:min(len(missing), 10)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// verifyDeliveries checks every delivery the receiver got: it is one the
// test wrote (Message-ID, Subject and marker line agree), whole (it ends
// with the marker line), addressed to the acknowledged recipient, and
// carries a valid Ed25519 DKIM signature of app1.test. It returns the
// number of duplicate deliveries.
func (r *mtaReceiver) verifyDeliveries(t *testing.T, acked []ackedMessage, dkimTXT string) int {
	t.Helper()
	rcptOf := map[string]string{}
	for _, a := range acked {
		rcptOf[a.token] = a.rcpt
	}
	lookup := func(domain string) ([]string, error) {
		if domain != "s1._domainkey.app1.test" {
			return nil, fmt.Errorf("no TXT record for %s", domain)
		}
		return []string{dkimTXT}, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bad {
		t.Errorf("delivery without a Message-ID:\n%s", b)
	}
	dups, errs := 0, 0
	report := func(format string, args ...any) {
		if errs++; errs <= 10 {
			t.Errorf(format, args...)
		}
	}
	for id, ds := range r.got {
		dups += len(ds) - 1
		token, ok := strings.CutSuffix(id, "@crash.e2e.test")
		if !ok {
			report("delivery with Message-ID %q the test did not write", id)
			continue
		}
		for _, d := range ds {
			subject, err := subjectOf(d.raw)
			if err != nil || subject != "crash "+token {
				report("%s: subject %q (%v), want %q", id, subject, err, "crash "+token)
			}
			if !bytes.HasSuffix(d.raw, []byte("\r\n"+markerLine(token)+"\r\n")) {
				report("%s was delivered half-written: it does not end with %q:\n%s", id, markerLine(token), tail(string(d.raw), 5))
			}
			// An unacknowledged message may be delivered too (stored, but
			// killed before its "250"); its recipient is the connection's.
			if want := rcptOf[token]; want != "" && (len(d.rcpts) != 1 || d.rcpts[0] != want) {
				report("%s: delivered to %v, want [%s]", id, d.rcpts, want)
			}
			vs, err := msgauthdkim.VerifyWithOptions(bytes.NewReader(d.raw), &msgauthdkim.VerifyOptions{LookupTXT: lookup})
			if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "app1.test" {
				var verr error
				if len(vs) > 0 {
					verr = vs[0].Err
				}
				report("%s: DKIM verification: %v, %d signatures, first: %v", id, err, len(vs), verr)
			}
		}
	}
	if errs > 10 {
		t.Errorf("... %d problems in all", errs)
	}
	return dups
}

// verifyQueue opens the stopped instance's SQLite store (the capture API
// shows only captured mail, and there is no queue API yet) and checks that
// the queue is empty: every delivery is sent, and every acknowledged
// message has exactly one delivery, in state sent, and the events queued
// then sent, once each.
func verifyQueue(t *testing.T, in *instance, acked []ackedMessage) {
	t.Helper()
	select {
	case <-in.exited:
	default:
		t.Fatal("verifyQueue: smtpgate is still running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sqlite.Open(ctx, in.dataDir, zap.NewNop())
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	defer db.Close()
	all := store.Scope{All: true}
	pending, err := db.Deliveries(ctx, store.DeliveryQuery{Scope: all, Limit: 1000, States: []string{
		store.DeliveryQueued, store.DeliveryDeferred, store.DeliveryBounced, store.DeliveryFailed, store.DeliveryCancelled}})
	if err != nil {
		t.Fatalf("deliveries: %v", err)
	}
	for i, d := range pending {
		if i < 10 {
			t.Errorf("delivery %d of message %s is %s after %d attempts (%s), want sent", d.ID, d.MessageID, d.State, d.Attempts, d.LastReply)
		}
	}
	bad := 0
	for _, a := range acked {
		ds, err := db.Deliveries(ctx, store.DeliveryQuery{Scope: all, MessageID: a.id})
		if err != nil {
			t.Fatalf("deliveries of %s: %v", a.id, err)
		}
		evs, err := db.Events(ctx, store.EventQuery{Scope: all, MessageID: a.id})
		if err != nil {
			t.Fatalf("events of %s: %v", a.id, err)
		}
		var types []string
		for _, e := range evs {
			types = append(types, e.Type)
		}
		if len(ds) != 1 || ds[0].State != store.DeliverySent || strings.Join(types, ",") != "queued,sent" {
			if bad++; bad <= 10 {
				var states []string
				for _, d := range ds {
					states = append(states, d.State)
				}
				t.Errorf("message %s (%s): deliveries %v, events %v; want [sent] and queued,sent", a.id, a.token, states, types)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d acknowledged messages did not end as one sent delivery", bad, len(acked))
	}
}

// TestRelayCrashSafety kills smtpgate in relay mode with SIGKILL while 20
// sessions submit and the relay worker delivers, three times over, and
// restarts it on the same data directory each time. After each restart
// every message acknowledged so far must reach the receiving MTA within
// seconds (the new process takes back the leases of the one it replaces;
// nothing waits for a lease to expire). At the end each delivery must be
// whole and DKIM-valid, and the store must hold every acknowledged message
// as one sent delivery with the events queued then sent, once each.
func TestRelayCrashSafety(t *testing.T) {
	rcv := startReceiver(t)
	in, dkimTXT := startRelayGate(t, rcv.addr)
	var acked []ackedMessage
	for round := range crashRounds {
		got := loadAndKill(t, in, round)
		if len(got) == 0 {
			t.Fatalf("round %d: no message was acknowledged before the kill", round)
		}
		acked = append(acked, got...)
		in = in.restart(t)
		start := time.Now()
		rcv.waitDelivered(t, acked)
		t.Logf("round %d: %d messages acknowledged before SIGKILL; all %d so far delivered %v after the restart",
			round, len(got), len(acked), time.Since(start).Round(time.Millisecond))
	}
	dups := rcv.verifyDeliveries(t, acked, dkimTXT)
	in.stop()
	verifyQueue(t, in, acked)
	rcv.mu.Lock()
	t.Logf("%d messages delivered (%d acknowledged), %d duplicate deliveries (sent before a kill, not yet recorded)", len(rcv.got), len(acked), dups)
	rcv.mu.Unlock()
}

// bufioReader is a bufio.Reader on b for textproto.ReadHeader.
func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
