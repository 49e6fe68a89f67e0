package gateway

import (
	"crypto/tls"
	"fmt"
)

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLS1.3"
	case tls.VersionTLS12:
		return "TLS1.2"
	}
	return fmt.Sprintf("0x%04x", v)
}

func cipherName(id uint16) string {
	return tls.CipherSuiteName(id)
}
