package smtpclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/smtpgate/smtpgate/internal/dnstest"
	"github.com/smtpgate/smtpgate/relay/internal/smtptest"
)

const testMsg = "From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: hi\r\n\r\nbody\r\n.leading dot\r\n..two dots\r\n"

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 10 * time.Second
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func deliver(t *testing.T, c *Client, domain string, envs ...Envelope) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	return c.Deliver(ctx, domain, envs, []byte(testMsg))
}

// statuses renders the outcome as "addr=status ...", for compact checks.
func statuses(r *Result) string {
	var b []string
	for _, rc := range r.Recipients {
		b = append(b, rc.Address+"="+rc.Status.String())
	}
	return strings.Join(b, " ")
}

func wantStatuses(t *testing.T, r *Result, want string) {
	t.Helper()
	if got := statuses(r); got != want {
		t.Fatalf("statuses = %q, want %q\nresult: %+v", got, want, r)
	}
}

func wantReply(t *testing.T, r *Result, i int, prefix string) {
	t.Helper()
	if got := r.Recipients[i].Reply; !strings.HasPrefix(got, prefix) {
		t.Errorf("recipient %d reply = %q, want prefix %q", i, got, prefix)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Smarthost: "no-port"},
		{Smarthost: ":25"},
		{Smarthost: "h:25", TLS: "ssl"},
		{StartTLS: "always"},
		{Username: "u"},
		{Port: 70000},
		{Helo: "two words"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
}

// TestSmarthostStartTLSAuth: mandatory STARTTLS, certificate checked
// against the given roots, AUTH PLAIN, EHLO name as configured before and
// after STARTTLS, message bytes unchanged (dot-stuffing undone).
func TestSmarthostStartTLSAuth(t *testing.T) {
	tlsCfg, pool := smtptest.TLSConfig(t, "smarthost.test")
	srv := smtptest.Start(t, smtptest.Options{TLS: tlsCfg, RequireTLS: true, Users: map[string]string{"app": "s3cret"}})
	c := newClient(t, Config{Smarthost: srv.Addr, Username: "app", Password: "s3cret", RootCAs: pool, Helo: "relay.example"})
	r := deliver(t, c, "", Envelope{From: "a@sender.test", To: []string{"b@rcpt.test", "c@rcpt.test"}})
	wantStatuses(t, r, "b@rcpt.test=sent c@rcpt.test=sent")
	wantReply(t, r, 0, "250 2.0.0 Ok: queued as Q1")
	if r.TLS != "TLS 1.3" || r.Host != srv.Addr {
		t.Errorf("TLS %q host %q, want TLS 1.3 on %s", r.TLS, r.Host, srv.Addr)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || !msgs[0].TLS || msgs[0].User != "app" || msgs[0].From != "a@sender.test" {
		t.Fatalf("server got %+v", msgs)
	}
	if string(msgs[0].Raw) != testMsg {
		t.Errorf("bytes changed on the wire:\n%q\nwant\n%q", msgs[0].Raw, testMsg)
	}
	for _, h := range srv.Helos() {
		if h != "relay.example" {
			t.Errorf("EHLO name %q, want relay.example (all: %v)", h, srv.Helos())
		}
	}
}

func TestSmarthostTLSModes(t *testing.T) {
	tlsCfg, pool := smtptest.TLSConfig(t, "smarthost.test")
	_, otherPool := smtptest.TLSConfig(t, "other.test")
	plain := smtptest.Start(t, smtptest.Options{Users: map[string]string{"u": "p"}})
	starttls := smtptest.Start(t, smtptest.Options{TLS: tlsCfg, RequireTLS: true})
	implicit := smtptest.Start(t, smtptest.Options{TLS: tlsCfg, Implicit: true})
	loginOnly := smtptest.Start(t, smtptest.Options{TLS: tlsCfg, Users: map[string]string{"u": "p"}, Mechanisms: []string{sasl.Login}})
	noAuth := smtptest.Start(t, smtptest.Options{TLS: tlsCfg})

	tests := []struct {
		name  string
		cfg   Config
		want  Status
		reply string // prefix of the reply
		user  string // the user the server saw
	}{
		{"starttls trusted", Config{Smarthost: starttls.Addr, RootCAs: pool}, Sent, "250 ", ""},
		{"starttls untrusted certificate", Config{Smarthost: starttls.Addr, RootCAs: otherPool}, Temporary, starttls.Addr + ": TLS handshake: tls: failed to verify certificate", ""},
		{"starttls system roots", Config{Smarthost: starttls.Addr}, Temporary, starttls.Addr + ": TLS handshake: tls: failed to verify certificate", ""},
		{"starttls verification off", Config{Smarthost: starttls.Addr, InsecureSkipVerify: true}, Sent, "250 ", ""},
		{"starttls not offered", Config{Smarthost: plain.Addr}, Temporary, plain.Addr + ": STARTTLS is required but the server does not offer it", ""},
		{"implicit", Config{Smarthost: implicit.Addr, TLS: TLSImplicit, RootCAs: pool}, Sent, "250 ", ""},
		{"implicit untrusted", Config{Smarthost: implicit.Addr, TLS: TLSImplicit}, Temporary, implicit.Addr + ": TLS handshake", ""},
		{"implicit against plain server", Config{Smarthost: plain.Addr, TLS: TLSImplicit, DialTimeout: 2 * time.Second, CommandTimeout: 2 * time.Second}, Temporary, plain.Addr + ": TLS handshake", ""},
		{"none with AUTH in plain text", Config{Smarthost: plain.Addr, TLS: TLSNone, Username: "u", Password: "p"}, Sent, "250 ", "u"},
		{"none without AUTH refused by server", Config{Smarthost: plain.Addr, TLS: TLSNone}, Permanent, "530 5.7.0 Authentication required", ""},
		{"wrong password", Config{Smarthost: plain.Addr, TLS: TLSNone, Username: "u", Password: "x"}, Temporary, plain.Addr + ": AUTH PLAIN: 535 5.7.8", ""},
		{"LOGIN when PLAIN is not offered", Config{Smarthost: loginOnly.Addr, RootCAs: pool, Username: "u", Password: "p"}, Sent, "250 ", "u"},
		{"AUTH not offered", Config{Smarthost: noAuth.Addr, RootCAs: pool, Username: "u", Password: "p"}, Temporary, noAuth.Addr + ": the server does not offer AUTH", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.cfg)
			r := deliver(t, c, "", Envelope{From: "a@sender.test", To: []string{"b@rcpt.test"}})
			if r.Recipients[0].Status != tt.want {
				t.Fatalf("status %v, want %v; reply %q", r.Recipients[0].Status, tt.want, r.Recipients[0].Reply)
			}
			wantReply(t, r, 0, tt.reply)
			if r.Reply != r.Recipients[0].Reply {
				t.Errorf("Result.Reply %q != recipient reply %q", r.Reply, r.Recipients[0].Reply)
			}
			if tt.user != "" {
				var found bool
				for _, srv := range []*smtptest.Server{plain, loginOnly} {
					for _, m := range srv.Messages() {
						found = found || m.User == tt.user
					}
				}
				if !found {
					t.Errorf("no message authenticated as %q", tt.user)
				}
			}
		})
	}
}

// TestPerRecipientReplies: every recipient gets its own reply; DATA goes
// only to the accepted ones, and only when there is one.
func TestPerRecipientReplies(t *testing.T) {
	var dataCalls atomic.Int32
	srv := smtptest.Start(t, smtptest.Options{
		Rcpt: func(_, to string) error {
			switch {
			case strings.HasPrefix(to, "unknown"):
				return smtptest.Reply("550 5.1.1 <" + to + ">: user unknown")
			case strings.HasPrefix(to, "busy"):
				return smtptest.Reply("450 4.2.1 <" + to + ">: mailbox busy")
			}
			return nil
		},
		DataStart: func(string, []string) (int, error) { dataCalls.Add(1); return 0, nil },
	})
	c := newClient(t, Config{Smarthost: srv.Addr, TLS: TLSNone})

	r := deliver(t, c, "", Envelope{From: "a@sender.test", To: []string{"ok@r.test", "unknown@r.test", "busy@r.test"}})
	wantStatuses(t, r, "ok@r.test=sent unknown@r.test=permanent busy@r.test=temporary")
	wantReply(t, r, 0, "250 2.0.0 Ok: queued as Q1")
	wantReply(t, r, 1, "550 5.1.1 <unknown@r.test>: user unknown")
	wantReply(t, r, 2, "450 4.2.1 <busy@r.test>: mailbox busy")
	if r.Reply != "550 5.1.1 <unknown@r.test>: user unknown" {
		t.Errorf("deciding reply %q", r.Reply)
	}
	if srv.Accepted("ok@r.test") != 1 || srv.Accepted("unknown@r.test")+srv.Accepted("busy@r.test") != 0 {
		t.Errorf("server counts: ok=%d unknown=%d busy=%d", srv.Accepted("ok@r.test"), srv.Accepted("unknown@r.test"), srv.Accepted("busy@r.test"))
	}

	r = deliver(t, c, "", Envelope{From: "a@sender.test", To: []string{"unknown@r.test", "busy@r.test"}})
	wantStatuses(t, r, "unknown@r.test=permanent busy@r.test=temporary")
	if n := dataCalls.Load(); n != 1 {
		t.Errorf("DATA sent %d times in all, want 1 (none when every RCPT is refused)", n)
	}
}

func TestTransactionFailures(t *testing.T) {
	tests := []struct {
		name     string
		opts     smtptest.Options
		want     string
		reply    string
		slowDown bool
	}{
		{"MAIL 5xx", smtptest.Options{Mail: func(string) error { return smtptest.Reply("553 5.7.1 sender rejected") }},
			"x@r.test=permanent y@r.test=permanent", "553 5.7.1 sender rejected", false},
		{"MAIL 4xx", smtptest.Options{Mail: func(string) error { return smtptest.Reply("451 4.3.0 try later") }},
			"x@r.test=temporary y@r.test=temporary", "451 4.3.0 try later", false},
		{"DATA final 5xx", smtptest.Options{Data: func(*smtptest.Message) error { return smtptest.Reply("554 5.6.0 content rejected") }},
			"x@r.test=permanent y@r.test=permanent", "554 5.6.0 content rejected", false},
		{"DATA final 4xx", smtptest.Options{Data: func(*smtptest.Message) error { return smtptest.Reply("451 4.7.1 greylisted") }},
			"x@r.test=temporary y@r.test=temporary", "451 4.7.1 greylisted", false},
		{"DATA command 5xx", smtptest.Options{DataStart: func(string, []string) (int, error) { return 0, smtptest.Reply("554 5.5.0 no data for you") }},
			"x@r.test=permanent y@r.test=permanent", "554 5.5.0 no data for you", false},
		{"421 at RCPT", smtptest.Options{Rcpt: func(_, to string) error {
			if to == "y@r.test" {
				return smtptest.Reply("421 4.7.0 too many connections from your IP")
			}
			return nil
		}}, "x@r.test=temporary y@r.test=temporary", "421 4.7.0 too many connections", true},
		{"450 too many messages", smtptest.Options{Mail: func(string) error { return smtptest.Reply("450 4.7.1 too many messages, slow down") }},
			"x@r.test=temporary y@r.test=temporary", "450 4.7.1 too many messages", true},
		{"drop mid-DATA", smtptest.Options{DataStart: func(string, []string) (int, error) { return 20, nil }},
			"x@r.test=temporary y@r.test=temporary", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, tt.opts)
			c := newClient(t, Config{Smarthost: srv.Addr, TLS: TLSNone})
			r := deliver(t, c, "", Envelope{From: "a@sender.test", To: []string{"x@r.test", "y@r.test"}})
			wantStatuses(t, r, tt.want)
			wantReply(t, r, 0, tt.reply)
			wantReply(t, r, 1, tt.reply)
			if r.SlowDown != tt.slowDown {
				t.Errorf("SlowDown = %v, want %v", r.SlowDown, tt.slowDown)
			}
			if n := srv.Accepted("x@r.test"); n != 0 {
				t.Errorf("server accepted x %d times, want 0", n)
			}
		})
	}
}

// TestTimeouts: slow replies within the command timeout deliver; slower
// ones are a temporary failure, and so is a cancelled context.
func TestTimeouts(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Delay: 300 * time.Millisecond})
	env := Envelope{From: "a@sender.test", To: []string{"x@r.test"}}

	r := deliver(t, newClient(t, Config{Smarthost: srv.Addr, TLS: TLSNone, CommandTimeout: 5 * time.Second}), "", env)
	wantStatuses(t, r, "x@r.test=sent")

	r = deliver(t, newClient(t, Config{Smarthost: srv.Addr, TLS: TLSNone, CommandTimeout: 100 * time.Millisecond}), "", env)
	wantStatuses(t, r, "x@r.test=temporary")
	wantReply(t, r, 0, "read tcp")
	if !strings.Contains(r.Recipients[0].Reply, "timeout") {
		t.Errorf("reply %q does not say timeout", r.Recipients[0].Reply)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	r = newClient(t, Config{Smarthost: srv.Addr, TLS: TLSNone}).Deliver(ctx, "", []Envelope{env}, []byte(testMsg))
	wantStatuses(t, r, "x@r.test=temporary")
	wantReply(t, r, 0, "attempt interrupted (context deadline exceeded)")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled delivery took %v", d)
	}
	if n := srv.Accepted("x@r.test"); n != 1 {
		t.Errorf("server accepted x %d times, want 1 (only the first delivery)", n)
	}
}

// TestSeveralEnvelopes: per-recipient senders (VERP) share one session;
// a refused sender does not stop the others.
func TestSeveralEnvelopes(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{
		Mail: func(from string) error {
			if strings.HasPrefix(from, "bad") {
				return smtptest.Reply("550 5.7.1 sender refused")
			}
			return nil
		},
		Rcpt: func(_, to string) error {
			if to == "gone@r.test" {
				return smtptest.Reply("550 5.1.1 gone")
			}
			return nil
		},
	})
	c := newClient(t, Config{Smarthost: srv.Addr, TLS: TLSNone})
	r := deliver(t, c, "",
		Envelope{From: "b-1@bounce.test", To: []string{"one@r.test"}},
		Envelope{From: "bad-2@bounce.test", To: []string{"two@r.test"}},
		Envelope{From: "b-3@bounce.test", To: []string{"gone@r.test"}},
		Envelope{From: "", To: []string{"four@r.test", "bad\r\naddress@r.test"}},
	)
	wantStatuses(t, r, "one@r.test=sent two@r.test=permanent gone@r.test=permanent four@r.test=sent bad\r\naddress@r.test=permanent")
	wantReply(t, r, 4, "501 5.1.3 invalid recipient address")
	if srv.Sessions() != 1 {
		t.Errorf("%d sessions, want 1", srv.Sessions())
	}
	var froms []string
	for _, m := range srv.Messages() {
		froms = append(froms, fmt.Sprintf("%s>%s", m.From, strings.Join(m.To, ",")))
	}
	if got := strings.Join(froms, " "); got != "b-1@bounce.test>one@r.test >four@r.test" {
		t.Errorf("server got %q", got)
	}
}

// TestSMTPUTF8: a non-ASCII address needs SMTPUTF8 (go-smtp's server does
// not offer it by default).
func TestSMTPUTF8(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	c := newClient(t, Config{Smarthost: srv.Addr, TLS: TLSNone})
	r := deliver(t, c, "", Envelope{From: "a@sender.test", To: []string{"jörg@r.test"}})
	wantStatuses(t, r, "jörg@r.test=permanent")
	wantReply(t, r, 0, "553 5.6.7")
}

// mxZone publishes test domains whose hosts are loopback addresses; the
// receivers listen on port 'port' of those addresses.
func mxZone(t *testing.T) *dnstest.Server {
	z := dnstest.Start(t)
	z.AddMX("one.test", 10, "mx.one.test")
	z.AddA("mx.one.test", "127.0.0.1")

	z.AddA("implicit.test", "127.0.0.1")

	z.AddMX("null.test", 0, ".")

	z.AddMX("servfail.test", 10, "mx.servfail.test")
	z.SetRcode("servfail.test", dns.TypeMX, dns.RcodeServerFailure)

	// The preferred MX refuses connections (nothing listens on
	// 127.0.0.2), the second one works.
	z.AddMX("backup.test", 10, "down.backup.test")
	z.AddMX("backup.test", 20, "up.backup.test")
	z.AddA("down.backup.test", "127.0.0.2")
	z.AddA("up.backup.test", "127.0.0.1")

	// The preferred MX answers 421 at connect (a Banner on 127.0.0.3).
	z.AddMX("busy.test", 10, "busy.busy.test")
	z.AddMX("busy.test", 20, "up.busy.test")
	z.AddA("busy.busy.test", "127.0.0.3")
	z.AddA("up.busy.test", "127.0.0.1")

	// Every MX is down.
	z.AddMX("alldown.test", 10, "a.alldown.test")
	z.AddMX("alldown.test", 20, "b.alldown.test")
	z.AddA("a.alldown.test", "127.0.0.2")
	z.AddA("b.alldown.test", "127.0.0.4")

	// The MX host has no address.
	z.AddMX("noaddr.test", 10, "ghost.noaddr.test")
	return z
}

func TestDirectMX(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	banner := smtptest.StartBanner(t, fmt.Sprintf("127.0.0.3:%d", srv.Port), "421 4.7.0 busy.test Too many connections, try later")
	z := mxZone(t)
	c := newClient(t, Config{Resolver: z.Resolver(), Port: srv.Port, Helo: "relay.example", DialTimeout: 2 * time.Second})

	tests := []struct {
		domain   string
		want     Status
		reply    string
		host     string // the host the session was held with (or last tried)
		failed   int    // hosts that could not be used
		slowDown bool
	}{
		{domain: "one.test", want: Sent, reply: "250 2.0.0 Ok", host: "mx.one.test"},
		{domain: "implicit.test", want: Sent, reply: "250 2.0.0 Ok", host: "implicit.test"},
		{domain: "backup.test", want: Sent, reply: "250 2.0.0 Ok", host: "up.backup.test", failed: 1},
		{domain: "busy.test", want: Sent, reply: "250 2.0.0 Ok", host: "up.busy.test", failed: 1, slowDown: true},
		{domain: "null.test", want: Permanent, reply: "556 5.1.10 null.test"},
		{domain: "nxdomain.test", want: Permanent, reply: "550 5.1.2 nxdomain.test"},
		{domain: "servfail.test", want: Temporary, reply: "451 4.4.3 servfail.test: MX lookup failed"},
		{domain: "alldown.test", want: Temporary, reply: "b.alldown.test:" + fmt.Sprint(srv.Port) + ": dial tcp 127.0.0.4", host: "b.alldown.test", failed: 2},
		{domain: "noaddr.test", want: Temporary, reply: "ghost.noaddr.test: address lookup", failed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			before := srv.Accepted("u@" + tt.domain)
			r := deliver(t, c, tt.domain, Envelope{From: "a@sender.test", To: []string{"u@" + tt.domain}})
			if r.Recipients[0].Status != tt.want {
				t.Fatalf("status %v, want %v: %+v", r.Recipients[0].Status, tt.want, r)
			}
			wantReply(t, r, 0, tt.reply)
			if tt.host != "" && r.Host != fmt.Sprintf("%s:%d", tt.host, srv.Port) {
				t.Errorf("host %q, want %s:%d", r.Host, tt.host, srv.Port)
			}
			if len(r.Failed) != tt.failed {
				t.Errorf("failed hosts %q, want %d", r.Failed, tt.failed)
			}
			if r.SlowDown != tt.slowDown {
				t.Errorf("SlowDown %v, want %v", r.SlowDown, tt.slowDown)
			}
			delivered := srv.Accepted("u@"+tt.domain) - before
			if (tt.want == Sent) != (delivered == 1) {
				t.Errorf("server accepted %d copies", delivered)
			}
		})
	}
	if banner.Connections() != 1 {
		t.Errorf("the 421 host got %d connections, want 1", banner.Connections())
	}
	for _, h := range srv.Helos() {
		if h != "relay.example" {
			t.Errorf("EHLO %q, want relay.example", h)
		}
	}
}

// TestDirectMXStartTLS: opportunistic STARTTLS encrypts when offered
// (certificate unchecked) and falls back to plain text only when it is not
// offered; "require" makes a host without STARTTLS or with a bad
// certificate a temporary failure.
func TestDirectMXStartTLS(t *testing.T) {
	tlsCfg, pool := smtptest.TLSConfig(t, "mx.tls.test")
	withTLS := smtptest.Start(t, smtptest.Options{TLS: tlsCfg})
	plain := smtptest.Start(t, smtptest.Options{})
	z := dnstest.Start(t)
	z.AddMX("tls.test", 10, "mx.tls.test")
	z.AddA("mx.tls.test", "127.0.0.1")
	z.AddMX("wrongname.test", 10, "other.wrongname.test")
	z.AddA("other.wrongname.test", "127.0.0.1")

	tests := []struct {
		name   string
		srv    *smtptest.Server
		domain string
		cfg    Config
		want   Status
		tls    bool
		reply  string
	}{
		{"opportunistic, offered", withTLS, "tls.test", Config{}, Sent, true, "250 "},
		{"opportunistic, untrusted certificate still encrypts", withTLS, "wrongname.test", Config{}, Sent, true, "250 "},
		{"opportunistic, not offered", plain, "tls.test", Config{}, Sent, false, "250 "},
		{"require, trusted", withTLS, "tls.test", Config{StartTLS: StartTLSRequire, RootCAs: pool}, Sent, true, "250 "},
		{"require, untrusted", withTLS, "tls.test", Config{StartTLS: StartTLSRequire}, Temporary, false, "mx.tls.test:"},
		{"require, name mismatch", withTLS, "wrongname.test", Config{StartTLS: StartTLSRequire, RootCAs: pool}, Temporary, false, "other.wrongname.test:"},
		{"require, verification off", withTLS, "wrongname.test", Config{StartTLS: StartTLSRequire, InsecureSkipVerify: true}, Sent, true, "250 "},
		{"require, not offered", plain, "tls.test", Config{StartTLS: StartTLSRequire}, Temporary, false, "mx.tls.test:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Resolver, cfg.Port, cfg.Helo = z.Resolver(), tt.srv.Port, "relay.example"
			before := len(tt.srv.Messages())
			r := deliver(t, newClient(t, cfg), tt.domain, Envelope{From: "a@sender.test", To: []string{"u@" + tt.domain}})
			if r.Recipients[0].Status != tt.want {
				t.Fatalf("status %v, want %v: %+v", r.Recipients[0].Status, tt.want, r)
			}
			wantReply(t, r, 0, tt.reply)
			msgs := tt.srv.Messages()[before:]
			if tt.want != Sent {
				if len(msgs) != 0 {
					t.Fatalf("server got %d messages", len(msgs))
				}
				return
			}
			if len(msgs) != 1 || msgs[0].TLS != tt.tls || (r.TLS != "") != tt.tls {
				t.Fatalf("TLS: result %q, server %+v, want %v", r.TLS, msgs, tt.tls)
			}
			if msgs[0].Helo != "relay.example" {
				t.Errorf("EHLO %q", msgs[0].Helo)
			}
		})
	}
}

// TestMaxAddresses: a domain with more MX hosts than MaxAddresses stops
// after that many.
func TestMaxAddresses(t *testing.T) {
	z := dnstest.Start(t)
	for i := range 4 {
		h := fmt.Sprintf("mx%d.many.test", i)
		z.AddMX("many.test", uint16(10*(i+1)), h)
		z.AddA(h, fmt.Sprintf("127.0.0.%d", 2+i))
	}
	c := newClient(t, Config{Resolver: z.Resolver(), Port: smtptest.ClosedPort(t), MaxAddresses: 2})
	r := deliver(t, c, "many.test", Envelope{From: "a@s.test", To: []string{"u@many.test"}})
	wantStatuses(t, r, "u@many.test=temporary")
	if len(r.Failed) != 2 {
		t.Errorf("tried %q, want 2 hosts", r.Failed)
	}
}

func TestNoRecipients(t *testing.T) {
	c := newClient(t, Config{Smarthost: "127.0.0.1:1", TLS: TLSNone})
	r := c.Deliver(t.Context(), "", nil, []byte(testMsg))
	if len(r.Recipients) != 0 || r.Host != "" {
		t.Errorf("Deliver without recipients = %+v", r)
	}
}

func TestStatusString(t *testing.T) {
	for st, want := range map[Status]string{Sent: "sent", Permanent: "permanent", Temporary: "temporary", Status(9): "temporary"} {
		if st.String() != want {
			t.Errorf("%d.String() = %q", st, st.String())
		}
	}
}

// TestSessionReuse: sessions are kept for the next delivery to the same
// destination (one TLS handshake and AUTH for many messages), reused without
// a probe, replaced when the server closed them or they idled too long, and
// never shared between destinations.
func TestSessionReuse(t *testing.T) {
	tlsCfg, pool := smtptest.TLSConfig(t, "smarthost.test")
	srv := smtptest.Start(t, smtptest.Options{TLS: tlsCfg, RequireTLS: true, Users: map[string]string{"u": "p"}})
	c := newClient(t, Config{Smarthost: srv.Addr, RootCAs: pool, Username: "u", Password: "p", MaxIdle: 2, IdleTimeout: time.Minute})
	for i := range 5 {
		r := deliver(t, c, "", Envelope{From: "a@s.test", To: []string{fmt.Sprintf("r%d@r.test", i)}})
		wantStatuses(t, r, fmt.Sprintf("r%d@r.test=sent", i))
		if r.TLS == "" {
			t.Errorf("delivery %d: no TLS reported on a reused session", i)
		}
	}
	if n := srv.Connections(); n != 1 {
		t.Errorf("%d connections for 5 sequential deliveries, want 1", n)
	}
	for _, m := range srv.Messages() {
		if !m.TLS || m.User != "u" {
			t.Errorf("message over TLS %v as %q", m.TLS, m.User)
		}
	}
	// A transaction that ended without DATA leaves the session usable.
	refusing := smtptest.Start(t, smtptest.Options{Rcpt: func(_, to string) error {
		if strings.HasPrefix(to, "no") {
			return smtptest.Reply("550 5.1.1 no")
		}
		return nil
	}})
	c2 := newClient(t, Config{Smarthost: refusing.Addr, TLS: TLSNone, MaxIdle: 1, IdleTimeout: time.Minute})
	wantStatuses(t, deliver(t, c2, "", Envelope{From: "a@s.test", To: []string{"no@r.test"}}), "no@r.test=permanent")
	wantStatuses(t, deliver(t, c2, "", Envelope{From: "a@s.test", To: []string{"yes@r.test"}}), "yes@r.test=sent")
	if n := refusing.Connections(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}

	// CloseIdle(true) ends them: the next delivery connects again.
	c.CloseIdle(true)
	deliver(t, c, "", Envelope{From: "a@s.test", To: []string{"after-close@r.test"}})
	if n := srv.Connections(); n != 2 {
		t.Errorf("%d connections after CloseIdle, want 2", n)
	}
}

func TestSessionReuseStale(t *testing.T) {
	// The server hangs up on idle connections after 500 ms.
	srv := smtptest.Start(t, smtptest.Options{IdleTimeout: 500 * time.Millisecond})
	c := newClient(t, Config{Smarthost: srv.Addr, TLS: TLSNone, MaxIdle: 1, IdleTimeout: time.Minute})
	wantStatuses(t, deliver(t, c, "", Envelope{From: "a@s.test", To: []string{"one@r.test"}}), "one@r.test=sent")
	time.Sleep(time.Second)
	r := deliver(t, c, "", Envelope{From: "a@s.test", To: []string{"two@r.test"}})
	wantStatuses(t, r, "two@r.test=sent")
	if n := srv.Connections(); n != 2 {
		t.Errorf("%d connections, want 2 (the closed one replaced)", n)
	}
	if r.SlowDown {
		t.Error("the idle server's 421 was taken for a slow-down")
	}

	// Our own idle timeout: the session is not reused after it.
	srv2 := smtptest.Start(t, smtptest.Options{})
	c2 := newClient(t, Config{Smarthost: srv2.Addr, TLS: TLSNone, MaxIdle: 1, IdleTimeout: 50 * time.Millisecond})
	deliver(t, c2, "", Envelope{From: "a@s.test", To: []string{"one@r.test"}})
	time.Sleep(100 * time.Millisecond)
	deliver(t, c2, "", Envelope{From: "a@s.test", To: []string{"two@r.test"}})
	if n := srv2.Connections(); n != 2 {
		t.Errorf("%d connections, want 2 (idle timeout)", n)
	}

	// Sessions are per destination domain with MX.
	z := dnstest.Start(t)
	z.AddA("d1.test", "127.0.0.1")
	z.AddA("d2.test", "127.0.0.1")
	srv3 := smtptest.Start(t, smtptest.Options{})
	c3 := newClient(t, Config{Resolver: z.Resolver(), Port: srv3.Port, MaxIdle: 1, IdleTimeout: time.Minute})
	for _, d := range []string{"d1.test", "d2.test", "d1.test", "d2.test"} {
		wantStatuses(t, deliver(t, c3, d, Envelope{From: "a@s.test", To: []string{"u@" + d}}), "u@"+d+"=sent")
	}
	if n := srv3.Connections(); n != 2 {
		t.Errorf("%d connections for two domains, want 2", n)
	}
}

// FuzzReadReply feeds arbitrary server output to the reply reader used for
// the greeting, EHLO and STARTTLS. A refused reply must become a one-line
// "code [x.y.z] text" (it is stored as an event's reply), whatever the
// server sent, and nothing may panic.
func FuzzReadReply(f *testing.F) {
	f.Add([]byte("250 2.0.0 Ok\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tp := textproto.NewConn(readWriteNop{bytes.NewReader(data)})
		code, msg, err := readReply(tp, 250)
		_ = hasExtension(msg, "STARTTLS")
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			if err == nil && code != 250 {
				t.Fatalf("no error for code %d", code)
			}
			return
		}
		r := replyOf(err)
		if strings.ContainsAny(r, "\r\n") {
			t.Fatalf("reply %q spans lines", r)
		}
		if !strings.HasPrefix(r, strconv.Itoa(se.Code)) {
			t.Fatalf("reply %q does not start with code %d", r, se.Code)
		}
	})
}

type readWriteNop struct{ io.Reader }

func (readWriteNop) Write(p []byte) (int, error) { return len(p), nil }
func (readWriteNop) Close() error                { return nil }
