package web

import (
	"crypto/sha256"

	"github.com/smtpgate/smtpgate/store"
)

// Keys is a KeyResolver over a fixed set of API keys. It looks keys up by
// their SHA-256 digest, so the time a lookup takes says nothing about how
// much of a guessed key is right.
type Keys struct {
	scopes map[[sha256.Size]byte]store.Scope
}

// NewKeys returns a Keys that maps each key of scopes to its scope. Empty
// keys are ignored.
func NewKeys(scopes map[string]store.Scope) *Keys {
	k := &Keys{scopes: make(map[[sha256.Size]byte]store.Scope, len(scopes))}
	for key, s := range scopes {
		if key != "" {
			k.scopes[sha256.Sum256([]byte(key))] = s
		}
	}
	return k
}

// Scope implements KeyResolver.
func (k *Keys) Scope(key string) (store.Scope, bool) {
	if key == "" {
		return store.Scope{}, false
	}
	s, ok := k.scopes[sha256.Sum256([]byte(key))]
	return s, ok
}
