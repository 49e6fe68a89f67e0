package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/features/inline"
	"github.com/smtpgate/smtpgate/features/pipeline"
	"github.com/smtpgate/smtpgate/features/track"
	"github.com/smtpgate/smtpgate/store"
)

// relayed commits a message of login relayed through "smarthost" with one
// delivery per recipient domain, as the gateway does, and returns it with
// the delivery ids set.
func (f *fixture) relayed(login, name string, received time.Time, rcpts ...string) *store.Message {
	f.t.Helper()
	m := &store.Message{Login: login, Route: "smarthost", Received: received, Recipients: rcpts, Raw: readMessage(f.t, name)}
	byDomain := map[string]*store.Delivery{}
	for i, r := range rcpts {
		d := byDomain[domainOf(r)]
		if d == nil {
			d = &store.Delivery{Route: "smarthost", Domain: domainOf(r), Expires: received.Add(5 * 24 * time.Hour)}
			byDomain[domainOf(r)] = d
			m.Deliveries = append(m.Deliveries, d)
		}
		d.Recipients = append(d.Recipients, store.RecipientDelivery{Address: r, Index: i})
		m.Events = append(m.Events, &store.Event{Type: store.EventQueued, Recipient: r, Time: received})
	}
	return f.capture(m)
}

// attempt records one attempt on delivery id as a relay worker does: claim
// (everything due at now), complete, release the rest.
func (f *fixture) attempt(id int64, now time.Time, o store.Outcome) {
	f.t.Helper()
	ctx := context.Background()
	const owner = "test-worker"
	claimed, err := f.st.ClaimDeliveries(ctx, owner, now, 1000, time.Minute)
	if err != nil {
		f.t.Fatal(err)
	}
	if !slices.ContainsFunc(claimed, func(d *store.Delivery) bool { return d.ID == id }) {
		f.t.Fatalf("delivery %d is not due at %s", id, now)
	}
	o.Attempt.Time = now
	if err := f.st.CompleteAttempt(ctx, id, owner, o); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.ReleaseDeliveries(ctx, owner); err != nil {
		f.t.Fatal(err)
	}
}

// deliveryIDs lists the ids of deliveries.
func deliveryIDs(ds []apiDelivery) []int64 {
	out := []int64{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func TestV1Queue(t *testing.T) {
	f := newFixture(t, nil)
	a1 := f.relayed("alice", "plain.eml", t0, "ann@example.net", "bo@example.org", "cy@example.net")
	b1 := f.relayed("bob", "plain.eml", t0, "dee@example.net")
	f.plainMessage("alice", "plain.eml", t0, "ann@example.com") // captured: no delivery
	deferred, sent, bobs := a1.Deliveries[0].ID, a1.Deliveries[1].ID, b1.Deliveries[0].ID
	if a1.Deliveries[0].Domain != "example.net" || len(a1.Deliveries[0].Recipients) != 2 {
		t.Fatalf("fixture deliveries %+v", a1.Deliveries[0])
	}
	f.attempt(deferred, t0.Add(time.Minute), store.Outcome{
		Attempt: store.Attempt{Host: "mx.example.net:25", Reply: "451 4.7.1 greylisted, try later", Duration: 1500 * time.Millisecond},
		State:   store.DeliveryDeferred, NextAttempt: t0.Add(11 * time.Minute),
		Events: []*store.Event{{Type: store.EventDeferred, Recipient: "ann@example.net", Time: t0.Add(time.Minute)}},
	})
	f.attempt(sent, t0.Add(2*time.Minute), store.Outcome{
		Attempt:    store.Attempt{Host: "mx.example.org:25", Reply: "250 2.0.0 ok", Duration: 200 * time.Millisecond},
		Recipients: []store.RecipientDelivery{{Address: "bo@example.org", Index: 1, State: store.RecipientSent, Reply: "250 2.0.0 ok"}},
		State:      store.DeliverySent,
	})

	list := func(key, query string) deliveryList {
		t.Helper()
		return decode[deliveryList](t, f.do("GET", "/api/v1/queue"+query, key))
	}
	for _, tc := range []struct {
		key, query string
		want       []int64
	}{
		{keyAlice, "", []int64{deferred}}, // queued and deferred only
		{keyAlice, "?state=all", []int64{deferred, sent}},
		{keyAlice, "?state=sent", []int64{sent}},
		{keyAlice, "?state=sent,deferred,sent", []int64{deferred, sent}},
		{keyAlice, "?state=queued", []int64{}},
		{keyAlice, "?state=all&message_id=" + b1.ID, []int64{}}, // Bob's message
		{keyAdmin, "?state=all&message_id=" + b1.ID, []int64{bobs}},
		{keyAdmin, "", []int64{deferred, bobs}},
		{keyAdmin, "?state=all", []int64{deferred, sent, bobs}},
		{keyBob, "?state=all", []int64{bobs}},
		{keyNone, "?state=all", []int64{}},
	} {
		if got := deliveryIDs(list(tc.key, tc.query).Deliveries); !slices.Equal(got, tc.want) {
			t.Errorf("key %s, %q: %v, want %v", tc.key, tc.query, got, tc.want)
		}
	}

	// The listing object.
	all := list(keyAlice, "?state=all").Deliveries
	d, s := all[0], all[1]
	if d.MessageID != a1.ID || d.Login != "alice" || d.Route != "smarthost" || d.Domain != "example.net" || d.State != "deferred" ||
		d.Attempts != 1 || d.LastReply != "451 4.7.1 greylisted, try later" || d.NextAttempt == nil || !d.NextAttempt.Equal(t0.Add(11*time.Minute)) ||
		!d.Expires.Equal(t0.Add(5*24*time.Hour)) || !d.CanRetry || !d.CanCancel || d.AttemptLog != nil ||
		d.URLs.Self != "/api/v1/queue/"+strconv.FormatInt(deferred, 10) || d.URLs.Message != "/api/v1/messages/"+a1.ID {
		t.Errorf("deferred delivery %+v", d)
	}
	if len(d.Recipients) != 2 || d.Recipients[1] != (store.RecipientDelivery{Address: "cy@example.net", Index: 2, State: store.RecipientPending}) {
		t.Errorf("recipients %+v", d.Recipients)
	}
	if s.State != "sent" || s.NextAttempt != nil || s.CanRetry || s.CanCancel || s.Recipients[0].State != "sent" || s.Recipients[0].Reply != "250 2.0.0 ok" {
		t.Errorf("sent delivery %+v", s)
	}
	if raw := f.do("GET", "/api/v1/queue?state=sent", keyAlice).Body.String(); strings.Contains(raw, "next_attempt") {
		t.Errorf("a sent delivery has a next_attempt: %s", raw)
	}

	for _, q := range []string{"?state=bogus", "?state=queued,nope", "?state=", "?state=all,sent", "?limit=0", "?limit=1001", "?cursor=x",
		"?cursor=-1", "?message_id=not-an-id", "?sate=sent", "?state=sent&state=queued"} {
		if q == "?state=" {
			continue // empty means the default
		}
		e := wantError(t, f.do("GET", "/api/v1/queue"+q, keyAlice), 400)
		if q == "?state=bogus" && !strings.Contains(e.Message, "queued, deferred, sent, bounced, failed, cancelled") {
			t.Errorf("%s: %q", q, e.Message)
		}
	}

	// One delivery, with its attempts.
	one := decode[apiDelivery](t, f.do("GET", "/api/v1/queue/"+strconv.FormatInt(deferred, 10), keyAlice))
	if one.ID != deferred || one.AttemptLog == nil || len(*one.AttemptLog) != 1 || (*one.AttemptLog)[0] != (apiAttempt{Time: t0.Add(time.Minute),
		Host: "mx.example.net:25", Reply: "451 4.7.1 greylisted, try later", DurationMS: 1500}) {
		t.Errorf("delivery %+v", one)
	}
	if one := decode[apiDelivery](t, f.do("GET", "/api/v1/queue/"+strconv.FormatInt(bobs, 10), keyAdmin)); one.ID != bobs || one.AttemptLog == nil || len(*one.AttemptLog) != 0 {
		t.Errorf("Bob's delivery seen by the admin %+v", one)
	}
	// Missing, out of scope and malformed ids get one answer.
	want := wantError(t, f.do("GET", "/api/v1/queue/999999", keyAlice), 404)
	for _, id := range []string{strconv.FormatInt(bobs, 10), "0", "-1", "abc", "0" + strconv.FormatInt(deferred, 10), "1e3", "99999999999999999999"} {
		if got := wantError(t, f.do("GET", "/api/v1/queue/"+id, keyAlice), 404); got != want {
			t.Errorf("%s: %+v, want %+v", id, got, want)
		}
	}

	// The deliveries of one message.
	md := decode[deliveryList](t, f.do("GET", "/api/v1/messages/"+a1.ID+"/deliveries", keyAlice))
	if got := deliveryIDs(md.Deliveries); !slices.Equal(got, []int64{deferred, sent}) || len(*md.Deliveries[0].AttemptLog) != 1 ||
		(*md.Deliveries[1].AttemptLog)[0].Reply != "250 2.0.0 ok" || md.NextCursor != "" {
		t.Errorf("message deliveries %+v", md)
	}
	wantError(t, f.do("GET", "/api/v1/messages/"+b1.ID+"/deliveries", keyAlice), 404)
	wantError(t, f.do("GET", "/api/v1/messages/"+store.NewID(t0)+"/deliveries", keyAlice), 404)
	// A relayed message opens like a captured one, but it is in no inbox.
	if m := decode[apiMessageDetail](t, f.do("GET", "/api/v1/messages/"+a1.ID, keyAlice)); m.Route != "smarthost" ||
		m.URLs.Deliveries != "/api/v1/messages/"+a1.ID+"/deliveries" {
		t.Errorf("relayed message %+v", m)
	}
	if e := wantError(t, f.do("DELETE", "/api/v1/messages/"+a1.ID, keyAlice), 409); !strings.Contains(e.Message, "relayed") {
		t.Errorf("delete relayed: %q", e.Message)
	}
	wantError(t, f.do("PUT", "/api/v1/messages/"+a1.ID+"/read", keyAlice), 409)
	wantError(t, f.do("DELETE", "/api/v1/messages/"+a1.ID, keyBob), 404)
}

func TestV1QueueRetryCancel(t *testing.T) {
	f := newFixture(t, nil)
	m := f.relayed("alice", "plain.eml", t0, "ann@example.net", "bo@example.org")
	b := f.relayed("bob", "plain.eml", t0, "dee@example.net")
	pend, done, bobs := m.Deliveries[0].ID, m.Deliveries[1].ID, b.Deliveries[0].ID
	path := func(id int64, action string) string {
		return "/api/v1/queue/" + strconv.FormatInt(id, 10) + "/" + action
	}
	f.attempt(pend, t0.Add(time.Minute), store.Outcome{
		Attempt: store.Attempt{Host: "mx.example.net:25", Reply: "421 4.3.2 busy"}, State: store.DeliveryDeferred,
		NextAttempt: t0.Add(30 * 24 * time.Hour), // far away: only a retry makes it due
	})
	f.attempt(done, t0.Add(time.Minute), store.Outcome{
		Attempt:    store.Attempt{Reply: "550 5.1.1 no such user"},
		Recipients: []store.RecipientDelivery{{Address: "bo@example.org", Index: 1, State: store.RecipientBounced, Reply: "550 5.1.1 no such user"}},
		State:      store.DeliveryBounced,
	})

	// Retry: due now.
	before := time.Now().UTC().Truncate(time.Millisecond)
	d := decode[apiDelivery](t, f.do("POST", path(pend, "retry"), keyAlice))
	after := time.Now().UTC()
	if d.ID != pend || d.State != "deferred" || d.NextAttempt == nil || d.NextAttempt.Before(before) || d.NextAttempt.After(after) ||
		d.AttemptLog == nil || len(*d.AttemptLog) != 1 || !d.CanCancel {
		t.Errorf("after retry %+v (between %s and %s)", d, before, after)
	}
	due, err := f.st.ClaimDeliveries(context.Background(), "w1", time.Now(), 10, time.Hour)
	if err != nil || !slices.ContainsFunc(due, func(x *store.Delivery) bool { return x.ID == pend }) {
		t.Fatalf("the retried delivery is not due: %v %v", due, err)
	}

	// Cancel while an attempt is in flight (w1 holds the lease): 409.
	if e := wantError(t, f.do("POST", path(pend, "cancel"), keyAlice), 409); !strings.Contains(e.Message, "in flight") {
		t.Errorf("cancel in flight: %q", e.Message)
	}
	if err := f.st.ReleaseDeliveries(context.Background(), "w1"); err != nil {
		t.Fatal(err)
	}
	d = decode[apiDelivery](t, f.do("POST", path(pend, "cancel"), keyAlice))
	if d.State != "cancelled" || d.NextAttempt != nil || d.CanRetry || d.CanCancel || d.Recipients[0].State != "failed" || d.Recipients[0].Reply != "cancelled" {
		t.Errorf("after cancel %+v", d)
	}
	evs := decode[struct{ Events []*store.Event }](t, f.do("GET", "/api/v1/messages/"+m.ID+"/events", keyAlice)).Events
	if last := evs[len(evs)-1]; last.Type != store.EventFailed || last.Recipient != "ann@example.net" || last.Detail != "delivery cancelled" {
		t.Errorf("events after cancel %+v", evs)
	}

	// Final states refuse both, with JSON 409s that say why.
	for _, tc := range []struct {
		id     int64
		action string
		state  string
	}{{pend, "retry", "cancelled"}, {pend, "cancel", "cancelled"}, {done, "retry", "bounced"}, {done, "cancel", "bounced"}} {
		e := wantError(t, f.do("POST", path(tc.id, tc.action), keyAlice), 409)
		if !strings.Contains(e.Message, "is "+tc.state) {
			t.Errorf("%s %d: %q", tc.action, tc.id, e.Message)
		}
	}

	// Out of scope or missing: 404, and nothing changes.
	for _, key := range []string{keyAlice, keyNone} {
		for _, action := range []string{"retry", "cancel"} {
			wantError(t, f.do("POST", path(bobs, action), key), 404)
			wantError(t, f.do("POST", path(999999, action), key), 404)
		}
	}
	if d := decode[apiDelivery](t, f.do("GET", "/api/v1/queue/"+strconv.FormatInt(bobs, 10), keyBob)); d.State != "queued" {
		t.Errorf("Bob's delivery after Alice's attempts: %+v", d)
	}
	wantError(t, f.do("GET", path(bobs, "retry"), keyBob), 405)

	// A change authenticated by the session cookie must come from our pages.
	post := func(hdr map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path(bobs, "retry"), nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: keyBob})
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		return rec
	}
	for _, hdr := range []map[string]string{nil, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}} {
		wantError(t, post(hdr), 403)
	}
	if d := decode[apiDelivery](t, post(map[string]string{"Sec-Fetch-Site": "same-origin"})); d.ID != bobs {
		t.Errorf("same-origin retry: %+v", d)
	}
}

// TestV1QueuePaging walks the queue a page at a time.
func TestV1QueuePaging(t *testing.T) {
	f := newFixture(t, nil)
	var rcpts []string
	for i := range 7 {
		rcpts = append(rcpts, fmt.Sprintf("u%d@d%d.example", i, i))
	}
	f.relayed("alice", "plain.eml", t0, rcpts...)
	f.relayed("bob", "plain.eml", t0, "x@bob.example", "y@bob2.example")
	f.relayed("alice", "plain.eml", t0, "z@d9.example")
	for _, tc := range []struct {
		key, query string
		want       int
	}{{keyAlice, "", 8}, {keyAdmin, "state=all&", 10}, {keyBob, "", 2}} {
		all := deliveryIDs(decode[deliveryList](t, f.do("GET", "/api/v1/queue?"+tc.query, tc.key)).Deliveries)
		if len(all) != tc.want {
			t.Fatalf("%s: %d deliveries, want %d", tc.key, len(all), tc.want)
		}
		for _, limit := range []int{1, 3, 8} {
			var paged []int64
			cursor, pages := "", 0
			for ; pages < 20; pages++ {
				page := decode[deliveryList](t, f.do("GET", fmt.Sprintf("/api/v1/queue?%slimit=%d&cursor=%s", tc.query, limit, cursor), tc.key))
				if len(page.Deliveries) > limit {
					t.Fatalf("page of %d, limit %d", len(page.Deliveries), limit)
				}
				paged = append(paged, deliveryIDs(page.Deliveries)...)
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
			if !slices.Equal(paged, all) {
				t.Errorf("%s limit %d: paged %v, want %v", tc.key, limit, paged, all)
			}
			// A full last page has a cursor to an empty one.
			if want := tc.want/limit + 1; pages+1 != want {
				t.Errorf("%s limit %d: %d pages, want %d", tc.key, limit, pages+1, want)
			}
		}
	}
}

func TestV1WebhookHistory(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	a := f.plainMessage("alice", "plain.eml", t0, "ann@example.com", "bo@example.com") // two captured events
	f.plainMessage("bob", "plain.eml", t0, "cy@example.com")
	if n, err := f.st.EnqueueWebhookJobs(ctx, "events", nil, nil, 100, t0); err != nil || n != 3 {
		t.Fatalf("enqueue: %d %v", n, err)
	}
	if _, err := f.st.EnqueueWebhookJobs(ctx, "audit", nil, []string{"bob"}, 100, t0); err != nil {
		t.Fatal(err)
	}
	jobs, err := f.st.ClaimWebhookJobs(ctx, "events", "hooker", t0, 2, time.Minute)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("claim: %v %v", jobs, err)
	}
	if err := f.st.CompleteWebhookJob(ctx, jobs[0].ID, "hooker", "sent", 204, "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.CompleteWebhookJob(ctx, jobs[1].ID, "hooker", "deferred", 503, "HTTP 503 from hooks.example.com", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	history := func(key, path string) webhookHistory {
		t.Helper()
		return decode[webhookHistory](t, f.do("GET", path, key))
	}
	h := history(keyAlice, "/api/v1/webhooks/events/deliveries")
	if h.Webhook != "events" || len(h.Deliveries) != 2 {
		t.Fatalf("Alice's history %+v", h)
	}
	// Newest first: the deferred job, then the sent one.
	def, snt := h.Deliveries[0], h.Deliveries[1]
	if def.ID != jobs[1].ID || def.State != "deferred" || def.Attempts != 1 || def.LastStatus != 503 || def.LastError != "HTTP 503 from hooks.example.com" ||
		def.NextAttempt == nil || !def.NextAttempt.Equal(t0.Add(time.Minute)) || def.Login != "alice" || def.EventSeq == 0 {
		t.Errorf("deferred job %+v", def)
	}
	if snt.ID != jobs[0].ID || snt.State != "sent" || snt.LastStatus != 204 || snt.NextAttempt != nil || snt.EventSeq >= def.EventSeq {
		t.Errorf("sent job %+v", snt)
	}
	ev, err := f.st.Event(ctx, snt.EventSeq)
	if err != nil || ev.MessageID != a.ID {
		t.Errorf("the job's event %+v %v", ev, err)
	}

	for _, tc := range []struct {
		key, path string
		want      int
	}{
		{keyBob, "/api/v1/webhooks/events/deliveries", 1},
		{keyAdmin, "/api/v1/webhooks/events/deliveries", 3},
		{keyAdmin, "/api/v1/webhooks/events/deliveries?limit=1", 1},
		{keyNone, "/api/v1/webhooks/events/deliveries", 0},
		{keyAlice, "/api/v1/webhooks/audit/deliveries", 0}, // Bob's only
		{keyBob, "/api/v1/webhooks/audit/deliveries", 1},
		{keyAdmin, "/api/v1/webhooks/nope/deliveries", 0},
		{keyAdmin, "/api/v1/webhooks/with%20space%2Fslash/deliveries", 0},
	} {
		h := history(tc.key, tc.path)
		if len(h.Deliveries) != tc.want {
			t.Errorf("%s %s: %d jobs, want %d", tc.key, tc.path, len(h.Deliveries), tc.want)
		}
		for _, d := range h.Deliveries {
			if tc.key == keyBob && d.Login != "bob" {
				t.Errorf("Bob sees %+v", d)
			}
		}
	}
	if raw := f.do("GET", "/api/v1/webhooks/nope/deliveries", keyAdmin).Body.String(); raw != `{"webhook":"nope","deliveries":[]}`+"\n" {
		t.Errorf("unknown webhook: %s", raw)
	}
	for _, p := range []string{"?limit=0", "?limit=x", "?cursor=1", "?limit=1&limit=2"} {
		wantError(t, f.do("GET", "/api/v1/webhooks/events/deliveries"+p, keyAdmin), 400)
	}
	wantError(t, f.do("GET", "/api/v1/webhooks/"+strings.Repeat("w", 201)+"/deliveries", keyAdmin), 400)
	wantError(t, f.do("GET", "/api/v1/webhooks/events/deliveries", ""), 401)
}

// TestV1OriginalURLs runs messages through the real content pipeline
// (CSS inlining, click tracking in HTML and text, the open pixel) and
// checks that every link of the delivered message names its original.
func TestV1OriginalURLs(t *testing.T) {
	f := newFixture(t, nil)
	codec, err := track.NewCodec([]byte("web-test-secret-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	rw, err := track.NewRewriter(codec, "https://t.example.com")
	if err != nil {
		t.Fatal(err)
	}
	p := pipeline.Pipeline{Tracker: rw, Inliner: inline.New(inline.Options{})}
	const original = "From: Shop <news@shop.example>\r\nTo: ann@example.com\r\nSubject: Links\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"Confirm: https://app.example/confirm?t=1 (see https://en.wikipedia.org/wiki/Go_(game)).\r\n" +
		"Again https://app.example/confirm?t=1, no tracking: https+notrack://app.example/plain-text\r\n" +
		"--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"<html><head><style>a { color: red }</style></head><body>\r\n" +
		"<p><a href=3D\"https://app.example/confirm?t=3D1&amp;u=3D2\">Confirm</a></p>\r\n" +
		"<p><a href=3D\"mailto:help@shop.example\">Mail us</a> <a href=3D\"#top\">Top</a></p>\r\n" +
		"<p><a href=3D\"https://app.example/confirm?t=3D1&amp;u=3D2\">Confirm again</a></p>\r\n" +
		"<p><a href=3D\"https://app.example/optout\" clicktracking=3Doff>Opted out</a></p>\r\n" +
		"<p><a href=3D\"https+notrack://app.example/plain\">Plain</a></p>\r\n" +
		"<p><a href=3D\" https://app.example/logo\r\n\"><img src=3D\"cid:logo\" alt=3D\"Logo\"></a></p>\r\n" +
		"</body></html>\r\n--b--\r\n"
	id := store.NewID(t0)
	out, err := p.Apply(pipeline.Input{Raw: []byte(original), MessageID: id, MailFrom: "news@shop.example", Recipients: []string{"ann@example.com"},
		Base: features.Set{InlineCSS: true, TrackClicks: true, TrackTextLinks: true, TrackOpens: true}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Stats.LinksTracked != 6 || out.Stats.PixelsAdded != 1 || out.Stats.CSSInlined != 1 {
		t.Fatalf("pipeline stats %+v, notes %v", out.Stats, out.Notes)
	}
	m := f.capture(&store.Message{ID: id, Login: "alice", Recipients: []string{"ann@example.com"}, Raw: out.Raw, Original: []byte(original)})

	codes := decode[codesAnswer](t, f.do("GET", "/api/v1/messages/"+m.ID+"/codes", keyAlice))
	want := map[string]string{ // link text or source -> original URL
		"html Confirm":       "https://app.example/confirm?t=1&u=2",
		"html Confirm again": "https://app.example/confirm?t=1&u=2",
		"html Opted out":     "https://app.example/optout",
		"html Plain":         "https://app.example/plain",
		"html Logo":          "https://app.example/logo",
	}
	var textOriginals []string
	tracked := 0
	for _, l := range codes.Links {
		if strings.HasPrefix(l.URL, "https://t.example.com/c/") {
			tracked++
		} else if l.URL != l.OriginalURL {
			t.Errorf("untracked link %+v has another original", l)
		}
		if l.Source == "text" {
			textOriginals = append(textOriginals, l.OriginalURL)
			continue
		}
		if w, ok := want[l.Source+" "+l.Text]; !ok || l.OriginalURL != w {
			t.Errorf("link %+v: original %q", l, w)
		}
		delete(want, l.Source+" "+l.Text)
	}
	if len(want) != 0 {
		t.Errorf("links not listed: %v", want)
	}
	// The text body's tracked URLs: one per occurrence (the repeated URL
	// gets a token of its own or the same one), and the untracked plain one.
	for _, w := range []string{"https://app.example/confirm?t=1", "https://en.wikipedia.org/wiki/Go_(game)", "https://app.example/plain-text"} {
		if !slices.Contains(textOriginals, w) {
			t.Errorf("text links %v lack %s", textOriginals, w)
		}
	}
	if tracked < 5 {
		t.Errorf("only %d tracked links listed: %+v", tracked, codes.Links)
	}
	// The same links on the message and the links routes.
	d := decode[apiMessageDetail](t, f.do("GET", "/api/v1/messages/"+m.ID, keyAlice))
	ls := decode[struct{ Links []apiLink }](t, f.do("GET", "/api/v1/messages/"+m.ID+"/links", keyAlice))
	if !slices.Equal(d.Links, codes.Links) || !slices.Equal(ls.Links, codes.Links) {
		t.Errorf("links differ between routes:\n%+v\n%+v\n%+v", d.Links, ls.Links, codes.Links)
	}
	// Without an Original there is nothing to name.
	plain := f.plainMessage("alice", "otp.eml", t0, "ann@example.com")
	if raw := f.do("GET", "/api/v1/messages/"+plain.ID+"/codes", keyAlice).Body.String(); strings.Contains(raw, "original_url") {
		t.Errorf("original_url without an Original: %s", raw)
	}
}

// TestAlignLinks covers the matching rules on their own: a count that
// differs leaves a body unmatched rather than guess.
func TestAlignLinks(t *testing.T) {
	if got := alignLinks([]string{"https://t/c/1", "https://t/c/2"}, []string{"https://a", "HTTPS+NOTRACK://b"}); got["https://t/c/1"] != "https://a" ||
		got["https://t/c/2"] != "https://b" {
		t.Errorf("aligned %v", got)
	}
	if got := alignLinks([]string{"https://t/c/1"}, []string{"https://a", "https://b"}); got != nil {
		t.Errorf("lists of different lengths aligned: %v", got)
	}
	for text, want := range map[string][]string{
		"see https://a.example/x. and http://b.example/(y)) then xhttp://no https+notrack://c.example/z, ftp://d": {
			"https://a.example/x", "http://b.example/(y)", "https+notrack://c.example/z"},
		"<https://a.example/é> \"http://b.example\"\u00a0https://c.example/\u2003x": {"https://a.example/é", "http://b.example", "https://c.example/"},
		"https://": {"https://"},
	} {
		if got := textURLs(text); !slices.Equal(got, want) {
			t.Errorf("textURLs(%q) = %q, want %q", text, got, want)
		}
	}
}

// BenchmarkV1Codes measures GET /api/v1/messages/{id}/codes on a tracked
// message, whose links are matched against the message as submitted, and on
// the same message stored without its original.
func BenchmarkV1Codes(b *testing.B) {
	f := newFixture(b, nil)
	tracked := readMessage(b, "tracked.eml")
	for _, bc := range []struct {
		name     string
		original []byte
	}{{"original", readMessage(b, "tracked-original.eml")}, {"no-original", nil}} {
		m := f.capture(&store.Message{Login: "alice", Recipients: []string{"ann@example.com"}, Raw: tracked, Original: bc.original})
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if rec := f.do("GET", "/api/v1/messages/"+m.ID+"/codes", keyAlice); rec.Code != 200 {
					b.Fatalf("codes: %d", rec.Code)
				}
			}
		})
	}
}
