package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

func captureOf(t *testing.T, h *harness) store.Capture {
	c, ok := h.st.(store.Capture)
	if !ok {
		t.Skip("backend does not implement store.Capture")
	}
	return c
}

func testSearch(t *testing.T, h *harness) {
	c := captureOf(t, h)
	ctx := context.Background()
	base := ms(time.Now().Add(-time.Hour))

	mk := func(login, subject, from string, received time.Time, rcpts ...string) *store.Message {
		m := h.message(login, store.RouteCapture, rcpts...)
		m.Summary.Subject = subject
		m.Summary.From = []summary.Address{{Address: from, Name: "Sender " + login}}
		m.Received = received
		return m
	}
	invoice := mk("alpha", "Your Invoice #1", "billing@shop.example", base, "ann@example.org")
	invoice.Summary.Attachments = []summary.Attachment{{Filename: "inv.pdf", ContentType: "application/pdf", Size: 10, MD5: "00"}}
	invoice.Tags = []string{"invoice"}
	invoice.Text = "Total due: 42 EUR, 100% certain"
	h.accept(invoice)
	welcome := mk("alpha", "Welcome aboard", "hello@app.example", base.Add(time.Minute), "bob@example.org")
	welcome.Summary.Cc = []summary.Address{{Address: "carol@example.org", Name: "Carol Ünïcode"}}
	welcome.Text = "Glad to have you"
	h.accept(welcome)
	other := mk("beta", "Your Invoice #2", "billing@shop.example", base.Add(2*time.Minute), "ann@example.org")
	h.accept(other)
	relayed := h.message("alpha", "smarthost", "ann@example.org")
	relayed.Summary.Subject = "Your Invoice #3 (relayed)"
	h.accept(relayed)

	search := func(q store.SearchQuery) []string {
		t.Helper()
		msgs, err := c.Search(ctx, q)
		if err != nil {
			t.Fatalf("Search(%+v): %v", q, err)
		}
		out := []string{}
		for _, m := range msgs {
			if m.Raw != nil || m.Original != nil {
				t.Errorf("Search returned a body for %s", m.ID)
			}
			out = append(out, m.ID)
		}
		return out
	}
	yes, no := true, false
	alpha := scopeOf("alpha")
	tests := []struct {
		name string
		q    store.SearchQuery
		want []string
	}{
		{"scope alpha, newest first", store.SearchQuery{Scope: alpha}, msgIDs(welcome, invoice)},
		{"admin, relayed never", store.SearchQuery{Scope: all}, msgIDs(other, welcome, invoice)},
		{"zero scope", store.SearchQuery{}, nil},
		{"subject, any case", store.SearchQuery{Scope: all, Subject: "INVOICE"}, msgIDs(other, invoice)},
		{"subject", store.SearchQuery{Scope: all, Subject: "#1"}, msgIDs(invoice)},
		{"_ is literal", store.SearchQuery{Scope: all, Subject: "Invoice_#1"}, nil},
		{"from address", store.SearchQuery{Scope: alpha, From: "billing@"}, msgIDs(invoice)},
		{"from name", store.SearchQuery{Scope: all, From: "sender beta"}, msgIDs(other)},
		{"from envelope", store.SearchQuery{Scope: alpha, From: "bounce+" + welcome.ID}, msgIDs(welcome)},
		{"to envelope", store.SearchQuery{Scope: alpha, To: "ANN@"}, msgIDs(invoice)},
		{"to cc name", store.SearchQuery{Scope: alpha, To: "carol"}, msgIDs(welcome)},
		{"inbox", store.SearchQuery{Scope: all, Inbox: "Ann@Example.org"}, msgIDs(other, invoice)},
		{"login", store.SearchQuery{Scope: all, Login: "beta"}, msgIDs(other)},
		{"login outside scope", store.SearchQuery{Scope: alpha, Login: "beta"}, nil},
		{"text in body", store.SearchQuery{Scope: all, Text: "glad to"}, msgIDs(welcome)},
		{"text in subject", store.SearchQuery{Scope: all, Text: "aboard"}, msgIDs(welcome)},
		{"text with %", store.SearchQuery{Scope: all, Text: "100%"}, msgIDs(invoice)},
		{"% is literal", store.SearchQuery{Scope: all, Text: "%"}, msgIDs(invoice)},
		{"tag", store.SearchQuery{Scope: all, Tag: "invoice"}, msgIDs(invoice)},
		{"tag is exact", store.SearchQuery{Scope: all, Tag: "invo"}, nil},
		{"since", store.SearchQuery{Scope: all, Since: base.Add(time.Minute)}, msgIDs(other, welcome)},
		{"until", store.SearchQuery{Scope: all, Until: base.Add(time.Minute)}, msgIDs(invoice)},
		{"has attachment", store.SearchQuery{Scope: all, HasAttachment: &yes}, msgIDs(invoice)},
		{"no attachment", store.SearchQuery{Scope: all, HasAttachment: &no}, msgIDs(other, welcome)},
		{"combined", store.SearchQuery{Scope: all, Subject: "invoice", Inbox: "ann@example.org", Login: "alpha"}, msgIDs(invoice)},
		{"limit", store.SearchQuery{Scope: all, Limit: 2}, msgIDs(other, welcome)},
		{"before", store.SearchQuery{Scope: all, BeforeSeq: welcome.Seq}, msgIDs(invoice)},
		{"after, oldest first", store.SearchQuery{Scope: all, AfterSeq: invoice.Seq}, msgIDs(welcome, other)},
	}
	for _, tt := range tests {
		if got := search(tt.q); !reflect.DeepEqual(normStrings(got), normStrings(tt.want)) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// testInboxesPages checks pages of Inboxes, most recent first, against
// counts kept here, for a login beside another: a page smaller than the
// number of inboxes, a page past the last one, and a page behind many new
// messages of one inbox (a backend that finds a page's inboxes by walking
// the newest messages must still get it right).
func testInboxesPages(t *testing.T, h *harness) {
	c := captureOf(t, h)
	ctx := context.Background()
	type key struct{ login, inbox string }
	count := map[key]int{}
	var order []key // by their latest message, oldest first
	send := func(login, inbox string) {
		h.capture(login, inbox)
		k := key{login, inbox}
		count[k]++
		order = slices.DeleteFunc(order, func(o key) bool { return o == k })
		order = append(order, k)
	}
	check := func(what string, limit int) {
		t.Helper()
		var want []key
		for i := len(order) - 1; i >= 0 && len(want) < limit; i-- {
			if order[i].login == "alpha" {
				want = append(want, order[i])
			}
		}
		got, err := c.Inboxes(ctx, scopeOf("alpha"), "", limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d inboxes %+v, want %d %v", what, len(got), got, len(want), want)
		}
		for i, g := range got {
			if g.Inbox != want[i].inbox || g.Messages != count[want[i]] || g.Unread != count[want[i]] {
				t.Errorf("%s: inbox %d is %s with %d (%d unread), want %s with %d", what, i, g.Inbox, g.Messages, g.Unread, want[i].inbox, count[want[i]])
			}
		}
	}
	for range 30 {
		send("alpha", "big@example.org")
	}
	for i := range 6 {
		send("alpha", fmt.Sprintf("one%d@example.org", i))
		send("beta", fmt.Sprintf("theirs%d@example.org", i))
	}
	check("a page of 3 of 7", 3)
	check("a page past the last inbox", 100)
	for range 45 {
		send("alpha", "hot@example.org")
	}
	check("a page of 2 behind 45 messages of one inbox", 2)
	check("a page of 8", 8)
}

func testInboxesAndCount(t *testing.T, h *harness) {
	c := captureOf(t, h)
	ctx := context.Background()
	a1 := h.capture("alpha", "one@example.org")
	h.capture("beta", "one@example.org", "two@example.org")
	a2 := h.capture("alpha", "two@example.org", "one@example.org")
	if err := c.SetRead(ctx, "ONE@example.org", a1.ID, scopeOf("alpha"), true); err != nil {
		t.Fatal(err)
	}
	got, err := c.Inboxes(ctx, scopeOf("alpha"), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Both inboxes' newest alpha message is a2; one@ holds a1 (read) and a2.
	if len(got) != 2 {
		t.Fatalf("alpha's inboxes: %+v", got)
	}
	byName := map[string]store.InboxSummary{}
	for _, s := range got {
		byName[s.Inbox] = s
	}
	one, two := byName["one@example.org"], byName["two@example.org"]
	if one.Messages != 2 || one.Unread != 1 || one.LastSeq != a2.Seq || !one.Latest.Equal(a2.Received) {
		t.Errorf("one@ = %+v", one)
	}
	if two.Messages != 1 || two.Unread != 1 || two.LastSeq != a2.Seq {
		t.Errorf("two@ = %+v", two)
	}
	if all3, _ := c.Inboxes(ctx, all, "", 0); len(all3) != 2 || all3[0].Messages+all3[1].Messages != 5 {
		t.Errorf("admin's inboxes: %+v", all3)
	}
	if betaOnly, _ := c.Inboxes(ctx, all, "beta", 1); len(betaOnly) != 1 {
		t.Errorf("beta's inboxes, limit 1: %+v", betaOnly)
	}
	if none, _ := c.Inboxes(ctx, scopeOf("alpha"), "beta", 0); len(none) != 0 {
		t.Errorf("alpha asking for beta's inboxes got %+v", none)
	}
	for _, tt := range []struct {
		inbox string
		scope store.Scope
		want  int
	}{
		{"one@example.org", scopeOf("alpha"), 2},
		{"ONE@example.org", all, 3},
		{"one@example.org", scopeOf("gamma"), 0},
		{"one@example.org", store.Scope{}, 0},
		{"nobody@example.org", all, 0},
	} {
		if n, err := c.InboxCount(ctx, tt.inbox, tt.scope); err != nil || n != tt.want {
			t.Errorf("InboxCount(%s, %+v) = %d (%v), want %d", tt.inbox, tt.scope, n, err, tt.want)
		}
	}
}

func testSetRead(t *testing.T, h *harness) {
	c := captureOf(t, h)
	ctx := context.Background()
	m := h.capture("alpha", "r@example.org", "s@example.org")
	if err := c.SetRead(ctx, "r@example.org", m.ID, scopeOf("beta"), true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetRead out of scope: %v, want ErrNotFound", err)
	}
	if err := c.SetRead(ctx, "r@example.org", store.NewID(time.Now()), all, true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetRead of an unknown message: %v, want ErrNotFound", err)
	}
	if err := c.SetRead(ctx, "R@example.org", m.ID, scopeOf("alpha"), true); err != nil {
		t.Fatal(err)
	}
	if e := h.inbox(store.InboxQuery{Inbox: "r@example.org", Scope: all}); len(e) != 1 || !e[0].Read {
		t.Errorf("r@ entry not read: %+v", e)
	}
	if e := h.inbox(store.InboxQuery{Inbox: "s@example.org", Scope: all}); len(e) != 1 || e[0].Read {
		t.Error("SetRead on r@ changed s@")
	}
	if err := c.SetRead(ctx, "r@example.org", m.ID, all, false); err != nil {
		t.Fatal(err)
	}
	if e, _ := h.st.InboxMessage(ctx, "r@example.org", m.ID, all); e == nil || e.Read {
		t.Error("entry still read after SetRead(false)")
	}
}

func testDeleteInbox(t *testing.T, h *harness) {
	c := captureOf(t, h)
	ctx := context.Background()
	only := h.capture("alpha", "gone@example.org")
	shared := h.capture("alpha", "gone@example.org", "kept@example.org")
	foreign := h.capture("beta", "gone@example.org")
	n, err := c.DeleteInbox(ctx, "Gone@example.org", scopeOf("alpha"))
	if err != nil || n != 2 {
		t.Fatalf("DeleteInbox = %d (%v), want 2", n, err)
	}
	if _, err := h.st.Get(ctx, only.ID, all); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("message held by no inbox any more: Get = %v, want ErrNotFound", err)
	}
	if _, err := h.st.InboxMessage(ctx, "kept@example.org", shared.ID, all); err != nil {
		t.Errorf("message still in another inbox: %v", err)
	}
	if got := ids(h.inbox(store.InboxQuery{Inbox: "gone@example.org", Scope: all})); !reflect.DeepEqual(got, []string{foreign.ID}) {
		t.Errorf("gone@ after alpha's delete: %q, want beta's message only", got)
	}
	if n, err := c.DeleteInbox(ctx, "gone@example.org", store.Scope{}); err != nil || n != 0 {
		t.Errorf("zero scope deleted %d (%v)", n, err)
	}
}

func testPrune(t *testing.T, h *harness) {
	c := captureOf(t, h)
	ctx := context.Background()
	now := ms(time.Now())
	var alpha []*store.Message
	for i := 0; i < 6; i++ {
		m := h.message("alpha", store.RouteCapture, "p@example.org")
		m.Received = now.Add(time.Duration(i-10) * time.Hour) // 10h .. 5h ago
		alpha = append(alpha, h.accept(m))
	}
	relayed := h.message("alpha", "smarthost", "p@example.org")
	relayed.Received = now.Add(-100 * time.Hour)
	h.accept(relayed)
	beta := h.capture("beta", "p@example.org")

	exists := func(m *store.Message) bool {
		_, err := h.st.Get(ctx, m.ID, all)
		return err == nil
	}
	// Keep 4: the two oldest go, one per call with batch 1.
	r := store.Retention{Login: "alpha", MaxCount: 4}
	for i, want := range []int{1, 1, 0} {
		n, err := c.Prune(ctx, r, now, 1)
		if err != nil || n != want {
			t.Fatalf("Prune call %d = %d (%v), want %d", i, n, err, want)
		}
	}
	if exists(alpha[0]) || exists(alpha[1]) || !exists(alpha[2]) || !exists(alpha[5]) {
		t.Error("MaxCount 4 did not remove exactly the two oldest")
	}
	// Older than 7h01m: alpha[2] (received 8h ago) goes, alpha[3] (7h
	// ago) stays.
	n, err := c.Prune(ctx, store.Retention{Login: "alpha", MaxAge: 7*time.Hour + time.Minute}, now, 100)
	if err != nil || n != 1 {
		t.Fatalf("Prune by age = %d (%v), want 1", n, err)
	}
	if exists(alpha[2]) || !exists(alpha[3]) {
		t.Error("MaxAge removed the wrong messages")
	}
	if !exists(relayed) {
		t.Error("Prune removed a relayed message")
	}
	if !exists(beta) {
		t.Error("Prune removed another login's message")
	}
	if got := len(h.inbox(store.InboxQuery{Inbox: "p@example.org", Scope: scopeOf("alpha")})); got != 3 {
		t.Errorf("alpha has %d messages in p@ after pruning, want 3", got)
	}
	if n, err := c.Prune(ctx, store.Retention{Login: "alpha"}, now, 100); err != nil || n != 0 {
		t.Errorf("Prune without limits = %d (%v), want 0", n, err)
	}
}
