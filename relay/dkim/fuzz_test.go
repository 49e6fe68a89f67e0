package dkim

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// FuzzSign checks, for any input, that Sign either fails without writing or
// writes its signature above the CRLF-normalised message and that the
// signature verifies; and that SignBytes agrees with Sign (same failure,
// same keys, same message after the signatures, a signature that verifies),
// whichever of its paths the input takes.
func FuzzSign(f *testing.F) {
	for _, name := range []string{"multipart.eml", "folded.eml"} {
		f.Add(readMessage(f, name), "")
	}
	k := testKey(f, "ed25519.pkcs8.pem", "example.com", "s1")
	s := NewSigner([]*Key{k}, Options{SpoolThreshold: 256, TempDir: f.TempDir()})
	rec, err := DNSRecord(k.Signer.Public())
	if err != nil {
		f.Fatal(err)
	}
	// The DNS round trip is covered by the other tests; here the record is
	// returned directly so that each input costs microseconds.
	lookup := func(name string) ([]string, error) {
		if name != RecordName("s1", "example.com") {
			return nil, errors.New("no such record")
		}
		return []string{rec}, nil
	}

	verify := func(t *testing.T, out []byte) {
		vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(out), &msgdkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: 1})
		if err != nil && !errors.Is(err, msgdkim.ErrTooManySignatures) {
			t.Fatalf("verify: %v", err)
		}
		if len(vs) == 0 || vs[0].Err != nil {
			t.Fatalf("our signature does not verify: %v\n%q", vs, out)
		}
	}

	f.Fuzz(func(t *testing.T, msg []byte, override string) {
		if got, want := crlfNormal(msg), len(msg) > 0 && bytes.Equal(normalize(msg), msg); got != want {
			t.Fatalf("crlfNormal(%q) = %v, want %v", msg, got, want)
		}
		var out bytes.Buffer
		with, err := s.Sign(t.Context(), &out, bytes.NewReader(msg), override)
		orig := bytes.Clone(msg)
		bout, bwith, berr := s.SignBytes(t.Context(), msg, override)
		if !bytes.Equal(msg, orig) {
			t.Fatal("SignBytes modified its input")
		}
		if (err == nil) != (berr == nil) || !slices.Equal(with, bwith) {
			t.Fatalf("Sign: %q, %v; SignBytes: %q, %v", with, err, bwith, berr)
		}
		if err == nil {
			_, rest := stripSignatures(t, out.Bytes(), len(with))
			_, brest := stripSignatures(t, bout, len(bwith))
			if !bytes.Equal(rest, brest) {
				t.Fatalf("message after the signatures: Sign %q, SignBytes %q", rest, brest)
			}
			if len(with) > 0 {
				verify(t, bout)
			}
		}
		if err != nil {
			if out.Len() != 0 {
				t.Fatalf("Sign failed (%v) after writing %d bytes", err, out.Len())
			}
			return
		}
		want := normalize(msg)
		if len(with) == 0 {
			if !bytes.HasPrefix(out.Bytes(), want) {
				t.Fatalf("unsigned output %q is not the normalised input %q", out.Bytes(), want)
			}
			return
		}
		_, rest := stripSignatures(t, out.Bytes(), 1)
		if !bytes.HasPrefix(rest, want) || len(rest) > len(want)+2 {
			t.Fatalf("output after the signature %q, want %q", rest, want)
		}
		verify(t, out.Bytes())
	})
}
