package certs

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedIsKeptAndServes(t *testing.T) {
	dir := t.TempDir()
	c1, err := SelfSigned(dir, "mail.test")
	if err != nil {
		t.Fatal(err)
	}
	c2, err := SelfSigned(dir, "mail.test")
	if err != nil {
		t.Fatal(err)
	}
	if c1.Leaf.SerialNumber.Cmp(c2.Leaf.SerialNumber) != 0 {
		t.Fatal("second call generated a new certificate instead of keeping the first")
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	for _, h := range []string{"mail.test", "localhost", "127.0.0.1"} {
		if err := c1.Leaf.VerifyHostname(h); err != nil {
			t.Errorf("certificate does not cover %s: %v", h, err)
		}
	}
	// A different hostname replaces it.
	c3, err := SelfSigned(dir, "other.test")
	if err != nil {
		t.Fatal(err)
	}
	if c3.Leaf.VerifyHostname("other.test") != nil {
		t.Fatal("new certificate does not cover other.test")
	}

	// Handshake with the holder, then swap and see the new one served.
	h := NewHolder(c1)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", h.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	serial := func() string {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(),
			&tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != c1.Leaf.SerialNumber.String() {
		t.Fatalf("served %s, want %s", got, c1.Leaf.SerialNumber)
	}
	h.Set(c3)
	if got := serial(); got != c3.Leaf.SerialNumber.String() {
		t.Fatalf("after Set served %s, want %s", got, c3.Leaf.SerialNumber)
	}
	if _, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("TLS 1.1 handshake succeeded; want TLS 1.2 minimum")
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load("/nonexistent/cert.pem", "/nonexistent/key.pem"); err == nil {
		t.Fatal("want error")
	}
	certPEM, _, err := Generate("x.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, otherKey, _ := Generate("y.test", time.Now())
	os.WriteFile(filepath.Join(dir, "c.pem"), certPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "k.pem"), otherKey, 0o600)
	if _, err := Load(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")); err == nil {
		t.Fatal("mismatched key accepted")
	}
}
