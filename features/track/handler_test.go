package track

import (
	"bytes"
	"context"
	"errors"
	"image/gif"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// memRecorder keeps events in memory; fail makes Record return an error.
type memRecorder struct {
	mu     sync.Mutex
	events []Event
	fail   error
	ctxOK  bool // every Record got a live request context
}

func (m *memRecorder) Record(ctx context.Context, e Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ctxOK = ctx.Err() == nil && ctx.Value(http.ServerContextKey) != nil
	if m.fail != nil {
		return m.fail
	}
	m.events = append(m.events, e)
	return nil
}

func (m *memRecorder) list() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.events...)
}

var testNow = time.Date(2026, 11, 22, 8, 30, 0, 0, time.UTC)

// newTestServer serves NewHandler on a loopback port.
func newTestServer(t *testing.T, rec Recorder, log *zap.Logger, opts ...HandlerOption) (*httptest.Server, *Codec) {
	t.Helper()
	c := newTestCodec(t)
	if log == nil {
		log = zap.NewNop()
	}
	opts = append([]HandlerOption{WithClock(func() time.Time { return testNow })}, opts...)
	srv := httptest.NewServer(NewHandler(c, rec, log, opts...))
	t.Cleanup(srv.Close)
	return srv, c
}

// noRedirectClient returns a client that reports redirects instead of
// following them.
func noRedirectClient() *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func do(t *testing.T, method, url string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := noRedirectClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func clickToken(c *Codec, url string) string {
	return c.Seal(Token{Kind: KindClick, MessageID: "m1", Recipient: "alice@example.com", URL: url, Issued: testIssued})
}

func TestHandlerClick(t *testing.T) {
	rec := &memRecorder{}
	srv, c := newTestServer(t, rec, nil)
	const target = "https://shop.example.com/a?x=1&y=2"
	resp, body := do(t, http.MethodGet, srv.URL+"/c/"+clickToken(c, target), http.Header{"User-Agent": {"TestAgent/1.0"}})
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status = %d, want 302; body %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Location"); got != target {
		t.Errorf("Location = %q, want %q", got, target)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store, private" {
		t.Errorf("Cache-Control = %q", got)
	}
	want := Event{Kind: EventClicked, MessageID: "m1", Recipient: "alice@example.com", URL: target, IP: "127.0.0.1", UserAgent: "TestAgent/1.0", Time: testNow}
	if ev := rec.list(); len(ev) != 1 || ev[0] != want {
		t.Errorf("events = %+v, want [%+v]", ev, want)
	}
	if !rec.ctxOK {
		t.Error("Record did not get the live request context")
	}
}

func TestHandlerClickHEADDoesNotRecord(t *testing.T) {
	rec := &memRecorder{}
	srv, c := newTestServer(t, rec, nil)
	resp, body := do(t, http.MethodHead, srv.URL+"/c/"+clickToken(c, "https://x.example/"), nil)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://x.example/" || len(body) != 0 {
		t.Errorf("HEAD: status %d, Location %q, body %q", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if ev := rec.list(); len(ev) != 0 {
		t.Errorf("HEAD recorded %+v", ev)
	}
}

func TestHandlerClickUnicodeLocation(t *testing.T) {
	srv, c := newTestServer(t, &memRecorder{}, nil)
	resp, _ := do(t, http.MethodGet, srv.URL+"/c/"+clickToken(c, "https://exämple.com/ü?q=a b"), nil)
	if got, want := resp.Header.Get("Location"), "https://xn--exmple-cua.com/%C3%BC?q=a%20b"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
}

// TestHandlerClickCleansSealedLineBreaks: a token sealed with a tab or line
// break in its URL (as the rewriter did before it cleaned hrefs) redirects
// to, and records, the URL a browser would have opened.
func TestHandlerClickCleansSealedLineBreaks(t *testing.T) {
	rec := &memRecorder{}
	srv, c := newTestServer(t, rec, nil)
	resp, _ := do(t, http.MethodGet, srv.URL+"/c/"+clickToken(c, "https://x.example/a\nb?c=1\t&d=2"), nil)
	const want = "https://x.example/ab?c=1&d=2"
	if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || got != want {
		t.Errorf("status %d, Location %q, want 302 to %q", resp.StatusCode, got, want)
	}
	if ev := rec.list(); len(ev) != 1 || ev[0].URL != want {
		t.Errorf("events = %+v, want one click on %q", ev, want)
	}
}

func TestHandlerClickRefusesNonHTTPURL(t *testing.T) {
	rec := &memRecorder{}
	srv, c := newTestServer(t, rec, nil)
	// Validly signed tokens whose URL the rewriter would never have sealed.
	for _, u := range []string{"javascript:alert(1)", "data:text/html,x", "//evil.example/", "ftp://x.example/", "", "https://x.example\r\nX: y", "java\r\nscript:alert(1)", "\thttps://\r\n/"} {
		resp, body := do(t, http.MethodGet, srv.URL+"/c/"+clickToken(c, u), nil)
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" || string(body) != `{"error":"not found"}` {
			t.Errorf("URL %q: status %d, Location %q, body %q", u, resp.StatusCode, resp.Header.Get("Location"), body)
		}
	}
	if ev := rec.list(); len(ev) != 0 {
		t.Errorf("recorded %+v", ev)
	}
}

func TestHandlerOpen(t *testing.T) {
	rec := &memRecorder{}
	srv, c := newTestServer(t, rec, nil)
	tok := c.Seal(Token{Kind: KindOpen, MessageID: "m2", Recipient: "bob@example.org", Issued: testIssued})
	resp, body := do(t, http.MethodGet, srv.URL+"/o/"+tok, http.Header{"User-Agent": {"Mail/1"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	for k, v := range map[string]string{
		"Content-Type":   "image/gif",
		"Content-Length": "43",
		"Cache-Control":  "no-cache, no-store, must-revalidate, private",
		"Pragma":         "no-cache",
		"Expires":        "0",
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(body) != 43 {
		t.Fatalf("body is %d bytes, want 43", len(body))
	}
	img, err := gif.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("pixel is not a GIF: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1 || b.Dy() != 1 {
		t.Errorf("pixel is %v, want 1×1", b)
	}
	if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
		t.Errorf("pixel alpha = %d, want 0 (transparent)", a)
	}
	want := Event{Kind: EventOpened, MessageID: "m2", Recipient: "bob@example.org", IP: "127.0.0.1", UserAgent: "Mail/1", Time: testNow}
	if ev := rec.list(); len(ev) != 1 || ev[0] != want {
		t.Errorf("events = %+v, want [%+v]", ev, want)
	}

	resp, body = do(t, http.MethodHead, srv.URL+"/o/"+tok, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/gif" || len(body) != 0 {
		t.Errorf("HEAD: status %d, type %q, body %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	if ev := rec.list(); len(ev) != 1 {
		t.Errorf("HEAD recorded an open: %+v", ev)
	}
}

func TestHandlerNotFound(t *testing.T) {
	rec := &memRecorder{}
	srv, c := newTestServer(t, rec, nil)
	click := clickToken(c, "https://x.example/")
	open := c.Seal(Token{Kind: KindOpen, MessageID: "m", Recipient: "r", Issued: testIssued})
	other, err := NewCodec([]byte("a-different-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/c/" + open,  // wrong kind
		"/o/" + click, // wrong kind
		"/c/" + clickToken(other, "https://x.example/"), // other secret
		"/c/" + click[:len(click)-2],                    // truncated
		"/c/" + click + "/extra",                        // extra path
		"/c/", "/o/", "/c", "/", "/x/" + click, "/C/" + click, "/cc/" + click,
		"/c/" + strings.Repeat("A", MaxTokenLen+1),
		"/c/%00",
	} {
		resp, body := do(t, http.MethodGet, srv.URL+path, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("GET %s: Content-Type %q", path, got)
		}
		if string(body) != `{"error":"not found"}` || resp.Header.Get("Location") != "" {
			t.Errorf("GET %s: body %q, Location %q", path, body, resp.Header.Get("Location"))
		}
	}
	if ev := rec.list(); len(ev) != 0 {
		t.Errorf("recorded %+v", ev)
	}
}

// TestHandlerTamperedTokens flips every character of a click and an open
// token: every variant is a 404 without a redirect, and nothing is recorded.
func TestHandlerTamperedTokens(t *testing.T) {
	rec := &memRecorder{}
	srv, c := newTestServer(t, rec, nil)
	open := c.Seal(Token{Kind: KindOpen, MessageID: "m", Recipient: "alice@example.com", Issued: testIssued})
	for _, p := range []struct{ prefix, tok string }{{"/c/", clickToken(c, "https://x.example/a")}, {"/o/", open}} {
		for i := 0; i < len(p.tok); i++ {
			b := []byte(p.tok)
			b[i] = flipTokenByte(b[i])
			resp, body := do(t, http.MethodGet, srv.URL+p.prefix+string(b), nil)
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" || string(body) != `{"error":"not found"}` {
				t.Fatalf("%s token with byte %d flipped: status %d, Location %q, body %q", p.prefix, i, resp.StatusCode, resp.Header.Get("Location"), body)
			}
		}
	}
	if ev := rec.list(); len(ev) != 0 {
		t.Errorf("recorded %+v", ev)
	}
}

// flipTokenByte returns another character of the token alphabet.
func flipTokenByte(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[(i+1)%len(alphabet)]
}

func TestHandlerMethodNotAllowed(t *testing.T) {
	srv, c := newTestServer(t, &memRecorder{}, nil)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		resp, body := do(t, m, srv.URL+"/c/"+clickToken(c, "https://x.example/"), nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" || string(body) != `{"error":"method not allowed"}` {
			t.Errorf("%s: status %d, Allow %q, body %q", m, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
}

func TestHandlerRecordFailureStillRedirects(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	rec := &memRecorder{fail: errors.New("store is down")}
	srv, c := newTestServer(t, rec, zap.New(core))
	resp, _ := do(t, http.MethodGet, srv.URL+"/c/"+clickToken(c, "https://x.example/"), nil)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://x.example/" {
		t.Errorf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := do(t, http.MethodGet, srv.URL+"/o/"+c.Seal(Token{Kind: KindOpen, MessageID: "m1"}), nil)
	if resp.StatusCode != http.StatusOK || len(body) != 43 {
		t.Errorf("open: status %d, %d bytes", resp.StatusCode, len(body))
	}
	entries := logs.FilterMessage("record tracking event").All()
	if len(entries) != 2 {
		t.Fatalf("logged %d record failures, want 2: %+v", len(entries), logs.All())
	}
	if f := entries[0].ContextMap(); f["error"] != "store is down" || f["message_id"] != "m1" || f["kind"] != EventClicked {
		t.Errorf("log fields = %v", f)
	}
}

func TestHandlerClientIP(t *testing.T) {
	cases := []struct {
		name  string
		trust bool
		xff   []string
		want  string
	}{
		{"ignored without TrustProxy", false, []string{"203.0.113.7"}, "127.0.0.1"},
		{"single", true, []string{"203.0.113.7"}, "203.0.113.7"},
		{"right-most entry is the proxy's", true, []string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7"},
		{"last header line wins", true, []string{"198.51.100.1", "203.0.113.7"}, "203.0.113.7"},
		{"invalid entries skipped", true, []string{"203.0.113.7, unknown"}, "203.0.113.7"},
		{"IPv6", true, []string{"2001:db8::1"}, "2001:db8::1"},
		{"garbage falls back to RemoteAddr", true, []string{"nonsense"}, "127.0.0.1"},
		{"absent header", true, nil, "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &memRecorder{}
			var opts []HandlerOption
			if tc.trust {
				opts = append(opts, TrustProxy())
			}
			srv, c := newTestServer(t, rec, nil, opts...)
			do(t, http.MethodGet, srv.URL+"/c/"+clickToken(c, "https://x.example/"), http.Header{"X-Forwarded-For": tc.xff})
			if ev := rec.list(); len(ev) != 1 || ev[0].IP != tc.want {
				t.Errorf("events = %+v, want IP %q", ev, tc.want)
			}
		})
	}
}

func TestHandlerBehindStripPrefix(t *testing.T) {
	rec := &memRecorder{}
	c := newTestCodec(t)
	mux := http.NewServeMux()
	mux.Handle("/t/", http.StripPrefix("/t", NewHandler(c, rec, zap.NewNop())))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	r, err := NewRewriter(c, srv.URL+"/t")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := r.RewriteHTML([]byte(`<a href="https://x.example/">x</a>`), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	link := strings.TrimSuffix(strings.TrimPrefix(string(out), `<a href="`), `">x</a>`)
	resp, _ := do(t, http.MethodGet, link, nil)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://x.example/" {
		t.Errorf("GET %s: status %d, Location %q", link, resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestHandlerNilRecorderAndLogger(t *testing.T) {
	c := newTestCodec(t)
	srv := httptest.NewServer(NewHandler(c, nil, nil))
	t.Cleanup(srv.Close)
	resp, _ := do(t, http.MethodGet, srv.URL+"/c/"+clickToken(c, "https://x.example/"), nil)
	if resp.StatusCode != http.StatusFound {
		t.Errorf("status %d", resp.StatusCode)
	}
}
