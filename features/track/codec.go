package track

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"
	"sync"
	"time"
)

// Kind says what a token is for. Each kind is signed with its own subkey, so
// a token of one kind never opens as another.
type Kind byte

// The token kinds.
const (
	KindClick  Kind = 1 // a tracked link: carries the original URL
	KindOpen   Kind = 2 // the open pixel
	KindBounce Kind = 3 // a bounce (VERP) token
)

// numKinds bounds the per-kind key table; kinds are 1..numKinds-1.
const numKinds = 4

// String returns "click", "open", "bounce" or "kind(N)".
func (k Kind) String() string {
	switch k {
	case KindClick:
		return "click"
	case KindOpen:
		return "open"
	case KindBounce:
		return "bounce"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

func (k Kind) valid() bool { return k > 0 && k < numKinds }

// Token is the content of a tracking token.
type Token struct {
	Kind      Kind
	MessageID string
	Recipient string
	URL       string    // the original URL; click tokens only, ignored for other kinds
	Issued    time.Time // encoded with one-second precision; the zero time stays zero
}

// MaxTokenLen is the longest encoded token Open accepts, in characters. A
// Rewriter leaves a link untracked rather than emit a longer token.
const MaxTokenLen = 4096

// MinSecretLen is the shortest secret NewCodec accepts.
const MinSecretLen = 16

// tagLen is the length of the truncated HMAC-SHA256 tag. 128 bits: a token
// can only be checked by asking our HTTP endpoint, so forging one means an
// online guess with success probability 2^-128 per request; truncation to
// at least 64 bits is allowed by NIST SP 800-107 and RFC 2104 §5, and the
// 16 bytes saved keep tracked URLs ~22 characters shorter on every link.
const tagLen = 16

// ErrBadToken is returned by Open for any token that is not a well-formed,
// untampered token of the requested kind. Callers must treat every such token
// alike (the HTTP handler answers 404), so no finer error is exposed.
var ErrBadToken = errors.New("track: bad token")

// encoding is unpadded URL-safe base64 (read-only). Strict rejects non-zero
// padding bits, and Open rejects every byte outside the alphabet before
// decoding (the decoder would skip CR and LF), so each token has exactly one
// spelling.
var encoding = base64.RawURLEncoding.Strict()

// Codec signs and opens tracking tokens with HMAC-SHA256. Each Kind uses its
// own subkey derived with HKDF-SHA256 from the policy secret. A Codec is safe
// for concurrent use.
type Codec struct {
	pools [numKinds]sync.Pool // of *macState keyed for that kind
}

// macState is a keyed HMAC with scratch space, pooled per kind so sealing a
// link allocates nothing but its result.
type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
	buf []byte
}

// maxPooledBuf keeps a huge token from pinning its buffer in the pool.
const maxPooledBuf = 8 << 10

// NewCodec returns a Codec for secret, which must be at least MinSecretLen
// bytes of high-entropy key material.
func NewCodec(secret []byte) (*Codec, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("track: secret is %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	c := &Codec{}
	for k := Kind(1); k.valid(); k++ {
		key, err := hkdf.Key(sha256.New, secret, nil, "smtpgate track token v1 "+k.String(), sha256.Size)
		if err != nil {
			return nil, fmt.Errorf("track: derive %s key: %w", k, err)
		}
		c.pools[k].New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	}
	return c, nil
}

func (c *Codec) get(k Kind) *macState { return c.pools[k].Get().(*macState) }

func (c *Codec) put(k Kind, m *macState) {
	if cap(m.buf) <= maxPooledBuf {
		c.pools[k].Put(m)
	}
}

// tag returns the truncated tag of payload (valid until m is reused).
func (m *macState) tag(payload []byte) []byte {
	m.h.Reset()
	m.h.Write(payload)
	return m.h.Sum(m.sum[:0])[:tagLen]
}

// Seal encodes and signs t as URL-safe base64 without padding. The binary
// layout is: kind byte, uvarint Unix seconds of Issued (0 for the zero time),
// then uvarint length + bytes of MessageID, Recipient and (click tokens only)
// URL, then the 16-byte tag over all of that. Seal returns "" for a Kind
// that is not one of the declared constants; such a string never opens.
// Seal does not limit sizes: a result longer than MaxTokenLen never opens
// either, which is why Rewriter leaves such links untracked.
func (c *Codec) Seal(t Token) string {
	if !t.Kind.valid() {
		return ""
	}
	return string(c.appendSeal(nil, t))
}

// appendSeal appends the sealed token t (of a valid kind) to dst.
func (c *Codec) appendSeal(dst []byte, t Token) []byte {
	var sec uint64
	if !t.Issued.IsZero() && t.Issued.Unix() > 0 {
		sec = uint64(t.Issued.Unix())
	}
	m := c.get(t.Kind)
	b := append(m.buf[:0], byte(t.Kind))
	b = binary.AppendUvarint(b, sec)
	b = appendString(b, t.MessageID)
	b = appendString(b, t.Recipient)
	if t.Kind == KindClick {
		b = appendString(b, t.URL)
	}
	b = append(b, m.tag(b)...)
	dst = encoding.AppendEncode(dst, b)
	m.buf = b
	c.put(t.Kind, m)
	return dst
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Open checks and decodes a token of the given kind. Any token that is too
// long (over MaxTokenLen), badly encoded, of another kind, tampered with or
// signed with another secret yields ErrBadToken.
func (c *Codec) Open(kind Kind, s string) (Token, error) {
	if !kind.valid() || len(s) > MaxTokenLen || len(s) == 0 {
		return Token{}, ErrBadToken
	}
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			return Token{}, ErrBadToken
		}
	}
	m := c.get(kind)
	defer c.put(kind, m)
	b, err := encoding.AppendDecode(m.buf[:0], []byte(s))
	m.buf = b
	if err != nil || len(b) < 1+tagLen {
		return Token{}, ErrBadToken
	}
	payload, tag := b[:len(b)-tagLen], b[len(b)-tagLen:]
	if !hmac.Equal(m.tag(payload), tag) {
		return Token{}, ErrBadToken
	}
	t, ok := decodePayload(kind, payload)
	if !ok {
		return Token{}, ErrBadToken
	}
	return t, nil
}

// decodePayload parses an authenticated payload. It still checks everything:
// a token sealed by another version of the code must fail cleanly.
func decodePayload(kind Kind, p []byte) (Token, bool) {
	if len(p) == 0 || Kind(p[0]) != kind {
		return Token{}, false
	}
	p = p[1:]
	sec, n := binary.Uvarint(p)
	if n <= 0 || sec > math.MaxInt64 {
		return Token{}, false
	}
	p = p[n:]
	t := Token{Kind: kind}
	if sec != 0 {
		t.Issued = time.Unix(int64(sec), 0).UTC()
	}
	var ok bool
	if t.MessageID, p, ok = readString(p); !ok {
		return Token{}, false
	}
	if t.Recipient, p, ok = readString(p); !ok {
		return Token{}, false
	}
	if kind == KindClick {
		if t.URL, p, ok = readString(p); !ok {
			return Token{}, false
		}
	}
	return t, len(p) == 0
}

func readString(p []byte) (string, []byte, bool) {
	l, n := binary.Uvarint(p)
	if n <= 0 || l > uint64(len(p)-n) {
		return "", nil, false
	}
	p = p[n:]
	return string(p[:l]), p[l:], true
}

// isTokenByte reports whether c is in the URL-safe base64 alphabet.
func isTokenByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}
