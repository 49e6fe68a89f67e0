package pipeline

import (
	"bytes"
	"slices"
	"testing"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/features/directives"
)

// TestBodySelection checks which parts are rewritten and which one gets the
// open pixel, for the structures where mail clients pick a body.
func TestBodySelection(t *testing.T) {
	const a = `<a href="https://example.com/">x</a>`
	tests := []struct {
		name    string
		raw     string
		changed []string // part paths rewritten
		pixel   string   // part path with the pixel; "-" for none
	}{
		{"single html", "Content-Type: text/html\n\n" + a, []string{""}, ""},
		{"single text", "Content-Type: text/plain\n\nhttps://example.com/", []string{""}, "-"},
		{"alternative text html", "Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\nhttps://example.com/\n--b\nContent-Type: text/html\n\n" + a + "\n--b--\n", []string{"1", "2"}, "2"},
		{"alternative html text (wrong order)", "Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/html\n\n" + a + "\n--b\nContent-Type: text/plain\n\nhttps://example.com/\n--b--\n", []string{"1", "2"}, "1"},
		{"related start names no part", "Content-Type: multipart/related; boundary=b; start=\"<none@x>\"\n\n--b\nContent-Type: text/html\n\n" + a + "\n--b\nContent-Type: text/html\n\n" + a + "\n--b--\n", []string{"1"}, "1"},
		{"mixed: attachment first", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\nContent-Disposition: attachment\n\n" + a + "\n--b\nContent-Type: text/html\n\n" + a + "\n--b--\n", []string{"2"}, "2"},
		{"mixed: text body then inline html", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: text/html\n\n" + a + "\n--b--\n", []string{"2"}, "-"},
		{"html with a file name is a file", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n\n" + a + "\n--b\nContent-Type: text/html; name=page.html\n\n" + a + "\n--b--\n", []string{"1"}, "1"},
		{"multipart/report", "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: text/plain\n\nsee https://example.com/\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n--b--\n", []string{"1"}, "-"},
	}
	p := newKit(t).pipeline(directives.Config{})
	set := features.Set{TrackClicks: true, TrackTextLinks: true, TrackOpens: true}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(crlf("From: a@example.com\nMIME-Version: 1.0\n" + tt.raw))
			out, err := p.Apply(Input{Raw: raw, Base: set, MessageID: "m1"})
			if err != nil {
				t.Fatal(err)
			}
			in, err := leaves(raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := leaves(out.Raw)
			if err != nil {
				t.Fatalf("output does not parse: %v", err)
			}
			var changed []string
			pixel := "-"
			for i := range in {
				if !bytes.Equal(in[i].raw, got[i].raw) {
					changed = append(changed, got[i].path)
				}
				if bytes.Contains(got[i].decoded, []byte(testPublicURL+"/o/")) {
					pixel = got[i].path
				}
			}
			if !slices.Equal(changed, tt.changed) {
				t.Errorf("changed parts %q, want %q", changed, tt.changed)
			}
			if pixel != tt.pixel {
				t.Errorf("pixel in part %q, want %q", pixel, tt.pixel)
			}
		})
	}
}
