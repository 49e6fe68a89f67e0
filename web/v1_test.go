package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// capture commits m as the gateway does: Summary, Size and Text from Raw,
// the captured events, then Committed. Zero fields get the fixture's
// defaults.
func (f *fixture) capture(m *store.Message) *store.Message {
	f.t.Helper()
	if m.Received.IsZero() {
		m.Received = t0
	}
	if m.ID == "" {
		m.ID = store.NewID(m.Received)
	}
	if m.Route == "" {
		m.Route = store.RouteCapture
	}
	if m.MailFrom == "" {
		m.MailFrom = "bounce@app.example"
	}
	m.RemoteIP, m.Helo, m.TLS = "192.0.2.10", "client.example", true
	sum, err := summary.Parse(m.Raw)
	if err != nil {
		f.t.Fatalf("summary.Parse: %v", err)
	}
	m.Summary, m.Size = sum, int64(len(m.Raw))
	c, err := summary.Extract(m.Raw)
	if err != nil {
		f.t.Fatalf("summary.Extract: %v", err)
	}
	m.Text = readableText(c)
	if m.Route == store.RouteCapture {
		for _, r := range m.Recipients {
			m.Events = append(m.Events, &store.Event{Type: store.EventCaptured, Recipient: r, Time: m.Received})
		}
	}
	if err := f.st.Accept(context.Background(), m); err != nil {
		f.t.Fatalf("Accept: %v", err)
	}
	f.srv.Committed(m)
	return m
}

// trackedMessage is tracked.eml as the content features made it from
// tracked-original.eml, with the processing record they would leave.
func (f *fixture) trackedMessage(login string, received time.Time, rcpts ...string) *store.Message {
	f.t.Helper()
	return f.capture(&store.Message{
		Login: login, Received: received, Recipients: rcpts,
		Raw: readMessage(f.t, "tracked.eml"), Original: readMessage(f.t, "tracked-original.eml"),
		Tags: []string{"shipping", "orders"}, Metadata: map[string]string{"order": "4471"},
		Processing: store.Processing{
			Features: map[string]bool{"inline_css": true, "track_clicks": true, "track_opens": true, "track_bounces": false},
			Directives: []store.DirectiveRecord{
				{Header: "X-Smtpgate-Trackclicks", Value: "true", Directive: "trackclicks", Outcome: "applied"},
				{Header: "X-Smtpgate-Tags", Value: "shipping, orders", Directive: "tags", Outcome: "applied"},
			},
			Stats: map[string]int{"links_tracked": 2, "pixels_added": 1, "css_inlined": 1},
		},
	})
}

func (f *fixture) plainMessage(login, name string, received time.Time, rcpts ...string) *store.Message {
	f.t.Helper()
	return f.capture(&store.Message{Login: login, Received: received, Recipients: rcpts, Raw: readMessage(f.t, name)})
}

// ids lists the ids of v1 messages.
func ids(list []apiMessage) []string {
	out := []string{}
	for _, m := range list {
		out = append(out, m.ID)
	}
	return out
}

func idsOf(ms ...*store.Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestV1Search(t *testing.T) {
	f := newFixture(t, nil)
	welcome := f.plainMessage("alice", "welcome.eml", t0, "alice@example.com", "bob@example.com")
	plain := f.plainMessage("alice", "plain.eml", t0.Add(time.Hour), "Ops@Example.com")
	tracked := f.trackedMessage("alice", t0.Add(2*time.Hour), "ann@example.com")
	otp := f.plainMessage("carol", "otp.eml", t0.Add(3*time.Hour), "bob@example.com")
	bobs := f.plainMessage("bob", "htmlonly.eml", t0.Add(4*time.Hour), "alice@example.com")
	f.capture(&store.Message{Login: "alice", Route: "smarthost", Received: t0.Add(5 * time.Hour),
		Recipients: []string{"alice@example.com"}, Raw: readMessage(t, "plain.eml")}) // relayed: never listed

	list := func(key, query string) []apiMessage {
		t.Helper()
		return decode[messageList](t, f.do("GET", "/api/v1/messages"+query, key)).Messages
	}
	for _, tc := range []struct {
		key, query string
		want       []*store.Message
	}{
		{keyAlice, "", []*store.Message{tracked, plain, welcome}},
		{keyAdmin, "", []*store.Message{bobs, otp, tracked, plain, welcome}},
		{keyAdmin, "?login=carol", []*store.Message{otp}},
		{keyAlice, "?login=carol", nil}, // not in Alice's scope
		{keyAdmin, "?inbox=ALICE@example.com", []*store.Message{bobs, welcome}},
		{keyAlice, "?inbox=ops@example.com", []*store.Message{plain}},
		{keyAdmin, "?from=noreply@app", []*store.Message{welcome}},
		{keyAdmin, "?from=Acme+Accounts", []*store.Message{otp}}, // display name
		{keyAdmin, "?from=bounce@app.example", []*store.Message{bobs, otp, tracked, plain, welcome}},
		{keyAdmin, "?to=ann@", []*store.Message{tracked}},
		{keyAdmin, "?to=carol@example.com", []*store.Message{welcome}}, // Cc
		{keyAdmin, "?subject=SHIPPED", []*store.Message{tracked}},
		{keyAdmin, "?text=4471", []*store.Message{tracked}},
		{keyAdmin, "?text=verification+code", []*store.Message{otp}}, // HTML-only: its text
		{keyAdmin, "?tag=orders", []*store.Message{tracked}},
		{keyAdmin, "?tag=order", nil}, // exact
		{keyAdmin, "?has_attachment=true", []*store.Message{welcome}},
		{keyAdmin, "?has_attachment=false&login=alice", []*store.Message{tracked, plain}},
		{keyAdmin, "?since=" + url.QueryEscape(t0.Add(time.Hour).Format(time.RFC3339)) + "&until=" + url.QueryEscape(t0.Add(3*time.Hour).Format(time.RFC3339)), []*store.Message{tracked, plain}},
		{keyAdmin, "?since=2026-01-06", nil},
		{keyNone, "", nil},
	} {
		if got, want := ids(list(tc.key, tc.query)), idsOf(tc.want...); !slices.Equal(got, want) {
			t.Errorf("key %s, query %q: %v, want %v", tc.key, tc.query, got, want)
		}
	}

	// The listing object.
	got := list(keyAlice, "?subject=shipped")[0]
	if got.Seq != tracked.Seq || got.Login != "alice" || got.Subject != "Your order has shipped" ||
		got.Stats["links_tracked"] != 2 || got.Stats["pixels_added"] != 1 || !slices.Equal(got.Tags, []string{"shipping", "orders"}) ||
		got.Received != t0.Add(2*time.Hour) || got.Size != tracked.Size || got.Read != nil || got.From[0].Address != "news@shop.example" {
		t.Errorf("listing object %+v", got)
	}
	w := list(keyAlice, "?inbox=alice@example.com")[0]
	if w.Inbox != "alice@example.com" || w.Read == nil || *w.Read || len(w.Attachments) != 2 ||
		w.Attachments[1] != (apiAttachment{Index: 1, Filename: "terms.pdf", ContentType: "application/pdf", Size: 75,
			MD5: "b57d923248f539f9680d06f3275f47a7", URL: "/api/v1/messages/" + welcome.ID + "/attachments/1"}) {
		t.Errorf("inbox listing object %+v", w)
	}

	// Cursor paging, with and without filters.
	for _, q := range []string{"?limit=2&", "?limit=2&from=bounce&", "?limit=1&inbox=alice@example.com&"} {
		var pages []string
		cursor := ""
		for range 10 {
			page := decode[messageList](t, f.do("GET", "/api/v1/messages"+q+"cursor="+cursor, keyAdmin))
			pages = append(pages, ids(page.Messages)...)
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		_, filter, _ := strings.Cut(q, "&")
		all := ids(list(keyAdmin, "?"+filter))
		if !slices.Equal(pages, all) {
			t.Errorf("%s: paged %v, want %v", q, pages, all)
		}
	}

	for _, q := range []string{"?form=x", "?limit=0", "?limit=1001", "?limit=x", "?cursor=abc", "?cursor=0", "?cursor=-5",
		"?since=yesterday", "?until=2026-13-01", "?inbox=not-an-address", "?has_attachment=maybe",
		"?from=a&from=b", "?subject=" + strings.Repeat("x", 600)} {
		e := wantError(t, f.do("GET", "/api/v1/messages"+q, keyAdmin), 400)
		if q == "?form=x" && !strings.Contains(e.Message, `unknown parameter "form"`) {
			t.Errorf("%s: %q", q, e.Message)
		}
	}
}

func TestV1Message(t *testing.T) {
	f := newFixture(t, nil)
	m := f.trackedMessage("alice", t0, "ann@example.com", "ops@example.com")
	d := decode[apiMessageDetail](t, f.do("GET", "/api/v1/messages/"+m.ID, keyAlice))
	base := "/api/v1/messages/" + m.ID
	if d.ID != m.ID || d.Seq != m.Seq || !d.HasOriginal || d.RemoteIP != "192.0.2.10" || !d.TLS || d.Helo != "client.example" ||
		d.Metadata["order"] != "4471" || d.URLs.Raw != base+"/raw" || d.URLs.Diff != base+"/diff" {
		t.Errorf("message %+v", d)
	}
	if !strings.Contains(d.Text, "Track it: https://t.example.com/c/DeF456") || !strings.Contains(d.HTML, `href="https://t.example.com/c/AbC123"`) {
		t.Errorf("text %q / html %q", d.Text, d.HTML)
	}
	if i := slices.IndexFunc(d.Headers, func(h headerField) bool { return h.Name == "Subject" }); i < 0 || d.Headers[i].Value != "Your order has shipped" {
		t.Errorf("headers %+v", d.Headers)
	}
	wantLinks := []apiLink{{URL: "https://t.example.com/c/AbC123", Text: "Track your parcel", Source: "html", OriginalURL: "https://shop.example/track/4471"},
		{URL: "https://t.example.com/c/DeF456", Source: "text", OriginalURL: "https://shop.example/track/4471"}}
	if !slices.Equal(d.Links, wantLinks) {
		t.Errorf("links %+v, want %+v", d.Links, wantLinks)
	}
	if len(d.Codes) != 1 || d.Codes[0].Code != "4471" {
		t.Errorf("codes %+v", d.Codes)
	}
	if len(d.Processing.Directives) != 2 || d.Processing.Stats["css_inlined"] != 1 || !d.Processing.Features["track_opens"] {
		t.Errorf("processing %+v", d.Processing)
	}
	if len(d.Events) != 2 || d.Events[0].Type != store.EventCaptured || d.Events[0].Recipient != "ann@example.com" {
		t.Errorf("events %+v", d.Events)
	}

	plain := f.plainMessage("alice", "plain.eml", t0, "ann@example.com")
	d = decode[apiMessageDetail](t, f.do("GET", "/api/v1/messages/"+plain.ID, keyAlice))
	if d.HasOriginal || d.HTML != "" || !strings.HasPrefix(d.Text, "Line one <not a tag> & more.") || len(d.Codes) != 0 {
		t.Errorf("plain message: %+v", d)
	}
	// Relayed mail is never listed, but opens by its id, with its route.
	relayed := f.capture(&store.Message{Login: "alice", Route: "smarthost", Recipients: []string{"x@example.com"}, Raw: readMessage(t, "plain.eml")})
	if d := decode[apiMessageDetail](t, f.do("GET", "/api/v1/messages/"+relayed.ID, keyAdmin)); d.Route != "smarthost" || d.Subject != "Plain text only" {
		t.Errorf("relayed message: %+v", d)
	}
	wantError(t, f.do("GET", "/api/v1/messages/"+relayed.ID, keyBob), 404)
}

func TestV1ContentRoutes(t *testing.T) {
	f := newFixture(t, nil)
	m := f.trackedMessage("alice", t0, "ann@example.com")
	w := f.plainMessage("alice", "welcome.eml", t0, "ann@example.com")
	base := "/api/v1/messages/" + m.ID

	rec := f.do("GET", base+"/raw", keyAlice)
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), m.Raw) {
		t.Errorf("raw: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	wantHeader(t, rec, "Content-Type", "message/rfc822")
	wantHeader(t, rec, "Content-Security-Policy", cspInert)
	wantHeader(t, f.do("GET", base+"/raw?download=1", keyAlice), "Content-Disposition", "attachment; filename="+m.ID+".eml")

	rec = f.do("GET", base+"/original", keyAlice)
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), m.Original) {
		t.Errorf("original: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	wantHeader(t, rec, "Smtpgate-Original", "changed")
	rec = f.do("GET", "/api/v1/messages/"+w.ID+"/original", keyAlice)
	if !bytes.Equal(rec.Body.Bytes(), w.Raw) {
		t.Error("original of an unchanged message is not the stored message")
	}
	wantHeader(t, rec, "Smtpgate-Original", "unchanged")

	// HTML: sanitised; remote images only on request; the original.
	rec = f.do("GET", base+"/html", keyAlice)
	body := rec.Body.String()
	wantHeader(t, rec, "Content-Security-Policy", cspBody)
	if !strings.Contains(body, `href="https://t.example.com/c/AbC123"`) || strings.Contains(body, "t.example.com/o/") {
		t.Errorf("html without images:\n%s", body)
	}
	rec = f.do("GET", base+"/html?images=1", keyAlice)
	wantHeader(t, rec, "Content-Security-Policy", cspBodyImages)
	if !strings.Contains(rec.Body.String(), `<img src="https://t.example.com/o/GhI789"`) {
		t.Errorf("html with images:\n%s", rec.Body)
	}
	rec = f.do("GET", base+"/html?original=1", keyAlice)
	if !strings.Contains(rec.Body.String(), `href="https://shop.example/track/4471"`) {
		t.Errorf("original html:\n%s", rec.Body)
	}
	rec = f.do("GET", "/api/v1/messages/"+w.ID+"/html", keyAlice)
	if strings.Contains(rec.Body.String(), "<script") || !strings.Contains(rec.Body.String(), `src="data:image/png;base64,`) {
		t.Errorf("welcome html:\n%s", rec.Body)
	}
	rec = f.do("GET", "/api/v1/messages/"+w.ID+"/html?images=1", keyAlice)
	for _, want := range []string{`url("https://tracker.example/bg.png")`, `<img src="https://tracker.example/open.gif"`, `src="data:image/png;base64,`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("welcome html with images lacks %s:\n%s", want, rec.Body)
		}
	}
	for _, bad := range []string{"<script", "javascript:", "cid:"} {
		if strings.Contains(rec.Body.String(), bad) {
			t.Errorf("welcome html with images keeps %s", bad)
		}
	}
	wantError(t, f.do("GET", base+"/html?images=sure", keyAlice), 400)

	rec = f.do("GET", base+"/text", keyAlice)
	if want := "Your order 4471 has shipped.\r\nTrack it: https://t.example.com/c/DeF456\r\n"; rec.Body.String() != want {
		t.Errorf("text %q, want %q", rec.Body, want)
	}
	if rec := f.do("GET", base+"/text?original=1", keyAlice); !strings.Contains(rec.Body.String(), "https://shop.example/track/4471") {
		t.Errorf("original text %q", rec.Body)
	}

	hs := decode[[]headerField](t, f.do("GET", base+"/headers", keyAlice))
	if len(hs) != 7 || hs[0] != (headerField{"From", `"Shop" <news@shop.example>`}) {
		t.Errorf("headers %+v", hs)
	}

	rec = f.do("GET", "/api/v1/messages/"+w.ID+"/attachments/1", keyAlice)
	if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "%PDF-1.4") || rec.Body.Len() != 75 {
		t.Errorf("attachment 1: %d %d bytes", rec.Code, rec.Body.Len())
	}
	wantHeader(t, rec, "Content-Type", "application/octet-stream")
	wantHeader(t, rec, "Content-Disposition", "attachment; filename=terms.pdf")
	for _, i := range []string{"2", "-1", "x", "01x"} {
		wantError(t, f.do("GET", "/api/v1/messages/"+w.ID+"/attachments/"+i, keyAlice), 404)
	}

	links := decode[struct{ Links []apiLink }](t, f.do("GET", base+"/links", keyAlice))
	if len(links.Links) != 2 || links.Links[0].Text != "Track your parcel" {
		t.Errorf("links %+v", links)
	}

	otp := f.plainMessage("alice", "otp.eml", t0, "bob@example.com")
	codes := decode[codesAnswer](t, f.do("GET", "/api/v1/messages/"+otp.ID+"/codes", keyAlice))
	if codes.Code != "804121" || codes.Codes[0].Source != "html" || codes.Codes[0].Keyword == "" ||
		len(codes.Links) != 1 || codes.Links[0] != (apiLink{URL: "https://acme.example/signin?c=804121", Text: "sign in with one click", Source: "html"}) {
		t.Errorf("codes %+v", codes)
	}
	for _, c := range codes.Codes {
		if c.Code == "2026" {
			t.Errorf("the copyright year is taken for a code: %+v", codes.Codes)
		}
	}

	evs := decode[struct{ Events []*store.Event }](t, f.do("GET", base+"/events", keyAlice))
	if len(evs.Events) != 1 || evs.Events[0].Type != "captured" || evs.Events[0].MessageID != m.ID {
		t.Errorf("events %+v", evs.Events)
	}
	if err := f.st.AddEvents(context.Background(), &store.Event{MessageID: m.ID, Type: store.EventOpened, Time: t0.Add(time.Minute), IP: "198.51.100.7"}); err != nil {
		t.Fatal(err)
	}
	evs = decode[struct{ Events []*store.Event }](t, f.do("GET", base+"/events", keyAlice))
	if len(evs.Events) != 2 || evs.Events[1].Type != "opened" || evs.Events[1].IP != "198.51.100.7" {
		t.Errorf("events after an open %+v", evs.Events)
	}
}

func TestV1Diff(t *testing.T) {
	f := newFixture(t, nil)
	m := f.trackedMessage("alice", t0, "ann@example.com")
	d := decode[diffAnswer](t, f.do("GET", "/api/v1/messages/"+m.ID+"/diff", keyAlice))
	if !d.Changed || len(d.Directives) != 2 || d.Stats["links_tracked"] != 2 || !d.Features["inline_css"] {
		t.Errorf("diff record %+v", d)
	}
	has := func(lines []diffLine, op, text string) bool {
		return slices.ContainsFunc(lines, func(l diffLine) bool { return l.Op == op && l.Text == text })
	}
	for _, want := range []struct {
		lines    []diffLine
		op, text string
	}{
		{d.Headers, "-", "X-Smtpgate-Trackclicks: true"},
		{d.Headers, "-", "X-Smtpgate-Tags: shipping, orders"},
		{d.Headers, " ", "Subject: Your order has shipped"},
		{d.HTML, "-", `<p><a class="btn" href="https://shop.example/track/4471">Track your parcel</a></p>`},
		{d.HTML, "+", `<p><a class="btn" href="https://t.example.com/c/AbC123" style="color: #fff; background: #2f6fde">Track your parcel</a></p>`},
		{d.HTML, "+", `<img src="https://t.example.com/o/GhI789" width="1" height="1" alt="">`},
		{d.Text, "-", "Track it: https://shop.example/track/4471"},
		{d.Text, "+", "Track it: https://t.example.com/c/DeF456"},
	} {
		if !has(want.lines, want.op, want.text) {
			t.Errorf("diff lacks %q %q", want.op, want.text)
		}
	}
	plain := f.plainMessage("alice", "plain.eml", t0, "ann@example.com")
	d = decode[diffAnswer](t, f.do("GET", "/api/v1/messages/"+plain.ID+"/diff", keyAlice))
	if d.Changed || len(d.HTML)+len(d.Text)+len(d.Headers) != 0 {
		t.Errorf("diff of an unchanged message %+v", d)
	}
}

func TestV1ReadDeleteInboxesTags(t *testing.T) {
	f := newFixture(t, nil)
	a := f.trackedMessage("alice", t0, "ann@example.com", "ops@example.com")
	b := f.plainMessage("alice", "plain.eml", t0.Add(time.Minute), "ann@example.com")
	c := f.plainMessage("bob", "plain.eml", t0.Add(2*time.Minute), "ann@example.com")
	base := "/api/v1/messages/" + a.ID

	readIn := func(inbox, id string) bool {
		t.Helper()
		for _, m := range decode[messageList](t, f.do("GET", "/api/v1/messages?inbox="+inbox, keyAdmin)).Messages {
			if m.ID == id {
				return *m.Read
			}
		}
		t.Fatalf("%s not in %s", id, inbox)
		return false
	}
	if got := decode[readAnswer](t, f.do("PUT", base+"/read?inbox=ann@example.com", keyAlice)); !got.Read || !slices.Equal(got.Inboxes, []string{"ann@example.com"}) {
		t.Errorf("mark read in one inbox: %+v", got)
	}
	if !readIn("ann@example.com", a.ID) || readIn("ops@example.com", a.ID) {
		t.Error("read flag not set in exactly one inbox")
	}
	if got := decode[readAnswer](t, f.do("PUT", base+"/read", keyAlice)); !slices.Equal(got.Inboxes, []string{"ann@example.com", "ops@example.com"}) {
		t.Errorf("mark read everywhere: %+v", got)
	}
	decode[readAnswer](t, f.do("DELETE", base+"/read", keyAlice))
	if readIn("ann@example.com", a.ID) || readIn("ops@example.com", a.ID) {
		t.Error("mark unread did not take")
	}
	wantError(t, f.do("PUT", base+"/read?inbox=nobody@example.com", keyAlice), 404)
	wantError(t, f.do("PUT", base+"/read", keyBob), 404)

	// Inboxes and tags, per scope and login.
	inboxes := decode[struct{ Inboxes []store.InboxSummary }](t, f.do("GET", "/api/v1/inboxes", keyAlice)).Inboxes
	if len(inboxes) != 2 || inboxes[0].Inbox != "ann@example.com" || inboxes[0].Messages != 2 || inboxes[1].Inbox != "ops@example.com" {
		t.Errorf("Alice's inboxes %+v", inboxes)
	}
	inboxes = decode[struct{ Inboxes []store.InboxSummary }](t, f.do("GET", "/api/v1/inboxes?login=bob", keyAdmin)).Inboxes
	if len(inboxes) != 1 || inboxes[0].Messages != 1 {
		t.Errorf("Bob's inboxes seen by the admin %+v", inboxes)
	}
	wantError(t, f.do("GET", "/api/v1/inboxes?logn=bob", keyAdmin), 400)
	tags := decode[struct {
		Tags    []tagCount
		Partial bool
	}](t, f.do("GET", "/api/v1/tags", keyAlice))
	if !slices.Equal(tags.Tags, []tagCount{{"orders", 1}, {"shipping", 1}}) || tags.Partial {
		t.Errorf("tags %+v", tags)
	}
	if tags := decode[struct{ Tags []tagCount }](t, f.do("GET", "/api/v1/tags", keyBob)); len(tags.Tags) != 0 {
		t.Errorf("Bob sees tags %+v", tags)
	}

	// Delete one message from every inbox; then an inbox.
	if got := decode[deletedAnswer](t, f.do("DELETE", base, keyAlice)); !slices.Equal(got.Inboxes, []string{"ann@example.com", "ops@example.com"}) {
		t.Errorf("delete: %+v", got)
	}
	wantError(t, f.do("GET", base, keyAlice), 404)
	wantError(t, f.do("DELETE", base, keyAlice), 404)
	got := decode[struct {
		Inbox   string
		Deleted int
	}](t, f.do("DELETE", "/api/v1/inboxes/ANN@example.com", keyAlice))
	if got.Inbox != "ann@example.com" || got.Deleted != 1 {
		t.Errorf("delete inbox: %+v", got)
	}
	wantError(t, f.do("GET", "/api/v1/messages/"+b.ID, keyAlice), 404)
	if rec := f.do("GET", "/api/v1/messages/"+c.ID, keyBob); rec.Code != 200 {
		t.Errorf("Alice's inbox delete removed Bob's message: %d", rec.Code)
	}
	wantError(t, f.do("DELETE", "/api/v1/inboxes/not-an-address", keyAlice), 400)
}

// TestV1Isolation walks every /api/v1 route that names a message or a
// delivery: another login's key gets exactly the answer of a missing id,
// for captured and relayed mail.
func TestV1Isolation(t *testing.T) {
	f := newFixture(t, nil)
	a := f.plainMessage("alice", "welcome.eml", t0, "shared@example.com")
	r := f.relayed("alice", "welcome.eml", t0, "far@relay.example")
	delivery := strconv.FormatInt(r.Deliveries[0].ID, 10)
	missing, missingDelivery := store.NewID(t0), "999999"
	n := 0
	for _, pattern := range f.srv.Routes() {
		method, path, _ := strings.Cut(pattern, " ")
		if !strings.Contains(path, "{id}") || !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		n++
		target := func(id string) string {
			return strings.NewReplacer("{id}", id, "{index}", "0").Replace(path)
		}
		// The ids of Alice's that the route may name, and a missing one.
		ids, absent := []string{a.ID, r.ID}, missing
		if strings.HasPrefix(path, "/api/v1/queue/") {
			ids, absent = []string{delivery}, missingDelivery
		}
		t.Run(pattern, func(t *testing.T) {
			want := f.do(method, target(absent), keyBob)
			wantBody := want.Body.String()
			wantError(t, want, 404)
			for _, id := range ids {
				for _, key := range []string{keyBob, keyNone} {
					got := f.do(method, target(id), key)
					if got.Code != 404 || got.Body.String() != wantBody {
						t.Errorf("%s, key %s: %d %s, want %s", id, key, got.Code, got.Body, wantBody)
					}
				}
				if method == "GET" {
					if rec := f.do(method, target(id), keyAlice); rec.Code != 200 {
						t.Errorf("%s, owner: %d %s", id, rec.Code, rec.Body)
					}
				}
			}
		})
	}
	if n < 17 {
		t.Errorf("only %d message and delivery routes found", n)
	}
	// Alice's delivery is as it was.
	if d := decode[apiDelivery](t, f.do("GET", "/api/v1/queue/"+delivery, keyAlice)); d.State != "queued" || d.Attempts != 0 {
		t.Errorf("Alice's delivery after Bob's attempts: %+v", d)
	}
	// Listings and the other routes show nothing of Alice's to Bob.
	for _, path := range []string{"/api/v1/messages", "/api/v1/messages?inbox=shared@example.com", "/api/v1/inboxes", "/api/v1/tags",
		"/api/v1/queue", "/api/v1/queue?state=all", "/api/v1/queue?state=all&message_id=" + r.ID} {
		if body := f.do("GET", path, keyBob).Body.String(); strings.Contains(body, "shared@example.com") || strings.Contains(body, a.ID) ||
			strings.Contains(body, r.ID) {
			t.Errorf("%s shows Alice's mail to Bob: %s", path, body)
		}
	}
	if rec := f.do("DELETE", "/api/v1/inboxes/shared@example.com", keyBob); !strings.Contains(rec.Body.String(), `"deleted":0`) {
		t.Errorf("Bob's inbox delete: %s", rec.Body)
	}
	if rec := f.do("GET", "/api/v1/messages/"+a.ID, keyAlice); rec.Code != 200 {
		t.Error("Alice's message is gone after Bob's attempts")
	}
}

func TestV1Session(t *testing.T) {
	f := newFixture(t, nil)
	m := f.plainMessage("alice", "plain.eml", t0, "ann@example.com")

	s := decode[sessionInfo](t, f.do("GET", "/api/v1/session", keyAlice))
	if s.Via != "key" || s.AllLogins || !slices.Equal(s.Logins, []string{"alice"}) {
		t.Errorf("session %+v", s)
	}
	wantError(t, f.do("GET", "/api/v1/session", ""), 401)

	signIn := func(body, contentType string, hdr map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/api/v1/session", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		return rec
	}
	wantError(t, signIn(`{"key":"k_wrong"}`, "application/json", nil), 401)
	wantError(t, signIn(`{"key":`, "application/json", nil), 400)
	wantError(t, signIn(`key=`+keyAlice, "text/plain", nil), 415)
	wantError(t, signIn(`{"key":"`+keyAlice+`"}`, "application/json", map[string]string{"Sec-Fetch-Site": "cross-site"}), 403)
	rec := signIn(`{"key":"`+keyAlice+`","remember":true}`, "application/json", map[string]string{"Sec-Fetch-Site": "same-origin"})
	if rec.Code != 200 {
		t.Fatalf("sign in: %d %s", rec.Code, rec.Body)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != sessionCookie || cookies[0].Value != keyAlice || !cookies[0].HttpOnly ||
		cookies[0].SameSite != http.SameSiteStrictMode || cookies[0].MaxAge != 30*24*3600 {
		t.Fatalf("cookie %+v", cookies)
	}
	if rec := signIn("key="+keyBob, "application/x-www-form-urlencoded", nil); rec.Code != 200 || rec.Result().Cookies()[0].MaxAge != 0 {
		t.Errorf("form sign-in: %d %+v", rec.Code, rec.Result().Cookies())
	}

	withCookie := func(method, target string, hdr map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, nil)
		req.AddCookie(cookies[0])
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		return rec
	}
	if s := decode[sessionInfo](t, withCookie("GET", "/api/v1/session", nil)); s.Via != "cookie" {
		t.Errorf("session by cookie %+v", s)
	}
	if rec := withCookie("GET", "/api/v1/messages/"+m.ID, nil); rec.Code != 200 {
		t.Errorf("read by cookie: %d", rec.Code)
	}
	// A change authenticated only by the cookie must come from our pages.
	path := "/api/v1/messages/" + m.ID + "/read"
	for _, hdr := range []map[string]string{nil, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}, {"Origin": "null"}} {
		wantError(t, withCookie("PUT", path, hdr), 403)
	}
	for _, hdr := range []map[string]string{{"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://example.com"}, {"Mailsac-Key": keyAlice}} {
		if rec := withCookie("PUT", path, hdr); rec.Code != 200 {
			t.Errorf("%v: %d %s", hdr, rec.Code, rec.Body)
		}
	}
	// A key in a header wins over the cookie.
	if s := decode[sessionInfo](t, withCookie("GET", "/api/v1/session", map[string]string{"Mailsac-Key": keyBob})); s.Via != "key" || s.Logins[0] != "bob" {
		t.Errorf("header key with a cookie: %+v", s)
	}
	// A cookie holding a key that is no longer valid.
	req := httptest.NewRequest("GET", "/api/v1/session", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "k_revoked"})
	rec = httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	if e := wantError(t, rec, 401); !strings.Contains(e.Message, "sign in again") {
		t.Errorf("revoked cookie: %q", e.Message)
	}

	rec = f.do("DELETE", "/api/v1/session", "")
	if rec.Code != 204 || rec.Result().Cookies()[0].MaxAge >= 0 {
		t.Errorf("sign out: %d %+v", rec.Code, rec.Result().Cookies())
	}
}

func TestOpenNetworks(t *testing.T) {
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	_, v6, _ := net.ParseCIDR("::1/128")
	f := newFixtureConfig(t, Config{OpenNetworks: func() []*net.IPNet { return []*net.IPNet{loopback, v6} }}, nil)
	m := f.plainMessage("bob", "plain.eml", t0, "ann@example.com")
	do := func(method, target, remote string, hdr map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, nil)
		req.RemoteAddr = remote
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		return rec
	}
	for _, remote := range []string{"127.0.0.1:5555", "[::1]:5555", "[::ffff:127.0.0.1]:5555"} {
		if s := decode[sessionInfo](t, do("GET", "/api/v1/session", remote, nil)); s.Via != "open" || !s.AllLogins {
			t.Errorf("%s: %+v", remote, s)
		}
	}
	for _, remote := range []string{"192.0.2.1:5555", "[2001:db8::1]:5555", "garbage"} {
		wantError(t, do("GET", "/api/v1/session", remote, nil), 401)
	}
	// A key sent from an open network still counts.
	wantError(t, do("GET", "/api/v1/messages/"+m.ID, "127.0.0.1:1", map[string]string{"Mailsac-Key": keyAlice}), 404)
	wantError(t, do("GET", "/api/v1/messages/"+m.ID, "127.0.0.1:1", map[string]string{"Mailsac-Key": "k_wrong"}), 401)
	// Changes from a browser on an open network must come from our pages.
	wantError(t, do("DELETE", "/api/v1/messages/"+m.ID, "127.0.0.1:1", map[string]string{"Sec-Fetch-Site": "cross-site"}), 403)
	if rec := do("DELETE", "/api/v1/messages/"+m.ID, "127.0.0.1:1", map[string]string{"Sec-Fetch-Site": "same-origin"}); rec.Code != 200 {
		t.Errorf("same-origin delete from an open network: %d %s", rec.Code, rec.Body)
	}
}

// TestMailsacInboxRoutes covers the Mailsac routes that need the capture
// index: message count, purge and read state.
func TestMailsacInboxRoutes(t *testing.T) {
	f := newFixture(t, nil)
	a := f.plainMessage("alice", "plain.eml", t0, "box@example.com")
	f.plainMessage("alice", "plain.eml", t0, "box@example.com")
	f.plainMessage("bob", "plain.eml", t0, "box@example.com")
	if got := decode[map[string]any](t, f.do("GET", "/api/addresses/BOX@example.com/message-count", keyAlice)); got["count"] != 2.0 || got["inbox"] != "box@example.com" {
		t.Errorf("count %v", got)
	}
	rec := f.do("PUT", "/api/addresses/box@example.com/messages/"+a.ID+"/read/true", keyAlice)
	if got := decode[map[string]any](t, rec); got["_id"] != a.ID || got["read"] != true {
		t.Errorf("read %v", got)
	}
	if list := decode[[]message](t, f.do("GET", "/api/addresses/box@example.com/messages", keyAlice)); !list[len(list)-1].Read || list[0].Read {
		t.Errorf("read flags %+v", list)
	}
	wantError(t, f.do("PUT", "/api/addresses/box@example.com/messages/"+a.ID+"/read/yes", keyAlice), 400)
	wantError(t, f.do("PUT", "/api/addresses/box@example.com/messages/"+a.ID+"/read/true", keyBob), 404)
	if rec := f.do("DELETE", "/api/addresses/box@example.com/messages", keyAlice); rec.Code != 204 || rec.Body.Len() != 0 {
		t.Errorf("purge: %d %s", rec.Code, rec.Body)
	}
	if got := decode[map[string]any](t, f.do("GET", "/api/addresses/box@example.com/message-count", keyAdmin)); got["count"] != 1.0 {
		t.Errorf("after Alice's purge the admin counts %v (Bob's message must stay)", got)
	}
}

// TestOpenAPIDocument checks that openapi.json describes every /api/v1
// route registered and nothing else, and that its references resolve.
func TestOpenAPIDocument(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.do("GET", "/api/v1/openapi.json", "")
	if rec.Code != 200 {
		t.Fatalf("openapi.json: %d", rec.Code)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
			var o struct {
				OperationID string                     `json:"operationId"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(op, &o); err != nil || o.OperationID == "" || len(o.Responses) == 0 {
				t.Errorf("%s %s: operation without id or responses", method, path)
			}
		}
	}
	registered := map[string]bool{}
	for _, p := range f.srv.Routes() {
		if _, path, _ := strings.Cut(p, " "); strings.HasPrefix(path, "/api/v1/") {
			registered[p] = true
			if !documented[p] {
				t.Errorf("route %s is not in openapi.json", p)
			}
		}
	}
	for p := range documented {
		if !registered[p] {
			t.Errorf("openapi.json documents %s, which is not registered", p)
		}
	}
	if len(registered) < 20 {
		t.Errorf("only %d /api/v1 routes", len(registered))
	}
	// Every $ref points into the document.
	var whole any
	if err := json.Unmarshal(rec.Body.Bytes(), &whole); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if ref, ok := c.(string); ok && k == "$ref" {
					node := whole
					for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
						m, _ := node.(map[string]any)
						node = m[part]
					}
					if node == nil {
						t.Errorf("dangling $ref %s", ref)
					}
				}
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(whole)
}
