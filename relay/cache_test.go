package relay

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/store"
)

func cacheMsg(id string, size int) *store.Message {
	return &store.Message{ID: id, MailFrom: "a@s.test", Recipients: []string{"b@r.test"}, Raw: make([]byte, size),
		Original: make([]byte, size), Text: "text", Processing: store.Processing{Features: map[string]bool{"track_bounces": true}}}
}

// TestMessageCache: each delivery takes a message once; entries go when
// taken by the last one, when too old, or first in first out when the
// cache is full; a message too large for it is not kept.
func TestMessageCache(t *testing.T) {
	t0 := time.Now()
	const raw = 1000
	cost := int64(raw + cacheEntryOverhead)
	c := newMessageCache(8*cost, time.Minute) // eight entries at most

	c.put(cacheMsg("two", raw), 2, t0)
	for i, want := range []bool{true, true, false} {
		got := c.take("two", t0)
		if (got != nil) != want {
			t.Fatalf("take %d: %v, want a message: %v", i, got, want)
		}
		if got != nil {
			if got.ID != "two" || len(got.Raw) != raw || got.MailFrom != "a@s.test" || got.Recipients[0] != "b@r.test" ||
				!got.Processing.Features["track_bounces"] {
				t.Errorf("kept %+v", got)
			}
			if got.Original != nil || got.Text != "" {
				t.Error("kept Original or Text, which an attempt does not read")
			}
		}
	}
	if n, size := c.stats(); n != 0 || size != 0 {
		t.Errorf("after the last take: %d entries, %d bytes", n, size)
	}

	c.put(cacheMsg("old", raw), 1, t0)
	if c.take("old", t0.Add(time.Minute)) != nil {
		t.Error("an entry older than the TTL was served")
	}
	if n, _ := c.stats(); n != 0 {
		t.Errorf("%d entries after the expired take", n)
	}

	for i := range 10 {
		c.put(cacheMsg(fmt.Sprint(i), raw), 1, t0)
	}
	if n, size := c.stats(); n != 8 || size != 8*cost {
		t.Errorf("%d entries, %d bytes; want 8, %d", n, size, 8*cost)
	}
	for i := range 10 {
		if got := c.take(fmt.Sprint(i), t0); (got != nil) != (i >= 2) {
			t.Errorf("message %d: %v after 10 puts in a cache of 8", i, got)
		}
	}

	c.put(cacheMsg("young", raw), 1, t0)
	c.put(cacheMsg("later", raw), 1, t0.Add(2*time.Minute)) // evicts the expired one
	if n, _ := c.stats(); n != 1 || c.take("young", t0) != nil {
		t.Errorf("%d entries; the expired one is still there", n)
	}

	c.put(cacheMsg("huge", raw+1), 1, t0)
	if c.take("huge", t0) != nil {
		t.Error("a message of more than an eighth of the cache was kept")
	}

	var off *messageCache // Config.MessageCache < 0
	off.put(cacheMsg("x", 1), 1, t0)
	if off.take("x", t0) != nil || newMessageCache(-1, time.Minute) != nil {
		t.Error("a cache that is off served a message")
	}
}

// TestMessageCacheCompacts: entries taken behind one that is never taken
// do not pile up in the eviction queue, and their messages are let go.
func TestMessageCacheCompacts(t *testing.T) {
	t0 := time.Now()
	c := newMessageCache(1<<30, time.Hour)
	c.put(cacheMsg("stuck", 10), 1, t0) // its delivery went to another worker
	for i := range 10000 {
		id := fmt.Sprint(i)
		c.put(cacheMsg(id, 10), 1, t0)
		if c.take(id, t0) == nil {
			t.Fatalf("message %d not served", i)
		}
	}
	c.mu.Lock()
	queued := len(c.queue) - c.head
	for _, e := range c.queue[c.head:] {
		if e.gone && e.msg != nil {
			t.Error("a dropped entry still holds its message")
			break
		}
	}
	c.mu.Unlock()
	if queued > 200 {
		t.Errorf("%d queue slots for 1 live entry", queued)
	}
	if c.take("stuck", t0) == nil {
		t.Error("the entry behind which the others were taken is gone")
	}
}

// TestMessageCacheConcurrent puts and takes from many goroutines (run it
// with -race).
func TestMessageCacheConcurrent(t *testing.T) {
	c := newMessageCache(64*(100+cacheEntryOverhead), time.Minute)
	var wg sync.WaitGroup
	var mu sync.Mutex
	served := 0
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				id := fmt.Sprintf("%d-%d", g, i)
				c.put(cacheMsg(id, 100), 2, time.Now())
				for range 2 {
					if m := c.take(id, time.Now()); m != nil {
						if m.ID != id {
							t.Errorf("took %s for %s", m.ID, id)
						}
						mu.Lock()
						served++
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	if n, size := c.stats(); n != 0 || size != 0 {
		t.Errorf("%d entries, %d bytes left after every take", n, size)
	}
	if served == 0 {
		t.Error("nothing was served")
	}
}
