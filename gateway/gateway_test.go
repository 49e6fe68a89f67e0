package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/features/directives"
	"github.com/smtpgate/smtpgate/features/inline"
	"github.com/smtpgate/smtpgate/features/pipeline"
	"github.com/smtpgate/smtpgate/policy"
	"github.com/smtpgate/smtpgate/proxy"
	"github.com/smtpgate/smtpgate/relay"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/sqlite"
)

const testPolicy = `
server {
  hostname = "gw.test"
  mode     = "relay"
  listen "submission" {
    address = "127.0.0.1:0"
    tls     = "starttls"
  }
}
relay "upstream" {
  address = "127.0.0.1:2525"
  tls     = "none"
  max_age = "2d"
}
relay "direct" {
  mx = true
}
credential "app" {
  password_hash = "$2a$04$abcdefghijklmnopqrstuu1i5s6mBUdFp.6fQ3cO0.fXSDe2T6P6q"
  route         = "capture"
}
credential "relayed" {
  password_hash = "$2a$04$abcdefghijklmnopqrstuu1i5s6mBUdFp.6fQ3cO0.fXSDe2T6P6q"
  route         = "upstream"
}
credential "mx" {
  password_hash = "$2a$04$abcdefghijklmnopqrstuu1i5s6mBUdFp.6fQ3cO0.fXSDe2T6P6q"
  route         = "direct"
}
`

type fixedConfig struct{ c Config }

func (f fixedConfig) Current() Config { return f.c }

type login string

func (l login) Name() string              { return string(l) }
func (l login) SenderAllowed(string) bool { return true }

type notified struct {
	ids  []string
	msgs []*store.Message
}

func (n *notified) Committed(m *store.Message) {
	n.ids = append(n.ids, m.ID)
	n.msgs = append(n.msgs, m)
}

func setup(t *testing.T) (*Gateway, *sqlite.DB, *notified) {
	return setupPolicy(t, testPolicy, pipeline.Pipeline{})
}

func setupPolicy(t *testing.T, src string, pipe pipeline.Pipeline) (*Gateway, *sqlite.DB, *notified) {
	t.Helper()
	pol, err := policy.Parse("gw.hcl", []byte(src), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n := &notified{}
	routes := map[string]relay.Route{}
	for name, r := range pol.Relays {
		routes[name] = relay.Route{Name: name, MX: r.MX, Address: r.Address, TLS: r.TLS, MaxAge: r.MaxAge}
	}
	g := New("gw.test", fixedConfig{Config{Policy: pol, Pipeline: &pipe, Routes: routes}}, db, n, zap.NewNop())
	g.now = func() time.Time { return time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC) }
	return g, db, n
}

func envelope(l string) *proxy.Envelope {
	return &proxy.Envelope{
		Login:      login(l),
		MailFrom:   "app@example.com",
		Recipients: []string{"Alice@Example.com", "bob@example.com"},
		RemoteAddr: &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 41000},
		Helo:       "client (evil); injected\r\nX-Evil: 1",
		TLS:        &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256},
	}
}

const body = "From: App <app@example.com>\r\nTo: alice@example.com\r\nSubject: Hello\r\n\r\nSee https://example.com/x?a=1&b=2\r\n"

func TestHandleCommitsCapturedMessage(t *testing.T) {
	g, db, n := setup(t)
	id, err := g.Handle(context.Background(), envelope("app"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if !store.ValidID(id) {
		t.Fatalf("id %q is not a store id", id)
	}
	if len(n.ids) != 1 || n.ids[0] != id {
		t.Fatalf("notifier got %v, want [%s]", n.ids, id)
	}
	m, err := db.Get(context.Background(), id, store.Scope{Logins: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	raw := string(m.Raw)
	wantHdr := "Received: from client__evil___injected__X-Evil:_1 ([192.0.2.7])\r\n\tby gw.test (smtpgate) with ESMTPSA id " + id +
		"\r\n\t(version=TLS1.3 cipher=TLS_AES_128_GCM_SHA256);\r\n\tSat, 21 Nov 2026 10:00:00 +0000\r\n"
	if !strings.HasPrefix(raw, wantHdr) {
		t.Fatalf("raw starts with\n%q\nwant\n%q", raw[:min(len(raw), len(wantHdr)+20)], wantHdr)
	}
	if !strings.HasSuffix(raw, body) {
		t.Fatal("submitted message not kept byte-exact after the trace header")
	}
	if m.Size != int64(len(m.Raw)) || m.Login != "app" || m.Route != store.RouteCapture || !m.TLS || m.RemoteIP != "192.0.2.7" {
		t.Fatalf("metadata wrong: %+v", m)
	}
	if m.Summary.Subject != "Hello" || len(m.Summary.Links) != 1 || m.Summary.Links[0] != "https://example.com/x?a=1&b=2" {
		t.Fatalf("summary wrong: %+v", m.Summary)
	}
	// The readable text goes to the store for full-text search.
	if got := n.msgs[0].Text; got != "See https://example.com/x?a=1&b=2" {
		t.Fatalf("text %q", got)
	}
	found, err := db.Search(context.Background(), store.SearchQuery{Scope: store.Scope{Logins: []string{"app"}}, Text: "EXAMPLE.com/x"})
	if err != nil || len(found) != 1 || found[0].ID != id {
		t.Fatalf("text search: %v %v", found, err)
	}
	for _, inbox := range []string{"alice@example.com", "bob@example.com"} {
		e, err := db.Inbox(context.Background(), store.InboxQuery{Inbox: inbox, Scope: store.Scope{Logins: []string{"app"}}})
		if err != nil || len(e) != 1 || e[0].Message.ID != id {
			t.Fatalf("inbox %s: %v, %v", inbox, e, err)
		}
	}
	// Another login's scope does not see it.
	if _, err := db.Get(context.Background(), id, store.Scope{Logins: []string{"relayed"}}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other login's scope: err = %v, want ErrNotFound", err)
	}
}

func TestHandleRefusals(t *testing.T) {
	g, _, n := setup(t)
	for _, tc := range []struct {
		login string
		code  int
		enh   smtp.EnhancedCode
	}{
		{"gone", 550, smtp.EnhancedCode{5, 7, 1}}, // authenticated under an older policy
	} {
		_, err := g.Handle(context.Background(), envelope(tc.login), strings.NewReader(body))
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != tc.code || se.EnhancedCode != tc.enh {
			t.Errorf("login %s: err = %v, want %d %v", tc.login, err, tc.code, tc.enh)
		}
	}
	if len(n.ids) != 0 {
		t.Fatalf("refused messages were committed: %v", n.ids)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestHandleBodyErrorsCommitNothing(t *testing.T) {
	g, _, n := setup(t)
	_, err := g.Handle(context.Background(), envelope("app"), failingReader{proxy.ErrTooLarge})
	if !errors.Is(err, proxy.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge passed through (the proxy answers 552)", err)
	}
	_, err = g.Handle(context.Background(), envelope("app"), failingReader{errors.New("connection reset")})
	if err == nil {
		t.Fatal("a broken body was accepted")
	}
	if len(n.ids) != 0 {
		t.Fatalf("messages committed despite body errors: %v", n.ids)
	}
}

func TestHandleCancelledContext(t *testing.T) {
	g, _, n := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Handle(ctx, envelope("app"), bytes.NewReader([]byte(body))); err == nil {
		t.Fatal("want an error for a cancelled context")
	}
	if len(n.ids) != 0 {
		t.Fatalf("committed despite cancelled context: %v", n.ids)
	}
}

const featurePolicy = `
server {
  hostname = "gw.test"
  mode     = "capture"
  listen "submission" {
    address = "127.0.0.1:0"
  }
}
features "css" {
  inline_css = true
}
credential "app" {
  password_hash = "$2a$04$abcdefghijklmnopqrstuu1i5s6mBUdFp.6fQ3cO0.fXSDe2T6P6q"
  features      = "css"
}
`

const htmlBody = "From: app@example.com\r\nTo: alice@example.com\r\nSubject: Styled\r\n" +
	"X-Smtpgate-InlineCSS: false\r\nX-Smtpgate-Tags: welcome, onboarding\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p{color:red}</style></head><body><p>Hi</p></body></html>\r\n"

func TestHandleRunsFeatures(t *testing.T) {
	g, db, _ := setupPolicy(t, featurePolicy, pipeline.Pipeline{Inliner: inline.New(inline.Options{})})
	env := envelope("app")
	env.Recipients = []string{"alice@example.com"}
	id, err := g.Handle(context.Background(), env, strings.NewReader(htmlBody))
	if err != nil {
		t.Fatal(err)
	}
	m, err := db.Get(context.Background(), id, store.Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	raw := string(m.Raw)
	// The login may not override inline_css: the header is refused, stripped,
	// and the CSS is inlined anyway.
	if strings.Contains(strings.ToLower(raw), "x-smtpgate-") {
		t.Fatalf("directive header left in the stored message:\n%s", raw)
	}
	if !regexp.MustCompile(`<p style=(3D)?"color: ?red;?">Hi</p>`).MatchString(raw) {
		t.Fatalf("CSS not inlined:\n%s", raw)
	}
	if !strings.Contains(string(m.Original), "X-Smtpgate-InlineCSS: false") {
		t.Fatalf("original not kept as submitted:\n%s", m.Original)
	}
	if got := strings.Join(m.Tags, ","); got != "welcome,onboarding" {
		t.Fatalf("tags = %q", got)
	}
}

func TestHandleRejectsMalformedDirective(t *testing.T) {
	g, _, n := setupPolicy(t, featurePolicy, pipeline.Pipeline{
		Inliner: inline.New(inline.Options{}), Directives: directives.Config{RejectMalformed: true},
	})
	bad := strings.Replace(htmlBody, "X-Smtpgate-InlineCSS: false", "X-Smtpgate-TrackOpens: maybe", 1)
	_, err := g.Handle(context.Background(), envelope("app"), strings.NewReader(bad))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 6, 0}) || !strings.Contains(se.Message, "TrackOpens") {
		t.Fatalf("err = %v, want 550 5.6.0 naming the header", err)
	}
	if len(n.ids) != 0 {
		t.Fatal("a refused message was committed")
	}
}

func TestHandleRelayCreatesDeliveries(t *testing.T) {
	g, _, n := setup(t)
	now := g.now()
	for _, tc := range []struct {
		login   string
		rcpts   []string
		domains []string // one delivery per entry
		idx     [][]int
		maxAge  time.Duration
	}{
		{"relayed", []string{"a@x.test", "b@y.test", "c@x.test"}, []string{""}, [][]int{{0, 1, 2}}, 48 * time.Hour},
		{"mx", []string{"a@x.test", "b@Y.test", "c@x.test", "A@x.test"}, []string{"x.test", "y.test"}, [][]int{{0, 2}, {1}}, relay.DefaultMaxAge},
	} {
		env := envelope(tc.login)
		env.Recipients = tc.rcpts
		if _, err := g.Handle(context.Background(), env, strings.NewReader(body)); err != nil {
			t.Fatalf("%s: %v", tc.login, err)
		}
		m := n.msgs[len(n.msgs)-1]
		if len(m.Deliveries) != len(tc.domains) {
			t.Fatalf("%s: %d deliveries, want %d", tc.login, len(m.Deliveries), len(tc.domains))
		}
		for i, d := range m.Deliveries {
			if d.Domain != tc.domains[i] || d.State != store.DeliveryQueued || !d.NextAttempt.Equal(now) || !d.Expires.Equal(now.Add(tc.maxAge)) {
				t.Errorf("%s delivery %d: %+v", tc.login, i, d)
			}
			var got []int
			for _, r := range d.Recipients {
				got = append(got, r.Index)
				if r.State != store.RecipientPending || r.Address != tc.rcpts[r.Index] {
					t.Errorf("%s: recipient %+v", tc.login, r)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.idx[i]) {
				t.Errorf("%s delivery %d: recipient indexes %v, want %v", tc.login, i, got, tc.idx[i])
			}
		}
		// The summary is made for relayed mail too; the readable text,
		// which only the capture search reads, is not.
		if m.Summary.Subject != "Hello" || m.Text != "" {
			t.Errorf("%s: summary subject %q, text %q: want the subject and no text", tc.login, m.Summary.Subject, m.Text)
		}
		queued := 0
		for _, e := range m.Events {
			if e.Type == store.EventQueued {
				queued++
			}
		}
		if queued != len(store.Inboxes(tc.rcpts)) {
			t.Errorf("%s: %d queued events, want %d", tc.login, queued, len(tc.rcpts))
		}
	}
}

func TestHandleSendAt(t *testing.T) {
	g, _, n := setup(t)
	now := g.now()
	msgWith := func(at time.Time) string {
		return "X-Smtpgate-Send-At: " + at.Format(time.RFC3339) + "\r\n" + body
	}
	// In the future within the limit: held until then.
	if _, err := g.Handle(context.Background(), envelope("relayed"), strings.NewReader(msgWith(now.Add(2*time.Hour)))); err != nil {
		t.Fatal(err)
	}
	if d := n.msgs[0].Deliveries[0]; !d.NextAttempt.Equal(now.Add(2 * time.Hour)) {
		t.Fatalf("next attempt %v, want send-at", d.NextAttempt)
	}
	// In the past: now.
	if _, err := g.Handle(context.Background(), envelope("relayed"), strings.NewReader(msgWith(now.Add(-time.Hour)))); err != nil {
		t.Fatal(err)
	}
	if d := n.msgs[1].Deliveries[0]; !d.NextAttempt.Equal(now) {
		t.Fatalf("next attempt %v, want now", d.NextAttempt)
	}
	// Beyond max_schedule_ahead (default 30 days): refused.
	_, err := g.Handle(context.Background(), envelope("relayed"), strings.NewReader(msgWith(now.Add(31*24*time.Hour))))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 554 || !strings.Contains(se.Message, "max_schedule_ahead") {
		t.Fatalf("err = %v, want 554 naming max_schedule_ahead", err)
	}
	if len(n.msgs) != 2 {
		t.Fatal("the refused message was committed")
	}
}
