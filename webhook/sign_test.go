package webhook

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// verifyCase is one case of testdata/verify.json. The valid signatures in
// it were computed with Python's hmac module, not with Sign.
type verifyCase struct {
	Name      string `json:"name"`
	Secret    string `json:"secret"`
	Header    string `json:"header"`
	Body      string `json:"body"`
	Now       int64  `json:"now"`
	Tolerance string `json:"tolerance"`
	Want      string `json:"want"` // ok, malformed, timestamp, mismatch
}

func TestVerifyCases(t *testing.T) {
	b, err := os.ReadFile("testdata/verify.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []verifyCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	want := map[string]error{"ok": nil, "malformed": ErrMalformed, "timestamp": ErrTimestamp, "mismatch": ErrMismatch}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			var tol time.Duration
			if c.Tolerance != "" {
				if tol, err = time.ParseDuration(c.Tolerance); err != nil {
					t.Fatal(err)
				}
			}
			w, ok := want[c.Want]
			if !ok {
				t.Fatalf("bad want %q", c.Want)
			}
			err := Verify([]byte(c.Secret), c.Header, []byte(c.Body), time.Unix(c.Now, 0), tol)
			if w == nil && err != nil || w != nil && !errors.Is(err, w) {
				t.Errorf("Verify = %v, want %v", err, w)
			}
		})
	}
}

func TestSignMatchesIndependentHMAC(t *testing.T) {
	// The same vector as the first case of testdata/verify.json.
	got := Sign([]byte("whsec_test"), time.Unix(1767225600, 0), []byte(`{"id":"1","event":"sent"}`))
	want := "t=1767225600,v1=eab97e56fc28da356784bc23eef6c6af3c0fd1ef4576725469a86611057a461c"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"event":"opened"}`)
	h := Sign(secret, now, body)
	if err := Verify(secret, h, body, now.Add(4*time.Minute), 0); err != nil {
		t.Fatalf("fresh signature: %v", err)
	}
	if err := Verify(secret, h, append(body, ' '), now, 0); !errors.Is(err, ErrMismatch) {
		t.Errorf("tampered body: %v, want ErrMismatch", err)
	}
	if err := Verify([]byte("s3cret!"), h, body, now, 0); !errors.Is(err, ErrMismatch) {
		t.Errorf("wrong secret: %v, want ErrMismatch", err)
	}
	if err := Verify(secret, h, body, now.Add(6*time.Minute), 0); !errors.Is(err, ErrTimestamp) {
		t.Errorf("old timestamp: %v, want ErrTimestamp", err)
	}
	if err := Verify(secret, h, body, now.Add(6*time.Minute), 10*time.Minute); err != nil {
		t.Errorf("old timestamp within a 10 min tolerance: %v", err)
	}
	if !strings.HasPrefix(h, "t=1772366400,v1=") || len(h) != len("t=1772366400,v1=")+64 {
		t.Errorf("header %q is not t=<unix>,v1=<64 hex>", h)
	}
}

// FuzzVerify checks that Verify never panics on any header, and that what
// Sign produces verifies for its own body and secret only.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("k"), "t=1767225600,v1=eab97e56fc28da356784bc23eef6c6af3c0fd1ef4576725469a86611057a461c", []byte("{}"), int64(1767225600))
	f.Fuzz(func(t *testing.T, secret []byte, header string, body []byte, unix int64) {
		now := time.Unix(unix, 0)
		err := Verify(secret, header, body, now, time.Minute)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTimestamp) && !errors.Is(err, ErrMismatch) {
			t.Fatalf("Verify(%q) = %v: not one of the documented errors", header, err)
		}
		if unix < 0 || unix > 1<<40 {
			return
		}
		h := Sign(secret, now, body)
		if err := Verify(secret, h, body, now, time.Minute); err != nil {
			t.Fatalf("Verify(Sign()) = %v", err)
		}
		if err := Verify(secret, h, append(body, 'x'), now, time.Minute); !errors.Is(err, ErrMismatch) {
			t.Fatalf("Verify with a changed body = %v, want ErrMismatch", err)
		}
	})
}
