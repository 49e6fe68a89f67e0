package summary_test

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/smtpgate/smtpgate/summary"
)

// messages returns the testdata messages by base name.
func messages(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("found %d testdata messages, want at least 8", len(files))
	}
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".eml")] = raw
	}
	return out
}

// TestParseGolden compares the summary of every testdata/NAME.eml with
// testdata/NAME.json. UPDATE_GOLDEN=1 rewrites the golden files.
func TestParseGolden(t *testing.T) {
	update := os.Getenv("UPDATE_GOLDEN") == "1"
	for name, raw := range messages(t) {
		t.Run(name, func(t *testing.T) {
			s, err := summary.Parse(raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", name+".json")
			if update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("summary differs from %s:\n got: %s\nwant: %s", golden, got, want)
			}
			// The golden JSON must decode back to the same summary.
			var back summary.Summary
			if err := json.Unmarshal(want, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, s) {
				t.Errorf("golden JSON does not round-trip:\n got %+v\nwant %+v", back, s)
			}
		})
	}
}

// TestParseFacts checks facts about the testdata that were worked out
// independently of the parser (the MD5s were computed when the files were
// written).
func TestParseFacts(t *testing.T) {
	msgs := messages(t)
	parse := func(name string) summary.Summary {
		t.Helper()
		s, err := summary.Parse(msgs[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return s
	}
	tests := []struct {
		name  string
		check func(s summary.Summary) error
	}{
		{"plain", func(s summary.Summary) error {
			return all(
				eq("to count", len(s.To), 2),
				eq("cc name with comma", s.Cc[0].Name, "Support, Team"),
				eq("reply-to", s.ReplyTo[0].Address, "help@shop.example"),
				eq("date in UTC", s.Date, time.Date(2026, 3, 3, 9, 15, 0, 0, time.UTC)),
				eq("message-id without brackets", s.MessageID, "20260303091500.4f2a@shop.example"),
				eq("links", s.Links, []string{
					"https://track.shop.example/p/1042?ref=mail&lang=en",
					"https://shop.example/help",
					"https://shop.example/prefs?u=alice%40example.org",
				}),
				eq("text only", [2]bool{s.HasText, s.HasHTML}, [2]bool{true, false}),
			)
		}},
		{"qp-html-latin1", func(s summary.Summary) error {
			return all(
				eq("subject decoded", s.Subject, "Le menu de la semaine au café"),
				eq("from name decoded", s.From[0].Name, "Café du Coin"),
				eq("entity-decoded, trimmed, charset-decoded links", s.Links, []string{
					"https://cafe.example/menu?day=mon&lang=fr",
					"https://cafe.example/réserver",
					"HTTP://CAFE.EXAMPLE/UPPER",
				}),
				eq("html only", [2]bool{s.HasText, s.HasHTML}, [2]bool{false, true}),
			)
		}},
		{"base64-html", func(s summary.Summary) error {
			return eq("links skip fragments, javascript and img src", s.Links, []string{
				"https://app.example/confirm?token=abc123&u=42",
				"https://app.example/docs#start",
			})
		}},
		{"alternative-attachment", func(s summary.Summary) error {
			return all(
				eq("attachments", s.Attachments, []summary.Attachment{{
					Filename: "INV-2026-0311.pdf", ContentType: "application/pdf",
					Size: 2107, MD5: "b093318e0ea4ea50958b5b48b0f08145",
				}}),
				eq("bcc", s.Bcc[0].Address, "archive@saas.example"),
				eq("both bodies", [2]bool{s.HasText, s.HasHTML}, [2]bool{true, true}),
				eq("links deduplicated across bodies", len(s.Links), 2),
			)
		}},
		{"related-inline", func(s summary.Summary) error {
			const png = "b1b30de844972808bfdcddc7f4946998"
			return all(
				eq("attachments", len(s.Attachments), 3),
				eq("inline logo", s.Attachments[0], summary.Attachment{
					Filename: "logo.png", ContentType: "image/png", ContentID: "logo@brand.example",
					Size: 70, MD5: png, Inline: true,
				}),
				eq("unnamed inline image", s.Attachments[1].ContentID, "spacer@brand.example"),
				eq("RFC 2231 file name", s.Attachments[2].Filename, "résumé.csv"),
				eq("csv md5", s.Attachments[2].MD5, "38a311fed52896d4f69e768ec9825bf0"),
			)
		}},
		{"broken-boundary", func(s summary.Summary) error {
			return all(
				eq("body still searched for links", s.Links, []string{"https://legacy.example/still-found"}),
				eq("bad date is zero", s.Date.IsZero(), true),
			)
		}},
		{"truncated-multipart", func(s summary.Summary) error {
			return all(
				eq("first part link", s.Links, []string{"https://example.com/first"}),
				eq("cut attachment listed", s.Attachments[0].Filename, "data.bin"),
			)
		}},
		{"utf8-headers", func(s summary.Summary) error {
			return all(
				eq("8bit subject", s.Subject, "Grüße aus München — 東京"),
				eq("8bit from", s.From[0], summary.Address{Address: "josé@münchen.example", Name: "José Müller"}),
				eq("8bit to", s.To[0].Name, "山田 太郎"),
			)
		}},
		{"encoded-words", func(s summary.Summary) error {
			return all(
				eq("folded multi-word subject", s.Subject, "Re: [Ticket #42] ✅ Résolu — merci !"),
				eq("emoji name", s.From[0].Name, "😂 Smiley Co"),
				eq("windows-1252 name", s.To[1].Name, "François “Frank”"),
				eq("trailing dot not in link", s.Links, []string{"https://smiley.example/t/42"}),
			)
		}},
		{"malformed-addresses", func(s summary.Summary) error {
			return all(
				eq("salvaged from", s.From, []summary.Address{{Address: "sender@broken.example", Name: "Broken"}}),
				eq("to keeps what parses", addrs(s.To), []string{"good@example.org", "bad@example.org", "ok@example.org"}),
				eq("latin-1 8bit header", s.Subject, "Café 8-bit latin-1 subject"),
				eq("message-id without brackets", s.MessageID, "no-brackets-id@example.org"),
			)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := msgs[tt.name]; !ok {
				t.Fatalf("no testdata/%s.eml", tt.name)
			}
			if err := tt.check(parse(tt.name)); err != nil {
				t.Error(err)
			}
		})
	}
}

func addrs(l []summary.Address) []string {
	out := make([]string, len(l))
	for i, a := range l {
		out[i] = a.Address
	}
	return out
}

func eq(what string, got, want any) error {
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("%s: got %#v, want %#v", what, got, want)
	}
	return nil
}

func all(errs ...error) error { return errors.Join(errs...) }

func TestParseRejectsHeaderless(t *testing.T) {
	for _, raw := range []string{"", "\r\n\r\nbody", "just some text\r\n", " leading space: x\r\n\r\n"} {
		if _, err := summary.Parse([]byte(raw)); !errors.Is(err, summary.ErrNoHeader) {
			t.Errorf("Parse(%q) error = %v, want ErrNoHeader", raw, err)
		}
		if _, err := summary.Extract([]byte(raw)); !errors.Is(err, summary.ErrNoHeader) {
			t.Errorf("Extract(%q) error = %v, want ErrNoHeader", raw, err)
		}
	}
}

func TestParseLenientHeaderEnd(t *testing.T) {
	// A line that is not a header field ends the header (as Postfix does);
	// the rest is the body.
	raw := "Subject: hi\r\nFrom: a@example.com\r\nthis line has no colon https://x.example/a\r\n"
	s, err := summary.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if s.Subject != "hi" || len(s.From) != 1 || !reflect.DeepEqual(s.Links, []string{"https://x.example/a"}) {
		t.Errorf("got %+v", s)
	}
}

func TestParseLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("Subject: many\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := 0; i < 3*summary.MaxParts; i++ {
		fmt.Fprintf(&b, "--b\r\nContent-Type: application/octet-stream\r\n\r\n%d\r\n", i)
	}
	b.WriteString("--b--\r\n")
	s, err := summary.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	// The root multipart counts as one part.
	if got := len(s.Attachments); got != summary.MaxParts-1 {
		t.Errorf("attachments = %d, want %d", got, summary.MaxParts-1)
	}

	b.Reset()
	b.WriteString("Subject: links\r\n\r\n")
	for i := 0; i < 2*summary.MaxLinks; i++ {
		fmt.Fprintf(&b, "https://x.example/%d\r\n", i)
	}
	s, err = summary.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Links) != summary.MaxLinks || s.Links[summary.MaxLinks-1] != fmt.Sprintf("https://x.example/%d", summary.MaxLinks-1) {
		t.Errorf("links = %d (last %q), want %d", len(s.Links), s.Links[len(s.Links)-1], summary.MaxLinks)
	}

	// Deep nesting must neither overflow the stack nor fail.
	b.Reset()
	b.WriteString("Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
	const depth = 5000
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i, i+1)
	}
	b.WriteString("--b5000\r\nContent-Type: text/plain\r\n\r\nhttps://deep.example/\r\n")
	if _, err := summary.Parse([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
}

func TestExtract(t *testing.T) {
	msgs := messages(t)

	c, err := summary.Extract(msgs["alternative-attachment"])
	if err != nil {
		t.Fatal(err)
	}
	if want := "Your invoice INV-2026-0311 is attached. Total: 49,00 €.\r\nPay online: https://pay.saas.example/i/INV-2026-0311"; c.Text != want {
		t.Errorf("Text = %q, want %q", c.Text, want)
	}
	if !strings.HasPrefix(c.HTML, "<p>Your invoice <b>INV-2026-0311</b>") || !strings.Contains(c.HTML, "49,00 €") {
		t.Errorf("HTML = %q", c.HTML)
	}
	if len(c.Attachments) != 1 {
		t.Fatalf("attachments = %d, want 1", len(c.Attachments))
	}
	pdf := c.Attachments[0]
	if !bytes.HasPrefix(pdf.Data, []byte("%PDF-1.4\n")) || !bytes.HasSuffix(pdf.Data, []byte("%%EOF\n")) || len(pdf.Data) != 2107 {
		t.Errorf("pdf data: %d bytes, starts %q", len(pdf.Data), pdf.Data[:min(10, len(pdf.Data))])
	}
	wantKeys := []string{"From", "To", "Bcc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}
	var keys []string
	for _, h := range c.Headers {
		keys = append(keys, h.Key)
	}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("header keys = %q, want %q", keys, wantKeys)
	}

	c, err = summary.Extract(msgs["qp-html-latin1"])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.HTML, "<p>Bonjour Renée, notre café ouvre à 8h.</p>") || c.Text != "" {
		t.Errorf("HTML = %q, Text = %q", c.HTML, c.Text)
	}
	if c.Headers[0] != (summary.Header{Key: "From", Value: "Café du Coin <news@cafe.example>"}) {
		t.Errorf("first header = %+v", c.Headers[0])
	}

	c, err = summary.Extract(msgs["encoded-words"])
	if err != nil {
		t.Fatal(err)
	}
	if want := "“Smart quotes” and € sign. See https://smiley.example/t/42.\r\n"; c.Text != want {
		t.Errorf("windows-1252 Text = %q, want %q", c.Text, want)
	}
}

// TestExtractMatchesParse checks that Extract lists the same attachments as
// Parse and that each one's bytes match its size and MD5.
func TestExtractMatchesParse(t *testing.T) {
	for name, raw := range messages(t) {
		s, err := summary.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		c, err := summary.Extract(raw)
		if err != nil {
			t.Fatal(err)
		}
		checkConsistent(t, name, s, c)
	}
}

func checkConsistent(t *testing.T, name string, s summary.Summary, c *summary.Content) {
	t.Helper()
	if len(c.Attachments) != len(s.Attachments) {
		t.Fatalf("%s: Extract has %d attachments, Parse %d", name, len(c.Attachments), len(s.Attachments))
	}
	for i, p := range c.Attachments {
		if p.Attachment != s.Attachments[i] {
			t.Errorf("%s: attachment %d: Extract %+v, Parse %+v", name, i, p.Attachment, s.Attachments[i])
		}
		sum := md5.Sum(p.Data)
		if hex.EncodeToString(sum[:]) != p.MD5 || int64(len(p.Data)) != p.Size {
			t.Errorf("%s: attachment %d: data does not match size/md5", name, i)
		}
	}
	if (c.HTML != "") && !s.HasHTML {
		t.Errorf("%s: Extract found HTML but HasHTML is false", name)
	}
	for _, h := range c.Headers {
		if !utf8.ValidString(h.Key) || !utf8.ValidString(h.Value) {
			t.Errorf("%s: header %q is not valid UTF-8", name, h.Key)
		}
	}
	if !utf8.ValidString(c.Text) || !utf8.ValidString(c.HTML) {
		t.Errorf("%s: body is not valid UTF-8", name)
	}
}
