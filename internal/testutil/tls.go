package testutil

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/certs"
)

// SelfSignedTLS makes a self-signed ECDSA P-256 certificate for localhost,
// 127.0.0.1 and ::1, and returns a server config that serves it and a
// client config that trusts it (and only it) for server name "localhost".
func SelfSignedTLS(tb testing.TB) (server, client *tls.Config) {
	tb.Helper()
	certPEM, keyPEM, err := certs.Generate("localhost", time.Now())
	if err != nil {
		tb.Fatalf("test certificate: %v", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatalf("test certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		tb.Fatal("test certificate: no certificate in the PEM")
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}}
	client = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	return server, client
}
