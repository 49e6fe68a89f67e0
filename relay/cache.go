package relay

import (
	"sync"
	"time"

	"github.com/smtpgate/smtpgate/store"
)

// Defaults of the message cache (Config.MessageCache, MessageCacheTTL).
const (
	DefaultMessageCache    = 64 << 20
	DefaultMessageCacheTTL = time.Minute
)

// cacheEntryOverhead is what an entry counts besides its Raw bytes.
const cacheEntryOverhead = 512

// messageCache holds messages just committed until their deliveries'
// first attempts, so that the worker does not read back from the store what
// the gateway has just handed it. It is bounded by bytes (Raw plus a fixed
// overhead per entry) and by age, evicts first in first out, and forgets a
// message once each of its deliveries has taken it. Committed messages never
// change, so an entry is never stale; a miss falls back to the store.
type messageCache struct {
	max int64
	ttl time.Duration

	mu    sync.Mutex
	size  int64
	byID  map[string]*cacheEntry
	queue []*cacheEntry // insertion order; entries already taken are skipped
	head  int           // queue[head:] is live
}

type cacheEntry struct {
	msg   *store.Message
	uses  int // deliveries that may still take it
	cost  int64
	added time.Time
	gone  bool // taken by its last delivery, or evicted
}

// newMessageCache returns a cache of max bytes, or nil (no cache) when max
// is not positive.
func newMessageCache(max int64, ttl time.Duration) *messageCache {
	if max <= 0 {
		return nil
	}
	return &messageCache{max: max, ttl: ttl, byID: map[string]*cacheEntry{}}
}

// put keeps the parts of msg that an attempt reads, for uses takes. A
// message larger than an eighth of the cache is not kept.
func (c *messageCache) put(msg *store.Message, uses int, now time.Time) {
	cost := int64(len(msg.Raw)) + cacheEntryOverhead
	if c == nil || uses <= 0 || cost > c.max/8 {
		return
	}
	kept := &store.Message{
		ID: msg.ID, Login: msg.Login, Route: msg.Route, MailFrom: msg.MailFrom, ReturnPath: msg.ReturnPath,
		Recipients: msg.Recipients, Size: msg.Size, Raw: msg.Raw,
		Processing: store.Processing{Features: msg.Processing.Features},
	}
	e := &cacheEntry{msg: kept, uses: uses, cost: cost, added: now}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.byID[msg.ID]; old != nil {
		c.drop(old)
	}
	c.byID[msg.ID] = e
	c.queue = append(c.queue, e)
	c.size += cost
	c.evict(now)
}

// take returns the message with id for one delivery's attempt, or nil.
func (c *messageCache) take(id string, now time.Time) *store.Message {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byID[id]
	if e == nil {
		return nil
	}
	if now.Sub(e.added) >= c.ttl {
		c.drop(e)
		return nil
	}
	msg := e.msg
	e.uses--
	if e.uses == 0 {
		c.drop(e)
	}
	return msg
}

// drop forgets e (and lets its message go); its queue slot is skipped
// later.
func (c *messageCache) drop(e *cacheEntry) {
	delete(c.byID, e.msg.ID)
	c.size -= e.cost
	e.gone, e.msg = true, nil
}

// evict drops the oldest entries while the cache is too large or they are
// too old, and compacts the queue.
func (c *messageCache) evict(now time.Time) {
	for c.head < len(c.queue) {
		e := c.queue[c.head]
		if !e.gone && c.size <= c.max && now.Sub(e.added) < c.ttl {
			break
		}
		if !e.gone {
			c.drop(e)
		}
		c.queue[c.head] = nil
		c.head++
	}
	// Compact when the dead slots (before head, or taken behind a live
	// entry that holds the head) outnumber the live ones.
	if dead := len(c.queue) - len(c.byID); dead > 64 && dead > len(c.byID) {
		kept := c.queue[:0]
		for _, e := range c.queue[c.head:] {
			if !e.gone {
				kept = append(kept, e)
			}
		}
		clear(c.queue[len(kept):])
		c.queue, c.head = kept, 0
	}
}

// stats returns the number of messages held and their cost in bytes.
func (c *messageCache) stats() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID), c.size
}
