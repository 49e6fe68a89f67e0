package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Request headers set on every delivery.
const (
	// HeaderSignature carries "t=<unix seconds>,v1=<hex HMAC-SHA256>" (see Sign).
	HeaderSignature = "Smtpgate-Signature"
	// HeaderEvent is the event type, the same as the payload's "event".
	HeaderEvent = "Smtpgate-Event"
	// HeaderDelivery is the delivery id, the same as the payload's "id". It
	// is the same on every retry of one event to one endpoint: receivers
	// dedupe on it.
	HeaderDelivery = "Smtpgate-Delivery"
	// HeaderAttempt is the attempt number, 1 for the first.
	HeaderAttempt = "Smtpgate-Attempt"
	// UserAgent is the User-Agent of every delivery.
	UserAgent = "smtpgate-webhook/1"
)

// DefaultTolerance is the timestamp tolerance Verify applies when it is
// given none: a signature older (or newer, for clock skew) than this is
// refused.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify, wrapped with detail; test them with errors.Is.
var (
	// ErrMalformed: the header is missing or is not "t=…,v1=…".
	ErrMalformed = errors.New("webhook: malformed signature header")
	// ErrTimestamp: the signed timestamp is outside the tolerance (a replay
	// of an old request, or a badly wrong clock).
	ErrTimestamp = errors.New("webhook: signature timestamp outside tolerance")
	// ErrMismatch: no v1 signature matches the body and the secret.
	ErrMismatch = errors.New("webhook: signature mismatch")
)

// Sign returns the Smtpgate-Signature header value for body sent at
// timestamp:
//
//	t=<unix seconds>,v1=<lower-case hex of HMAC-SHA256(secret, "<unix seconds>.<body>")>
//
// This is the scheme Stripe uses, chosen because:
//   - an HMAC with a shared secret is checked with the standard library of
//     every language, without key distribution (Postal publishes RSA keys
//     as JWKS, SMTPeter puts them in DNS);
//   - the timestamp is inside the signed text, so a captured request cannot
//     be replayed later than the receiver's tolerance (EmailEngine's
//     X-EE-Wh-Signature signs the body alone and can be replayed forever;
//     Mailpit's webhooks are not signed at all, its issue #465);
//   - the version label leaves room for another algorithm, and a header
//     may carry several v1 values (Verify accepts any that matches), which
//     lets a secret be rotated without a gap;
//   - receivers that already verify Stripe webhooks reuse their code with
//     another header name.
func Sign(secret []byte, timestamp time.Time, body []byte) string {
	ts := strconv.FormatInt(timestamp.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// mac computes HMAC-SHA256(secret, ts + "." + body).
func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a Smtpgate-Signature header (see Sign) against the raw
// request body, for receivers. It refuses a header whose timestamp is more
// than tolerance away from now, in either direction (DefaultTolerance if
// tolerance <= 0), and one where no v1 value is the HMAC of the body with
// secret; the comparison is constant-time. Unknown "key=value" elements
// are ignored, so later versions can add schemes.
//
// A valid request can still be replayed within the tolerance: to be fully
// replay-safe, a receiver also remembers the Smtpgate-Delivery ids it has
// processed for at least that long (it needs them anyway, since a delivery
// may be retried after a 2xx got lost).
//
// The body must be the bytes received, before any JSON decoding.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for elem := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(elem), "=")
		if !ok {
			return fmt.Errorf("%w: element %q has no '='", ErrMalformed, elem)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: more than one t", ErrMalformed)
			}
			if v == "" {
				return fmt.Errorf("%w: empty t", ErrMalformed)
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return fmt.Errorf("%w: v1 is not 64 hex digits", ErrMalformed)
			}
			sigs = append(sigs, b)
		}
	}
	if ts == "" {
		return fmt.Errorf("%w: no t", ErrMalformed)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no v1", ErrMalformed)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 || ts[0] == '+' {
		return fmt.Errorf("%w: t %q is not unix seconds", ErrMalformed, ts)
	}
	age := now.Sub(time.Unix(unix, 0))
	if age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: signed at %s, %s from now (tolerance %s)", ErrTimestamp,
			time.Unix(unix, 0).UTC().Format(time.RFC3339), age.Round(time.Second), tolerance)
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrMismatch
}
