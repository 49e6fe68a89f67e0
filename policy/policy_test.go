package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/store"
)

// testEnv is the environment of the test policies.
var testEnv = map[string]string{
	"TRACK_SECRET": "tracking-secret-0123456789",
	"STAGING_KEY":  "staging-key-0123456789",
	"SG_KEY":       "SG.sendgrid-key",
	"HOOK_SECRET":  "hook-secret-0123456789",
	"PG_DSN":       "postgres://postgres@127.0.0.1:5432/test",
}

func testOptions() Options {
	return Options{LookupEnv: func(k string) (string, bool) { v, ok := testEnv[k]; return v, ok }}
}

// update reports whether golden files are to be rewritten (UPDATE_GOLDEN=1).
func update() bool { return os.Getenv("UPDATE_GOLDEN") == "1" }

func loadTest(t testing.TB, path string) *Policy {
	t.Helper()
	p, err := Load(path, testOptions())
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return p
}

func TestGood(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good policies: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p := loadTest(t, f)
			if len(p.Server.Listeners) == 0 {
				t.Error("no listeners")
			}
			if p.Server.Hostname == "" || p.Server.MaxMessageSize <= 0 || p.Server.MaxRecipients <= 0 {
				t.Errorf("defaults not filled in: %+v", p.Server)
			}
			// Warnings are compared with NAME.warn, which exists only if there are some.
			var got strings.Builder
			for _, d := range p.Warnings {
				if d.Severity != hcl.DiagWarning || d.Subject == nil {
					t.Errorf("not a warning with a position: %s", formatDiag(d))
				}
				got.WriteString(formatDiag(d) + "\n")
			}
			golden := strings.TrimSuffix(f, ".hcl") + ".warn"
			if update() {
				os.Remove(golden)
				if got.Len() > 0 {
					if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("warnings of %s:\n--- got\n%s--- want\n%s", f, got.String(), want)
			}
		})
	}
}

// TestBad loads every testdata/bad/NAME.hcl and compares the error, one
// diagnostic per line, with testdata/bad/NAME.err. UPDATE_GOLDEN=1 rewrites
// the .err files, and the fuzz seed corpus.
func TestBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.hcl")
	if err != nil || len(files) < 15 {
		t.Fatalf("want at least 15 bad policies, have %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f, testOptions())
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Load(%s) = %v, want a *Error", f, err)
			}
			for _, d := range perr.Diags {
				if d.Subject == nil || d.Subject.Filename != f || d.Subject.Start.Line < 1 {
					t.Errorf("diagnostic without a position in %s: %s", f, formatDiag(d))
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".hcl") + ".err"
			if update() {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (UPDATE_GOLDEN=1 writes it)", err)
			}
			if got != string(want) {
				t.Errorf("diagnostics of %s:\n--- got\n%s--- want\n%s", f, got, want)
			}
		})
	}
	if update() {
		writeFuzzCorpus(t)
	}
	// Every .err has its .hcl.
	errs, _ := filepath.Glob("testdata/bad/*.err")
	for _, e := range errs {
		if !slices.Contains(files, strings.TrimSuffix(e, ".err")+".hcl") {
			t.Errorf("%s has no policy", e)
		}
	}
}

// writeFuzzCorpus makes testdata/fuzz/FuzzParse from the test policies.
func writeFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/*/*.hcl")
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(filepath.Dir(f))+"_"+filepath.Base(f), ".hcl")
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", src)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFullPolicy(t *testing.T) {
	p := loadTest(t, "testdata/good/full.hcl")
	dir := filepath.Join("testdata", "good")
	s := p.Server
	if s.Hostname != "mail.example.com" || s.Mode != ModeRelay || s.MaxMessageSize != 10<<20 || s.MaxRecipients != 50 {
		t.Errorf("server = %+v", s)
	}
	if s.DataDir != filepath.Join(dir, "state") {
		t.Errorf("DataDir = %q, want it relative to the policy file", s.DataDir)
	}
	if s.TLS == nil || s.TLS.CertFile != filepath.Join(dir, "cert.pem") || s.TLS.KeyFile != filepath.Join(dir, "key.pem") {
		t.Errorf("TLS = %+v", s.TLS)
	}
	wantListeners := []Listener{
		{Name: "submission", Address: ":587", TLS: TLSStartTLS, Purpose: PurposeSubmission},
		{Name: "smtps", Address: ":465", TLS: TLSImplicit, Purpose: PurposeSubmission},
		{Name: "local", Address: "127.0.0.1:2525", TLS: TLSStartTLS, ProxyProtocol: true, Purpose: PurposeSubmission},
		{Name: "mx", Address: ":25", TLS: TLSStartTLS, Purpose: PurposeBounces},
	}
	if !slices.Equal(s.Listeners, wantListeners) {
		t.Errorf("Listeners = %+v, want %+v", s.Listeners, wantListeners)
	}
	if h := s.HTTP; h.Address != "127.0.0.1:8025" || h.PublicURL != "https://t.example.com" || h.UI ||
		fmt.Sprint(h.OpenNetworks) != "[127.0.0.0/8 ::1/128 10.1.0.0/16]" {
		t.Errorf("HTTP = %+v", s.HTTP)
	}
	if s.Store != (Store{Driver: DriverSQLite, Path: filepath.Join(dir, "state", "db")}) {
		t.Errorf("Store = %+v", s.Store)
	}
	if s.MaxScheduleAhead != 7*24*time.Hour || !s.CaptureSimulateSent || s.Retention != (Retention{MaxMessages: 5000, MaxAge: 14 * 24 * time.Hour}) {
		t.Errorf("MaxScheduleAhead %v, CaptureSimulateSent %v, Retention %+v", s.MaxScheduleAhead, s.CaptureSimulateSent, s.Retention)
	}
	wantLimits := Limits{MaxConnections: 500, MaxConnectionsPerIP: 20, MaxAuthFailures: 5, CommandTimeout: 2 * time.Minute, DataTimeout: 15 * time.Minute}
	if s.Limits != wantLimits {
		t.Errorf("Limits = %+v, want %+v", s.Limits, wantLimits)
	}
	if d := p.Directives; !slices.Equal(d.Prefixes, []string{"X-Smtpgate-", "X-Smtpeter-"}) ||
		!slices.Equal(d.Vendors, []string{"mailgun", "postmark", "emailengine", "sendgrid"}) || d.OnError != OnErrorReject {
		t.Errorf("Directives = %+v", d)
	}
	if p.Tracking != (Tracking{Secret: testEnv["TRACK_SECRET"], PublicURL: "https://t.example.com", BounceDomain: "bounces.example.com"}) {
		t.Errorf("Tracking = %+v", p.Tracking)
	}
	if got := p.Features["marketing"]; got != (features.Set{InlineCSS: true, TrackClicks: true, TrackOpens: true, TrackBounces: true}) {
		t.Errorf("features marketing = %+v", got)
	}
	w := p.Credentials["webapp"]
	if w == nil || w.Name() != "webapp" || w.FeaturesName != "marketing" || w.Features != p.Features["marketing"] ||
		!slices.Equal(w.Overridable, []string{features.TrackOpens}) || w.Route != "sendgrid" ||
		!slices.Equal(w.AllowFrom, []string{"*@mywebapp.com", "*@*.mywebapp.com", "ops@example.org"}) {
		t.Errorf("credential webapp = %+v", w)
	}
	if w != nil && (w.DKIMDomain != "mywebapp.com" || w.Retention != (Retention{MaxMessages: 1000, MaxAge: 7 * 24 * time.Hour})) {
		t.Errorf("credential webapp: DKIMDomain %q, Retention %+v", w.DKIMDomain, w.Retention)
	}
	if n := p.Credentials["newsletter"]; n == nil || !slices.Equal(n.Overridable, features.AllNames) || n.Route != "direct" ||
		n.Retention != (Retention{}) || n.DKIMDomain != "" {
		t.Errorf("credential newsletter = %+v", n)
	}
	if o := p.Credentials["other"]; o == nil || o.Route != RouteCapture || o.FeaturesName != "" || o.Features != (features.Set{}) ||
		o.AllowFrom != nil || o.Overridable != nil || !strings.HasPrefix(o.PasswordHash, "$argon2id$") || o.Retention != s.Retention {
		t.Errorf("credential other = %+v", o)
	}
	if len(p.APIKeys) != 2 || p.APIKeys[0].Name != "staging-tests" || p.APIKeys[1].Name != "admin" || !p.APIKeys[1].All {
		t.Errorf("APIKeys = %+v", p.APIKeys)
	}
	wantSendgrid := Relay{Name: "sendgrid", Address: "smtp.sendgrid.net:587", TLS: TLSStartTLS, Username: "apikey", Password: testEnv["SG_KEY"],
		VerifyTLS: true, CAFile: filepath.Join(dir, "ca.pem"), Helo: "out.example.com", MaxAge: 36 * time.Hour,
		Concurrency: 10, PerDomainConcurrency: 10, RatePerMinute: 600}
	if r := p.Relays["sendgrid"]; r == nil || *r != wantSendgrid {
		t.Errorf("relay sendgrid = %+v, want %+v", r, wantSendgrid)
	}
	wantDirect := Relay{Name: "direct", MX: true, StartTLS: StartTLSRequire, Port: 2525, VerifyTLS: true, CAFile: "/etc/ssl/extra-ca.pem",
		Helo: "mail.example.com", MaxAge: 5 * 24 * time.Hour, Concurrency: 20, PerDomainConcurrency: 5}
	if r := p.Relays["direct"]; r == nil || *r != wantDirect {
		t.Errorf("relay direct = %+v, want %+v", r, wantDirect)
	}
	wantDKIM := []DKIM{
		{Domain: "mywebapp.com", Selector: "s2026", Algorithm: "ed25519", KeyFile: filepath.Join(dir, "dkim.key")},
		{Domain: "mywebapp.com", Selector: "rsa2026", Algorithm: "rsa", KeyFile: filepath.Join(dir, "dkim-rsa.key")},
	}
	if len(p.DKIM) != 1 || len(p.DKIM["mywebapp.com"]) != len(wantDKIM) {
		t.Errorf("dkim = %+v", p.DKIM)
	} else {
		for i, d := range p.DKIM["mywebapp.com"] {
			if *d != wantDKIM[i] {
				t.Errorf("dkim[%d] = %+v, want %+v", i, *d, wantDKIM[i])
			}
		}
	}
	if h := p.Webhooks["events"]; h == nil || h.URL != "https://hooks.example.com/mail" || h.Secret != testEnv["HOOK_SECRET"] ||
		!slices.Equal(h.Events, []string{"sent", "bounced", "opened", "clicked", "directive"}) ||
		!slices.Equal(h.Logins, []string{"webapp", "newsletter"}) || h.MaxAge != 2*time.Hour {
		t.Errorf("webhook events = %+v", h)
	}
	if h := p.Webhooks["audit"]; h == nil || !slices.Equal(h.Events, []string{"queued", "captured", "failed"}) || h.Logins != nil || h.MaxAge != 24*time.Hour {
		t.Errorf("webhook audit = %+v", h)
	}
}

func TestDefaults(t *testing.T) {
	p := loadTest(t, "testdata/good/minimal.hcl")
	s := p.Server
	host, _ := os.Hostname()
	if host != "" && isDomain(host) && s.Hostname != host {
		t.Errorf("Hostname = %q, want os.Hostname() %q", s.Hostname, host)
	}
	if s.Mode != ModeRelay || s.MaxMessageSize != 25<<20 || s.MaxRecipients != 100 || s.TLS != nil {
		t.Errorf("server = %+v", s)
	}
	if s.MaxScheduleAhead != 30*24*time.Hour || s.CaptureSimulateSent || s.Retention != (Retention{}) {
		t.Errorf("MaxScheduleAhead %v, CaptureSimulateSent %v, Retention %+v", s.MaxScheduleAhead, s.CaptureSimulateSent, s.Retention)
	}
	dataDir := filepath.Join("testdata", "good", "data")
	if s.DataDir != dataDir || s.Store != (Store{Driver: DriverSQLite, Path: dataDir}) {
		t.Errorf("DataDir = %q, Store = %+v", s.DataDir, s.Store)
	}
	if h := s.HTTP; h.Address != ":8025" || h.PublicURL != "" || !h.UI || h.OpenNetworks != nil ||
		s.Listeners[0].TLS != TLSStartTLS || s.Listeners[0].Purpose != PurposeSubmission {
		t.Errorf("HTTP = %+v, listeners %+v", s.HTTP, s.Listeners)
	}
	want := Limits{MaxConnections: 1000, MaxConnectionsPerIP: 50, MaxAuthFailures: 3, CommandTimeout: 5 * time.Minute, DataTimeout: 10 * time.Minute}
	if s.Limits != want {
		t.Errorf("Limits = %+v, want %+v", s.Limits, want)
	}
	if d := p.Directives; !slices.Equal(d.Prefixes, []string{"X-Smtpgate-", "X-Smtpeter-"}) || d.Vendors != nil || d.OnError != OnErrorIgnore {
		t.Errorf("Directives = %+v", d)
	}
	if len(p.Credentials) != 0 || len(p.APIKeys) != 0 {
		t.Errorf("credentials %v, api keys %v", p.Credentials, p.APIKeys)
	}
	if _, err := p.Authenticate(t.Context(), "anyone", "x"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("Authenticate without credentials = %v", err)
	}
}

func TestRelayDefaults(t *testing.T) {
	p := loadTest(t, "testdata/good/relays.hcl")
	const day = 24 * time.Hour
	for _, want := range []Relay{
		{Name: "mx", MX: true, StartTLS: StartTLSOpportunistic, Port: 25, Helo: "relay.example.com", MaxAge: 5 * day, Concurrency: 20, PerDomainConcurrency: 5},
		{Name: "mx-quiet", MX: true, StartTLS: StartTLSOpportunistic, Port: 25, Helo: "relay.example.com", MaxAge: 30 * time.Minute, Concurrency: 20, PerDomainConcurrency: 5},
		{Name: "smarthost", Address: "smtp.example.net:465", TLS: TLSImplicit, VerifyTLS: true, Helo: "relay.example.com", MaxAge: 5 * day, Concurrency: 20, PerDomainConcurrency: 5},
		{Name: "plain", Address: "127.0.0.1:2525", TLS: TLSNone, Helo: "relay.example.com", MaxAge: 5 * day, Concurrency: 20, PerDomainConcurrency: 5},
		{Name: "lab", Address: "lab.example.net:587", TLS: TLSStartTLS, Helo: "relay.example.com", MaxAge: 5 * day, Concurrency: 3, PerDomainConcurrency: 3},
	} {
		if r := p.Relays[want.Name]; r == nil || *r != want {
			t.Errorf("relay %s = %+v, want %+v", want.Name, r, want)
		}
	}
	if len(p.Relays) != 5 {
		t.Errorf("%d relays, want 5", len(p.Relays))
	}
}

func TestPostgresPolicy(t *testing.T) {
	p := loadTest(t, "testdata/good/postgres.hcl")
	if p.Server.Store != (Store{Driver: DriverPostgres, DSN: testEnv["PG_DSN"]}) {
		t.Errorf("Store = %+v", p.Server.Store)
	}
	if p.Server.MaxMessageSize != 1048576 {
		t.Errorf("MaxMessageSize = %d", p.Server.MaxMessageSize)
	}
	if !slices.Equal(p.Directives.Vendors, []string{"mailgun"}) || !slices.Equal(p.Directives.Prefixes, []string{"X-Mail-"}) {
		t.Errorf("Directives = %+v", p.Directives)
	}
	if h := p.Webhooks["all"]; h == nil || len(h.Events) != len(webhookNames) || h.Logins != nil || h.MaxAge != DefaultWebhookMaxAge {
		t.Errorf("webhook all = %+v", h)
	}
}

func TestOpenNetworks(t *testing.T) {
	full := loadTest(t, "testdata/good/full.hcl").Server.HTTP
	open := loadTest(t, "testdata/good/open_http.hcl").Server.HTTP
	if !open.UI || fmt.Sprint(open.OpenNetworks) != "[0.0.0.0/0 127.0.0.0/8 192.0.2.0/24 2001:db8::/32]" {
		t.Errorf("open_http: UI %v, OpenNetworks %v", open.UI, open.OpenNetworks)
	}
	for _, tc := range []struct {
		h    HTTP
		ip   string
		want bool
	}{
		{full, "127.0.0.1", true},
		{full, "127.255.0.9", true},
		{full, "::1", true},
		{full, "::ffff:127.0.0.1", true},
		{full, "10.1.200.3", true},
		{full, "10.2.0.1", false},
		{full, "::2", false},
		{full, "192.0.2.1", false},
		{open, "203.0.113.7", true},
		{open, "2001:db8::1", true},
		{open, "2001:db9::1", false},
		{HTTP{}, "127.0.0.1", false},
	} {
		if got := tc.h.IsOpen(net.ParseIP(tc.ip)); got != tc.want {
			t.Errorf("IsOpen(%s) with %v = %v, want %v", tc.ip, tc.h.OpenNetworks, got, tc.want)
		}
	}
}

func TestWebhookWants(t *testing.T) {
	p := loadTest(t, "testdata/good/full.hcl")
	events, audit := p.Webhooks["events"], p.Webhooks["audit"]
	for _, tc := range []struct {
		w            *Webhook
		login, event string
		want         bool
	}{
		{events, "webapp", store.EventSent, true},
		{events, "newsletter", store.EventDirective, true},
		{events, "other", store.EventSent, false},    // not one of its logins
		{events, "webapp", store.EventQueued, false}, // not one of its events
		{events, "", store.EventSent, false},
		{audit, "other", store.EventQueued, true},
		{audit, "anyone", store.EventFailed, true},
		{audit, "other", store.EventSent, false},
	} {
		if got := tc.w.Wants(tc.login, tc.event); got != tc.want {
			t.Errorf("webhook %s: Wants(%q, %q) = %v, want %v", tc.w.Name, tc.login, tc.event, got, tc.want)
		}
	}
	// "accepted" is the old name of "queued".
	s := loadTest(t, "testdata/good/short_secrets.hcl")
	if h := s.Webhooks["w"]; !slices.Equal(h.Events, []string{store.EventSent, store.EventQueued}) {
		t.Errorf("webhook w events = %q", h.Events)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.hcl"), Options{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
	var perr *Error
	if errors.As(err, &perr) {
		t.Errorf("a read error is not a *Error")
	}
}

func TestOSLookupEnv(t *testing.T) {
	src := []byte(`
server {
  hostname = env("SMTPGATE_POLICY_TEST_HOST")
  listen "s" { address = ":0" }
}`)
	t.Setenv("SMTPGATE_POLICY_TEST_HOST", "env.example.com")
	p, err := Parse("env.hcl", src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Server.Hostname != "env.example.com" {
		t.Errorf("Hostname = %q", p.Server.Hostname)
	}
	os.Unsetenv("SMTPGATE_POLICY_TEST_HOST")
	_, err = Parse("env.hcl", src, Options{})
	want := `env.hcl:3:14: Error in function call: Call to function "env" failed: environment variable "SMTPGATE_POLICY_TEST_HOST" is not set.`
	if err == nil || err.Error() != want {
		t.Errorf("Parse with the variable unset = %v, want %s", err, want)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"25MB", 25 << 20}, {"25 mb", 25 << 20}, {"1GB", 1 << 30}, {"512KB", 512 << 10}, {"100B", 100},
		{"4096", 4096}, {"2MiB", 2 << 20}, {" 3 KB ", 3 << 10},
	} {
		got, err := parseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "MB", "1.5MB", "-1", "10TB", "99999999999999999999", "9999999999GB", "25 M B"} {
		if n, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, n)
		}
	}
}

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0}, {"0s", 0}, {"90s", 90 * time.Second}, {"30m", 30 * time.Minute}, {"1h30m", 90 * time.Minute},
		{"5d", 5 * day}, {"1d12h", 36 * time.Hour}, {"0.5d", 12 * time.Hour}, {"1.5h", 90 * time.Minute},
		{"2d2d", 4 * day}, {"1h1d", 25 * time.Hour}, {"100ms", 100 * time.Millisecond}, {"1µs", time.Microsecond},
		{"106751d", 106751 * day},
	} {
		got, err := parseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "5", "d", "1d12", "-5m", "+5m", "5 d", "5 minutes", "5w", "1.2.3h", "5D",
		"106752d", "106751d24h", "9999999999999999999h", "1d 2h", ".d", "600"} {
		if d, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, d)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Parse("x.hcl", []byte("server {\n  listen \"s\" { address = \":0\" }\n  mode = \"nope\"\n}\n"), testOptions())
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("err = %v", err)
	}
	want := `x.hcl:3:10: Invalid mode: "nope" is not one of "relay" or "capture".`
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	var buf bytes.Buffer
	if err := perr.WriteText(&buf, 80, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `mode = "nope"`) || !strings.Contains(buf.String(), "Invalid mode") {
		t.Errorf("WriteText shows no source line:\n%s", buf.String())
	}
}

func TestExplain(t *testing.T) {
	var b strings.Builder
	if err := loadTest(t, "testdata/good/capture.hcl").Explain(&b); err != nil {
		t.Fatal(err)
	}
	// Columns depend on the longest cell: compare with white space collapsed.
	out := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{
		`server staging.example.com, mode capture`,
		`listen "b" 127.0.0.1:0 implicit`,
		`login "app"`,
		`route capture (route "upstream" ignored: server mode is capture)`,
		`features track_clicks, track_opens (features "all")`,
		`may send as any sender`,
		`api key "dev" reads mail of all logins`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Explain lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(out, "a-long-enough-tracking-secret") || strings.Contains(out, "dev-key-") {
		t.Errorf("Explain shows a secret:\n%s", out)
	}
}

func TestExplainFull(t *testing.T) {
	var b strings.Builder
	if err := loadTest(t, "testdata/good/full.hcl").Explain(&b); err != nil {
		t.Fatal(err)
	}
	out := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{
		`listen "mx" :25 starttls (optional), receives bounces`,
		`web UI off`,
		`no API key needed from 127.0.0.0/8, ::1/128, 10.1.0.0/16 (sees every login)`,
		`send-at up to 7d ahead`,
		`captured mail also gets a simulated sent event per recipient`,
		`retention keeps at most 5000 messages, none older than 14d (logins without their own)`,
		`DKIM signed with the keys of mywebapp.com, whatever the From domain`,
		`retention keeps at most 1000 messages, none older than 7d`,
		`retention keeps every message`,
		`relay "direct" the recipients' MX hosts, port 2525 tls starttls require, certificate checked (with CAs of /etc/ssl/extra-ca.pem)`,
		`relay "sendgrid" smarthost smtp.sendgrid.net:587 tls starttls, certificate checked`,
		`login "apikey" EHLO out.example.com connections 10, 10 per domain; 600 messages a minute per domain retried for 1d12h`,
		`dkim "mywebapp.com" selector s2026 (ed25519), selector rsa2026 (rsa)`,
		`webhook "events" https://hooks.example.com/… events sent, bounced, opened, clicked, directive, of webapp, newsletter retried for 2h`,
		`webhook "audit" http://127.0.0.1:9000/… events queued, captured, failed, of all logins retried for 1d`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Explain lacks %q:\n%s", want, b.String())
		}
	}
	for _, secret := range []string{testEnv["SG_KEY"], testEnv["HOOK_SECRET"], testEnv["TRACK_SECRET"], testEnv["STAGING_KEY"],
		"admin-key-", "$argon2id$", "$2a$", "/mail", "/audit"} {
		if strings.Contains(b.String(), secret) {
			t.Errorf("Explain shows %q:\n%s", secret, b.String())
		}
	}
	// Relays that check no certificate say so, or say nothing when they cannot.
	b.Reset()
	if err := loadTest(t, "testdata/good/relays.hcl").Explain(&b); err != nil {
		t.Fatal(err)
	}
	out = strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{
		`relay "lab" smarthost lab.example.net:587 tls starttls, certificate NOT checked`,
		`relay "mx" the recipients' MX hosts, port 25 tls starttls opportunistic EHLO relay.example.com`,
		`relay "plain" smarthost 127.0.0.1:2525 tls none EHLO`,
		`connections 3, 3 per domain; no rate limit retried for 5d`,
		`retried for 30m`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Explain lacks %q:\n%s", want, b.String())
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{30 * time.Minute, "30m"}, {10 * time.Minute, "10m"}, {2 * time.Hour, "2h"}, {90 * time.Minute, "1h30m"},
		{90 * time.Second, "1m30s"}, {24 * time.Hour, "1d"}, {36 * time.Hour, "1d12h"}, {5*24*time.Hour + 20*time.Minute, "5d20m"},
		{24*time.Hour + 5*time.Second, "1d5s"}, {1500 * time.Millisecond, "1.5s"},
	} {
		if got := formatDuration(tc.in); got != tc.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := parseDuration(formatDuration(tc.in)); err != nil || back != tc.in {
			t.Errorf("parseDuration(formatDuration(%v)) = %v, %v", tc.in, back, err)
		}
	}
}

func TestTrackingURLFallback(t *testing.T) {
	p := loadTest(t, "testdata/good/capture.hcl")
	if p.Tracking.PublicURL != "http://localhost:8025" {
		t.Errorf("Tracking.PublicURL = %q, want server.http.public_url", p.Tracking.PublicURL)
	}
}

func TestFileFunction(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("host.txt", []byte("  file.example.com\n"))
	write("big.txt", bytes.Repeat([]byte("a"), maxFileSize+1))
	write("binary.txt", []byte{0xff, 0xfe, 0})
	abs := filepath.Join(dir, "host.txt")
	for _, tc := range []struct{ expr, wantErr string }{
		{`trimspace(file("host.txt"))`, ""},
		{fmt.Sprintf(`trimspace(file(%q))`, abs), ""},
		{`file("big.txt")`, "is larger than 1048576 bytes"},
		{`file("binary.txt")`, "is not UTF-8 text"},
		{`file("/dev/zero")`, "/dev/zero is not a regular file"},
	} {
		src := fmt.Sprintf("server {\n  hostname = %s\n  listen \"s\" { address = \":0\" }\n}\n", tc.expr)
		p, err := Parse(filepath.Join(dir, "policy.hcl"), []byte(src), testOptions())
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.expr, err)
		case tc.wantErr == "" && p.Server.Hostname != "file.example.com":
			t.Errorf("%s: hostname %q", tc.expr, p.Server.Hostname)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want %q", tc.expr, err, tc.wantErr)
		case tc.wantErr != "" && strings.Count(err.Error(), "\n") != 0:
			t.Errorf("%s: more than one diagnostic: %v", tc.expr, err)
		}
	}
}
