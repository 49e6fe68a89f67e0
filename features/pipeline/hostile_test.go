package pipeline

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/features/directives"
)

// allOn is every content feature.
var allOn = features.Set{InlineCSS: true, TrackClicks: true, TrackTextLinks: true, TrackOpens: true, TrackBounces: true}

func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// manyParts is a multipart/mixed of n HTML parts, each with a link.
func manyParts(n int) []byte {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nSubject: wide\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=w\r\n\r\n")
	for i := range n {
		fmt.Fprintf(&b, "--w\r\nContent-Type: text/html\r\n\r\n<p><a href=\"https://example.com/%d\">%d</a></p>\r\n", i, i)
	}
	b.WriteString("--w--\r\n")
	return []byte(b.String())
}

// manyUndecodable is a multipart/mixed of n HTML parts in an unknown charset.
func manyUndecodable(n int) []byte {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nContent-Type: multipart/mixed; boundary=w\r\n\r\n")
	for range n {
		b.WriteString("--w\r\nContent-Type: text/html; charset=x-unknown\r\n\r\n<a href=\"https://example.com/\">x</a>\r\n")
	}
	b.WriteString("--w--\r\n")
	return []byte(b.String())
}

// deepNesting is n multipart/mixed levels around one HTML part.
func deepNesting(n int) []byte {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=d0\r\n\r\n")
	for i := range n {
		fmt.Fprintf(&b, "--d%d\r\nContent-Type: multipart/mixed; boundary=d%d\r\n\r\n", i, i+1)
	}
	fmt.Fprintf(&b, "--d%d\r\nContent-Type: text/html\r\n\r\n<a href=\"https://example.com/deep\">deep</a>\r\n--d%d--\r\n", n, n)
	for i := n - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--d%d--\r\n", i)
	}
	return []byte(b.String())
}

func htmlMessage(headers, body string) []byte {
	return []byte(crlf("From: a@example.com\nSubject: x\nMIME-Version: 1.0\n"+headers) + "\r\n" + body)
}

// TestHostile feeds malformed and hostile structures: none may fail the
// message or panic, the parts that cannot be handled are left as they are
// with a note, and what can be handled still is.
func TestHostile(t *testing.T) {
	hugeLine := strings.Repeat(`<p>filler text <a href="https://example.com/x?y=1&amp;z=2">link</a></p>`, 30000) // 2 MB, one line
	tests := []struct {
		name      string
		raw       []byte
		wantNote  string // a note containing this; "" = no note
		wantLinks int    // Stats.LinksTracked; -1 = do not check
	}{
		{"10000 parts", manyParts(10000), "more than 1000 parts", 1000},
		{"nesting depth 100", deepNesting(100), "nested deeper than 24 levels", 0},
		{"nesting depth 20 is fine", deepNesting(20), "", 1},
		{"2 MB line", htmlMessage("Content-Type: text/html; charset=utf-8\n", hugeLine+"\r\n"), "", 30000},
		{"100 KB header line", htmlMessage("X-Long: "+strings.Repeat("a", 100<<10)+"\nContent-Type: text/html\n", `<a href="https://example.com/">x</a>`), "", 1},
		{"invalid base64", htmlMessage("Content-Type: text/html\nContent-Transfer-Encoding: base64\n", "PGE+#$%^&*\r\n"), "base64", 0},
		// Go's quoted-printable reader, like mail clients, keeps a bad escape as text.
		{"bad quoted-printable escape", htmlMessage("Content-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n", "<a href=3D\"https://example.com/\">=ZZ</a>\r\n"), "", 1},
		{"unknown charset", htmlMessage("Content-Type: text/html; charset=x-none\n", `<a href="https://example.com/">x</a>`), `unknown charset "x-none"`, 0},
		{"replacement charset", htmlMessage("Content-Type: text/html; charset=iso-2022-kr\n", `<a href="https://example.com/">x</a>`), "unknown charset", 0},
		{"missing boundary", htmlMessage("Content-Type: multipart/mixed\n", "--x\r\n\r\nhi\r\n--x--\r\n"), "without a boundary", 0},
		{"boundary too long", htmlMessage("Content-Type: multipart/mixed; boundary="+strings.Repeat("b", 300)+"\n", "--b\r\n"), "longer than 200", 0},
		{"unterminated multipart", htmlMessage("Content-Type: multipart/mixed; boundary=u\n", "--u\r\nContent-Type: text/html\r\n\r\n<a href=\"https://example.com/\">x</a>\r\n"), "no close delimiter", 0},
		{"no delimiter at all", htmlMessage("Content-Type: multipart/mixed; boundary=u\n", "just text\r\n"), "no delimiter line", 0},
		{"close before first part", htmlMessage("Content-Type: multipart/mixed; boundary=u\n", "--u--\r\n"), "closes before its first part", 0},
		{"empty parts", htmlMessage("Content-Type: multipart/mixed; boundary=u\n", "--u\r\n--u\r\n\r\n--u--\r\n"), "", 0},
		{"part without blank line", htmlMessage("Content-Type: multipart/mixed; boundary=u\n", "--u\r\nContent-Type: text/html\r\n--u--\r\n"), "", 0},
		{"inner boundary equals outer", htmlMessage("Content-Type: multipart/mixed; boundary=s\n", "--s\r\nContent-Type: multipart/alternative; boundary=s\r\n\r\n--s\r\nContent-Type: text/html\r\n\r\n<a href=\"https://example.com/\">x</a>\r\n--s--\r\n--s--\r\n"), "no delimiter line", 1},
		{"broken content-type", htmlMessage("Content-Type: text/html; charset=\"utf-8\n", `<a href="https://example.com/">x</a>`), "unreadable Content-Type", 0},
		{"two content-types", htmlMessage("Content-Type: text/html\nContent-Type: text/plain\n", `<a href="https://example.com/">x</a>`), "more than one Content-Type", 0},
		{"two transfer encodings", htmlMessage("Content-Type: text/html\nContent-Transfer-Encoding: base64\nContent-Transfer-Encoding: 7bit\n", `<a href="https://example.com/">x</a>`), "more than one Content-Transfer-Encoding", 0},
		{"garbage header line", htmlMessage("Content-Type: text/html\nthis is not a field\n", `<a href="https://example.com/">x</a>`), "not fields", 0},
		{"NUL bytes", htmlMessage("Content-Type: text/html\n", "<a href=\"https://example.com/\">x\x00y</a>\x00\r\n"), "", 1},
		{"binary garbage", []byte("\x00\xff\xfe\r\n\r\n\x01\x02"), "not fields", 0},
		{"empty", []byte{}, "", 0},
		{"only a blank line", []byte("\r\n"), "", 0},
		{"200 undecodable parts", manyUndecodable(200), "168 more notes dropped", 0},
		{"mbox From line", []byte("From sender@example.com Sun Mar  1 12:00:00 2026\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n<a href=\"https://example.com/\">x</a>\r\n"), "not fields", 0},
	}
	kit := newKit(t)
	p := kit.pipeline(directives.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Raw: tt.raw, Base: allOn, MessageID: "m1", MailFrom: "a@example.com", Recipients: []string{"r@example.net"}}
			out, err := p.Apply(in)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			notes := strings.Join(out.Notes, "\n")
			if tt.wantNote == "" && len(out.Notes) > 0 {
				t.Errorf("unexpected notes:\n%s", notes)
			}
			if tt.wantNote != "" && !strings.Contains(notes, tt.wantNote) {
				t.Errorf("notes %q, want one containing %q", out.Notes, tt.wantNote)
			}
			if tt.wantLinks >= 0 && out.Stats.LinksTracked != tt.wantLinks {
				t.Errorf("LinksTracked = %d, want %d", out.Stats.LinksTracked, tt.wantLinks)
			}
			if !out.Changed && !bytes.Equal(out.Raw, tt.raw) {
				t.Error("Changed is false but Raw differs")
			}
			checkLineLengths(t, tt.raw, out.Raw)

			// With every feature off the message comes back as it came.
			off, err := p.Apply(Input{Raw: tt.raw, MessageID: "m1"})
			if err != nil {
				t.Fatalf("Apply (off): %v", err)
			}
			if !bytes.Equal(off.Raw, tt.raw) || off.Changed {
				t.Error("with every feature off the output differs from the input")
			}
		})
	}
}

// TestWideMessageKeepsTail checks that past the part limit the parts are
// kept byte for byte, and the ones before it are still transformed.
func TestWideMessageKeepsTail(t *testing.T) {
	raw := manyParts(1500)
	out, err := newKit(t).pipeline(directives.Config{}).Apply(Input{Raw: raw, Base: features.Set{TrackClicks: true}, MessageID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	cut := bytes.Index(raw, []byte(`"https://example.com/1000"`))
	tail := raw[bytes.LastIndex(raw[:cut], []byte("--w\r\n")):]
	if !bytes.HasSuffix(out.Raw, tail) {
		t.Error("the parts past the limit are not byte-identical")
	}
	if bytes.Contains(out.Raw[:len(out.Raw)-len(tail)], []byte(`"https://example.com/999"`)) {
		t.Error("part 1000 was not tracked")
	}
	if _, err := leaves(out.Raw); err != nil {
		t.Errorf("output does not parse: %v", err)
	}
}
