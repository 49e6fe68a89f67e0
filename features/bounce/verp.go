// Package bounce owns bounce tracking: the VERP codec that turns a message
// and one of its recipients into a signed envelope sender on the bounce
// domain (and back), and the parser for the delivery status notifications
// (RFC 3464) and plain-text bounces that come back to it.
//
// # VERP addresses
//
// With trackbounces, a message to its N-th envelope recipient is sent with
// the envelope sender
//
//	b+{message id}-{code}@{bounce domain}
//
// where code is 20 characters of lower-case base32 (RFC 4648 alphabet, no
// padding) of 12 bytes: the recipient's index in the stored message's
// recipient list (2 bytes, big-endian) and the first 10 bytes (80 bits) of
// HMAC-SHA256(secret, "smtpgate-verp-v1" 0 domain 0 message id 0 index).
//
// The recipient address itself is not in the token: an address can be 254
// octets, and RFC 5321 limits a local part to 64. The index is resolved
// against store.Message.Recipients when the bounce arrives. With a message
// id of up to 32 characters (store ids have 26) the local part is at most
// 2+32+1+20 = 55 octets. Everything is lower case, so an MTA that lower-cases
// (or upper-cases) local parts does not break it; Parse folds case.
package bounce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ErrBadAddress is returned by Parse for an address that is not a valid VERP
// address of this codec: foreign, on another domain, malformed or tampered.
var ErrBadAddress = errors.New("bounce: not a valid bounce address")

const (
	localPrefix  = "b+"
	maxIDLen     = 32
	macLen       = 10
	codeBytes    = 2 + macLen
	codeLen      = (codeBytes*8 + 4) / 5 // 20 base32 characters
	minSecretLen = 16
	// MaxRecipientIndex is one more than the largest recipient index a
	// token can name.
	MaxRecipientIndex = 1 << 16
)

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Codec makes and reads VERP bounce addresses on one bounce domain. It is
// safe for concurrent use.
type Codec struct {
	secret []byte
	domain string
}

// NewCodec returns a Codec signing with secret (at least 16 bytes) for
// addresses @domain.
func NewCodec(secret []byte, domain string) (*Codec, error) {
	if len(secret) < minSecretLen {
		return nil, fmt.Errorf("bounce: secret is %d bytes, want at least %d", len(secret), minSecretLen)
	}
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if !validDomain(domain) {
		return nil, fmt.Errorf("bounce: %q is not a valid bounce domain", domain)
	}
	return &Codec{secret: append([]byte(nil), secret...), domain: domain}, nil
}

// Domain returns the bounce domain, lower case.
func (c *Codec) Domain() string { return c.domain }

// Address returns the VERP envelope sender for the recipient with index rcpt
// (0-based, in the stored message's recipient list) of message messageID.
// messageID must be 1 to 32 characters of [0-9a-z], as store.NewID makes.
func (c *Codec) Address(messageID string, rcpt int) (string, error) {
	if !validID(messageID) {
		return "", fmt.Errorf("bounce: message id %q is not 1-32 characters of [0-9a-z]", messageID)
	}
	if rcpt < 0 || rcpt >= MaxRecipientIndex {
		return "", fmt.Errorf("bounce: recipient index %d out of range [0, %d)", rcpt, MaxRecipientIndex)
	}
	var code [codeBytes]byte
	binary.BigEndian.PutUint16(code[:2], uint16(rcpt))
	copy(code[2:], c.mac(messageID, code[:2]))
	return localPrefix + messageID + "-" + b32.EncodeToString(code[:]) + "@" + c.domain, nil
}

// Parse returns the message id and recipient index named by a VERP address
// made by Address. It accepts the address bare or in angle brackets, in any
// case. Any other address gives an error wrapping ErrBadAddress.
func (c *Codec) Parse(addr string) (messageID string, rcpt int, err error) {
	addr = strings.TrimSpace(addr)
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">")
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", 0, fmt.Errorf("%w: no domain in %q", ErrBadAddress, addr)
	}
	local, domain := strings.ToLower(addr[:at]), strings.TrimSuffix(addr[at+1:], ".")
	if !strings.EqualFold(domain, c.domain) {
		return "", 0, fmt.Errorf("%w: domain %q is not the bounce domain", ErrBadAddress, domain)
	}
	rest, ok := strings.CutPrefix(local, localPrefix)
	dash := strings.LastIndexByte(rest, '-')
	if !ok || dash < 0 {
		return "", 0, fmt.Errorf("%w: local part %q is not b+{id}-{code}", ErrBadAddress, local)
	}
	id, enc := rest[:dash], rest[dash+1:]
	if !validID(id) || len(enc) != codeLen {
		return "", 0, fmt.Errorf("%w: local part %q is not b+{id}-{code}", ErrBadAddress, local)
	}
	code, err := b32.DecodeString(enc)
	// Re-encoding rejects a code whose unused trailing bits were changed.
	if err != nil || len(code) != codeBytes || b32.EncodeToString(code) != enc {
		return "", 0, fmt.Errorf("%w: bad code in %q", ErrBadAddress, local)
	}
	if !hmac.Equal(code[2:], c.mac(id, code[:2])) {
		return "", 0, fmt.Errorf("%w: signature mismatch for %q", ErrBadAddress, local)
	}
	return id, int(binary.BigEndian.Uint16(code[:2])), nil
}

func (c *Codec) mac(id string, index []byte) []byte {
	m := hmac.New(sha256.New, c.secret)
	m.Write([]byte("smtpgate-verp-v1\x00"))
	m.Write([]byte(c.domain))
	m.Write([]byte{0})
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write(index)
	return m.Sum(nil)[:macLen]
}

func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// validDomain accepts a DNS name of LDH labels.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
