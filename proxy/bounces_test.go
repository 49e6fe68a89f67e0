package proxy

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/smtpgate/smtpgate/internal/testutil"
)

// sendBounce delivers body from the null sender to rcpt with go-smtp's
// client, which is what a mail server returning a DSN does.
func sendBounce(t *testing.T, c *smtp.Client, rcpt, body string) *smtp.DataResponse {
	t.Helper()
	return testutil.Transaction(t, c, "", []string{rcpt}, body)
}

func TestBounceListenerEnvelope(t *testing.T) {
	ts := startServer(t, nil)
	body := "From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered\r\n\r\nno such user\r\n"
	t.Run("plaintext", func(t *testing.T) {
		c, err := smtp.Dial(ts.addr("bounces"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("mx.example.org"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Extension("AUTH"); ok {
			t.Error("AUTH advertised on a bounces listener")
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			t.Error("STARTTLS not offered on a bounces listener")
		}
		err = c.Auth(sasl.NewPlainClient("", "alice", "secret"))
		if se, ok := errors.AsType[*smtp.SMTPError](err); !ok || se.Code != 502 {
			t.Errorf("AUTH with right credentials: %v, want 502", err)
		}
		resp := sendBounce(t, c, "b+ok@bounce.test", body)
		if resp.StatusText != "2.0.0 queued as MSG0001" {
			t.Errorf("DATA response %q", resp.StatusText)
		}
		env := lastBounce(t, ts).env
		switch {
		case env.Login != nil:
			t.Errorf("Login %v on a bounces listener", env.Login)
		case env.TLS != nil:
			t.Error("TLS state on a plaintext connection")
		case env.MailFrom != "":
			t.Errorf("MailFrom %q, want the null sender", env.MailFrom)
		case strings.Join(env.Recipients, ",") != "b+ok@bounce.test":
			t.Errorf("Recipients %q", env.Recipients)
		case env.Listener != "bounces" || env.Helo != "mx.example.org":
			t.Errorf("Listener %q Helo %q", env.Listener, env.Helo)
		}
	})
	t.Run("STARTTLS", func(t *testing.T) {
		c, err := smtp.DialStartTLS(ts.addr("bounces"), ts.clientTLS)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("mx.example.org"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Extension("AUTH"); ok {
			t.Error("AUTH advertised on a bounces listener after STARTTLS")
		}
		sendBounce(t, c, "b+ok@bounce.test", body)
		if env := lastBounce(t, ts).env; env.TLS == nil || !env.TLS.HandshakeComplete {
			t.Errorf("TLS %+v after STARTTLS", env.TLS)
		}
	})
	if n := len(ts.handler.messages()); n != 0 {
		t.Errorf("the submission Handler got %d bounces", n)
	}
	if n := len(ts.bounces.messages()); n != 2 {
		t.Errorf("the BounceReceiver got %d messages, want 2", n)
	}
}

func lastBounce(t *testing.T, ts *testServer) committed {
	t.Helper()
	msgs := ts.bounces.messages()
	if len(msgs) == 0 {
		t.Fatal("no bounce committed")
	}
	return msgs[len(msgs)-1]
}

func TestBounceSubmissionSeparation(t *testing.T) {
	ts := startServer(t, nil)
	// A login's MAIL on the bounces listener is just a sender: it cannot
	// relay through it.
	c := dial(t, ts.addr("bounces"))
	c.Do("EHLO client.test", "250 ")
	c.StartTLS(ts.clientTLS)
	c.Do("EHLO client.test", "250 ")
	c.Do("AUTH PLAIN "+plainIR("", "alice", "secret"), "502 5.5.1")
	c.Do("MAIL FROM:<alice@example.com>", "250 ")
	c.Do("RCPT TO:<rcpt@example.net>", "550 5.7.1 Relay access denied")
	// And the submission listeners take no bounces without AUTH.
	s := dial(t, ts.addr("submission"))
	s.Do("EHLO mx.example.org", "250 ")
	s.Do("MAIL FROM:<>", "530 5.7.0")
	s.StartTLS(ts.clientTLS)
	s.Do("EHLO mx.example.org", "250 ")
	s.Do("MAIL FROM:<>", "530 5.7.0 Authentication required")
	ts.auth.mu.Lock()
	defer ts.auth.mu.Unlock()
	if ts.auth.calls != 0 {
		t.Errorf("Authenticator called %d times", ts.auth.calls)
	}
}

func TestBounceOversize(t *testing.T) {
	// MaxMessageBytes above MaxBounceBytes: the bounces listener keeps
	// its own limit on the DATA that arrives, not only in its EHLO.
	ts := startServer(t, nil, withLimits(mergeTestLimits(Limits{MaxMessageBytes: MaxBounceBytes + 1<<20})))
	ts.bounces.results = make(chan error, 1)
	c := dial(t, ts.addr("bounces"))
	c.Do("EHLO mx.example.org", "250 ")
	c.Do("MAIL FROM:<>", "250 ")
	c.Do("RCPT TO:<b+ok@bounce.test>", "250 ")
	c.Do("DATA", "354 ")
	line := strings.Repeat("z", 998) + "\r\n"
	big := "Subject: big\r\n\r\n" + strings.Repeat(line, MaxBounceBytes/len(line)+10)
	c.Write(big + ".\r\n")
	c.Expect("552 5.3.4")
	if err := <-ts.bounces.results; !errors.Is(err, ErrTooLarge) {
		t.Errorf("BounceReceiver got %v, want ErrTooLarge", err)
	}
	if n := len(ts.bounces.messages()); n != 0 {
		t.Fatalf("%d oversize bounces committed", n)
	}
	c.Do("NOOP", "250 ")
}

func TestBounceFailedSTARTTLSEndsConnection(t *testing.T) {
	ts := startServer(t, nil)
	dial(t, ts.addr("bounces")).plaintextAfterSTARTTLS("mx.example.org", "")
}

func TestBounceProxyProtocol(t *testing.T) {
	ts := startServer(t, nil, withProxyListeners())
	c := dialRaw(t, ts.addr("pp-bounces"))
	c.Write("PROXY TCP6 2001:db8::25 2001:db8::1 41000 25\r\n")
	c.Expect("220 mx.test")
	c.Do("EHLO mx.example.org", "250 ")
	c.Do("MAIL FROM:<>", "250 ")
	c.Do("RCPT TO:<b+ok@bounce.test>", "250 ")
	c.Do("DATA", "354 ")
	c.Write("Subject: dsn\r\n\r\nx\r\n.\r\n")
	c.Expect("250 2.0.0 queued as")
	env := lastBounce(t, ts).env
	if got := netip.MustParseAddrPort(env.RemoteAddr.String()); got != netip.MustParseAddrPort("[2001:db8::25]:41000") || env.Listener != "pp-bounces" {
		t.Errorf("RemoteAddr %v on %q", env.RemoteAddr, env.Listener)
	}
	t.Run("no header is dropped", func(t *testing.T) {
		c := dialRaw(t, ts.addr("pp-bounces"))
		c.Write("EHLO mx.example.org\r\n")
		c.ExpectClosed()
	})
}

func TestBounceShutdown(t *testing.T) {
	ts := startServer(t, nil)
	idle := dial(t, ts.addr("bounces"))
	idle.Do("EHLO mx.example.org", "250 ")
	busy := dial(t, ts.addr("bounces"))
	busy.Do("EHLO mx.example.org", "250 ")
	busy.Do("MAIL FROM:<>", "250 ")
	busy.Do("RCPT TO:<b+ok@bounce.test>", "250 ")
	busy.Do("DATA", "354 ")
	busy.Write("Subject: in flight\r\n\r\n")

	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(context.Background()) }()
	idle.Expect("421 4.4.2")
	idle.ExpectClosed()
	busy.Write("finished after shutdown began\r\n.\r\n")
	busy.Expect("250 2.0.0 queued as")
	busy.Cmd("MAIL FROM:<>")
	busy.Expect("421 ")
	busy.ExpectClosed()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := len(ts.bounces.messages()); n != 1 {
		t.Fatalf("%d bounces committed, want 1", n)
	}
}

func TestBounceLogging(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	ts := startServer(t, zap.New(core))
	c := dial(t, ts.addr("bounces"))
	c.Do("EHLO mx.example.org", "250 ")
	c.Do("MAIL FROM:<>", "250 ")
	c.Do("RCPT TO:<victim@example.net>", "550 5.7.1")
	reply := c.Do("RCPT TO:<b+temp@bounce.test>", "451 4.3.0")
	if strings.Contains(reply, "secret") || strings.Contains(reply, "store") {
		t.Errorf("reply %q leaks the check's error", reply)
	}
	refused := logs.FilterMessage("bounce recipient refused").All()
	if len(refused) != 1 || refused[0].ContextMap()["rcpt"] != "victim@example.net" || refused[0].ContextMap()["code"] != int64(550) {
		t.Errorf("refusal log entries %v", refused)
	}
	failed := logs.FilterMessage("bounce recipient check failed").All()
	if len(failed) != 1 || failed[0].Level != zapcore.ErrorLevel || !strings.Contains(toString(failed[0].ContextMap()["error"]), errCheckBackend.Error()) {
		t.Errorf("check failure log entries %v", failed)
	}
}
