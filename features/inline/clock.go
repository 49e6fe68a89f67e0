package inline

import (
	"sync"
	"sync/atomic"
)

// clockCache is the bounded cache under sheetCache and planCache. It holds
// at most max values and evicts with the CLOCK algorithm: a value used
// since the hand last passed it gets a second chance. Values are filed by
// a hash of their key; the caller's match function compares the key in
// full. It is safe for concurrent use.
type clockCache[V any] struct {
	mu      sync.RWMutex
	entries map[uint64][]*clockEntry[V]
	ring    []*clockEntry[V] // at most max entries
	hand    int
	max     int
}

// clockEntry is one cached value.
type clockEntry[V any] struct {
	hash uint64
	val  V
	used atomic.Bool // looked up since the clock hand last passed
}

func newClockCache[V any](max int) *clockCache[V] {
	return &clockCache[V]{entries: make(map[uint64][]*clockEntry[V], max), max: max}
}

// get returns the value filed under hash that match accepts.
func (c *clockCache[V]) get(hash uint64, match func(V) bool) (V, bool) {
	c.mu.RLock()
	var found *clockEntry[V]
	for _, e := range c.entries[hash] {
		if match(e.val) {
			found = e
			break
		}
	}
	c.mu.RUnlock()
	if found == nil {
		var zero V
		return zero, false
	}
	if !found.used.Load() {
		found.used.Store(true)
	}
	return found.val, true
}

// put files v under hash unless a value that match accepts (one with v's
// key, put by another goroutine meanwhile) is there already, evicting an
// entry when the cache is full.
func (c *clockCache[V]) put(hash uint64, v V, match func(V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.entries[hash] {
		if match(o.val) {
			return
		}
	}
	e := &clockEntry[V]{hash: hash, val: v}
	if len(c.ring) < c.max {
		c.ring = append(c.ring, e)
	} else {
		for c.ring[c.hand].used.Swap(false) {
			c.hand = (c.hand + 1) % len(c.ring)
		}
		c.remove(c.ring[c.hand])
		c.ring[c.hand] = e
		c.hand = (c.hand + 1) % len(c.ring)
	}
	c.entries[hash] = append(c.entries[hash], e)
}

// remove takes e out of the hash index.
func (c *clockCache[V]) remove(e *clockEntry[V]) {
	list := c.entries[e.hash]
	for i, o := range list {
		if o == e {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(c.entries, e.hash)
	} else {
		c.entries[e.hash] = list
	}
}

// len returns the number of cached values.
func (c *clockCache[V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.ring)
}
