package pipeline

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-message/textproto"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/features/directives"
)

// FuzzApply: Apply never panics or fails a message; a message whose header
// an independent parser reads still has a readable header afterwards; with
// every feature off and no directive header the output is the input; the
// header splitter loses no byte; no new line exceeds 998 bytes. Seeds: the
// golden corpus and testdata/fuzz/FuzzApply.
func FuzzApply(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join(corpusDir, "*.eml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range paths {
		if filepath.Ext(p) == ".eml" && !bytes.HasSuffix([]byte(p), []byte(".golden.eml")) {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	kit := newKit(f)
	cfg := directives.Config{Vendors: []string{directives.Mailgun, directives.Postmark, directives.EmailEngine, directives.SendGrid}}
	p := kit.pipeline(cfg)
	on := features.Set{InlineCSS: true, TrackClicks: true, TrackTextLinks: true, TrackOpens: true, TrackBounces: true, PreventScam: true}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, n := parseHeader(raw)
		var joined bytes.Buffer
		h.appendTo(&joined)
		if !bytes.Equal(joined.Bytes(), raw[:n]) {
			t.Fatalf("parseHeader lost bytes: %q != %q", joined.Bytes(), raw[:n])
		}

		out, err := p.Apply(Input{Raw: raw, Base: on, Overridable: []string{"*"}, MessageID: "m1", MailFrom: "a@example.com", Recipients: []string{"r@example.net"}})
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if _, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw))); err == nil {
			if _, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(out.Raw))); err != nil {
				t.Fatalf("input header reads, output header does not: %v", err)
			}
		}
		if out.Changed == bytes.Equal(out.Raw, raw) {
			t.Fatalf("Changed = %v, but Raw equal = %v", out.Changed, bytes.Equal(out.Raw, raw))
		}
		old := make(map[string]bool)
		for _, l := range lines(raw) {
			old[string(l)] = true
		}
		for _, l := range lines(out.Raw) {
			if len(l) > maxLine && !old[string(l)] {
				t.Fatalf("new line of %d bytes", len(l))
			}
		}

		off, err := p.Apply(Input{Raw: raw, MessageID: "m1"})
		if err != nil {
			t.Fatalf("Apply (off): %v", err)
		}
		if len(off.Directives.Records) == 0 && !bytes.Equal(off.Raw, raw) {
			t.Fatalf("every feature off, no directive: output differs from input")
		}
	})
}
