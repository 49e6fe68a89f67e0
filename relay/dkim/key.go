package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/net/idna"
)

// Key algorithms, as written in the policy file and in the k= tag of the DNS
// record.
const (
	AlgorithmRSA     = "rsa"
	AlgorithmEd25519 = "ed25519"
)

// RSA key sizes. RFC 8301 forbids signing with keys under 1024 bits and
// requires verifiers to handle 1024 to 4096 bits; 2048 is the recommended
// minimum and the default of Generate.
const (
	MinRSABits         = 1024
	RecommendedRSABits = 2048
	MaxRSABits         = 4096
)

// Key is one DKIM signing key: the d= domain and s= selector it signs as, its
// algorithm ("rsa" or "ed25519") and the private key.
type Key struct {
	Domain    string
	Selector  string
	Algorithm string
	Signer    crypto.Signer
}

// WeakKeyError reports an RSA key of at least MinRSABits but fewer than
// RecommendedRSABits bits. LoadKey and ParseKey return it together with a
// usable key, so a caller may log it as a warning and carry on, or refuse the
// key.
type WeakKeyError struct {
	Bits int
}

// Error implements error.
func (e *WeakKeyError) Error() string {
	return fmt.Sprintf("dkim: RSA key has %d bits, fewer than the recommended %d", e.Bits, RecommendedRSABits)
}

// LoadKey reads a PEM private key from keyFile and returns it as the signing
// key for domain and selector. See ParseKey for the formats and checks; as
// there, a small RSA key comes back together with a *WeakKeyError. Errors
// name the file.
func LoadKey(domain, selector, algorithm, keyFile string) (*Key, error) {
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("dkim: read key: %w", err)
	}
	k, err := ParseKey(domain, selector, algorithm, data)
	if err != nil {
		// k is non-nil only with a *WeakKeyError.
		return k, fmt.Errorf("%s: %w", keyFile, err)
	}
	return k, nil
}

// ParseKey parses a PEM private key: "PRIVATE KEY" (PKCS #8, RSA or Ed25519)
// or "RSA PRIVATE KEY" (PKCS #1). Other PEM blocks before the key, such as a
// public key or a certificate, are skipped. Encrypted keys, OpenSSH keys and
// EC keys are refused with an error that says how to convert them.
//
// algorithm must be "rsa" or "ed25519" and match the key, or be empty to take
// the key's own. domain is stored in its ASCII (A-label) lower-case form.
// RSA keys under MinRSABits or over MaxRSABits are refused; a key under
// RecommendedRSABits is returned together with a *WeakKeyError.
func ParseKey(domain, selector, algorithm string, pemData []byte) (*Key, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	if err := checkSelector(selector); err != nil {
		return nil, err
	}
	if algorithm != "" && algorithm != AlgorithmRSA && algorithm != AlgorithmEd25519 {
		return nil, fmt.Errorf("dkim: unknown algorithm %q (want %q or %q)", algorithm, AlgorithmRSA, AlgorithmEd25519)
	}
	signer, err := parsePrivateKey(pemData)
	if err != nil {
		return nil, err
	}
	alg, bits := describe(signer.Public())
	if algorithm != "" && alg != algorithm {
		return nil, fmt.Errorf("dkim: algorithm is %q but the key is %s", algorithm, keyDescription(alg, bits))
	}
	k := &Key{Domain: d, Selector: selector, Algorithm: alg, Signer: signer}
	if err := checkRSABits(alg, bits); err != nil {
		var weak *WeakKeyError
		if errors.As(err, &weak) {
			return k, err
		}
		return nil, err
	}
	return k, nil
}

// checkRSABits applies the RSA size rules; it returns a *WeakKeyError for a
// usable but small key.
func checkRSABits(alg string, bits int) error {
	if alg != AlgorithmRSA {
		return nil
	}
	switch {
	case bits < MinRSABits:
		return fmt.Errorf("dkim: RSA key has %d bits; RFC 8301 forbids signing with fewer than %d", bits, MinRSABits)
	case bits > MaxRSABits:
		return fmt.Errorf("dkim: RSA key has %d bits; verifiers need only handle up to %d (RFC 8301)", bits, MaxRSABits)
	case bits < RecommendedRSABits:
		return &WeakKeyError{Bits: bits}
	}
	return nil
}

func keyDescription(alg string, bits int) string {
	if alg == AlgorithmRSA {
		return fmt.Sprintf("an RSA-%d key", bits)
	}
	return "an Ed25519 key"
}

// describe returns the algorithm name and, for RSA, the modulus size of a
// supported public key; alg is "" for anything else.
func describe(pub crypto.PublicKey) (alg string, bits int) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return AlgorithmRSA, p.N.BitLen()
	case ed25519.PublicKey:
		return AlgorithmEd25519, 0
	}
	return "", 0
}

// parsePrivateKey returns the first private key in pemData.
func parsePrivateKey(pemData []byte) (crypto.Signer, error) {
	var skipped []string
	rest := pemData
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if _, enc := block.Headers["Proc-Type"]; enc || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("dkim: the key is encrypted; store it unencrypted with mode 0600 (openssl pkey -in key.pem -out plain.pem)")
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("dkim: parse PKCS #8 key: %w", err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("dkim: unsupported key type %T in PKCS #8 (want RSA or Ed25519)", k)
			}
			if alg, _ := describe(s.Public()); alg == "" {
				return nil, fmt.Errorf("dkim: unsupported key type %T in PKCS #8 (want RSA or Ed25519)", k)
			}
			return s, nil
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("dkim: parse PKCS #1 RSA key: %w", err)
			}
			return k, nil
		case "OPENSSH PRIVATE KEY":
			return nil, errors.New("dkim: OpenSSH key format is not supported; convert it to PKCS #8 (ssh-keygen -p -m PKCS8 -f key)")
		case "EC PRIVATE KEY":
			return nil, errors.New("dkim: EC (ECDSA) keys are not usable for DKIM; use an RSA or Ed25519 key")
		default:
			skipped = append(skipped, block.Type)
		}
	}
	if len(skipped) > 0 {
		return nil, fmt.Errorf("dkim: no private key in the PEM data (found %s)", strings.Join(skipped, ", "))
	}
	return nil, errors.New("dkim: no PEM block in the key data")
}

// Generate creates a new key. For "rsa", bits is the modulus size (0 means
// RecommendedRSABits; RecommendedRSABits to MaxRSABits accepted); for
// "ed25519", bits is ignored. It returns the key and its PKCS #8 PEM
// encoding, ready to be written to a key file.
func Generate(algorithm string, bits int) (crypto.Signer, []byte, error) {
	var signer crypto.Signer
	switch algorithm {
	case AlgorithmRSA:
		if bits == 0 {
			bits = RecommendedRSABits
		}
		if bits < RecommendedRSABits || bits > MaxRSABits {
			return nil, nil, fmt.Errorf("dkim: RSA key size %d out of range %d..%d", bits, RecommendedRSABits, MaxRSABits)
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, nil, fmt.Errorf("dkim: generate RSA key: %w", err)
		}
		signer = k
	case AlgorithmEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("dkim: generate Ed25519 key: %w", err)
		}
		signer = k
	default:
		return nil, nil, fmt.Errorf("dkim: unknown algorithm %q (want %q or %q)", algorithm, AlgorithmRSA, AlgorithmEd25519)
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return nil, nil, fmt.Errorf("dkim: encode key: %w", err)
	}
	return signer, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// DNSRecord returns the TXT record value that publishes a public key:
// "v=DKIM1; k=rsa; p=<base64 PKIX DER>" or "v=DKIM1; k=ed25519; p=<base64 of
// the raw 32-byte key>" (RFC 6376 section 3.6.1, RFC 8463). It also accepts a
// private key or anything else with a Public method.
func DNSRecord(k crypto.PublicKey) (string, error) {
	if s, ok := k.(interface{ Public() crypto.PublicKey }); ok {
		k = s.Public()
	}
	switch p := k.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			return "", fmt.Errorf("dkim: encode RSA public key: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return "", fmt.Errorf("dkim: Ed25519 public key has %d bytes, want %d", len(p), ed25519.PublicKeySize)
		}
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(p), nil
	}
	return "", fmt.Errorf("dkim: unsupported public key type %T (want RSA or Ed25519)", k)
}

// RecordName returns the DNS name that holds the key record of selector in
// domain: "selector._domainkey.domain", without a trailing dot.
func RecordName(selector, domain string) string {
	return selector + "._domainkey." + strings.TrimSuffix(domain, ".")
}

// normalizeDomain returns the lower-case A-label form of a DNS domain name
// without a trailing dot.
func normalizeDomain(domain string) (string, error) {
	d := strings.TrimSuffix(strings.TrimSpace(domain), ".")
	if d == "" {
		return "", errors.New("dkim: empty domain")
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("dkim: invalid domain %q: %w", domain, err)
	}
	return strings.ToLower(a), nil
}

// checkSelector checks the RFC 6376 selector syntax: dot-separated labels of
// letters, digits and inner hyphens (underscores are tolerated, as common
// signers allow them).
func checkSelector(sel string) error {
	if sel == "" {
		return errors.New("dkim: empty selector")
	}
	for label := range strings.SplitSeq(sel, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("dkim: invalid selector %q", sel)
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("dkim: invalid selector %q: character %q", sel, c)
			}
		}
	}
	return nil
}
