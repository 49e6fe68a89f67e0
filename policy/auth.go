package policy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// The cache of successful verifications.
const (
	authCacheSize = 10000
	authCacheTTL  = 5 * time.Minute
)

// authCache remembers, for a while, (user, password) pairs that verified, so
// that the password hash is not computed again on every connection. Entries
// are keyed by an HMAC with a random key of the policy: the cache holds no
// password, nor anything that can be checked against one without that key.
// Failures are never cached.
type authCache struct {
	key  []byte
	size int
	ttl  time.Duration

	mu      sync.Mutex
	entries map[[sha256.Size]byte]time.Time // expiry
}

func newAuthCache(key []byte, size int, ttl time.Duration) *authCache {
	return &authCache{key: key, size: size, ttl: ttl, entries: make(map[[sha256.Size]byte]time.Time)}
}

// sum is the cache key of a user name and password.
func (a *authCache) sum(username, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(username))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var s [sha256.Size]byte
	m.Sum(s[:0])
	return s
}

// hit reports whether k verified less than ttl ago.
func (a *authCache) hit(k [sha256.Size]byte, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.entries[k]
	if ok && now.After(exp) {
		delete(a.entries, k)
		return false
	}
	return ok
}

// add remembers k until now+ttl. When the cache is full it drops expired
// entries, and then, if it must, arbitrary ones.
func (a *authCache) add(k [sha256.Size]byte, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.entries[k]; !ok && len(a.entries) >= a.size {
		for e, exp := range a.entries {
			if now.After(exp) {
				delete(a.entries, e)
			}
		}
		for e := range a.entries {
			if len(a.entries) < a.size {
				break
			}
			delete(a.entries, e)
		}
	}
	a.entries[k] = now.Add(a.ttl)
}

// Authenticate checks a user name and password against the credentials. It
// returns ErrBadCredentials for an unknown user or a wrong password, spending
// about the same time on an unknown user as on a known one. A success is
// remembered for 5 minutes, so that a client opening many connections pays
// for one hash verification, not one per connection.
func (p *Policy) Authenticate(ctx context.Context, username, password string) (*Credential, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("policy: authenticate: %w", err)
	}
	cred := p.Credentials[username]
	k := p.auth.sum(username, password)
	if cred != nil && p.auth.hit(k, p.now()) {
		return cred, nil
	}
	if cred == nil || cred.hash == nil {
		p.verify(p.dummy, password)
		return nil, ErrBadCredentials
	}
	// Clients often open many connections at once with the same login:
	// they wait for one verification instead of each running its own
	// (argon2id takes ~19 MiB and tens of milliseconds per run).
	ok, _, _ := p.inflight.Do(string(k[:]), func() (any, error) {
		if !p.verify(cred.hash, password) {
			return false, nil
		}
		p.auth.add(k, p.now())
		return true, nil
	})
	if !ok.(bool) {
		return nil, ErrBadCredentials
	}
	return cred, nil
}

// verify runs a real hash verification and counts it.
func (p *Policy) verify(h *parsedHash, password string) bool {
	p.verified.Add(1)
	return h.verify(password)
}
