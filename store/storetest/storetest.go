// Package storetest is the conformance suite that every store.Store backend
// must pass. A backend's test calls Run with a function that opens its store
// in a given directory:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, dir string) store.Store {
//			db, err := sqlite.Open(t.Context(), dir, zaptest.NewLogger(t))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return db
//		})
//	}
//
// The suite checks the contract written on store.Store and the interfaces it
// embeds: durable Accept with increasing Seq, the capture index, byte-exact
// round trips, scope isolation through every method, paging, deletion,
// concurrency and reopening; events and their Seq order; relay deliveries,
// leases and attempts; webhook fan-out, jobs and history; capture search,
// inbox listings, read marks and retention.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// Opener opens the store kept in dir. Calling it again with the same dir
// after Close must reach the same data (a backend without files, such as
// PostgreSQL, can map dir to a schema or database name). The suite closes
// every store it opens; an Opener may also register a t.Cleanup of its own
// as long as a second Close is harmless.
type Opener func(t *testing.T, dir string) store.Store

// Run runs the whole conformance suite against the backend that open opens.
// Every subtest uses a fresh directory from t.TempDir.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, *harness)
	}{
		{"AcceptSetsIncreasingSeq", testAcceptSeq},
		{"AcceptRejectsDuplicateID", testDuplicateID},
		{"AcceptCancelledContext", testCancelledContext},
		{"CaptureIndexesDistinctRecipients", testCaptureInboxes},
		{"RelayCreatesNoInbox", testRelayNoInbox},
		{"GetRoundTrip", testGetRoundTrip},
		{"GetLargeBinaryMessage", testLargeMessage},
		{"GetUnknown", testGetUnknown},
		{"GetMetaWithoutBodySameScope", testGetMeta},
		{"ScopeIsolation", testScopeIsolation},
		{"ScopeFiltersBeforeLimit", testScopeBeforeLimit},
		{"InboxNewestFirstAndPaging", testInboxPaging},
		{"InboxLimitDefaultAndCap", testInboxLimits},
		{"InboxCaseInsensitive", testInboxCase},
		{"InboxEntryFields", testInboxEntryFields},
		{"DeleteFromOneInbox", testDeleteOneInbox},
		{"DeleteLastInboxRemovesMessage", testDeleteRemovesMessage},
		{"ConcurrentAccept", testConcurrentAccept},
		{"ConcurrentAcceptWithFailure", testConcurrentWithFailure},
		{"ReadWhileWriting", testReadWhileWriting},
		{"ReopenKeepsEverything", testReopen},
		{"CloseDrainsPendingAccepts", testCloseDrains},
		{"NewFieldsRoundTrip", testNewFields},

		// EventStore
		{"AcceptCommitsEvents", testAcceptEvents},
		{"AddEvents", testAddEvents},
		{"AddEventsUnknownMessageAddsNothing", testAddEventsNotFound},
		{"EventsScopeIsolation", testEventsScope},
		{"EventsPagingAndLimits", testEventsPaging},
		{"EventSeqFollowsCommitOrder", testEventsTail},
		{"EventBySeq", testEventBySeq},
		{"EventSeqNeverReused", testEventSeqNeverReused},

		// Queue
		{"ClaimDeliveries", testClaimDeliveries},
		{"ClaimDeliveriesConcurrently", testClaimConcurrently},
		{"ClaimDeliveriesByID", testClaimByID},
		{"CompleteAttempt", testCompleteAttempt},
		{"CompleteAttempts", testCompleteAttempts},
		{"CompleteAndClaim", testCompleteAndClaim},
		{"ReleaseDeliveries", testReleaseDeliveries},
		{"RetryAndCancel", testRetryAndCancel},
		{"DeliveriesQuery", testDeliveriesQuery},

		// Webhooks
		{"EnqueueWebhookJobs", testEnqueueWebhookJobs},
		{"WebhookJobLifecycle", testWebhookJobLifecycle},
		{"ReleaseWebhookJobs", testReleaseWebhookJobs},
		{"EnqueueWebhookJobsLoginFilter", testEnqueueLoginFilter},
		{"ClaimWebhookJobsPerWebhook", testClaimPerWebhook},
		{"ClaimWebhookJobsPerWebhookConcurrently", testClaimPerWebhookConcurrently},

		// Capture
		{"Search", testSearch},
		{"InboxesAndCount", testInboxesAndCount},
		{"InboxesPages", testInboxesPages},
		{"SetRead", testSetRead},
		{"DeleteInbox", testDeleteInbox},
		{"Prune", testPrune},
	}
	tests = append(tests, contractTests()...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &harness{t: t, open: open, dir: t.TempDir()}
			h.st = h.reopen()
			t.Cleanup(func() {
				if h.st != nil {
					_ = h.st.Close()
				}
			})
			tt.fn(t, h)
		})
	}
}

// harness holds the store under test and lets a test reopen it.
type harness struct {
	t    *testing.T
	open Opener
	dir  string
	st   store.Store
	mu   sync.Mutex // guards n: tests make messages from several goroutines
	n    int        // messages made so far, for distinct content
}

// reopen closes the current store (if any) and opens the same directory.
func (h *harness) reopen() store.Store {
	h.t.Helper()
	if h.st != nil {
		if err := h.st.Close(); err != nil {
			h.t.Fatalf("Close: %v", err)
		}
		h.st = nil
	}
	h.st = h.open(h.t, h.dir)
	if h.st == nil {
		h.t.Fatal("open returned a nil store")
	}
	return h.st
}

var all = store.Scope{All: true}

func scopeOf(logins ...string) store.Scope { return store.Scope{Logins: logins} }

// message makes a realistic message from login to rcpts on route, with a
// summary parsed from its raw bytes.
func (h *harness) message(login, route string, rcpts ...string) *store.Message {
	h.t.Helper()
	h.mu.Lock()
	h.n++
	n := h.n
	h.mu.Unlock()
	now := time.Now().UTC()
	id := store.NewID(now)
	to := strings.Join(rcpts, ", ")
	if to == "" {
		to = "undisclosed-recipients:;"
	}
	raw := []byte(fmt.Sprintf("From: App <app@%s.example>\r\nTo: %s\r\nSubject: =?utf-8?q?Message_=E2=84=96%d?=\r\n"+
		"Date: %s\r\nMessage-ID: <%s@smtpgate.test>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\nHello n°%d, see https://app.example/m/%d\r\n",
		login, to, n, now.Format(time.RFC1123Z), id, n, n))
	sum, err := summary.Parse(raw)
	if err != nil {
		h.t.Fatalf("summary.Parse: %v", err)
	}
	m := &store.Message{
		ID:         id,
		Login:      login,
		Route:      route,
		MailFrom:   "bounce+" + id + "@" + login + ".example",
		Recipients: rcpts,
		RemoteIP:   fmt.Sprintf("192.0.2.%d", n%250+1),
		Helo:       "client" + fmt.Sprint(n) + ".example",
		TLS:        n%2 == 0,
		Received:   now.Truncate(time.Millisecond),
		Size:       int64(len(raw)),
		Raw:        raw,
		Summary:    sum,
		Tags:       []string{"t" + fmt.Sprint(n%3), "welcome"},
		Text:       fmt.Sprintf("Hello n°%d, see https://app.example/m/%d", n, n),
	}
	// The other fields vary so that both their presence and their absence
	// round-trip through every test.
	if n%2 == 1 {
		m.Metadata = map[string]string{"user_id": fmt.Sprint(n), "plan": "pro"}
	} else {
		m.Processing = store.Processing{
			Features:   map[string]bool{"trackclicks": true, "inlinecss": false},
			Directives: []store.DirectiveRecord{{Header: "X-Smtpgate-Track", Value: "clicks", Directive: "trackclicks", Outcome: "applied"}},
			Stats:      map[string]int{"links_tracked": 1, "pixels_added": 0},
			Notes:      []string{"inlinecss: no <style> element"},
		}
	}
	if n%3 == 0 {
		m.ReturnPath = "b+" + id + "@bounce.example"
	}
	return m
}

// accept commits msg and fails the test on error.
func (h *harness) accept(msg *store.Message) *store.Message {
	h.t.Helper()
	if err := h.st.Accept(context.Background(), msg); err != nil {
		h.t.Fatalf("Accept(%s): %v", msg.ID, err)
	}
	return msg
}

// capture accepts a captured message from login to rcpts.
func (h *harness) capture(login string, rcpts ...string) *store.Message {
	h.t.Helper()
	return h.accept(h.message(login, store.RouteCapture, rcpts...))
}

func (h *harness) inbox(q store.InboxQuery) []*store.InboxEntry {
	h.t.Helper()
	entries, err := h.st.Inbox(context.Background(), q)
	if err != nil {
		h.t.Fatalf("Inbox(%+v): %v", q, err)
	}
	return entries
}

func ids(entries []*store.InboxEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Message.ID
	}
	return out
}

func msgIDs(msgs ...*store.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// sameMessage reports how got differs from want; withBody says whether Raw
// and Original are expected (Get, InboxMessage) or must be absent (listings).
func sameMessage(got, want *store.Message, withBody bool) error {
	var errs []error
	check := func(field string, g, w any) {
		if !reflect.DeepEqual(g, w) {
			errs = append(errs, fmt.Errorf("%s: got %#v, want %#v", field, g, w))
		}
	}
	check("ID", got.ID, want.ID)
	check("Seq", got.Seq, want.Seq)
	check("Login", got.Login, want.Login)
	check("Route", got.Route, want.Route)
	check("MailFrom", got.MailFrom, want.MailFrom)
	check("Recipients", normStrings(got.Recipients), normStrings(want.Recipients))
	check("RemoteIP", got.RemoteIP, want.RemoteIP)
	check("Helo", got.Helo, want.Helo)
	check("TLS", got.TLS, want.TLS)
	if !got.Received.Equal(want.Received) || got.Received.Location() != time.UTC {
		errs = append(errs, fmt.Errorf("Received: got %v, want %v (UTC)", got.Received, want.Received))
	}
	check("Size", got.Size, want.Size)
	check("Summary", normSummary(got.Summary), normSummary(want.Summary))
	check("Tags", normStrings(got.Tags), normStrings(want.Tags))
	check("ReturnPath", got.ReturnPath, want.ReturnPath)
	check("Metadata", normMap(got.Metadata), normMap(want.Metadata))
	check("Processing", normProcessing(got.Processing), normProcessing(want.Processing))
	if !got.SendAt.Equal(want.SendAt) || !got.SendAt.IsZero() && got.SendAt.Location() != time.UTC {
		errs = append(errs, fmt.Errorf("SendAt: got %v, want %v (UTC)", got.SendAt, want.SendAt))
	}
	if got.Events != nil || got.Deliveries != nil {
		errs = append(errs, errors.New("a read must not fill in Events or Deliveries"))
	}
	if got.Text != "" {
		errs = append(errs, errors.New("a read must not return Text (it is an input to full-text search only)"))
	}
	if withBody {
		if !bytes.Equal(got.Raw, want.Raw) {
			errs = append(errs, fmt.Errorf("Raw differs: got %d bytes, want %d", len(got.Raw), len(want.Raw)))
		}
		if !bytes.Equal(got.Original, want.Original) || (got.Original == nil) != (len(want.Original) == 0) {
			errs = append(errs, fmt.Errorf("Original differs: got %d bytes (nil %v), want %d", len(got.Original), got.Original == nil, len(want.Original)))
		}
	} else if got.Raw != nil || got.Original != nil {
		errs = append(errs, errors.New("a listing must not carry Raw or Original"))
	}
	return errors.Join(errs...)
}

// normStrings treats nil and empty lists alike.
func normStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// normMap treats nil and empty maps alike.
func normMap[K comparable, V any](m map[K]V) map[K]V {
	if len(m) == 0 {
		return nil
	}
	return m
}

// normProcessing treats nil and empty maps and lists alike.
func normProcessing(p store.Processing) store.Processing {
	p.Features, p.Stats = normMap(p.Features), normMap(p.Stats)
	if len(p.Directives) == 0 {
		p.Directives = nil
	}
	p.Notes = normStrings(p.Notes)
	return p
}

// normSummary treats nil and empty lists alike and compares dates by instant.
func normSummary(s summary.Summary) summary.Summary {
	norm := func(a []summary.Address) []summary.Address {
		if len(a) == 0 {
			return nil
		}
		return a
	}
	s.From, s.To, s.Cc, s.Bcc, s.ReplyTo = norm(s.From), norm(s.To), norm(s.Cc), norm(s.Bcc), norm(s.ReplyTo)
	if len(s.Attachments) == 0 {
		s.Attachments = nil
	}
	s.Links = normStrings(s.Links)
	s.Date = s.Date.UTC()
	return s
}

func testAcceptSeq(t *testing.T, h *harness) {
	var last int64
	for i := 0; i < 5; i++ {
		m := h.capture("alpha", "a@example.org")
		if m.Seq <= last {
			t.Fatalf("message %d: Seq %d not above previous %d", i, m.Seq, last)
		}
		last = m.Seq
		got, err := h.st.Get(context.Background(), m.ID, all)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != m.Seq {
			t.Errorf("Get: Seq %d, Accept set %d", got.Seq, m.Seq)
		}
	}
	relay := h.accept(h.message("alpha", "smarthost", "b@example.org"))
	if relay.Seq <= last {
		t.Errorf("relay message Seq %d not above %d", relay.Seq, last)
	}
}

func testDuplicateID(t *testing.T, h *harness) {
	first := h.capture("alpha", "a@example.org")
	dup := h.message("beta", store.RouteCapture, "b@example.org")
	dup.ID = first.ID
	if err := h.st.Accept(context.Background(), dup); !errors.Is(err, store.ErrDuplicateID) {
		t.Fatalf("Accept of a duplicate id: %v, want ErrDuplicateID", err)
	}
	got, err := h.st.Get(context.Background(), first.ID, all)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameMessage(got, first, true); err != nil {
		t.Errorf("first message changed by the failed duplicate: %v", err)
	}
	if e := h.inbox(store.InboxQuery{Inbox: "b@example.org", Scope: all}); len(e) != 0 {
		t.Errorf("failed Accept left %d inbox entries", len(e))
	}
	// The store still works after the failure.
	h.capture("alpha", "a@example.org")
}

func testCancelledContext(t *testing.T, h *harness) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := h.message("alpha", store.RouteCapture, "a@example.org")
	err := h.st.Accept(ctx, m)
	if err == nil {
		// A backend may still commit; then the message must be there.
		if _, gerr := h.st.Get(context.Background(), m.ID, all); gerr != nil {
			t.Fatalf("Accept returned nil but Get: %v", gerr)
		}
		return
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Accept with a cancelled context: %v, want context.Canceled", err)
	}
	if _, gerr := h.st.Get(context.Background(), m.ID, all); !errors.Is(gerr, store.ErrNotFound) {
		t.Errorf("Accept failed but Get says %v, want ErrNotFound", gerr)
	}
}

func testCaptureInboxes(t *testing.T, h *harness) {
	m := h.capture("alpha", "Bob@Example.org", "carol@example.org", "bob@example.ORG", " dave@example.org ")
	for _, inbox := range []string{"bob@example.org", "carol@example.org", "dave@example.org"} {
		entries := h.inbox(store.InboxQuery{Inbox: inbox, Scope: all})
		if !reflect.DeepEqual(ids(entries), []string{m.ID}) {
			t.Errorf("inbox %s: %q, want exactly [%s]", inbox, ids(entries), m.ID)
			continue
		}
		if entries[0].Inbox != inbox {
			t.Errorf("entry Inbox %q, want %q", entries[0].Inbox, inbox)
		}
	}
	got, err := h.st.Get(context.Background(), m.ID, all)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Recipients, m.Recipients) {
		t.Errorf("Recipients %q, want as submitted %q", got.Recipients, m.Recipients)
	}
}

func testRelayNoInbox(t *testing.T, h *harness) {
	m := h.accept(h.message("alpha", "sendgrid", "erin@example.org"))
	if e := h.inbox(store.InboxQuery{Inbox: "erin@example.org", Scope: all}); len(e) != 0 {
		t.Errorf("relayed message has %d inbox entries", len(e))
	}
	if _, err := h.st.InboxMessage(context.Background(), "erin@example.org", m.ID, all); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("InboxMessage of a relayed message: %v, want ErrNotFound", err)
	}
	got, err := h.st.Get(context.Background(), m.ID, all)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameMessage(got, m, true); err != nil {
		t.Error(err)
	}
}

func testGetRoundTrip(t *testing.T, h *harness) {
	m := h.message("alpha", store.RouteCapture, "a@example.org", "b@example.org")
	m.Original = append([]byte("X-Smtpgate-TrackClicks: true\r\n"), m.Raw...)
	m.Summary.Attachments = []summary.Attachment{{Filename: "résumé.pdf", ContentType: "application/pdf", ContentID: "c1", Size: 1234, MD5: "b093318e0ea4ea50958b5b48b0f08145", Inline: true}}
	m.Summary.Date = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	m.Tags = []string{"welcome", "ünïcode", ""}
	m.MailFrom = ""
	h.accept(m)
	got, err := h.st.Get(context.Background(), m.ID, all)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameMessage(got, m, true); err != nil {
		t.Error(err)
	}
	// A message without Original reads back with a nil Original.
	plain := h.capture("alpha", "a@example.org")
	got, err = h.st.Get(context.Background(), plain.ID, all)
	if err != nil {
		t.Fatal(err)
	}
	if got.Original != nil {
		t.Errorf("Original = %d bytes, want nil", len(got.Original))
	}
	if err := sameMessage(got, plain, true); err != nil {
		t.Error(err)
	}
}

func testLargeMessage(t *testing.T, h *harness) {
	m := h.message("alpha", store.RouteCapture, "big@example.org")
	body := make([]byte, 3<<20)
	for i := range body {
		body[i] = byte(i*7 + i>>8) // every byte value, NULs included
	}
	m.Raw = append(append([]byte{}, m.Raw...), body...)
	m.Size = int64(len(m.Raw))
	m.Original = append([]byte{0, 0xff, '\r', '\n'}, body[:1000]...)
	h.accept(m)
	got, err := h.st.Get(context.Background(), m.ID, all)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameMessage(got, m, true); err != nil {
		t.Error(err)
	}
	e, err := h.st.InboxMessage(context.Background(), "big@example.org", m.ID, all)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.Message.Raw, m.Raw) {
		t.Error("InboxMessage Raw differs")
	}
}

func testGetUnknown(t *testing.T, h *harness) {
	h.capture("alpha", "a@example.org")
	for _, id := range []string{store.NewID(time.Now()), "", "not-an-id", "' OR 1=1 --"} {
		if _, err := h.st.Get(context.Background(), id, all); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q): %v, want ErrNotFound", id, err)
		}
		if _, err := h.st.InboxMessage(context.Background(), "a@example.org", id, all); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("InboxMessage(%q): %v, want ErrNotFound", id, err)
		}
		if err := h.st.DeleteInboxMessage(context.Background(), "a@example.org", id, all); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteInboxMessage(%q): %v, want ErrNotFound", id, err)
		}
	}
}

// testGetMeta: GetMeta returns what Get returns except Raw, Original and
// Text, and answers ErrNotFound exactly where Get does.
func testGetMeta(t *testing.T, h *harness) {
	ctx := context.Background()
	captured := h.message("alpha", store.RouteCapture, "a@example.org", "b@example.org")
	captured.Original = append([]byte("X-Smtpgate-Tag: meta\r\n"), captured.Raw...)
	captured.Metadata = map[string]string{"user_id": "42"}
	captured.SendAt = ms(time.Now().Add(time.Hour))
	h.accept(captured)
	relayed := h.accept(h.message("beta", "smarthost", "c@example.org"))
	gone := h.capture("alpha", "gone@example.org")
	if err := h.st.DeleteInboxMessage(ctx, "gone@example.org", gone.ID, all); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*store.Message{captured, relayed} {
		got, err := h.st.GetMeta(ctx, m.ID, scopeOf(m.Login))
		if err != nil {
			t.Fatalf("GetMeta(%s): %v", m.ID, err)
		}
		if err := sameMessage(got, m, false); err != nil {
			t.Errorf("GetMeta(%s): %v", m.ID, err)
		}
		full, err := h.st.Get(ctx, m.ID, scopeOf(m.Login))
		if err != nil {
			t.Fatal(err)
		}
		full.Raw, full.Original, full.Text = nil, nil, ""
		if !reflect.DeepEqual(normMessage(got), normMessage(full)) {
			t.Errorf("GetMeta(%s) differs from Get without the body:\n%+v\n%+v", m.ID, got, full)
		}
	}
	scopes := map[string]store.Scope{
		"all": all, "zero": {}, "alpha": scopeOf("alpha"), "beta": scopeOf("beta"), "gamma": scopeOf("gamma"),
		"prefix": scopeOf("alph"), "case": scopeOf("ALPHA"), "empty": scopeOf(""), "aliases": scopeOf("gamma", "beta"),
	}
	idList := []string{captured.ID, relayed.ID, gone.ID, store.NewID(time.Now()), "", "not-an-id", "' OR 1=1 --", "nul\x00id"}
	for name, sc := range scopes {
		for _, id := range idList {
			_, gerr := h.st.Get(ctx, id, sc)
			m, err := h.st.GetMeta(ctx, id, sc)
			switch {
			case gerr == nil && err != nil:
				t.Errorf("scope %s, id %q: Get finds it but GetMeta: %v", name, id, err)
			case gerr != nil && !errors.Is(gerr, store.ErrNotFound):
				t.Errorf("scope %s, id %q: Get: %v", name, id, gerr)
			case gerr != nil && !errors.Is(err, store.ErrNotFound):
				t.Errorf("scope %s, id %q: GetMeta: %v, want ErrNotFound as Get says", name, id, err)
			case err == nil && (m.ID != id || !sc.Allows(m.Login)):
				t.Errorf("scope %s, id %q: GetMeta returned %s of %s", name, id, m.ID, m.Login)
			}
		}
	}
}

// normMessage treats nil and empty fields alike, for comparing two reads.
func normMessage(m *store.Message) store.Message {
	c := *m
	c.Recipients, c.Tags, c.Metadata = normStrings(c.Recipients), normStrings(c.Tags), normMap(c.Metadata)
	c.Summary, c.Processing = normSummary(c.Summary), normProcessing(c.Processing)
	return c
}

// testScopeIsolation: a reader scoped to one login never sees another
// login's message through any method, and cannot delete it.
func testScopeIsolation(t *testing.T, h *harness) {
	ctx := context.Background()
	a := h.capture("alpha", "shared@example.org")
	b := h.capture("beta", "shared@example.org", "only-b@example.org")
	bRelay := h.accept(h.message("beta", "smarthost", "x@example.org"))

	scopes := map[string]store.Scope{
		"alpha":   scopeOf("alpha"),
		"zero":    {},
		"gamma":   scopeOf("gamma"),
		"prefix":  scopeOf("bet"),
		"case":    scopeOf("BETA"),
		"empty":   scopeOf(""),
		"aliases": scopeOf("alpha", "gamma"),
	}
	for name, sc := range scopes {
		for _, m := range []*store.Message{b, bRelay} {
			if _, err := h.st.Get(ctx, m.ID, sc); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("scope %s: Get(beta's message): %v, want ErrNotFound", name, err)
			}
		}
		for _, inbox := range []string{"shared@example.org", "only-b@example.org"} {
			for _, e := range h.inbox(store.InboxQuery{Inbox: inbox, Scope: sc}) {
				if e.Message.Login == "beta" {
					t.Errorf("scope %s: Inbox(%s) lists beta's message", name, inbox)
				}
			}
			if _, err := h.st.InboxMessage(ctx, inbox, b.ID, sc); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("scope %s: InboxMessage(%s, beta's message): %v, want ErrNotFound", name, inbox, err)
			}
			if err := h.st.DeleteInboxMessage(ctx, inbox, b.ID, sc); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("scope %s: DeleteInboxMessage(%s, beta's message): %v, want ErrNotFound", name, inbox, err)
			}
		}
	}
	// Nothing was deleted by the attempts above.
	for _, inbox := range []string{"shared@example.org", "only-b@example.org"} {
		if _, err := h.st.InboxMessage(ctx, inbox, b.ID, scopeOf("beta")); err != nil {
			t.Errorf("beta's message gone from %s after foreign deletes: %v", inbox, err)
		}
	}
	// The right scopes see it.
	if got := ids(h.inbox(store.InboxQuery{Inbox: "shared@example.org", Scope: scopeOf("alpha")})); !reflect.DeepEqual(got, []string{a.ID}) {
		t.Errorf("alpha sees %q in the shared inbox, want [%s]", got, a.ID)
	}
	if got := ids(h.inbox(store.InboxQuery{Inbox: "shared@example.org", Scope: scopeOf("gamma", "beta")})); !reflect.DeepEqual(got, []string{b.ID}) {
		t.Errorf("beta+gamma sees %q in the shared inbox, want [%s]", got, b.ID)
	}
	if got := ids(h.inbox(store.InboxQuery{Inbox: "shared@example.org", Scope: all})); !reflect.DeepEqual(got, []string{b.ID, a.ID}) {
		t.Errorf("admin sees %q, want [%s %s]", got, b.ID, a.ID)
	}
	if _, err := h.st.Get(ctx, bRelay.ID, scopeOf("beta")); err != nil {
		t.Errorf("beta cannot Get its own relayed message: %v", err)
	}
	// The zero scope sees nothing at all, not even with a login named "".
	if e := h.inbox(store.InboxQuery{Inbox: "shared@example.org"}); len(e) != 0 {
		t.Errorf("zero scope lists %d entries", len(e))
	}
}

// testScopeBeforeLimit: in an inbox shared by two logins, a scoped page is
// filled with the scope's own messages.
func testScopeBeforeLimit(t *testing.T, h *harness) {
	var alpha []*store.Message
	for i := 0; i < 4; i++ {
		alpha = append(alpha, h.capture("alpha", "shared@example.org"))
		h.capture("beta", "shared@example.org")
		h.capture("beta", "shared@example.org")
	}
	got := ids(h.inbox(store.InboxQuery{Inbox: "shared@example.org", Scope: scopeOf("alpha"), Limit: 3}))
	want := []string{alpha[3].ID, alpha[2].ID, alpha[1].ID}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alpha's first page of 3: %q, want %q", got, want)
	}
	got = ids(h.inbox(store.InboxQuery{Inbox: "shared@example.org", Scope: scopeOf("alpha"), Limit: 3, BeforeSeq: alpha[1].Seq}))
	if !reflect.DeepEqual(got, []string{alpha[0].ID}) {
		t.Errorf("alpha's second page: %q, want [%s]", got, alpha[0].ID)
	}
}

func testInboxPaging(t *testing.T, h *harness) {
	var msgs []*store.Message
	for i := 0; i < 25; i++ {
		msgs = append(msgs, h.capture("alpha", "page@example.org", fmt.Sprintf("other%d@example.org", i%3)))
	}
	slices.Reverse(msgs) // newest first
	var got []string
	before := int64(0)
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("paging does not end")
		}
		entries := h.inbox(store.InboxQuery{Inbox: "page@example.org", Scope: all, Limit: 10, BeforeSeq: before})
		if len(entries) == 0 {
			break
		}
		if len(entries) > 10 {
			t.Fatalf("page %d has %d entries, limit 10", page, len(entries))
		}
		for i, e := range entries {
			if before > 0 && e.Message.Seq >= before {
				t.Errorf("page %d: Seq %d not below BeforeSeq %d", page, e.Message.Seq, before)
			}
			if i > 0 && e.Message.Seq >= entries[i-1].Message.Seq {
				t.Errorf("page %d not newest first: Seq %d after %d", page, e.Message.Seq, entries[i-1].Message.Seq)
			}
		}
		got = append(got, ids(entries)...)
		before = entries[len(entries)-1].Message.Seq
	}
	if want := msgIDs(msgs...); !reflect.DeepEqual(got, want) {
		t.Errorf("paged ids:\n got %q\nwant %q", got, want)
	}
}

func testInboxLimits(t *testing.T, h *harness) {
	const n = 1010
	msgs := make([]*store.Message, n)
	for i := range msgs {
		msgs[i] = h.message("alpha", store.RouteCapture, "many@example.org")
	}
	acceptAll(t, h.st, msgs, 50)
	if got := len(h.inbox(store.InboxQuery{Inbox: "many@example.org", Scope: all})); got != 100 {
		t.Errorf("Limit 0 returned %d entries, want the default 100", got)
	}
	if got := len(h.inbox(store.InboxQuery{Inbox: "many@example.org", Scope: all, Limit: 5000})); got != 1000 {
		t.Errorf("Limit 5000 returned %d entries, want the cap 1000", got)
	}
	if got := len(h.inbox(store.InboxQuery{Inbox: "many@example.org", Scope: all, Limit: 7})); got != 7 {
		t.Errorf("Limit 7 returned %d entries", got)
	}
	if got := len(h.inbox(store.InboxQuery{Inbox: "many@example.org", Scope: all, Limit: -1})); got != 100 {
		t.Errorf("Limit -1 returned %d entries, want the default 100", got)
	}
}

func testInboxCase(t *testing.T, h *harness) {
	ctx := context.Background()
	m := h.capture("alpha", "MiXeD@Example.Org")
	for _, inbox := range []string{"mixed@example.org", "MIXED@EXAMPLE.ORG", "MiXeD@Example.Org"} {
		entries := h.inbox(store.InboxQuery{Inbox: inbox, Scope: all})
		if !reflect.DeepEqual(ids(entries), []string{m.ID}) {
			t.Errorf("Inbox(%s) = %q", inbox, ids(entries))
			continue
		}
		if entries[0].Inbox != "mixed@example.org" {
			t.Errorf("entry Inbox %q, want lower case", entries[0].Inbox)
		}
		e, err := h.st.InboxMessage(ctx, inbox, m.ID, all)
		if err != nil {
			t.Errorf("InboxMessage(%s): %v", inbox, err)
		} else if e.Inbox != "mixed@example.org" {
			t.Errorf("InboxMessage(%s).Inbox = %q", inbox, e.Inbox)
		}
	}
	if err := h.st.DeleteInboxMessage(ctx, "MIXED@example.ORG", m.ID, all); err != nil {
		t.Errorf("DeleteInboxMessage with other case: %v", err)
	}
	if e := h.inbox(store.InboxQuery{Inbox: "mixed@example.org", Scope: all}); len(e) != 0 {
		t.Errorf("entry still listed after delete")
	}
}

func testInboxEntryFields(t *testing.T, h *harness) {
	m := h.message("alpha", store.RouteCapture, "f@example.org", "g@example.org")
	m.Original = []byte("original bytes")
	h.accept(m)
	entries := h.inbox(store.InboxQuery{Inbox: "f@example.org", Scope: scopeOf("alpha")})
	if len(entries) != 1 {
		t.Fatalf("%d entries, want 1", len(entries))
	}
	e := entries[0]
	if e.Inbox != "f@example.org" || e.Read || len(e.Labels) != 0 || e.Folder != "inbox" {
		t.Errorf("entry = {Inbox %q Read %v Labels %q Folder %q}, want {f@example.org false [] inbox}", e.Inbox, e.Read, e.Labels, e.Folder)
	}
	if err := sameMessage(e.Message, m, false); err != nil {
		t.Errorf("listed message: %v", err)
	}
	full, err := h.st.InboxMessage(context.Background(), "g@example.org", m.ID, scopeOf("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	if full.Inbox != "g@example.org" || full.Folder != "inbox" {
		t.Errorf("InboxMessage entry = %+v", full)
	}
	if err := sameMessage(full.Message, m, true); err != nil {
		t.Errorf("InboxMessage: %v", err)
	}
}

func testDeleteOneInbox(t *testing.T, h *harness) {
	ctx := context.Background()
	m := h.capture("alpha", "one@example.org", "two@example.org", "three@example.org")
	other := h.capture("alpha", "one@example.org")
	if err := h.st.DeleteInboxMessage(ctx, "two@example.org", m.ID, scopeOf("alpha")); err != nil {
		t.Fatalf("DeleteInboxMessage: %v", err)
	}
	if err := h.st.DeleteInboxMessage(ctx, "two@example.org", m.ID, scopeOf("alpha")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	if e := h.inbox(store.InboxQuery{Inbox: "two@example.org", Scope: all}); len(e) != 0 {
		t.Errorf("two@ still lists %q", ids(e))
	}
	if _, err := h.st.InboxMessage(ctx, "two@example.org", m.ID, all); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("InboxMessage after delete: %v, want ErrNotFound", err)
	}
	if got := ids(h.inbox(store.InboxQuery{Inbox: "one@example.org", Scope: all})); !reflect.DeepEqual(got, []string{other.ID, m.ID}) {
		t.Errorf("one@ lists %q, want [%s %s]", got, other.ID, m.ID)
	}
	if _, err := h.st.InboxMessage(ctx, "three@example.org", m.ID, all); err != nil {
		t.Errorf("three@ lost the message: %v", err)
	}
	if _, err := h.st.Get(ctx, m.ID, all); err != nil {
		t.Errorf("message removed while inboxes still hold it: %v", err)
	}
}

func testDeleteRemovesMessage(t *testing.T, h *harness) {
	ctx := context.Background()
	m := h.capture("alpha", "one@example.org", "two@example.org")
	keep := h.capture("alpha", "one@example.org")
	for _, inbox := range []string{"one@example.org", "two@example.org"} {
		if err := h.st.DeleteInboxMessage(ctx, inbox, m.ID, all); err != nil {
			t.Fatalf("DeleteInboxMessage(%s): %v", inbox, err)
		}
	}
	if _, err := h.st.Get(ctx, m.ID, all); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after the last inbox entry was deleted: %v, want ErrNotFound", err)
	}
	if _, err := h.st.Get(ctx, keep.ID, all); err != nil {
		t.Errorf("unrelated message gone: %v", err)
	}
	// The removal is durable.
	h.reopen()
	if _, err := h.st.Get(ctx, m.ID, all); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after reopen: %v, want ErrNotFound", err)
	}
	// Seq keeps increasing even though the newest message was deleted.
	last := h.capture("alpha", "one@example.org")
	if last.Seq <= m.Seq {
		t.Errorf("Seq %d after deleting Seq %d: must keep increasing", last.Seq, m.Seq)
	}
}

// acceptAll accepts msgs from workers goroutines and fails on any error.
func acceptAll(t *testing.T, st store.Store, msgs []*store.Message, workers int) {
	t.Helper()
	errs := make(chan error, len(msgs))
	next := make(chan *store.Message)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for m := range next {
				if err := st.Accept(context.Background(), m); err != nil {
					errs <- fmt.Errorf("Accept(%s): %w", m.ID, err)
				}
			}
		})
	}
	for _, m := range msgs {
		next <- m
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testConcurrentAccept(t *testing.T, h *harness) {
	const workers, perWorker = 50, 8
	var msgs []*store.Message
	for i := 0; i < workers*perWorker; i++ {
		msgs = append(msgs, h.message(fmt.Sprintf("login%d", i%3), store.RouteCapture, fmt.Sprintf("rcpt%d@example.org", i%7), "all@example.org"))
	}
	acceptAll(t, h.st, msgs, workers)
	seqs := map[int64]string{}
	for _, m := range msgs {
		if m.Seq <= 0 {
			t.Fatalf("message %s has Seq %d", m.ID, m.Seq)
		}
		if prev, dup := seqs[m.Seq]; dup {
			t.Fatalf("Seq %d given to both %s and %s", m.Seq, prev, m.ID)
		}
		seqs[m.Seq] = m.ID
		got, err := h.st.Get(context.Background(), m.ID, all)
		if err != nil {
			t.Fatalf("Get(%s): %v", m.ID, err)
		}
		if err := sameMessage(got, m, true); err != nil {
			t.Fatalf("message %s: %v", m.ID, err)
		}
	}
	entries := h.inbox(store.InboxQuery{Inbox: "all@example.org", Scope: all, Limit: 1000})
	if len(entries) != len(msgs) {
		t.Errorf("all@ has %d entries, want %d", len(entries), len(msgs))
	}
}

// testConcurrentWithFailure: one bad message among concurrent good ones
// fails alone; every other caller gets its own true result.
func testConcurrentWithFailure(t *testing.T, h *harness) {
	existing := h.capture("alpha", "x@example.org")
	const n = 60
	msgs := make([]*store.Message, n)
	for i := range msgs {
		msgs[i] = h.message("alpha", store.RouteCapture, fmt.Sprintf("c%d@example.org", i%5))
	}
	bad := map[int]bool{7: true, 31: true, 59: true}
	for i := range bad {
		msgs[i].ID = existing.ID
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, m := range msgs {
		wg.Go(func() {
			<-start
			errs[i] = h.st.Accept(context.Background(), m)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		switch {
		case bad[i] && !errors.Is(err, store.ErrDuplicateID):
			t.Errorf("duplicate message %d: %v, want ErrDuplicateID", i, err)
		case !bad[i] && err != nil:
			t.Errorf("good message %d failed: %v", i, err)
		case !bad[i]:
			if _, gerr := h.st.Get(context.Background(), msgs[i].ID, all); gerr != nil {
				t.Errorf("good message %d accepted but Get: %v", i, gerr)
			}
		}
	}
	got, err := h.st.Get(context.Background(), existing.ID, all)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameMessage(got, existing, true); err != nil {
		t.Errorf("existing message changed: %v", err)
	}
}

// testReadWhileWriting reads continuously while writers commit; every read
// sees a consistent store.
func testReadWhileWriting(t *testing.T, h *harness) {
	seed := h.capture("alpha", "rw@example.org")
	ctx, cancel := context.WithCancel(context.Background())
	var readErr error
	var reads int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			entries, err := h.st.Inbox(context.Background(), store.InboxQuery{Inbox: "rw@example.org", Scope: all})
			if err != nil {
				readErr = err
				return
			}
			if len(entries) == 0 || entries[len(entries)-1].Message.ID != seed.ID && len(entries) < 100 {
				readErr = fmt.Errorf("inconsistent listing of %d entries", len(entries))
				return
			}
			if _, err := h.st.Get(context.Background(), seed.ID, all); err != nil {
				readErr = err
				return
			}
			reads++
		}
	}()
	msgs := make([]*store.Message, 200)
	for i := range msgs {
		msgs[i] = h.message("alpha", store.RouteCapture, "rw@example.org")
	}
	acceptAll(t, h.st, msgs, 20)
	cancel()
	<-done
	if readErr != nil {
		t.Fatalf("reader: %v", readErr)
	}
	if reads == 0 {
		t.Error("the reader never completed a read")
	}
}

func testReopen(t *testing.T, h *harness) {
	ctx := context.Background()
	a := h.capture("alpha", "r1@example.org", "r2@example.org")
	a2 := h.message("beta", "smarthost", "r3@example.org")
	a2.Original = []byte("before features")
	h.accept(a2)
	c := h.capture("beta", "r1@example.org")
	if err := h.st.DeleteInboxMessage(ctx, "r2@example.org", a.ID, all); err != nil {
		t.Fatal(err)
	}

	h.reopen()
	for _, m := range []*store.Message{a, a2, c} {
		got, err := h.st.Get(ctx, m.ID, all)
		if err != nil {
			t.Fatalf("Get(%s) after reopen: %v", m.ID, err)
		}
		if err := sameMessage(got, m, true); err != nil {
			t.Errorf("after reopen: %v", err)
		}
	}
	if got := ids(h.inbox(store.InboxQuery{Inbox: "r1@example.org", Scope: all})); !reflect.DeepEqual(got, []string{c.ID, a.ID}) {
		t.Errorf("r1@ after reopen: %q", got)
	}
	if e := h.inbox(store.InboxQuery{Inbox: "r2@example.org", Scope: all}); len(e) != 0 {
		t.Errorf("deleted entry back after reopen")
	}
	d := h.capture("alpha", "r1@example.org")
	if d.Seq <= c.Seq {
		t.Errorf("Seq after reopen %d, want > %d", d.Seq, c.Seq)
	}
	// Closing twice is harmless; using a closed store is an error, not a panic.
	st := h.st
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	h.st = nil
	if err := st.Accept(ctx, h.message("alpha", store.RouteCapture, "late@example.org")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Accept on a closed store: %v, want ErrClosed", err)
	}
	_ = st.Close()
}

// testCloseDrains closes the store while Accepts are in flight: every
// Accept that returned nil is in the reopened store, every one that failed
// is not.
func testCloseDrains(t *testing.T, h *harness) {
	const n = 100
	msgs := make([]*store.Message, n)
	for i := range msgs {
		msgs[i] = h.message("alpha", store.RouteCapture, "drain@example.org")
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Go(func() { errs[i] = h.st.Accept(context.Background(), m) })
	}
	time.Sleep(time.Millisecond)
	if err := h.st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	h.st = nil
	h.reopen()
	ok := 0
	for i, m := range msgs {
		_, err := h.st.Get(context.Background(), m.ID, all)
		switch {
		case errs[i] == nil && err != nil:
			t.Errorf("message %d: Accept returned nil but after reopen Get: %v", i, err)
		case errs[i] != nil && !errors.Is(err, store.ErrNotFound):
			t.Errorf("message %d: Accept failed (%v) but after reopen Get: %v", i, errs[i], err)
		case errs[i] == nil:
			ok++
		}
	}
	t.Logf("%d of %d in-flight Accepts committed before Close", ok, n)
}
