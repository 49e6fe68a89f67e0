package summary_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/smtpgate/smtpgate/summary"
)

// multipart5KB returns a typical ~5 KB transactional message: a
// multipart/mixed with a quoted-printable text/html alternative and a small
// base64 attachment.
func multipart5KB() []byte {
	var html, text strings.Builder
	for i := 0; i < 15; i++ {
		fmt.Fprintf(&html, "<tr><td style=3D\"padding:4px\">Item %d =E2=80=94 caf=C3=A9</td><td><a href=3D\"https://shop.example/p/%d?utm_source=3Dmail&amp;utm_medium=3Demail\">View</a></td></tr>\r\n", i, i)
		fmt.Fprintf(&text, "Item %d - cafe: https://shop.example/p/%d?utm_source=mail&utm_medium=email\r\n", i, i)
	}
	att := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("attachment bytes ", 30)))
	return []byte("From: Shop <noreply@shop.example>\r\n" +
		"To: Customer <customer@example.org>\r\n" +
		"Subject: =?utf-8?q?Your_order_=E2=80=94_confirmation?=\r\n" +
		"Date: Tue, 3 Mar 2026 10:15:00 +0100\r\n" +
		"Message-ID: <order-1042@shop.example>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n" +
		"--mix\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n" +
		"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text.String() +
		"--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"<html><body><table>\r\n" + html.String() + "</table></body></html>\r\n" +
		"--alt--\r\n" +
		"--mix\r\nContent-Type: text/plain; name=\"receipt.txt\"\r\nContent-Disposition: attachment; filename=\"receipt.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		att + "\r\n--mix--\r\n")
}

// BenchmarkParse measures Parse on a 5 KB multipart message; it runs once
// for every accepted message.
func BenchmarkParse(b *testing.B) {
	raw := multipart5KB()
	s, err := summary.Parse(raw)
	if err != nil || len(s.Links) != 15 || len(s.Attachments) != 1 {
		b.Fatalf("unexpected summary (%v): %d links, %d attachments", err, len(s.Links), len(s.Attachments))
	}
	b.SetBytes(int64(len(raw)))
	cpuLoop(b, func() {
		if _, err := summary.Parse(raw); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkExtract measures Extract on the same message.
func BenchmarkExtract(b *testing.B) {
	raw := multipart5KB()
	b.SetBytes(int64(len(raw)))
	cpuLoop(b, func() {
		if _, err := summary.Extract(raw); err != nil {
			b.Fatal(err)
		}
	})
}

// cpuLoop runs f b.N times and also reports process CPU time per operation
// (cpu-ns/op), which stays meaningful when other processes share the cores.
func cpuLoop(b *testing.B, f func()) {
	b.ReportAllocs()
	start, n := processCPU(), 0
	for b.Loop() {
		f()
		n++
	}
	if end := processCPU(); start >= 0 && end >= 0 && n > 0 {
		b.ReportMetric(float64(end-start)/float64(n), "cpu-ns/op")
	}
}

// BenchmarkParseTextHTML measures ParseText, which a captured message gets,
// on the capture benchmark's HTML newsletter (one HTML part: its links and
// its readable text come from one pass).
func BenchmarkParseTextHTML(b *testing.B) {
	raw, err := os.ReadFile("../bench/newsletter-css.eml")
	if err != nil {
		b.Fatal(err)
	}
	raw = append([]byte("From: <a@example.com>\r\nTo: <b@example.com>\r\nSubject: bench\r\n"), raw...)
	s, text, err := summary.ParseText(raw)
	if err != nil || len(s.Links) == 0 || len(text) < 100 {
		b.Fatalf("unexpected result (%v): %d links, %d bytes of text", err, len(s.Links), len(text))
	}
	b.SetBytes(int64(len(raw)))
	cpuLoop(b, func() {
		if _, _, err := summary.ParseText(raw); err != nil {
			b.Fatal(err)
		}
	})
}
