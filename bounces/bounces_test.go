package bounces

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/smtpgate/smtpgate/features/bounce"
	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/proxy"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/sqlite"
)

const (
	testDomain = "bounce.example.com"
	testSecret = "bounces-test-secret-0123456789"
)

// noSubmission is the submission side of a proxy that has only a bounces
// listener: nobody logs in, nothing is submitted.
type noSubmission struct{}

func (noSubmission) Authenticate(context.Context, string, string) (proxy.Login, error) {
	return nil, proxy.ErrBadCredentials
}

func (noSubmission) Handle(context.Context, *proxy.Envelope, io.Reader) (string, error) {
	return "", errors.New("no submission here")
}

// rig is a proxy with one bounces listener in front of a Handler on a
// real SQLite store.
type rig struct {
	st        *sqlite.DB
	dir       string
	codec     *bounce.Codec
	addr      string
	clientTLS *tls.Config
}

func newRig(t *testing.T, st *sqlite.DB, dir string) *rig {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	codec, err := bounce.NewCodec([]byte(testSecret), testDomain)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, clientTLS := testutil.SelfSignedTLS(t)
	srv, err := proxy.New(proxy.Config{
		Hostname: "mx.test",
		Listeners: []proxy.ListenerConfig{
			{Name: "bounces", Address: "127.0.0.1:0", TLS: proxy.TLSStartTLS, Purpose: proxy.PurposeBounces},
		},
		TLS:     serverTLS,
		Limits:  proxy.Limits{CommandTimeout: 10 * time.Second},
		Bounces: New(codec, st, log.Named("bounces")),
	}, noSubmission{}, noSubmission{}, log.Named("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &rig{st: st, dir: dir, codec: codec, addr: srv.Addr("bounces").String(), clientTLS: clientTLS}
}

func openStore(t *testing.T, dir string) *sqlite.DB {
	t.Helper()
	st, err := sqlite.Open(context.Background(), dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// relayed stores a relayed message to recipients, as the gateway does.
func relayed(t *testing.T, st store.Store, recipients ...string) *store.Message {
	t.Helper()
	now := time.Now().UTC()
	raw := []byte("From: app@example.com\r\nSubject: Your order has shipped\r\n\r\nIt is on its way.\r\n")
	msg := &store.Message{
		ID:         store.NewID(now),
		Login:      "webapp",
		Route:      "direct",
		MailFrom:   "app@example.com",
		Recipients: recipients,
		RemoteIP:   "192.0.2.10",
		Helo:       "app.example.com",
		TLS:        true,
		Received:   now,
		Size:       int64(len(raw)),
		Raw:        raw,
	}
	for _, r := range recipients {
		msg.Events = append(msg.Events, &store.Event{Type: store.EventQueued, Recipient: r, Time: now})
	}
	if err := st.Accept(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	return msg
}

// verp is the VERP address of recipient index of msg.
func (r *rig) verp(t *testing.T, id string, index int) string {
	t.Helper()
	a, err := r.codec.Address(id, index)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var sampleVERP = regexp.MustCompile(`b\+[0-9a-z]+-[a-z2-7]{20}@bounce\.example\.com`)

// sample reads a bounce sample of features/bounce, with the VERP address
// in its headers replaced by verp (as the remote server would have it).
func sample(t *testing.T, name, verp string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(sampleDir, name))
	if err != nil {
		t.Fatal(err)
	}
	s := sampleVERP.ReplaceAllLiteralString(string(raw), verp)
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// deliver sends body from the null sender to rcpts over a fresh
// connection, with STARTTLS when tls is set, and returns the DATA reply.
func (r *rig) deliver(t *testing.T, withTLS bool, body string, rcpts ...string) string {
	t.Helper()
	var (
		c   *smtp.Client
		err error
	)
	if withTLS {
		c, err = smtp.DialStartTLS(r.addr, r.clientTLS)
	} else {
		c, err = smtp.Dial(r.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mx1.example.org"); err != nil {
		t.Fatal(err)
	}
	resp := testutil.Transaction(t, c, "", rcpts, body)
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	return resp.StatusText
}

// events returns the events of a message after the queued ones.
func events(t *testing.T, st store.Store, id string) []*store.Event {
	t.Helper()
	all, err := st.Events(context.Background(), store.EventQuery{MessageID: id, Scope: store.Scope{All: true}})
	if err != nil {
		t.Fatal(err)
	}
	var out []*store.Event
	for _, e := range all {
		if e.Type != store.EventQueued {
			out = append(out, e)
		}
	}
	return out
}

func TestBouncesEndToEnd(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	r := newRig(t, st, dir)
	msg := relayed(t, st, "ann@example.org", "nobody@example.org", "slow@example.net")
	other := relayed(t, st, "full@example.edu")
	start := time.Now().Add(-time.Second)

	type want struct {
		typ, rcpt, reply, detail string
	}
	steps := []struct {
		name   string
		tls    bool
		sample string
		rcpts  []string
		queued string
		want   []want // the new events of msg, then of other
	}{
		{"postfix DSN to recipient 1", false, "postfix-user-unknown.eml", []string{r.verp(t, msg.ID, 1)}, msg.ID,
			[]want{{store.EventBounced, "nobody@example.org",
				"5.1.1 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
				"dsn from mx1.example.org remote mail.example.org"}}},
		{"delayed DSN over STARTTLS", true, "postfix-delayed.eml", []string{r.verp(t, msg.ID, 2)}, msg.ID,
			[]want{{store.EventDeferred, "slow@example.net",
				"4.4.1 connect to mx.example.net[192.0.2.80]:25: Connection timed out", "dsn from relay.example.net"}}},
		{"autoreply", false, "autoreply.eml", []string{r.verp(t, msg.ID, 0)}, msg.ID,
			[]want{{store.EventReply, "ann@example.org", "",
				"Vielen Dank für Ihre Nachricht.\nIch bin bis 16. Juni nicht im Büro und habe keinen Zugriff auf meine E-Mails.\nAnn Smith"}}},
		{"DSN naming someone else", true, "gmail-nosuchuser.eml", []string{r.verp(t, msg.ID, 0)}, msg.ID,
			[]want{{store.EventBounced, "ann@example.org", "",
				"the report names no.such.user.42@gmail.com, not ann@example.org"}}},
		// One bounce to two messages' VERP addresses (and one twice):
		// one event each, committed together.
		{"two messages in one bounce", false, "sendmail-multiple.eml",
			[]string{r.verp(t, other.ID, 0), r.verp(t, msg.ID, 1), r.verp(t, other.ID, 0)}, other.ID,
			[]want{{store.EventBounced, "nobody@example.org", "5.1.1 550 5.1.1 <prof.x@example.edu>... User unknown",
				"the report names prof.x@example.edu, not nobody@example.org"},
				{store.EventBounced, "full@example.edu", "5.2.2 552 5.2.2 Mailbox full",
					"dsn from smtp.example.edu remote mailhost.example.edu"}}},
		{"garbage", false, "", []string{r.verp(t, msg.ID, 2)}, msg.ID,
			[]want{{store.EventReply, "slow@example.net", "", "unreadable message"}}},
	}
	seen := map[string]int{}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			body := "\x00\x01\xff garbage without a header\r\n\r\n"
			if s.sample != "" {
				body = sample(t, s.sample, s.rcpts[0])
			}
			if got := r.deliver(t, s.tls, body, s.rcpts...); got != "2.0.0 queued as bounce-"+s.queued {
				t.Fatalf("DATA reply %q", got)
			}
			var fresh []*store.Event
			for _, id := range []string{msg.ID, other.ID} {
				evs := events(t, st, id)
				fresh = append(fresh, evs[seen[id]:]...)
				seen[id] = len(evs)
			}
			if len(fresh) != len(s.want) {
				for _, e := range fresh {
					t.Logf("event %+v", e)
				}
				t.Fatalf("%d new events, want %d", len(fresh), len(s.want))
			}
			for i, w := range s.want {
				e := fresh[i]
				switch {
				case e.Type != w.typ || e.Recipient != w.rcpt:
					t.Errorf("event %d: %s for %q, want %s for %q", i, e.Type, e.Recipient, w.typ, w.rcpt)
				case w.reply != "" && e.Reply != w.reply || w.typ == store.EventReply && e.Reply != "":
					t.Errorf("event %d: reply %q, want %q", i, e.Reply, w.reply)
				case w.typ == store.EventReply && e.Detail != w.detail || !strings.Contains(e.Detail, w.detail):
					t.Errorf("event %d: detail %q, want %q", i, e.Detail, w.detail)
				case e.Login != "webapp" || e.Seq == 0:
					t.Errorf("event %d: login %q seq %d", i, e.Login, e.Seq)
				case e.Time.Before(start) || e.Time.After(time.Now()):
					t.Errorf("event %d: time %v", i, e.Time)
				}
			}
		})
	}

	t.Run("dropped without an event", func(t *testing.T) {
		before := len(events(t, st, msg.ID))
		unknown := store.NewID(time.Now())
		body := sample(t, "postfix-user-unknown.eml", r.verp(t, unknown, 0))
		// A signed token for a message the store does not have (pruned):
		// accepted, then dropped.
		if got := r.deliver(t, false, body, r.verp(t, unknown, 0)); got != "2.0.0 queued as bounce-"+unknown {
			t.Fatalf("DATA reply %q", got)
		}
		if evs := events(t, st, unknown); len(evs) != 0 {
			t.Errorf("events for an unknown message: %v", evs)
		}
		// A recipient index past the message's three recipients.
		if got := r.deliver(t, true, body, r.verp(t, msg.ID, 3)); got != "2.0.0 queued as bounce-"+msg.ID {
			t.Fatalf("DATA reply %q", got)
		}
		// A delivery notification for our recipient.
		body = sample(t, "sendmail-multiple.eml", r.verp(t, msg.ID, 0))
		body = strings.ReplaceAll(body, "ok@example.edu", "ann@example.org")
		if got := r.deliver(t, false, body, r.verp(t, msg.ID, 0)); got != "2.0.0 queued as bounce-"+msg.ID {
			t.Fatalf("DATA reply %q", got)
		}
		if n := len(events(t, st, msg.ID)); n != before {
			t.Errorf("%d new events", n-before)
		}
	})

	t.Run("refused at RCPT", func(t *testing.T) {
		good := r.verp(t, msg.ID, 1)
		// tamper changes the character at i (from the start of the
		// local part, or from its end when negative).
		tamper := func(i int) string {
			b := []byte(good)
			if i < 0 {
				i += strings.IndexByte(good, '@')
			}
			if b[i] == 'q' {
				b[i] = 'r'
			} else {
				b[i] = 'q'
			}
			return string(b)
		}
		c := testutil.DialSMTP(t, r.addr)
		c.Expect("220 ")
		c.Do("EHLO mx1.example.org", "250 ")
		c.Do("AUTH PLAIN AHdlYmFwcABzZWNyZXQ=", "502 5.5.1")
		c.Do("MAIL FROM:<>", "250 ")
		c.Do("RCPT TO:<"+tamper(4)+">", "550 5.1.1")   // in the message id
		c.Do("RCPT TO:<"+tamper(-10)+">", "550 5.1.1") // in the signature
		c.Do("RCPT TO:<b+"+msg.ID+"-aaaaaaaaaaaaaaaaaaaa@"+testDomain+">", "550 5.1.1")
		c.Do("RCPT TO:<"+strings.Replace(good, testDomain, "example.com", 1)+">", "550 5.7.1 Relay access denied")
		c.Do("RCPT TO:<nobody@example.org>", "550 5.7.1 Relay access denied")
		c.Do("RCPT TO:<"+strings.ToUpper(good)+">", "250 ") // MTAs may change case
		c.Do("QUIT", "221 ")
	})
}

func TestBouncesStoreFailureIsTemporary(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	r := newRig(t, st, dir)
	msg := relayed(t, st, "nobody@example.org")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	c := testutil.DialSMTP(t, r.addr)
	c.Expect("220 ")
	c.Do("EHLO mx1.example.org", "250 ")
	c.Do("MAIL FROM:<>", "250 ")
	c.Do("RCPT TO:<"+r.verp(t, msg.ID, 0)+">", "250 ")
	c.Do("DATA", "354 ")
	c.Cmd(strings.ReplaceAll(sample(t, "postfix-user-unknown.eml", r.verp(t, msg.ID, 0)), "\r\n.", "\r\n.."))
	c.Do(".", "451 4.3.0")
	// Nothing was committed: the remote server will retry.
	reopened := openStore(t, dir)
	defer reopened.Close()
	if evs := events(t, reopened, msg.ID); len(evs) != 0 {
		t.Fatalf("events after a failure: %v", evs)
	}
}

func TestSwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks is not installed")
	}
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	r := newRig(t, st, dir)
	msg := relayed(t, st, "ann@example.org", "nobody@example.org")
	body := filepath.Join(t.TempDir(), "dsn.eml")
	if err := os.WriteFile(body, []byte(sample(t, "postfix-user-unknown.eml", r.verp(t, msg.ID, 1))), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(r.addr)
	for _, mode := range []struct {
		args  []string
		reply string // swaks marks what it received "<-", or "<~" over TLS
	}{{nil, "<-  "}, {[]string{"--tls"}, "<~  "}} {
		args := append([]string{"--server", host, "--port", port, "--from", "<>", "--to", r.verp(t, msg.ID, 1),
			"--helo", "mx1.example.org", "--data", "@" + body, "--timeout", "10"}, mode.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, swaks, args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("swaks %v: %v\n%s", mode.args, err, out)
		}
		if !strings.Contains(string(out), mode.reply+"250 2.0.0 queued as bounce-"+msg.ID) {
			t.Fatalf("swaks %v: no 250 for the message:\n%s", mode.args, out)
		}
		if strings.Contains(string(out), "AUTH") {
			t.Errorf("swaks %v saw AUTH:\n%s", mode.args, out)
		}
	}
	evs := events(t, st, msg.ID)
	if len(evs) != 2 || evs[0].Type != store.EventBounced || evs[1].Type != store.EventBounced || evs[0].Recipient != "nobody@example.org" {
		t.Fatalf("events %+v", evs)
	}
}
