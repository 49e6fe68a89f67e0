package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/sqlite"
	"github.com/smtpgate/smtpgate/summary"
)

// The API keys of the test fixture.
const (
	keyAlice = "k_alice_0123456789"
	keyBob   = "k_bob_0123456789"
	keyAdmin = "k_admin_0123456789"
	keyNone  = "k_none_0123456789" // a known key whose scope sees nothing
)

// t0 is when the fixture's first message arrives.
var t0 = time.Date(2026, 1, 5, 10, 0, 0, 123_000_000, time.UTC)

// fixture is a Server over a real SQLite store in a temporary directory.
type fixture struct {
	t   testing.TB
	st  store.Store
	srv *Server
}

func newFixture(t testing.TB, log *zap.Logger) *fixture {
	t.Helper()
	return newFixtureConfig(t, Config{}, log)
}

// newFixtureConfig is newFixture with a Config.
func newFixtureConfig(t testing.TB, cfg Config, log *zap.Logger) *fixture {
	t.Helper()
	if log == nil {
		log = zap.NewNop()
	}
	db, err := sqlite.Open(context.Background(), t.TempDir(), log)
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	keys := NewKeys(map[string]store.Scope{
		keyAlice: {Logins: []string{"alice"}},
		keyBob:   {Logins: []string{"bob"}},
		keyAdmin: {All: true},
		keyNone:  {},
	})
	srv := New(cfg, db, keys, log)
	t.Cleanup(srv.Close)
	return &fixture{t: t, st: db, srv: srv}
}

// accept stores raw as captured mail submitted by login.
func (f *fixture) accept(login, id string, received time.Time, raw []byte, rcpts ...string) *store.Message {
	f.t.Helper()
	sum, err := summary.Parse(raw)
	if err != nil {
		f.t.Fatalf("summary.Parse: %v", err)
	}
	if id == "" {
		id = store.NewID(received)
	}
	m := &store.Message{
		ID: id, Login: login, Route: store.RouteCapture, MailFrom: "bounce@app.example",
		Recipients: rcpts, RemoteIP: "192.0.2.10", Helo: "client.example", TLS: true,
		Received: received, Size: int64(len(raw)), Raw: raw, Summary: sum,
	}
	if err := f.st.Accept(context.Background(), m); err != nil {
		f.t.Fatalf("Accept: %v", err)
	}
	return m
}

// do sends a request through the handler; key goes in the Mailsac-Key
// header when not empty.
func (f *fixture) do(method, target, key string) *httptest.ResponseRecorder {
	f.t.Helper()
	req := httptest.NewRequest(method, target, nil)
	if key != "" {
		req.Header.Set("Mailsac-Key", key)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec
}

func readMessage(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "messages", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantError checks that rec is a JSON error with the given status.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int) errorBody {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	var e errorBody
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body is not {status,error,message}: %v", err)
	}
	if e.Status != status || e.Error != http.StatusText(status) || e.Message == "" {
		t.Errorf("error body %+v does not match status %d", e, status)
	}
	return e
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
	}
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
	return v
}

func TestHealthz(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.do("GET", "/healthz", "")
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Fatalf("healthz: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Error("healthz lacks X-Content-Type-Options: nosniff")
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t, nil)
	f.accept("alice", "", t0, readMessage(t, "plain.eml"), "alice@example.com")
	const path = "/api/addresses/alice@example.com/messages"
	for _, tc := range []struct {
		name   string
		header map[string]string
		query  string
		status int
	}{
		{"no key", nil, "", 401},
		{"Mailsac-Key", map[string]string{"Mailsac-Key": keyAlice}, "", 200},
		{"Bearer", map[string]string{"Authorization": "Bearer " + keyAlice}, "", 200},
		{"bearer lower case", map[string]string{"Authorization": "bearer " + keyAlice}, "", 200},
		{"query _mailsacKey", nil, "?_mailsacKey=" + keyAlice, 200},
		{"same key twice", map[string]string{"Mailsac-Key": keyAlice, "Authorization": "Bearer " + keyAlice}, "", 200},
		{"unknown key", map[string]string{"Mailsac-Key": "k_wrong"}, "", 401},
		{"unknown bearer", map[string]string{"Authorization": "Bearer k_wrong"}, "", 401},
		{"unknown query key", nil, "?_mailsacKey=k_wrong", 401},
		{"Basic scheme", map[string]string{"Authorization": "Basic YWxpY2U6eA=="}, "", 401},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, "", 401},
		{"two different keys", map[string]string{"Mailsac-Key": keyAlice, "Authorization": "Bearer " + keyBob}, "", 400},
		{"header and other query key", map[string]string{"Mailsac-Key": keyAlice}, "?_mailsacKey=" + keyBob, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", path+tc.query, nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			f.srv.ServeHTTP(rec, req)
			if tc.status != 200 {
				wantError(t, rec, tc.status)
				if tc.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				return
			}
			list := decode[[]message](t, rec)
			if len(list) != 1 {
				t.Fatalf("got %d messages, want 1", len(list))
			}
			if rec.Header().Get("Cache-Control") != "no-store" {
				t.Error("API answer may be cached")
			}
		})
	}
}

func TestListMessagesPaging(t *testing.T) {
	f := newFixture(t, nil)
	raw := readMessage(t, "plain.eml")
	var ids []string // oldest first
	for i := range 5 {
		m := f.accept("alice", "", t0.Add(time.Duration(i)*time.Minute), raw, "Inbox@Example.com")
		ids = append(ids, m.ID)
	}
	newest := slices.Clone(ids)
	slices.Reverse(newest)
	idsOf := func(list []message) []string {
		var out []string
		for _, m := range list {
			out = append(out, m.ID)
		}
		return out
	}

	// Whole inbox, newest first, under any spelling of the address.
	for _, addr := range []string{"inbox@example.com", "INBOX@EXAMPLE.COM", "inbox%40example.com"} {
		got := idsOf(decode[[]message](t, f.do("GET", "/api/addresses/"+addr+"/messages", keyAlice)))
		if !slices.Equal(got, newest) {
			t.Errorf("%s: ids %v, want %v", addr, got, newest)
		}
	}

	// Pages of 2 following the Link header.
	target := "/api/addresses/inbox@example.com/messages?limit=2"
	var pages [][]string
	for target != "" && len(pages) < 10 {
		rec := f.do("GET", target, keyAlice)
		pages = append(pages, idsOf(decode[[]message](t, rec)))
		target = ""
		if link := rec.Header().Get("Link"); link != "" {
			u, ok := strings.CutSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
			if !ok {
				t.Fatalf("malformed Link header %q", link)
			}
			target = u
		}
	}
	var flat []string
	for _, p := range pages {
		if len(p) > 2 {
			t.Errorf("page of %d messages with limit=2", len(p))
		}
		flat = append(flat, p...)
	}
	if !slices.Equal(flat, newest) {
		t.Errorf("paged ids %v, want %v", flat, newest)
	}

	// ?until= keeps messages received at or before that time.
	until := t0.Add(2 * time.Minute).Format(time.RFC3339Nano)
	got := idsOf(decode[[]message](t, f.do("GET", "/api/addresses/inbox@example.com/messages?until="+url.QueryEscape(until), keyAlice)))
	if want := []string{ids[2], ids[1], ids[0]}; !slices.Equal(got, want) {
		t.Errorf("until=%s: ids %v, want %v", until, got, want)
	}
	got = idsOf(decode[[]message](t, f.do("GET", "/api/addresses/inbox@example.com/messages?limit=1&until="+url.QueryEscape(until), keyAlice)))
	if want := []string{ids[2]}; !slices.Equal(got, want) {
		t.Errorf("limit=1&until=%s: ids %v, want %v", until, got, want)
	}

	// An empty inbox is an empty array, not null.
	rec := f.do("GET", "/api/addresses/nobody@example.com/messages", keyAlice)
	if strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("empty inbox: %s", rec.Body)
	}

	for _, q := range []string{"limit=x", "limit=-1", "before=0", "before=abc", "until=yesterday"} {
		wantError(t, f.do("GET", "/api/addresses/inbox@example.com/messages?"+q, keyAlice), 400)
	}
}

// TestMessageGolden pins the JSON shape of a message object and checks that
// it has every property of Mailsac's EmailMessage typings.
func TestMessageGolden(t *testing.T) {
	f := newFixture(t, nil)
	const id = "01kc0abcdefghjkmnpqrstvwxy"
	f.accept("alice", id, t0, readMessage(t, "welcome.eml"), "alice@example.com", "bob@example.com", "carol@example.com", "audit@app.example")

	rec := f.do("GET", "/api/addresses/alice@example.com/messages/"+id, keyAlice)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, rec.Body.Bytes(), "", "  "); err != nil {
		t.Fatalf("status %d, body %s: %v", rec.Code, rec.Body, err)
	}
	golden := filepath.Join("testdata", "message.golden.json")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("message JSON differs from %s:\n--- got\n%s\n--- want\n%s", golden, pretty.Bytes(), want)
	}

	var obj map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &obj); err != nil {
		t.Fatal(err)
	}
	// The properties of EmailMessage in @mailsac/api 1.0.8 mailsac-client.d.ts.
	for _, k := range []string{"_id", "from", "to", "cc", "bcc", "subject", "savedBy", "originalInbox", "inbox",
		"domain", "received", "size", "attachments", "ip", "via", "folder", "labels", "read", "rtls", "links", "spam"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("message object lacks Mailsac property %q", k)
		}
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", obj["received"].(string)); err != nil {
		t.Errorf("received %q is not ISO 8601 UTC with milliseconds", obj["received"])
	}

	// The listing shows the same object.
	list := decode[[]map[string]any](t, f.do("GET", "/api/addresses/alice@example.com/messages", keyAlice))
	if len(list) != 1 || !jsonEqual(list[0], obj) {
		t.Errorf("listing object %v differs from message object %v", list, obj)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestContentRoutes(t *testing.T) {
	f := newFixture(t, nil)
	raw := readMessage(t, "welcome.eml")
	m := f.accept("alice", "", t0, raw, "alice@example.com")
	base := "/api/addresses/alice@example.com/messages/" + m.ID

	t.Run("raw", func(t *testing.T) {
		rec := f.do("GET", "/api/raw/alice@example.com/"+m.ID, keyAlice)
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), raw) {
			t.Fatalf("raw: status %d, %d bytes, want the %d stored bytes", rec.Code, rec.Body.Len(), len(raw))
		}
		wantHeader(t, rec, "Content-Type", "text/plain; charset=utf-8")
		wantHeader(t, rec, "Content-Security-Policy", cspInert)
		wantHeader(t, rec, "X-Content-Type-Options", "nosniff")
		rec = f.do("GET", "/api/raw/alice@example.com/"+m.ID+"?download=1", keyAlice)
		wantHeader(t, rec, "Content-Disposition", `attachment; filename=`+m.ID+`.eml`)
	})
	t.Run("text", func(t *testing.T) {
		rec := f.do("GET", "/api/text/alice@example.com/"+m.ID, keyAlice)
		want := "Welcome, Alice — please confirm your address:\r\nhttps://app.example/confirm?token=abc&x=1\r\n"
		if rec.Code != 200 || rec.Body.String() != want {
			t.Fatalf("text: %d %q, want %q", rec.Code, rec.Body, want)
		}
		wantHeader(t, rec, "Content-Type", "text/plain; charset=utf-8")
	})
	t.Run("body", func(t *testing.T) {
		rec := f.do("GET", "/api/body/alice@example.com/"+m.ID, keyAlice)
		body := rec.Body.String()
		if rec.Code != 200 {
			t.Fatalf("body: %d %s", rec.Code, body)
		}
		wantHeader(t, rec, "Content-Type", "text/html; charset=utf-8")
		wantHeader(t, rec, "Content-Security-Policy", cspBody)
		for _, s := range []string{`<h1>Welcome, Alice</h1>`, `href="https://app.example/confirm?token=abc&amp;x=1"`, `<img src="data:image/png;base64,`} {
			if !strings.Contains(body, s) {
				t.Errorf("sanitised body lacks %s:\n%s", s, body)
			}
		}
		for _, s := range []string{"<script", "javascript:", "tracker.example", "cid:"} {
			if strings.Contains(body, s) {
				t.Errorf("sanitised body keeps %s:\n%s", s, body)
			}
		}
		checkSafe(t, body)
	})
	t.Run("dirty", func(t *testing.T) {
		rec := f.do("GET", "/api/dirty/alice@example.com/"+m.ID, keyAlice)
		body := rec.Body.String()
		wantHeader(t, rec, "Content-Type", "text/html; charset=utf-8")
		wantHeader(t, rec, "Content-Security-Policy", cspDirty)
		if !strings.HasPrefix(rec.Header().Get("Content-Security-Policy"), "sandbox;") {
			t.Error("dirty HTML is not sandboxed")
		}
		for _, s := range []string{`<script>alert("xss")</script>`, `https://tracker.example/open.gif`, `<img src="data:image/png;base64,`} {
			if !strings.Contains(body, s) {
				t.Errorf("dirty body lacks %s:\n%s", s, body)
			}
		}
	})
	t.Run("headers", func(t *testing.T) {
		for _, path := range []string{base + "/headers", "/api/headers/alice@example.com/" + m.ID} {
			h := decode[map[string][]string](t, f.do("GET", path, keyAlice))
			if got := h["x-custom"]; !slices.Equal(got, []string{"first", "second"}) {
				t.Errorf("%s: x-custom %q", path, got)
			}
			if got := h["subject"]; !slices.Equal(got, []string{"Welcome to App — confirm"}) {
				t.Errorf("%s: subject %q", path, got)
			}
		}
		for _, q := range []string{"?messageHeadersFormat=json-ordered", "?format=ordered-json"} {
			fs := decode[[]headerField](t, f.do("GET", base+"/headers"+q, keyAlice))
			if len(fs) != 11 || fs[0].Name != "received" || fs[7] != (headerField{"x-custom", "first"}) || fs[8] != (headerField{"x-custom", "second"}) {
				t.Errorf("%s: %+v", q, fs)
			}
		}
		rec := f.do("GET", base+"/headers?messageHeadersFormat=plain&download=1", keyAlice)
		wantHeader(t, rec, "Content-Type", "text/plain; charset=utf-8")
		wantHeader(t, rec, "Content-Disposition", "attachment; filename="+m.ID+"-headers.txt")
		if !strings.Contains(rec.Body.String(), "\nSubject: Welcome to App — confirm\nDate: ") {
			t.Errorf("plain headers:\n%s", rec.Body)
		}
		wantError(t, f.do("GET", base+"/headers?messageHeadersFormat=xml", keyAlice), 400)
	})
	t.Run("attachments", func(t *testing.T) {
		list := decode[[]attachmentMeta](t, f.do("GET", base+"/attachments", keyAlice))
		want := []attachmentMeta{
			{Checksum: "144916b2860107b61d82a3677e4590d0", ContentDisposition: "inline", ContentID: "logo@app.example", ContentType: "image/png", FileName: "logo.png", Length: 67},
			{Checksum: "b57d923248f539f9680d06f3275f47a7", ContentDisposition: "attachment", ContentType: "application/pdf", FileName: "terms.pdf", Length: 75},
		}
		if !slices.Equal(list, want) {
			t.Fatalf("attachments %+v, want %+v", list, want)
		}
		for _, ident := range []string{"b57d923248f539f9680d06f3275f47a7", "terms.pdf", "B57D923248F539F9680D06F3275F47A7"} {
			rec := f.do("GET", base+"/attachments/"+ident, keyAlice)
			if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "%PDF-1.4") || rec.Body.Len() != 75 {
				t.Errorf("download %s: %d, %d bytes", ident, rec.Code, rec.Body.Len())
			}
			wantHeader(t, rec, "Content-Type", "application/octet-stream")
			wantHeader(t, rec, "Content-Disposition", "attachment; filename=terms.pdf")
		}
		rec := f.do("GET", base+"/attachments/logo@app.example", keyAlice)
		if rec.Code != 200 || rec.Body.Len() != 67 {
			t.Errorf("download by Content-ID: %d, %d bytes", rec.Code, rec.Body.Len())
		}
		wantError(t, f.do("GET", base+"/attachments/nope.txt", keyAlice), 404)
	})
	t.Run("me", func(t *testing.T) {
		me := decode[map[string]any](t, f.do("GET", "/api/me", keyAlice))
		if me["_id"] != "alice" {
			t.Errorf("/api/me %v", me)
		}
		me = decode[map[string]any](t, f.do("GET", "/api/me", keyAdmin))
		if me["_id"] != "*" || me["allLogins"] != true {
			t.Errorf("/api/me for the admin key %v", me)
		}
	})
	t.Run("delete", func(t *testing.T) {
		got := decode[deleteResult](t, f.do("DELETE", base, keyAlice))
		if got != (deleteResult{ID: m.ID, Inbox: "alice@example.com", Message: "Message was deleted."}) {
			t.Errorf("delete answer %+v", got)
		}
		wantError(t, f.do("GET", base, keyAlice), 404)
		wantError(t, f.do("DELETE", base, keyAlice), 404)
		if rec := f.do("GET", "/api/addresses/alice@example.com/messages", keyAlice); strings.TrimSpace(rec.Body.String()) != "[]" {
			t.Errorf("inbox after delete: %s", rec.Body)
		}
	})
}

// TestBodyFallbacks: a text-only message gets an HTML body, an HTML-only
// message a text body.
func TestBodyFallbacks(t *testing.T) {
	f := newFixture(t, nil)
	plain := f.accept("alice", "", t0, readMessage(t, "plain.eml"), "alice@example.com")
	html := f.accept("alice", "", t0, readMessage(t, "htmlonly.eml"), "alice@example.com")

	for _, route := range []string{"body", "dirty"} {
		rec := f.do("GET", "/api/"+route+"/alice@example.com/"+plain.ID, keyAlice)
		want := `<pre style="white-space:pre-wrap">Line one &lt;not a tag&gt; &amp; more.`
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s of a text-only message:\n%s", route, rec.Body)
		}
	}
	rec := f.do("GET", "/api/text/alice@example.com/"+html.ID, keyAlice)
	want := "News\n\nRead the article (https://news.example/a) now.\n\n- one\n- two\n"
	if rec.Body.String() != want {
		t.Errorf("text of an HTML-only message: %q, want %q", rec.Body, want)
	}
}

// TestIsolation: a key sees only the mail of its logins, and a message of
// another login is answered exactly like a message that does not exist, on
// every route.
func TestIsolation(t *testing.T) {
	f := newFixture(t, nil)
	raw := readMessage(t, "welcome.eml")
	a := f.accept("alice", "", t0, raw, "shared@example.com")
	b := f.accept("bob", "", t0.Add(time.Second), raw, "shared@example.com")
	missing := store.NewID(t0)

	listIDs := func(key string) []string {
		var ids []string
		for _, m := range decode[[]message](t, f.do("GET", "/api/addresses/shared@example.com/messages", key)) {
			ids = append(ids, m.ID)
		}
		return ids
	}
	for key, want := range map[string][]string{keyAlice: {a.ID}, keyBob: {b.ID}, keyAdmin: {b.ID, a.ID}, keyNone: nil} {
		if got := listIDs(key); !slices.Equal(got, want) {
			t.Errorf("key %s lists %v, want %v", key, got, want)
		}
	}

	routes := []string{
		"GET /api/addresses/shared@example.com/messages/%s",
		"GET /api/addresses/shared@example.com/messages/%s/headers",
		"GET /api/addresses/shared@example.com/messages/%s/attachments",
		"GET /api/addresses/shared@example.com/messages/%s/attachments/b57d923248f539f9680d06f3275f47a7",
		"GET /api/headers/shared@example.com/%s",
		"GET /api/raw/shared@example.com/%s",
		"GET /api/text/shared@example.com/%s",
		"GET /api/body/shared@example.com/%s",
		"GET /api/dirty/shared@example.com/%s",
		"DELETE /api/addresses/shared@example.com/messages/%s",
	}
	for _, r := range routes {
		method, pattern, _ := strings.Cut(r, " ")
		t.Run(r, func(t *testing.T) {
			// Alice and the admin may read Alice's message...
			for _, key := range []string{keyAlice, keyAdmin} {
				if method == "DELETE" {
					continue
				}
				if rec := f.do(method, fmt.Sprintf(pattern, a.ID), key); rec.Code != 200 {
					t.Errorf("%s with its owner's key: %d %s", r, rec.Code, rec.Body)
				}
			}
			// ...Bob and the empty scope get what a missing id gets.
			want := f.do(method, fmt.Sprintf(pattern, missing), keyBob)
			wantBody := want.Body.String()
			wantError(t, want, 404)
			for _, key := range []string{keyBob, keyNone} {
				got := f.do(method, fmt.Sprintf(pattern, a.ID), key)
				if got.Code != 404 || got.Body.String() != wantBody {
					t.Errorf("%s with key %s: %d %s, want the answer to a missing id %s", r, key, got.Code, got.Body, wantBody)
				}
			}
		})
	}
	// Alice's message survived Bob's DELETE.
	if got := listIDs(keyAlice); !slices.Equal(got, []string{a.ID}) {
		t.Errorf("after Bob's delete attempts Alice lists %v", got)
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, nil)
	m := f.accept("alice", "", t0, readMessage(t, "plain.eml"), "alice@example.com")

	for _, addr := range []string{
		"noat.example.com", "a@b@example.com", "@example.com", "alice@", "alice@-bad.example",
		"alice@bad..example", "a%20b@example.com", "a%00b@example.com", "a%2Fb@example.com",
		"alice@exa_mple.com", strings.Repeat("a", 65) + "@example.com", "a@" + strings.Repeat("b", 250) + ".com",
		"%ff@example.com",
	} {
		for _, path := range []string{"/api/addresses/%s/messages", "/api/addresses/%s/messages/" + m.ID, "/api/raw/%s/" + m.ID} {
			target := fmt.Sprintf(path, addr)
			e := wantError(t, f.do("GET", target, keyAlice), 400)
			if !strings.HasPrefix(e.Message, "invalid email address") {
				t.Errorf("%s: message %q", target, e.Message)
			}
		}
	}
	for _, addr := range []string{"alice@[192.0.2.1]", "Ünïcode@bücher.example", "a+tag@example.co.uk"} {
		if rec := f.do("GET", "/api/addresses/"+url.PathEscape(addr)+"/messages", keyAlice); rec.Code != 200 {
			t.Errorf("valid address %s: %d %s", addr, rec.Code, rec.Body)
		}
	}
	for _, id := range []string{"short", strings.ToUpper(m.ID), m.ID[:25] + "u", m.ID + "0", "..%2f..%2fetc"} {
		e := wantError(t, f.do("GET", "/api/addresses/alice@example.com/messages/"+id, keyAlice), 404)
		if e.Message != "Message not found" {
			t.Errorf("id %s: %q", id, e.Message)
		}
	}

	wantError(t, f.do("GET", "/api/nothing-here", keyAlice), 404)
	wantError(t, f.do("GET", "/nothing", ""), 404)
	rec := f.do("PUT", "/api/addresses/alice@example.com/messages/"+m.ID, keyAlice)
	wantError(t, rec, 405)
	if allow := rec.Header().Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "DELETE") {
		t.Errorf("405 Allow: %q", allow)
	}
	wantError(t, f.do("GET", "/api/addresses/alice@example.com/messages?x="+strings.Repeat("y", 5000), keyAlice), 414)

	req := httptest.NewRequest("DELETE", "/api/addresses/alice@example.com/messages/"+m.ID, strings.NewReader(strings.Repeat("x", 100<<10)))
	req.Header.Set("Mailsac-Key", keyAlice)
	rec = httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	wantError(t, rec, 413)
}

func TestPanicRecovered(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	f := newFixture(t, zap.New(core))
	f.srv.Handle("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("kaboom") }))
	f.srv.Handle("GET /mounted", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "mounted") }))
	wantError(t, f.do("GET", "/boom", ""), 500)
	if logs.FilterMessage("web: panic in handler").Len() != 1 {
		t.Errorf("panic not logged: %v", logs.All())
	}
	rec := f.do("GET", "/mounted", "")
	if rec.Code != 200 || rec.Body.String() != "mounted" {
		t.Errorf("mounted handler: %d %s", rec.Code, rec.Body)
	}
}

func wantHeader(t *testing.T, rec *httptest.ResponseRecorder, key, want string) {
	t.Helper()
	if got := rec.Header().Get(key); got != want {
		t.Errorf("%s: %q, want %q", key, got, want)
	}
}

// TestRawOriginal: /api/raw serves the message as stored, and with
// ?original=1 the message as the client submitted it, when it differs.
func TestRawOriginal(t *testing.T) {
	f := newFixture(t, nil)
	raw := readMessage(t, "welcome.eml")
	original := bytes.Replace(raw, []byte("X-Custom: first\r\n"), []byte("X-Smtpgate-Trackclicks: true\r\nX-Custom: first\r\n"), 1)
	sum, err := summary.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	m := &store.Message{ID: store.NewID(t0), Login: "alice", Route: store.RouteCapture,
		Recipients: []string{"alice@example.com"}, Received: t0, Size: int64(len(raw)),
		Raw: raw, Original: original, Summary: sum}
	if err := f.st.Accept(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	plain := f.accept("alice", "", t0, readMessage(t, "plain.eml"), "alice@example.com")
	for _, tc := range []struct {
		id, query string
		want      []byte
	}{
		{m.ID, "", raw},
		{m.ID, "?original=1", original},
		{plain.ID, "?original=1", plain.Raw}, // no Original stored: the raw message
	} {
		rec := f.do("GET", "/api/raw/alice@example.com/"+tc.id+tc.query, keyAlice)
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), tc.want) {
			t.Errorf("raw %s%s: status %d, %d bytes, want %d", tc.id, tc.query, rec.Code, rec.Body.Len(), len(tc.want))
		}
	}
}
