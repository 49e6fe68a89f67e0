// Package certs owns smtpgate's TLS certificates: loading a key pair from
// files, generating and keeping a self-signed development certificate, and
// swapping the certificate at run time (policy reload) without dropping
// connections.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Holder serves the current certificate to TLS handshakes. It is safe for
// concurrent use; Set swaps the certificate for new handshakes only.
type Holder struct {
	cur atomic.Pointer[tls.Certificate]
}

// NewHolder returns a Holder serving c.
func NewHolder(c *tls.Certificate) *Holder {
	h := &Holder{}
	h.Set(c)
	return h
}

// Set replaces the certificate used by new handshakes.
func (h *Holder) Set(c *tls.Certificate) { h.cur.Store(c) }

// GetCertificate is a tls.Config.GetCertificate callback.
func (h *Holder) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := h.cur.Load()
	if c == nil {
		return nil, errors.New("certs: no certificate loaded")
	}
	return c, nil
}

// ServerConfig returns a TLS configuration for a server using h: TLS 1.2 at
// least, session tickets on.
func (h *Holder) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: h.GetCertificate,
	}
}

// Load reads a PEM certificate chain and key.
func Load(certFile, keyFile string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: load %s and %s: %w", certFile, keyFile, err)
	}
	if c.Leaf == nil && len(c.Certificate) > 0 {
		c.Leaf, _ = x509.ParseCertificate(c.Certificate[0])
	}
	return &c, nil
}

// SelfSigned returns the development certificate kept in dir (cert.pem and
// key.pem), creating it on first use: ECDSA P-256 (a TLS handshake costs a
// third of an RSA-2048 one), valid for ten years for hostname, localhost,
// 127.0.0.1 and ::1. A certificate that has expired or does not cover
// hostname is replaced.
func SelfSigned(dir, hostname string) (*tls.Certificate, error) {
	certFile := filepath.Join(dir, "cert.pem")
	keyFile := filepath.Join(dir, "key.pem")
	if c, err := Load(certFile, keyFile); err == nil && c.Leaf != nil &&
		time.Now().Before(c.Leaf.NotAfter) && c.Leaf.VerifyHostname(hostname) == nil {
		return c, nil
	}
	certPEM, keyPEM, err := Generate(hostname, time.Now())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return nil, err
	}
	return Load(certFile, keyFile)
}

// Generate makes a self-signed ECDSA P-256 certificate and returns the PEM
// certificate and PKCS#8 key.
func Generate(hostname string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("certs: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hostname, Organization: []string{"smtpgate development"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	if ip := net.ParseIP(hostname); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if hostname != "" && hostname != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, hostname)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: create certificate: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}
