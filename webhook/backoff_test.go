package webhook

import (
	"net/http"
	"testing"
	"time"
)

func TestDefaultBackoff(t *testing.T) {
	for attempt := -1; attempt <= 40; attempt++ {
		n := max(attempt, 1)
		nominal := BackoffMax
		if n <= 20 {
			nominal = min(BackoffBase<<(n-1), BackoffMax)
		}
		lo := time.Duration(float64(nominal) * 0.8)
		hi := min(time.Duration(float64(nominal)*1.2), BackoffMax)
		seen := map[time.Duration]bool{}
		for range 50 {
			d := DefaultBackoff(attempt)
			if d < lo || d > hi {
				t.Fatalf("DefaultBackoff(%d) = %s, want within [%s, %s]", attempt, d, lo, hi)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("DefaultBackoff(%d): %d distinct values in 50 calls: no jitter?", attempt, len(seen))
		}
	}
	if d := DefaultBackoff(1); d < 8*time.Second || d >= 12*time.Second {
		t.Errorf("first retry after %s, want about 10 s", d)
	}
	if d := DefaultBackoff(2); d < 16*time.Second || d >= 24*time.Second {
		t.Errorf("second retry after %s, want about 20 s", d)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"999999999", BackoffMax},
		{"Thu, 01 Jan 2026 00:05:00 GMT", 5 * time.Minute},
		{"Wed, 31 Dec 2025 23:00:00 GMT", 0}, // in the past
		{"soon", 0},
	}
	for _, tc := range tests {
		h := http.Header{}
		if tc.value != "" {
			h.Set("Retry-After", tc.value)
		}
		if got := retryAfter(h, now); got != tc.want {
			t.Errorf("Retry-After %q = %s, want %s", tc.value, got, tc.want)
		}
	}
}
