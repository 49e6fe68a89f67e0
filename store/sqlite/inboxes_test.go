package sqlite_test

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/store/sqlite"
	"github.com/smtpgate/smtpgate/summary"
)

// TestInboxesWalkAndGroup checks both plans of Inboxes: the walk of the
// newest index rows (a page of the most recent inboxes, counted one by
// one) and the grouping of the whole index (when the newest rows hold too
// few inboxes), against counts kept here, for two logins.
func TestInboxesWalkAndGroup(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, t.TempDir(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	raw := fiveKB("inboxes")
	sum, err := summary.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ login, inbox string }
	count := map[key]int{}
	var order []key // by the seq of their latest message, oldest first
	send := func(login, inbox string) {
		t.Helper()
		m := newMessage(raw, sum, inbox)
		m.Login = login
		if err := db.Accept(ctx, m); err != nil {
			t.Fatal(err)
		}
		k := key{login, inbox}
		count[k]++
		for i, o := range order {
			if o == k {
				order = append(order[:i], order[i+1:]...)
				break
			}
		}
		order = append(order, k)
	}
	// 30 for big@, then one each for six others, then 45 for hot@ (more
	// than the walk reads for a page of two), interleaved with mail of
	// another login that must not show.
	for range 30 {
		send("app", "big@example.org")
	}
	for i := range 6 {
		send("app", fmt.Sprintf("one%d@example.org", i))
		send("other", fmt.Sprintf("theirs%d@example.org", i))
	}
	want := func(limit int) []key {
		var out []key
		for i := len(order) - 1; i >= 0 && len(out) < limit; i-- {
			if order[i].login == "app" {
				out = append(out, order[i])
			}
		}
		return out
	}
	check := func(what string, limit int) {
		t.Helper()
		got, err := db.Inboxes(ctx, store.Scope{Logins: []string{"app"}}, "", limit)
		if err != nil {
			t.Fatal(err)
		}
		w := want(limit)
		if len(got) != len(w) {
			t.Fatalf("%s: %d inboxes %+v, want %d %v", what, len(got), got, len(w), w)
		}
		for i, g := range got {
			if g.Inbox != w[i].inbox || g.Messages != count[w[i]] || g.Unread != count[w[i]] {
				t.Errorf("%s: inbox %d is %s with %d (%d unread), want %s with %d", what, i, g.Inbox, g.Messages, g.Unread, w[i].inbox, count[w[i]])
			}
		}
	}
	check("walk, a page of 3 of 7", 3)
	check("walk, past the last inbox", 100)
	for range 45 {
		send("app", "hot@example.org")
	}
	check("group, a page of 2 behind 45 rows of one inbox", 2)
	check("walk again, a page of 8", 8)
}
