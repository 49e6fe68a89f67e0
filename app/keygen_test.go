package app

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	msgauthdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/smtpgate/smtpgate/relay/dkim"
)

func TestDKIMKeygen(t *testing.T) {
	for _, alg := range []string{"ed25519", "rsa"} {
		t.Run(alg, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "k.key")
			var b bytes.Buffer
			o := KeygenOptions{Domain: "Example.com", Selector: "s1", Algorithm: alg, Out: out}
			if err := DKIMKeygen(&b, o); err != nil {
				t.Fatal(err)
			}
			text := b.String()
			m := regexp.MustCompile(`(?m)^s1\._domainkey\.Example\.com\. IN TXT (.+)$`).FindStringSubmatch(text)
			if m == nil {
				t.Fatalf("no TXT record line in:\n%s", text)
			}
			// Join the quoted strings back into the record value.
			var rec strings.Builder
			for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
				if len(q[1]) > 255 {
					t.Fatalf("TXT string of %d bytes", len(q[1]))
				}
				rec.WriteString(q[1])
			}
			// The written key signs a message that verifies against the printed record.
			key, err := dkim.LoadKey("example.com", "s1", alg, out)
			if err != nil {
				t.Fatal(err)
			}
			var signed bytes.Buffer
			msg := "From: a@example.com\r\nTo: b@example.net\r\nSubject: t\r\n\r\nbody\r\n"
			if _, err := dkim.NewSigner([]*dkim.Key{key}, dkim.Options{}).Sign(context.Background(), &signed, strings.NewReader(msg), ""); err != nil {
				t.Fatal(err)
			}
			v, err := msgauthdkim.VerifyWithOptions(&signed, &msgauthdkim.VerifyOptions{
				LookupTXT: func(string) ([]string, error) { return []string{rec.String()}, nil },
			})
			if err != nil || len(v) != 1 || v[0].Err != nil {
				t.Fatalf("verify: %v %+v", err, v)
			}
			if !strings.Contains(text, `dkim "example.com" {`) {
				t.Fatalf("no policy block:\n%s", text)
			}
			// A second run does not overwrite the key without --force.
			if err := DKIMKeygen(&b, o); err == nil || !strings.Contains(err.Error(), "--force") {
				t.Fatalf("second run: %v", err)
			}
			o.Force = true
			if err := DKIMKeygen(&b, o); err != nil {
				t.Fatal(err)
			}
		})
	}
}
