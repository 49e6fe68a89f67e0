package dkim

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/smtpgate/smtpgate/internal/dnstest"
)

// fixture is a DNS server publishing key records and a verifier that looks
// them up through the stdlib resolver, over real UDP on loopback.
type fixture struct {
	t   *testing.T
	dns *dnstest.Server
	ctx context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return &fixture{t: t, dns: dnstest.Start(t), ctx: ctx}
}

// publish puts the TXT record of each key in DNS.
func (f *fixture) publish(keys ...*Key) {
	f.t.Helper()
	for _, k := range keys {
		rec, err := DNSRecord(k.Signer.Public())
		if err != nil {
			f.t.Fatalf("DNSRecord: %v", err)
		}
		f.dns.AddTXT(RecordName(k.Selector, k.Domain), rec)
	}
}

// verify runs go-msgauth's verifier on msg with the fixture's DNS.
func (f *fixture) verify(msg io.Reader) []*msgdkim.Verification {
	f.t.Helper()
	r := f.dns.Resolver()
	vs, err := msgdkim.VerifyWithOptions(msg, &msgdkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return r.LookupTXT(f.ctx, name) },
		MaxVerifications: 5,
	})
	if err != nil {
		f.t.Fatalf("VerifyWithOptions: %v", err)
	}
	return vs
}

// sign signs msg and returns the output.
func (f *fixture) sign(s *Signer, msg []byte, override string) ([]byte, []string) {
	f.t.Helper()
	var out bytes.Buffer
	with, err := s.Sign(f.ctx, &out, bytes.NewReader(msg), override)
	if err != nil {
		f.t.Fatalf("Sign: %v", err)
	}
	return out.Bytes(), with
}

// testKey loads a key from testdata/keys.
func testKey(t testing.TB, file, domain, selector string) *Key {
	t.Helper()
	k, err := LoadKey(domain, selector, "", filepath.Join("testdata", "keys", file))
	if err != nil {
		t.Fatalf("LoadKey(%s): %v", file, err)
	}
	return k
}

func readMessage(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "messages", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// normalize is a reference CRLF normaliser: every CRLF, bare LF and bare CR
// becomes CRLF, and non-empty text ends with CRLF.
func normalize(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			out = append(out, '\r', '\n')
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, b[i])
		}
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\r', '\n')
	}
	return out
}

// stripSignatures removes the leading DKIM-Signature fields Sign added and
// returns them with the rest.
func stripSignatures(t testing.TB, out []byte, n int) (sigs []string, rest []byte) {
	t.Helper()
	rest = out
	for range n {
		if !bytes.HasPrefix(rest, []byte("DKIM-Signature:")) {
			t.Fatalf("output does not start with %d DKIM-Signature fields: %q", n, firstLine(rest))
		}
		end := 0
		for {
			i := bytes.Index(rest[end:], []byte("\r\n"))
			if i < 0 {
				t.Fatalf("unterminated signature field")
			}
			end += i + 2
			if end >= len(rest) || (rest[end] != ' ' && rest[end] != '\t') {
				break
			}
		}
		sigs = append(sigs, string(rest[:end]))
		rest = rest[end:]
	}
	return sigs, rest
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}
