package dkim

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// msgauthBodyHash returns the bh= tag go-msgauth's own signer computes for
// body (relaxed), the reference for relaxedBody.
func msgauthBodyHash(t *testing.T, k *Key, body []byte) string {
	t.Helper()
	var out bytes.Buffer
	msg := append([]byte("From: a@example.com\r\n\r\n"), body...)
	err := msgdkim.Sign(&out, bytes.NewReader(msg), &msgdkim.SignOptions{Domain: k.Domain, Selector: k.Selector, Signer: k.Signer,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed, BodyCanonicalization: msgdkim.CanonicalizationRelaxed})
	if err != nil {
		t.Fatalf("go-msgauth Sign: %v", err)
	}
	m := regexp.MustCompile(`bh=([^;]*);`).FindSubmatch(out.Bytes())
	if m == nil {
		t.Fatalf("no bh= in %q", out.Bytes())
	}
	return strings.Join(strings.Fields(string(m[1])), "")
}

// FuzzRelaxedBody checks that relaxedBody hashes any CRLF body as go-msgauth
// does, whatever the sizes of the writes it comes in.
func FuzzRelaxedBody(f *testing.F) {
	for _, s := range []string{"", "\r\n", "a", " a \r\n", "a  b\t\tc \r\n\r\n\r\n", "\r\n\r\nx\r\n \r\n\t\r\n", " \r\n",
		"line one \r\n  indented\tline\r\n\r\n.\r\n", "a \r\nb\r\n\r\n"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Add(readMessage(f, "multipart.eml"), uint8(17))
	k := testKey(f, "ed25519.pkcs8.pem", "example.com", "s1")
	f.Fuzz(func(t *testing.T, body []byte, chunk uint8) {
		body = normalize(body)
		c := newRelaxedBody(sha256.New())
		for p := body; len(p) > 0; {
			n := min(len(p), int(chunk)+1)
			c.Write(p[:n])
			p = p[n:]
		}
		got := base64.StdEncoding.EncodeToString(c.sum(nil))
		if want := msgauthBodyHash(t, k, body); got != want {
			t.Fatalf("body %q (writes of %d): bh %s, go-msgauth %s", body, int(chunk)+1, got, want)
		}
	})
}

func TestAppendRelaxedHeader(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		{"Subject", " Hello  world ", "subject:Hello world\r\n"},
		{" SUBJECT ", "\tfolded\r\n\tvalue\r\n ", "subject:folded value\r\n"},
		{"X-Empty", "", "x-empty:\r\n"},
		{"From", " \"A  B\" <a@example.com>", "from:\"A B\" <a@example.com>\r\n"},
	} {
		if got := string(appendRelaxedHeader(nil, tc.key, tc.value)); got != tc.want {
			t.Errorf("appendRelaxedHeader(%q, %q) = %q, want %q", tc.key, tc.value, got, tc.want)
		}
	}
}

// TestSignatureFieldFolded checks that the fields Sign writes keep their
// lines within the fold width, even with a long h= list and an RSA
// signature.
func TestSignatureFieldFolded(t *testing.T) {
	f := newFixture(t)
	rsaKey := testKey(t, "rsa2048.pkcs8.pem", "example.com", "rsa2026")
	edKey := testKey(t, "ed25519.pkcs8.pem", "example.com", "ed2026")
	f.publish(rsaKey, edKey)
	out, _ := f.sign(NewSigner([]*Key{rsaKey, edKey}, Options{}), readMessage(t, "multipart.eml"), "")
	sigs, _ := stripSignatures(t, out, 2)
	for _, sig := range sigs {
		for _, line := range strings.Split(strings.TrimSuffix(sig, "\r\n"), "\r\n") {
			if len(line) > foldWidth {
				t.Errorf("line of %d characters: %q", len(line), line)
			}
		}
	}
	for i, v := range f.verify(bytes.NewReader(out)) {
		if v.Err != nil {
			t.Errorf("verification %d: %v", i, v.Err)
		}
	}
}
