package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/smtpgate/smtpgate/internal/testutil"
	"github.com/smtpgate/smtpgate/store"
)

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"", ""},
		{"a\x00b", "a\uFFFDb"},
		{"caf\xe9", "caf\uFFFD"},
		{"\x00\xff\xfe", "\uFFFD\uFFFD"}, // ToValidUTF8 merges a run of invalid bytes
		{"ünïcode", "ünïcode"},
	}
	for _, tt := range tests {
		if got := clean(tt.in); got != tt.want {
			t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCleanJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":"b"}`, `{"a":"b"}`},
		{`"\u0000"`, `"\ufffd"`},
		{`"x\u0000y\u0000"`, `"x\ufffdy\ufffd"`},
		{`"\\u0000"`, `"\\u0000"`},       // a backslash, then the text u0000
		{`"\\\u0000"`, `"\\\ufffd"`},     // a backslash, then NUL
		{`"\u00000"`, `"\ufffd0"`},       // NUL then the digit 0
		{`"\"\u0000\""`, `"\"\ufffd\""`}, // quotes around NUL
		{`["\u0001","\u0000"]`, `["\u0001","\ufffd"]`},
	}
	for _, tt := range tests {
		if got := string(cleanJSON([]byte(tt.in))); got != tt.want {
			t.Errorf("cleanJSON(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzCleanJSON: for any string, the cleaned encoding is valid JSON that
// decodes to what the original encoding decodes to, with NUL replaced by
// U+FFFD.
func FuzzCleanJSON(f *testing.F) {
	for _, s := range []string{"", "a\x00b", `\u0000`, "\\\x00", "caf\xe9\x00", `"\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var plain string
		if err := json.Unmarshal(enc, &plain); err != nil {
			t.Fatal(err)
		}
		out := cleanJSON(enc)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("cleanJSON(%s) = %s: not JSON: %v", enc, out, err)
		}
		if want := strings.ReplaceAll(plain, "\x00", "\uFFFD"); got != want {
			t.Fatalf("cleanJSON(%s) decodes to %q, want %q", enc, got, want)
		}
		if bytes.Contains(out, []byte(`\u0000`)) && !bytes.Contains(out, []byte(`\\u0000`)) {
			t.Fatalf("cleanJSON(%s) = %s still escapes NUL", enc, out)
		}
		if strings.Contains(got, "\x00") || !utf8.ValidString(got) {
			t.Fatalf("decoded %q still holds NUL or invalid UTF-8", got)
		}
	})
}

// TestTextPostgresCannotHold accepts a message whose text fields hold NUL
// bytes and invalid UTF-8, which PostgreSQL text and jsonb refuse. Accept
// succeeds; Raw and Original come back byte for byte; the text fields come
// back with U+FFFD; the inbox is found by the address as submitted.
func TestTextPostgresCannotHold(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testutil.PostgresSchema(t))
	m := testMessage(t, "alpha", store.RouteCapture, "Bad\xe9\x00@Example.org", "ok@example.org")
	m.Raw = append(m.Raw, 0, 0xff, 0xfe, '\r', '\n')
	m.Original = []byte("orig\x00inal\xff")
	m.Summary.Subject = "sub\x00ject \xe9"
	m.Summary.From[0].Name = "N\x00ame"
	m.MailFrom = "bounce\x00@example.org"
	m.Helo = "helo\xff"
	m.Tags = []string{"t\x00ag"}
	m.Text = "text \x00 \xc3"
	m.Metadata = map[string]string{"k\x00": "v\xff"}
	m.Events[0].Detail = "det\x00ail"
	mustAccept(t, db, m)

	got, err := db.Get(ctx, m.ID, all)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Raw, m.Raw) || !bytes.Equal(got.Original, m.Original) {
		t.Error("Raw or Original not byte-exact")
	}
	for name, pair := range map[string][2]string{
		"Subject":  {got.Summary.Subject, "sub\uFFFDject \uFFFD"},
		"FromName": {got.Summary.From[0].Name, "N\uFFFDame"},
		"MailFrom": {got.MailFrom, "bounce\uFFFD@example.org"},
		"Helo":     {got.Helo, "helo\uFFFD"},
		"Tag":      {got.Tags[0], "t\uFFFDag"},
		"Metadata": {got.Metadata["k\uFFFD"], "v\uFFFD"},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s = %q, want %q", name, pair[0], pair[1])
		}
	}
	entries, err := db.Inbox(ctx, store.InboxQuery{Inbox: "Bad\xe9\x00@Example.org", Scope: all})
	if err != nil || len(entries) != 1 || entries[0].Message.ID != m.ID {
		t.Fatalf("Inbox by the submitted address: %d entries, %v", len(entries), err)
	}
	if _, err := db.InboxMessage(ctx, "bad\xe9\x00@example.org", m.ID, all); err != nil {
		t.Errorf("InboxMessage by the submitted address: %v", err)
	}
	evs, err := db.Events(ctx, store.EventQuery{MessageID: m.ID, Scope: all})
	if err != nil || len(evs) != 2 || evs[0].Detail != "det\uFFFDail" {
		t.Errorf("events = %+v, %v", evs, err)
	}
	if got.Text != "" {
		t.Errorf("Get returned Text %q; Text is an input to search only", got.Text)
	}
	if found, err := db.Search(ctx, store.SearchQuery{Scope: all, Text: "text \x00 \xc3"}); err != nil || len(found) != 1 {
		t.Errorf("Search by a text with NUL and a broken character: %d, %v", len(found), err)
	}
	found, err := db.Search(ctx, store.SearchQuery{Scope: all, Subject: "sub\x00ject"})
	if err != nil || len(found) != 1 {
		t.Errorf("Search by a subject with NUL: %d, %v", len(found), err)
	}
}

// TestSearchPatternIsLiteral: % and _ in a search string match themselves.
func TestSearchPatternIsLiteral(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testutil.PostgresSchema(t))
	a := testMessage(t, "alpha", store.RouteCapture, "a@example.org")
	a.Summary.Subject = "50% off_now"
	b := testMessage(t, "alpha", store.RouteCapture, "a@example.org")
	b.Summary.Subject = "500 offXnow"
	mustAccept(t, db, a)
	mustAccept(t, db, b)
	for _, q := range []string{"50%", "off_now", `0% O`} {
		got, err := db.Search(ctx, store.SearchQuery{Scope: all, Subject: q})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != a.ID {
			t.Errorf("Search(Subject %q) = %d messages, want only %s", q, len(got), a.ID)
		}
	}
	if got, err := db.Search(ctx, store.SearchQuery{Scope: all, Subject: `\`}); err != nil || len(got) != 0 {
		t.Errorf(`Search(Subject \) = %d, %v`, len(got), err)
	}
}
