package directives

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"

	"github.com/smtpgate/smtpgate/features"
)

func header(t testing.TB, lines ...string) textproto.Header {
	t.Helper()
	return readHeader(t, []byte(strings.Join(lines, "\r\n")+"\r\n\r\n"))
}

func TestJSONSizeCap(t *testing.T) {
	pad := strings.Repeat("x", MaxJSON)
	for _, tc := range []struct {
		name, value string
		want        Outcome
	}{
		{"at the cap", `{"category":"a","to":["` + pad[:MaxJSON-len(`{"category":"a","to":[""]}`)] + `"]}`, Applied},
		{"over the cap", `{"category":"a","unique_args":{"k":"` + pad + `"}}`, Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := header(t, "X-SMTPAPI: "+tc.value, "Subject: s")
			res, err := Apply(&h, Config{Vendors: []string{SendGrid}, RejectMalformed: true}, features.Set{}, nil)
			if got := res.Records[0].Outcome; got != tc.want {
				t.Fatalf("outcome %s, want %s (%s)", got, tc.want, res.Records[0].Reason)
			}
			if (err != nil) != (tc.want == Malformed) {
				t.Fatalf("error %v for outcome %s", err, tc.want)
			}
			if len(res.Records[0].Value) > maxRecordValue+len("…") {
				t.Errorf("record value is %d bytes, not clipped", len(res.Records[0].Value))
			}
			if h.Has("X-Smtpapi") {
				t.Error("X-SMTPAPI not stripped")
			}
		})
	}
}

func TestInvalidConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Vendors: []string{"mailchimp"}},
		{Prefixes: []string{"X-Ok-", " "}},
		{Prefixes: []string{"X Bad-"}},
	} {
		h := header(t, "X-Smtpgate-TrackOpens: false", "X-Ok-Tags: a")
		base := features.Set{TrackOpens: true}
		res, err := Apply(&h, cfg, base, []string{"*"})
		var me *MalformedError
		if err == nil || errors.As(err, &me) {
			t.Errorf("%+v: error %v, want a configuration error", cfg, err)
		}
		if res.Features != base || h.Len() != 2 {
			t.Errorf("%+v: header or features changed on a configuration error", cfg)
		}
	}
}

func TestMalformedErrorIsSMTPSafe(t *testing.T) {
	h := header(t, "X-Smtpgate-Send-At: =?utf-8?q?demain_=C3=A0_9h?= \x7f\x01"+strings.Repeat("é", 200), "Subject: s")
	_, err := Apply(&h, Config{RejectMalformed: true}, features.Set{}, nil)
	var me *MalformedError
	if !errors.As(err, &me) {
		t.Fatalf("error %v, want *MalformedError", err)
	}
	if me.Header != "X-Smtpgate-Send-At" {
		t.Errorf("header %q", me.Header)
	}
	msg := err.Error()
	for i := 0; i < len(msg); i++ {
		if msg[i] < ' ' || msg[i] > '~' {
			t.Fatalf("error has byte %#x, not fit for an SMTP reply: %q", msg[i], msg)
		}
	}
	if len(msg) > 200 {
		t.Errorf("error is %d bytes long: %q", len(msg), msg)
	}
}

// FuzzApply feeds arbitrary header blocks and configurations: Apply must not
// panic, must strip every header under a configured prefix or of an enabled
// vendor, and must leave the rest byte-exact.
func FuzzApply(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	for i, file := range files {
		tc := readCase(f, file)
		f.Add(tc.header, byte(i))
	}
	f.Fuzz(func(t *testing.T, raw []byte, flags byte) {
		h, _ := textproto.ReadHeader(bufio.NewReader(strings.NewReader(string(raw))))
		cfg := Config{RejectMalformed: flags&1 != 0}
		for i, v := range []string{Mailgun, Postmark, EmailEngine, SendGrid} {
			if flags&(2<<i) != 0 {
				cfg.Vendors = append(cfg.Vendors, v)
			}
		}
		if flags&32 != 0 {
			cfg.Prefixes = []string{"X-A-", "x-smtpgate-trackopens"}
		}
		overridable := []string{"*"}
		if flags&64 != 0 {
			overridable = []string{features.TrackOpens}
		}
		before := rawFields(t, &h)
		res, err := Apply(&h, cfg, features.Set{TrackClicks: true}, overridable)
		var me *MalformedError
		if err != nil && (!cfg.RejectMalformed || !errors.As(err, &me)) {
			t.Fatalf("unexpected error %v", err)
		}
		var want []string
		for _, f := range before {
			if !isDirective(f, cfg) {
				want = append(want, f)
			}
		}
		after := rawFields(t, &h)
		if strings.Join(after, "") != strings.Join(want, "") {
			t.Fatalf("remaining header:\n got %q\nwant %q", after, want)
		}
		if len(res.Records) != len(before)-len(after) {
			t.Fatalf("%d records for %d stripped fields", len(res.Records), len(before)-len(after))
		}
		if len(res.Tags) > MaxTags || len(res.Metadata) > MaxMetadataKeys {
			t.Fatalf("caps exceeded")
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatalf("result does not marshal: %v", err)
		}
	})
}

func BenchmarkApply(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "bench.eml"))
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Vendors: []string{Mailgun, Postmark, SendGrid}}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(string(raw))))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Apply(&h, cfg, features.Set{TrackOpens: true}, []string{"*"}); err != nil {
			b.Fatal(err)
		}
	}
}
