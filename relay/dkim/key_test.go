package dkim

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadKey(t *testing.T) {
	tests := []struct {
		file      string
		algorithm string
		wantAlg   string // on success
		wantBits  int    // RSA only
		weak      bool   // a usable key with a *WeakKeyError
		err       string // substring of the error
	}{
		{file: "rsa2048.pkcs8.pem", algorithm: "rsa", wantAlg: "rsa", wantBits: 2048},
		{file: "rsa2048.pkcs8.pem", algorithm: "", wantAlg: "rsa", wantBits: 2048},
		{file: "rsa2048.pkcs1.pem", algorithm: "rsa", wantAlg: "rsa", wantBits: 2048},
		{file: "ed25519.pkcs8.pem", algorithm: "ed25519", wantAlg: "ed25519"},
		{file: "public-then-ed25519.pem", algorithm: "ed25519", wantAlg: "ed25519"},
		{file: "rsa1024.pkcs8.pem", algorithm: "rsa", wantAlg: "rsa", wantBits: 1024, weak: true, err: "1024 bits, fewer than the recommended 2048"},
		{file: "rsa512.pkcs8.pem", algorithm: "rsa", err: "512 bits; RFC 8301 forbids signing with fewer than 1024"},
		{file: "rsa8192.pkcs8.pem", algorithm: "rsa", err: "8192 bits; verifiers need only handle up to 4096"},
		{file: "ed25519.pkcs8.pem", algorithm: "rsa", err: `algorithm is "rsa" but the key is an Ed25519 key`},
		{file: "rsa2048.pkcs1.pem", algorithm: "ed25519", err: `algorithm is "ed25519" but the key is an RSA-2048 key`},
		{file: "ed25519.pkcs8.pem", algorithm: "dsa", err: `unknown algorithm "dsa"`},
		{file: "ed25519.encrypted.pem", algorithm: "ed25519", err: "the key is encrypted"},
		{file: "rsa2048.legacy-encrypted.pem", algorithm: "rsa", err: "the key is encrypted"},
		{file: "ed25519.openssh.pem", algorithm: "ed25519", err: "OpenSSH key format is not supported"},
		{file: "ec-p256.pkcs8.pem", algorithm: "", err: "unsupported key type *ecdsa.PrivateKey"},
		{file: "rsa2048.public.pem", algorithm: "rsa", err: "no private key in the PEM data (found PUBLIC KEY)"},
		{file: "garbage.pem", algorithm: "rsa", err: "no PEM block"},
		{file: "empty.pem", algorithm: "rsa", err: "no PEM block"},
		{file: "bad-der.pkcs8.pem", algorithm: "rsa", err: "parse PKCS #8 key"},
	}
	for _, tc := range tests {
		t.Run(tc.file+"/"+tc.algorithm, func(t *testing.T) {
			path := filepath.Join("testdata", "keys", tc.file)
			k, err := LoadKey("Example.com", "s1", tc.algorithm, path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("LoadKey error = %v, want one containing %q", err, tc.err)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				var weak *WeakKeyError
				if errors.As(err, &weak) != tc.weak {
					t.Errorf("error %v: *WeakKeyError = %v, want %v", err, !tc.weak, tc.weak)
				}
				if !tc.weak {
					if k != nil {
						t.Errorf("LoadKey returned a key with a hard error")
					}
					return
				}
				if weak.Bits != tc.wantBits {
					t.Errorf("WeakKeyError.Bits = %d, want %d", weak.Bits, tc.wantBits)
				}
			} else if err != nil {
				t.Fatalf("LoadKey: %v", err)
			}
			if k == nil {
				t.Fatal("LoadKey returned no key")
			}
			if k.Domain != "example.com" || k.Selector != "s1" || k.Algorithm != tc.wantAlg {
				t.Errorf("key = %s/%s/%s, want example.com/s1/%s", k.Domain, k.Selector, k.Algorithm, tc.wantAlg)
			}
			if alg, bits := describe(k.Signer.Public()); alg != tc.wantAlg || bits != tc.wantBits {
				t.Errorf("key is %s-%d, want %s-%d", alg, bits, tc.wantAlg, tc.wantBits)
			}
		})
	}
}

func TestLoadKeyBadArguments(t *testing.T) {
	good := filepath.Join("testdata", "keys", "ed25519.pkcs8.pem")
	_, err := LoadKey("example.com", "s1", "ed25519", filepath.Join("testdata", "keys", "missing.pem"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	for _, tc := range []struct{ domain, selector, err string }{
		{"", "s1", "empty domain"},
		{"exa mple.com", "s1", "invalid domain"},
		{"example.com", "", "empty selector"},
		{"example.com", "a..b", "invalid selector"},
		{"example.com", "-s1", "invalid selector"},
		{"example.com", "s1;x", "invalid selector"},
	} {
		if _, err := LoadKey(tc.domain, tc.selector, "ed25519", good); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("LoadKey(%q, %q) = %v, want %q", tc.domain, tc.selector, err, tc.err)
		}
	}
	k, err := LoadKey("bücher.example.", "2026-01.mail", "ed25519", good)
	if err != nil || k.Domain != "xn--bcher-kva.example" {
		t.Errorf("IDN domain: %v, %v; want the A-label form", k, err)
	}
}

func TestGenerateAndDNSRecord(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		alg    string
		bits   int
		prefix string
	}{
		{"rsa", 0, "v=DKIM1; k=rsa; p="},
		{"ed25519", 0, "v=DKIM1; k=ed25519; p="},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			signer, pemData, err := Generate(tc.alg, tc.bits)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if !bytes.HasPrefix(pemData, []byte("-----BEGIN PRIVATE KEY-----\n")) {
				t.Errorf("PEM does not start with a PKCS #8 block: %q", firstLine(pemData))
			}
			k, err := ParseKey("example.com", "gen-"+tc.alg, tc.alg, pemData)
			if err != nil {
				t.Fatalf("ParseKey(generated PEM): %v", err)
			}
			if alg, bits := describe(k.Signer.Public()); alg != tc.alg || (alg == "rsa" && bits != RecommendedRSABits) {
				t.Errorf("generated %s-%d", alg, bits)
			}
			if !k.Signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(signer.Public()) {
				t.Errorf("the PEM holds a different key than the one returned")
			}

			rec, err := DNSRecord(signer.Public())
			if err != nil {
				t.Fatalf("DNSRecord: %v", err)
			}
			if !strings.HasPrefix(rec, tc.prefix) {
				t.Errorf("record %q, want prefix %q", rec, tc.prefix)
			}
			fromSigner, err := DNSRecord(signer)
			if err != nil || fromSigner != rec {
				t.Errorf("DNSRecord(private key) = %q, %v; want the public key's record", fromSigner, err)
			}
			p, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(rec, tc.prefix))
			if err != nil {
				t.Fatalf("p= is not base64: %v", err)
			}
			switch tc.alg {
			case "rsa":
				if pub, err := x509.ParsePKIXPublicKey(p); err != nil || !pub.(*rsa.PublicKey).Equal(signer.Public()) {
					t.Errorf("p= is not the PKIX DER of the key: %v", err)
				}
			case "ed25519":
				if !bytes.Equal(p, signer.Public().(ed25519.PublicKey)) {
					t.Errorf("p= is not the raw 32-byte key")
				}
			}

			// The record, served by DNS, verifies a signature of the key.
			f.dns.AddTXT(RecordName(k.Selector, "example.com"), rec)
			out, _ := f.sign(NewSigner([]*Key{k}, Options{}), readMessage(t, "multipart.eml"), "")
			if v := f.verify(bytes.NewReader(out)); v[0].Err != nil {
				t.Errorf("verify with the generated record: %v", v[0].Err)
			}
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	for _, tc := range []struct {
		alg  string
		bits int
		err  string
	}{
		{"rsa", 1024, "RSA key size 1024 out of range 2048..4096"},
		{"rsa", 8192, "RSA key size 8192 out of range"},
		{"ecdsa", 0, `unknown algorithm "ecdsa"`},
		{"", 0, `unknown algorithm ""`},
	} {
		if _, _, err := Generate(tc.alg, tc.bits); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Generate(%q, %d) = %v, want %q", tc.alg, tc.bits, err, tc.err)
		}
	}
}

func TestDNSRecordErrors(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]any{
		"ecdsa public key":  &ec.PublicKey,
		"ecdsa private key": ec,
		"short ed25519":     ed25519.PublicKey(make([]byte, 31)),
		"nil":               nil,
	} {
		if rec, err := DNSRecord(k); err == nil {
			t.Errorf("%s: DNSRecord = %q, want an error", name, rec)
		}
	}
}

func TestRecordName(t *testing.T) {
	for _, tc := range []struct{ sel, domain, want string }{
		{"s1", "example.com", "s1._domainkey.example.com"},
		{"s1", "example.com.", "s1._domainkey.example.com"},
		{"2026.mail", "sub.example.org", "2026.mail._domainkey.sub.example.org"},
	} {
		if got := RecordName(tc.sel, tc.domain); got != tc.want {
			t.Errorf("RecordName(%q, %q) = %q, want %q", tc.sel, tc.domain, got, tc.want)
		}
	}
}
