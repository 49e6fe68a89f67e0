package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/smtpgate/smtpgate/store"
)

// drainLimit is how much more of a response body is read (and dropped)
// after MaxResponseBody so that the connection can be reused.
const drainLimit = 64 << 10

// NewHTTPClient returns the client a Worker uses when Config.HTTPClient is
// nil: each request bounded by timeout, redirects not followed (a redirect
// counts as a failed attempt), keep-alive connections reused.
func NewHTTPClient(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	t.ResponseHeaderTimeout = timeout
	return &http.Client{Transport: t, Timeout: timeout, CheckRedirect: noRedirects}
}

// noRedirects makes a client return a 3xx response as it is.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// response is what an endpoint answered.
type response struct {
	status     int    // 0 if there was no response
	text       string // the error, or the status line and body of a non-2xx answer
	retryAfter time.Duration
	err        error // the transport error
}

// post sends body to ep as attempt j.Attempts+1 of job j.
func (w *Worker) post(ctx context.Context, ep Endpoint, j *store.WebhookJob, event string, body []byte) response {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return response{text: "not sent: " + err.Error(), err: err}
	}
	now := w.cfg.Now()
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", UserAgent)
	h.Set(HeaderEvent, event)
	h.Set(HeaderDelivery, strconv.FormatInt(j.ID, 10))
	h.Set(HeaderAttempt, strconv.Itoa(j.Attempts+1))
	if len(ep.Secret) > 0 {
		h.Set(HeaderSignature, Sign(ep.Secret, now, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return response{text: describe(err, w.timeout), err: err}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	r := response{status: resp.StatusCode}
	if r.status >= 200 && r.status < 300 {
		return r
	}
	var b strings.Builder
	b.WriteString("HTTP " + resp.Status)
	if r.status >= 300 && r.status < 400 {
		fmt.Fprintf(&b, " (redirects are not followed; Location: %s)", resp.Header.Get("Location"))
	}
	if s := strings.TrimSpace(strings.ToValidUTF8(string(snippet), "\uFFFD")); s != "" {
		b.WriteString(": " + s)
	}
	r.text = b.String()
	r.retryAfter = retryAfter(resp.Header, w.cfg.Now())
	return r
}

// describe words a transport error for the job's history, without the
// URL (it may hold credentials, and the history names the endpoint).
func describe(err error, timeout time.Duration) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
		if ue.Timeout() {
			return fmt.Sprintf("no answer within %s: %v", timeout, err)
		}
	}
	return err.Error()
}
