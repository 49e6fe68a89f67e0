package dkim

import (
	"bytes"
	"io"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// message5KB returns a 5 KB CRLF message: the multipart test message with
// its text part padded.
func message5KB(b *testing.B) []byte {
	b.Helper()
	msg := readMessage(b, "multipart.eml")
	pad := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n", 64)
	msg = bytes.Replace(msg, []byte("Caf=C3=A9\n"), []byte("Caf=C3=A9\n"+pad), 1)
	msg = normalize(msg)[:5*1024-2]
	return append(msg, "\r\n"...)
}

func benchmarkSign(b *testing.B, keys ...*Key) {
	msg := message5KB(b)
	s := NewSigner(keys, Options{})
	ctx := b.Context()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		with, err := s.Sign(ctx, io.Discard, bytes.NewReader(msg), "")
		if err != nil || len(with) != len(keys) {
			b.Fatalf("Sign = %q, %v", with, err)
		}
	}
}

func BenchmarkSignEd25519_5KB(b *testing.B) {
	benchmarkSign(b, testKey(b, "ed25519.pkcs8.pem", "example.com", "ed"))
}

func BenchmarkSignRSA_5KB(b *testing.B) {
	benchmarkSign(b, testKey(b, "rsa2048.pkcs8.pem", "example.com", "rsa"))
}

func BenchmarkSignDual_5KB(b *testing.B) {
	benchmarkSign(b,
		testKey(b, "rsa2048.pkcs8.pem", "example.com", "rsa"),
		testKey(b, "ed25519.pkcs8.pem", "example.com", "ed"))
}

// BenchmarkSignBytesEd25519_5KB signs a CRLF message held in memory, as
// the relay does with a stored message (SignBytes' fast path).
func BenchmarkSignBytesEd25519_5KB(b *testing.B) {
	msg := message5KB(b)
	s := NewSigner([]*Key{testKey(b, "ed25519.pkcs8.pem", "example.com", "ed")}, Options{})
	ctx := b.Context()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		out, with, err := s.SignBytes(ctx, msg, "")
		if err != nil || len(with) != 1 || len(out) <= len(msg) {
			b.Fatalf("SignBytes = %q, %v", with, err)
		}
	}
}

// BenchmarkNormalize5KB measures the CRLF normaliser alone on LF input.
func BenchmarkNormalize5KB(b *testing.B) {
	msg := bytes.ReplaceAll(message5KB(b), []byte("\r\n"), []byte("\n"))
	s := NewSigner(nil, Options{}) // no keys: normalise and copy only
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(b.Context(), io.Discard, bytes.NewReader(msg), ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoMsgauthEd25519_5KB is the baseline: go-msgauth's own in-memory
// dkim.Sign on the same message, without normalisation or header analysis.
func BenchmarkGoMsgauthEd25519_5KB(b *testing.B) {
	msg := message5KB(b)
	k := testKey(b, "ed25519.pkcs8.pem", "example.com", "ed")
	opts := &msgdkim.SignOptions{Domain: k.Domain, Selector: k.Selector, Signer: k.Signer,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed, BodyCanonicalization: msgdkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "From", "To", "To", "Subject", "Subject", "Date", "Message-ID"}}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := msgdkim.Sign(io.Discard, bytes.NewReader(msg), opts); err != nil {
			b.Fatal(err)
		}
	}
}
