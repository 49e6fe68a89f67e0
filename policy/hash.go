package policy

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Parameters of the argon2id hashes made by HashPassword (the OWASP
// recommendation of 2023: 19 MiB, two passes, one lane).
const (
	argonMemory  = 19456 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Bounds on the cost of a hash in a policy, so that one AUTH cannot take the
// server down: verification runs on the SMTP path.
const (
	maxArgonMemory  = 256 * 1024 // KiB (256 MiB)
	maxArgonTime    = 16
	maxArgonThreads = 16
	maxBcryptCost   = 15
)

// errMalformedHash is wrapped by every error about a hash that cannot be parsed.
var errMalformedHash = errors.New("policy: malformed password hash")

// kind of a parsed hash.
type hashKind uint8

const (
	kindArgon2id hashKind = iota + 1
	kindBcrypt
)

// parsedHash is a password hash checked once at load, ready to verify.
type parsedHash struct {
	kind hashKind
	// argon2id
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
	// bcrypt
	bcrypt []byte
	cost   int
}

// HashPassword returns an argon2id hash of password in the PHC string format
// ($argon2id$v=19$m=19456,t=2,p=1$salt$hash) with a random 16-byte salt.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("policy: reading a random salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches hash, an argon2id hash in
// the PHC string format or a bcrypt hash ($2a$, $2b$ or $2y$). It returns an
// error, and false, for a hash it cannot parse.
func VerifyPassword(hash, password string) (bool, error) {
	h, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	return h.verify(password), nil
}

// parseHash checks the syntax and the cost of a password hash.
func parseHash(s string) (*parsedHash, error) {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		return parseBcrypt(s)
	case strings.HasPrefix(s, "$argon2i$"), strings.HasPrefix(s, "$argon2d$"):
		return nil, fmt.Errorf("%w: only argon2id is supported, not %s", errMalformedHash, strings.SplitN(s[1:], "$", 2)[0])
	}
	return nil, fmt.Errorf("%w: want an argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash) or a bcrypt hash ($2a$, $2b$, $2y$); make one with `smtpgate hash-password`", errMalformedHash)
}

func parseArgon2id(s string) (*parsedHash, error) {
	bad := func(format string, args ...any) (*parsedHash, error) {
		return nil, fmt.Errorf("%w: argon2id: %s", errMalformedHash, fmt.Sprintf(format, args...))
	}
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 {
		return bad("want 5 fields separated by $, got %d", len(parts)-1)
	}
	if parts[2] != "v=19" {
		return bad("version %q is not supported (want v=19)", parts[2])
	}
	h := &parsedHash{kind: kindArgon2id}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return bad("parameters %q: want m=...,t=...,p=...", parts[3])
	}
	var seen [3]bool
	for _, kv := range params {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || (len(v) > 1 && v[0] == '0') {
			return bad("parameter %q is not name=number", kv)
		}
		switch k {
		case "m":
			if seen[0] || n < 8 || n > maxArgonMemory {
				return bad("memory m=%s must be between 8 and %d KiB", v, maxArgonMemory)
			}
			h.memory, seen[0] = uint32(n), true
		case "t":
			if seen[1] || n < 1 || n > maxArgonTime {
				return bad("time t=%s must be between 1 and %d", v, maxArgonTime)
			}
			h.time, seen[1] = uint32(n), true
		case "p":
			if seen[2] || n < 1 || n > maxArgonThreads {
				return bad("parallelism p=%s must be between 1 and %d", v, maxArgonThreads)
			}
			h.threads, seen[2] = uint8(n), true
		default:
			return bad("unknown parameter %q", k)
		}
	}
	if h.memory < 8*uint32(h.threads) {
		return bad("memory m=%d must be at least 8*p", h.memory)
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil || len(h.salt) < 8 || len(h.salt) > 64 {
		return bad("salt must be 8 to 64 bytes in unpadded base64")
	}
	if h.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return bad("hash must be 16 to 64 bytes in unpadded base64")
	}
	return h, nil
}

// bcryptAlphabet is the base64 alphabet of bcrypt hashes.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func parseBcrypt(s string) (*parsedHash, error) {
	// $2b$10$ + 22 characters of salt + 31 of hash.
	if len(s) != 60 || s[6] != '$' {
		return nil, fmt.Errorf("%w: bcrypt: want 60 characters ($2b$NN$ and 53 of salt and hash), got %d", errMalformedHash, len(s))
	}
	for _, r := range s[7:] {
		if !strings.ContainsRune(bcryptAlphabet, r) {
			return nil, fmt.Errorf("%w: bcrypt: %q is not in the bcrypt alphabet", errMalformedHash, r)
		}
	}
	cost, err := bcrypt.Cost([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("%w: bcrypt: %w", errMalformedHash, err)
	}
	if cost > maxBcryptCost {
		return nil, fmt.Errorf("%w: bcrypt: cost %d is too slow for SMTP AUTH (at most %d)", errMalformedHash, cost, maxBcryptCost)
	}
	return &parsedHash{kind: kindBcrypt, bcrypt: []byte(s), cost: cost}, nil
}

// verify reports whether password matches, in time independent of where a
// wrong password differs.
func (h *parsedHash) verify(password string) bool {
	switch h.kind {
	case kindArgon2id:
		key := argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
		return subtle.ConstantTimeCompare(key, h.key) == 1
	case kindBcrypt:
		return bcrypt.CompareHashAndPassword(h.bcrypt, []byte(password)) == nil
	}
	return false
}

// dummy returns a hash of the same algorithm and cost as h that no password
// matches, to spend the same time on an unknown user as on a known one.
func (h *parsedHash) dummy() *parsedHash {
	switch h.kind {
	case kindBcrypt:
		// A zero salt and an all-zero hash: a match would need a preimage.
		// What matters is that checking it costs what a real one does.
		s := fmt.Sprintf("$2b$%02d$%s", h.cost, strings.Repeat(".", 53))
		return &parsedHash{kind: kindBcrypt, bcrypt: []byte(s), cost: h.cost}
	default:
		return &parsedHash{kind: kindArgon2id, memory: h.memory, time: h.time, threads: h.threads,
			salt: make([]byte, len(h.salt)), key: make([]byte, len(h.key))}
	}
}

// defaultDummy is the dummy hash of a policy without credentials.
func defaultDummy() *parsedHash {
	return &parsedHash{kind: kindArgon2id, memory: argonMemory, time: argonTime, threads: argonThreads,
		salt: make([]byte, argonSaltLen), key: make([]byte, argonKeyLen)}
}
