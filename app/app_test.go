package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap/zaptest"

	"github.com/smtpgate/smtpgate/policy"
	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/webhook"
)

const trackingPolicy = `
server {
  hostname = "app.test"
  mode     = "capture"
  data_dir = "%[1]s"
  listen "submission" {
    address = "127.0.0.1:0"
    tls     = "starttls"
  }
  http {
    address    = "127.0.0.1:0"
    public_url = "http://t.app.test/track"
  }
}
tracking {
  secret = "0123456789abcdef0123456789abcdef"
}
features "all" {
  inline_css   = true
  track_clicks = true
  track_opens  = true
}
credential "news" {
  password_hash = "%[2]s"
  features      = "all"
}
api_key "k" {
  key    = "key-for-news-0123"
  logins = ["news"]
}
`

// startApp runs an App on ephemeral ports with the given policy template
// (%[1]s = data dir, %[2]s = password hash of "pw").
func startApp(t *testing.T, tmpl string) *App {
	t.Helper()
	dir := t.TempDir()
	hash, err := policy.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(tmpl, filepath.Join(dir, "data"), hash)), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), Options{PolicyPath: path, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return a
}

func send(t *testing.T, a *App, user, from, to, msg string) string {
	t.Helper()
	c, err := smtp.DialStartTLS(a.SMTPAddr("submission").String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, "pw")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, msg)
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`queued as ([0-9a-z]{26})`).FindStringSubmatch(resp.StatusText)
	if m == nil {
		t.Fatalf("reply %q has no queue id", resp.StatusText)
	}
	return m[1]
}

const newsletter = "From: News <news@example.com>\r\nTo: reader@example.com\r\nSubject: Weekly\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
	"<html><head><style>.b{font-weight:bold}</style></head><body><p class=\"b\">Hi</p>" +
	"<a href=\"https://shop.example.com/sale?a=1&amp;b=2\">Sale</a></body></html>\r\n"

func TestTrackingEndToEnd(t *testing.T) {
	a := startApp(t, trackingPolicy)
	id := send(t, a, "news", "news@example.com", "reader@example.com", newsletter)

	m, err := a.Store().Get(context.Background(), id, store.Scope{Logins: []string{"news"}})
	if err != nil {
		t.Fatal(err)
	}
	raw := string(m.Raw)
	if !strings.Contains(raw, `style="font-weight: bold"`) && !strings.Contains(raw, `style=3D"font-weight: bold"`) {
		t.Errorf("CSS not inlined:\n%s", raw)
	}
	click := regexp.MustCompile(`http://t\.app\.test/track/c/[A-Za-z0-9_-]+`).FindString(raw)
	open := regexp.MustCompile(`http://t\.app\.test/track/o/[A-Za-z0-9_-]+`).FindString(raw)
	if click == "" || open == "" {
		t.Fatalf("no tracked link or pixel in:\n%s", raw)
	}
	if m.Original == nil || !strings.Contains(string(m.Original), "https://shop.example.com/sale?a=1&amp;b=2") {
		t.Fatal("original not kept")
	}

	// Redeem both tokens through the real HTTP listener (the public URL's
	// host is not resolvable here: send the path to our listener).
	base := "http://" + a.HTTPAddr().String()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", base+strings.TrimPrefix(click, "http://t.app.test"), nil)
	req.Header.Set("User-Agent", "test-reader/1.0")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://shop.example.com/sale?a=1&b=2" {
		t.Fatalf("click: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = hc.Get(base + strings.TrimPrefix(open, "http://t.app.test"))
	if err != nil {
		t.Fatal(err)
	}
	gif, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(gif) != 43 || resp.Header.Get("Content-Type") != "image/gif" {
		t.Fatalf("open: %d %d bytes %q", resp.StatusCode, len(gif), resp.Header.Get("Content-Type"))
	}
	// A tampered token is a 404, never a redirect.
	resp, err = hc.Get(base + strings.TrimPrefix(click, "http://t.app.test") + "x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("tampered click token: %d", resp.StatusCode)
	}

	evs, err := a.Store().Events(context.Background(), store.EventQuery{MessageID: id, Scope: store.Scope{Logins: []string{"news"}}})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
		if e.Type == store.EventClicked && (e.URL != "https://shop.example.com/sale?a=1&b=2" || e.UserAgent != "test-reader/1.0" || e.Recipient != "reader@example.com") {
			t.Errorf("click event %+v", e)
		}
	}
	if got := strings.Join(types, ","); got != "captured,clicked,opened" {
		t.Fatalf("events %s, want captured,clicked,opened", got)
	}
}

func TestExplain(t *testing.T) {
	hash, _ := policy.HashPassword("pw")
	src := fmt.Sprintf(trackingPolicy, t.TempDir(), hash)
	src = strings.Replace(src, `features      = "all"`, "features      = \"all\"\n  overridable = [\"track_opens\"]", 1)
	pol, err := policy.Parse("p.hcl", []byte(src), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg := strings.Replace(newsletter, "Subject: Weekly\r\n", "Subject: Weekly\r\nX-Smtpgate-TrackOpens: no\r\nX-Smtpeter-TrackClicks: no\r\n", 1)
	var b strings.Builder
	if err := Explain(&b, pol, "news", []byte(msg)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^track_opens\s+on\s+off\s+header: X-Smtpgate-TrackOpens: no$`),
		regexp.MustCompile(`(?m)^track_clicks\s+on\s+on\s+policy; header refused: X-Smtpeter-TrackClicks: no$`),
		regexp.MustCompile(`(?m)^inline_css\s+on\s+on\s+policy$`),
		regexp.MustCompile(`X-Smtpeter-TrackClicks: no  -> refused \(track_clicks is not overridable`),
		regexp.MustCompile(`CSS inlined in 1; 1 links tracked; 0 open pixel`),
	} {
		if !want.MatchString(out) {
			t.Errorf("explanation lacks %s:\n%s", want, out)
		}
	}
	if err := Explain(&b, pol, "nobody", []byte(msg)); err == nil {
		t.Error("unknown login explained")
	}
}

func TestWebhookOnCapture(t *testing.T) {
	type got struct {
		body []byte
		sig  string
	}
	ch := make(chan got, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- got{b, r.Header.Get("Smtpgate-Signature")}
	}))
	defer srv.Close()
	tmpl := trackingPolicy + `
webhook "hooks" {
  url    = "` + srv.URL + `/mail"
  secret = "whsec-0123456789abcdef"
  events = ["captured"]
}
`
	a := startApp(t, tmpl)
	id := send(t, a, "news", "news@example.com", "reader@example.com", newsletter)
	select {
	case g := <-ch:
		if err := webhook.Verify([]byte("whsec-0123456789abcdef"), g.sig, g.body, time.Now(), 5*time.Minute); err != nil {
			t.Fatalf("signature: %v", err)
		}
		var p struct {
			Event     string `json:"event"`
			MessageID string `json:"message_id"`
			Login     string `json:"login"`
			Recipient string `json:"recipient"`
		}
		if err := json.Unmarshal(g.body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Event != "captured" || p.MessageID != id || p.Login != "news" || p.Recipient != "reader@example.com" {
			t.Fatalf("payload %s", g.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook within 10s")
	}
}

const bouncePolicy = `
server {
  hostname = "app.test"
  mode     = "relay"
  data_dir = "%[1]s"
  listen "submission" {
    address = "127.0.0.1:0"
    tls     = "starttls"
  }
  listen "mx" {
    address = "127.0.0.1:0"
    tls     = "starttls"
    purpose = "bounces"
  }
  http {
    address = "127.0.0.1:0"
  }
}
tracking {
  secret        = "0123456789abcdef0123456789abcdef"
  bounce_domain = "bounces.app.test"
}
features "b" {
  track_bounces = true
}
relay "nowhere" {
  address = "127.0.0.1:9"
  tls     = "none"
}
credential "news" {
  password_hash = "%[2]s"
  features      = "b"
  route         = "nowhere"
}
`

func TestBounceListener(t *testing.T) {
	a := startApp(t, bouncePolicy)
	id := send(t, a, "news", "news@example.com", "gone@example.net", "From: news@example.com\r\nTo: gone@example.net\r\nSubject: hi\r\n\r\nhello\r\n")
	m, err := a.Store().Get(context.Background(), id, store.Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(m.ReturnPath, "@bounces.app.test") || !strings.HasPrefix(m.ReturnPath, "b+") {
		t.Fatalf("return path %q is not a VERP address", m.ReturnPath)
	}
	dsn := "From: MAILER-DAEMON@mx.example.net\r\nTo: " + m.ReturnPath + "\r\nSubject: Undelivered Mail Returned to Sender\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n" +
		"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n" +
		"Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown\r\n" +
		"--b1--\r\n"
	// A bounces listener takes mail without AUTH, over plain SMTP too, only for VERP addresses.
	c, err := smtp.Dial(a.SMTPAddr("mx").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("someone@example.org", nil); err == nil {
		t.Fatal("bounces listener relays to an arbitrary address")
	}
	if err := c.Rcpt(m.ReturnPath, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, dsn)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	evs, err := a.Store().Events(context.Background(), store.EventQuery{MessageID: id, Scope: store.Scope{All: true}})
	if err != nil {
		t.Fatal(err)
	}
	var bounced *store.Event
	for _, e := range evs {
		if e.Type == store.EventBounced {
			bounced = e
		}
	}
	if bounced == nil || bounced.Recipient != "gone@example.net" || !strings.Contains(bounced.Reply, "5.1.1") {
		t.Fatalf("no bounced event for the recipient: %+v", evs)
	}
}
