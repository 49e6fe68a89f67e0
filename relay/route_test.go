package relay_test

import (
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/relay"
	"github.com/smtpgate/smtpgate/relay/internal/smtptest"
	"github.com/smtpgate/smtpgate/store"
)

// deliveriesCase is one case of testdata/deliveries.json.
type deliveriesCase struct {
	Name  string `json:"name"`
	Route struct {
		MX      bool   `json:"mx"`
		Address string `json:"address"`
		MaxAge  string `json:"max_age"`
	} `json:"route"`
	Recipients  []string `json:"recipients"`
	SendAt      string   `json:"send_at"`      // offset from arrival
	WantDue     string   `json:"want_due"`     // offset from arrival
	WantExpires string   `json:"want_expires"` // offset from arrival
	Want        []struct {
		Domain     string   `json:"domain"`
		Recipients [][2]any `json:"recipients"` // [address, index]
	} `json:"want"`
}

func parseOffset(t *testing.T, s string) time.Duration {
	t.Helper()
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDeliveries(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "deliveries.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []deliveriesCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	received := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			r := relay.Route{Name: "r1", MX: tc.Route.MX, Address: tc.Route.Address, MaxAge: parseOffset(t, tc.Route.MaxAge)}
			msg := &store.Message{ID: "m", Recipients: tc.Recipients, Received: received}
			if tc.SendAt != "" {
				msg.SendAt = received.Add(parseOffset(t, tc.SendAt))
			}
			ds := relay.Deliveries(msg, r)
			if len(ds) != len(tc.Want) {
				t.Fatalf("%d deliveries, want %d: %+v", len(ds), len(tc.Want), ds)
			}
			for i, d := range ds {
				w := tc.Want[i]
				if d.Route != "r1" || d.Domain != w.Domain || d.State != store.DeliveryQueued {
					t.Errorf("delivery %d: route %q domain %q state %q, want r1 %q queued", i, d.Route, d.Domain, d.State, w.Domain)
				}
				if len(d.Recipients) != len(w.Recipients) {
					t.Fatalf("delivery %d: recipients %+v, want %v", i, d.Recipients, w.Recipients)
				}
				for j, rc := range d.Recipients {
					addr, idx := w.Recipients[j][0].(string), int(w.Recipients[j][1].(float64))
					if rc.Address != addr || rc.Index != idx || rc.State != store.RecipientPending {
						t.Errorf("delivery %d recipient %d: %+v, want %s #%d pending", i, j, rc, addr, idx)
					}
				}
				if tc.WantDue != "" && !d.NextAttempt.Equal(received.Add(parseOffset(t, tc.WantDue))) {
					t.Errorf("due %v, want arrival + %s", d.NextAttempt, tc.WantDue)
				}
				if tc.WantExpires != "" && !d.Expires.Equal(received.Add(parseOffset(t, tc.WantExpires))) {
					t.Errorf("expires %v, want arrival + %s", d.Expires, tc.WantExpires)
				}
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := relay.DefaultBackoff()
	for _, tc := range []struct {
		attempts int
		base     time.Duration
	}{{1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {6, 32 * time.Minute}, {7, time.Hour}, {50, time.Hour}} {
		lo, hi := time.Duration(float64(tc.base)*0.8), time.Duration(float64(tc.base)*1.2)
		seen := map[time.Duration]bool{}
		for range 200 {
			d := b.Delay(tc.attempts)
			if d < lo || d > hi {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tc.attempts, d, lo, hi)
			}
			seen[d] = true
		}
		if len(seen) < 50 {
			t.Errorf("Delay(%d): only %d distinct values in 200: no jitter?", tc.attempts, len(seen))
		}
	}
	exact := relay.Backoff{Initial: time.Second, Factor: 3, Max: 10 * time.Second}
	for attempts, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 3 * time.Second, 3: 9 * time.Second, 4: 10 * time.Second} {
		if d := exact.Delay(attempts); d != want {
			t.Errorf("Delay(%d) = %v, want %v", attempts, d, want)
		}
	}
	if d := (relay.Backoff{}).Delay(1); d < 48*time.Second || d > 72*time.Second {
		t.Errorf("zero Backoff Delay(1) = %v, want the default's ±20%% of 1 min", d)
	}
}

func TestLoadCAFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := relay.LoadCAFile(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("missing file accepted")
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := relay.LoadCAFile(junk); err == nil {
		t.Error("file without certificates accepted")
	}
	// A CA file makes a self-signed smarthost certificate verify.
	tlsCfg, _ := smtptest.TLSConfig(t, "ca.test")
	srv := smtptest.Start(t, smtptest.Options{TLS: tlsCfg})
	pemFile := filepath.Join(dir, "ca.pem")
	writeCertPEM(t, tlsCfg, pemFile)
	pool, err := relay.LoadCAFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	route := relay.Route{Name: "up", Address: srv.Addr, RootCAs: pool}
	h.start(h.fastConfig(route))
	m := h.accept(route, "app", "app@sender.test", []string{"x@r.test"})
	if ds := h.wait(m.ID, "sent", settled); ds[0].State != store.DeliverySent {
		t.Fatalf("%+v", ds[0])
	}
}

// writeCertPEM writes the server certificate of cfg as a PEM file.
func writeCertPEM(t *testing.T, cfg *tls.Config, file string) {
	t.Helper()
	der := cfg.Certificates[0].Certificate[0]
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// FuzzDeliveries checks the invariants of Deliveries for any recipient
// list: every distinct non-empty recipient (ignoring case and surrounding
// space) is in exactly one delivery, with its first index; with MX each
// delivery holds one domain, and a smarthost gets one delivery.
func FuzzDeliveries(f *testing.F) {
	f.Add("a@one.test\nb@two.test", true)
	f.Fuzz(func(t *testing.T, list string, mx bool) {
		rcpts := strings.Split(list, "\n")
		msg := &store.Message{Recipients: rcpts, Received: time.Unix(1_800_000_000, 0)}
		r := relay.Route{Name: "r", MX: mx, Address: "h:25"}
		ds := relay.Deliveries(msg, r)
		first := map[string]int{}
		for i, a := range rcpts {
			k := strings.ToLower(strings.TrimSpace(a))
			if _, ok := first[k]; !ok && k != "" {
				first[k] = i
			}
		}
		seen := map[string]bool{}
		for _, d := range ds {
			if !mx && len(ds) != 1 {
				t.Fatalf("smarthost: %d deliveries", len(ds))
			}
			if len(d.Recipients) == 0 {
				t.Fatal("empty delivery")
			}
			for _, rc := range d.Recipients {
				k := strings.ToLower(rc.Address)
				if seen[k] {
					t.Fatalf("%q twice", rc.Address)
				}
				seen[k] = true
				if i, ok := first[k]; !ok || i != rc.Index || strings.TrimSpace(rcpts[rc.Index]) != rc.Address {
					t.Fatalf("%q has index %d, want %d", rc.Address, rc.Index, i)
				}
				if mx {
					at := strings.LastIndexByte(k, '@')
					dom := ""
					if at >= 0 {
						dom = k[at+1:]
					}
					if dom != d.Domain {
						t.Fatalf("%q in the delivery for %q", rc.Address, d.Domain)
					}
				}
			}
		}
		if len(seen) != len(first) {
			t.Fatalf("%d recipients delivered, want %d", len(seen), len(first))
		}
	})
}
