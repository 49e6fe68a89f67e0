package webhook

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Backoff defaults: the first retry about 10 s after the first attempt,
// doubling, at most an hour apart.
const (
	BackoffBase = 10 * time.Second
	BackoffMax  = time.Hour
)

// DefaultBackoff is the delay before the next attempt after attempt number
// attempt (1 for the first) failed: BackoffBase·2^(attempt-1), at most
// BackoffMax, times a random factor in [0.8, 1.2) so that the retries of
// many events that failed together (an endpoint that was down) spread out
// instead of arriving as one burst; the result never exceeds BackoffMax.
func DefaultBackoff(attempt int) time.Duration {
	d := BackoffMax
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 20 { // 10 s · 2^19 is already far beyond the cap
		d = min(BackoffBase<<(attempt-1), BackoffMax)
	}
	j := time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return min(j, BackoffMax)
}

// retryAfter parses a Retry-After header (delay seconds or an HTTP date)
// relative to now; 0 if absent or unparsable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(BackoffMax/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
