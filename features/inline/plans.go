package inline

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// DefaultPlanCache is the number of plans an Inliner keeps when
// Options.PlanCache is zero.
const DefaultPlanCache = 32

// maxPlanKeyBytes bounds the key of one cached plan (the marked copy of
// the input and its sheets): a larger document is inlined afresh and its
// plan not kept.
const maxPlanKeyBytes = 128 << 10

// plan is what inlining learnt from one document that depends only on the
// copy of it given to the HTML parser (the marked copy: every start tag,
// every attribute the tree or a selector reads, text and comments only as
// far as the tree depends on them) and on the text of its <style>
// elements: which sheets take part, the fate of every selector, and the
// style attribute each start tag receives, by tag index. Messages made from
// one template that differ only in their text and in attributes no selector
// reads (a greeting, personalised links) have the same marked copy and
// sheets, hence the same plan: they skip the parse and the cascade. What
// depends on the bytes of the input (where each edit goes) is recomputed
// from the input every time. A plan never changes once built.
type plan struct {
	set    *sheetSet // nil: no rule takes part, the input stays as it is
	sheets []int     // the processed <style> elements, by index in scanResult.styles
	flags  []uint8   // document.flags after the cascade
	tags   []tagStyle
}

// tagStyle is the style attribute a start tag receives.
type tagStyle struct {
	tag   int    // index in scanResult.tags
	value []byte // from `="` to the closing `"`
}

// planKey builds in d.key the cache key of d: quirks mode, the text of
// every <style> element and whether it is downlevel-revealed, and the
// marked copy.
func (d *document) planKey() []byte {
	k := d.key[:0]
	if d.quirks {
		k = append(k, 1)
	} else {
		k = append(k, 0)
	}
	k = binary.AppendUvarint(k, uint64(len(d.scan.styles)))
	for _, s := range d.scan.styles {
		if s.revealed {
			k = append(k, 1)
		} else {
			k = append(k, 0)
		}
		k = binary.AppendUvarint(k, uint64(s.textEnd-s.textStart))
		k = append(k, d.src[s.textStart:s.textEnd]...)
	}
	k = append(k, d.scan.marked...)
	d.key = k
	return k
}

// newPlan returns the plan of d after its cascade, with copies of what
// points into d.
func (d *document) newPlan() *plan {
	p := &plan{set: d.set}
	if d.set == nil {
		return p
	}
	p.sheets = make([]int, len(d.sheets))
	for i, s := range d.sheets {
		p.sheets[i] = s.style
	}
	p.flags = append([]uint8(nil), d.flags...)
	size := 0
	for _, t := range d.tagStyles {
		size += len(t.value)
	}
	buf := make([]byte, 0, size)
	p.tags = make([]tagStyle, len(d.tagStyles))
	for i, t := range d.tagStyles {
		buf = append(buf, t.value...)
		p.tags[i] = tagStyle{tag: t.tag, value: buf[len(buf)-len(t.value) : len(buf) : len(buf)]}
	}
	return p
}

// usePlan sets d up as if it had been parsed and cascaded to p.
func (d *document) usePlan(p *plan) {
	d.set = p.set
	if p.set == nil {
		return
	}
	d.rules = p.set.rules
	for _, si := range p.sheets {
		s := d.scan.styles[si]
		d.sheets = append(d.sheets, sheet{style: si, text: d.src[s.textStart:s.textEnd]})
	}
	d.flags = append(d.flags[:0], p.flags...)
	d.tagStyles = append(d.tagStyles[:0], p.tags...)
}

// planCache keeps the plans of the last distinct keys seen, bounded in
// entries, evicting with the CLOCK algorithm as sheetCache does. Entries
// are found by a hash of the key and compared with it in full.
type planCache struct {
	seed    maphash.Seed
	mu      sync.RWMutex
	entries map[uint64][]*planEntry
	ring    []*planEntry // at most max entries
	hand    int
	max     int
}

// planEntry is one cached plan.
type planEntry struct {
	hash uint64
	key  []byte // a private copy
	plan *plan
	used atomic.Bool // looked up since the clock hand last passed
}

func newPlanCache(max int) *planCache {
	return &planCache{seed: maphash.MakeSeed(), entries: make(map[uint64][]*planEntry, max), max: max}
}

// hash returns the hash of key.
func (c *planCache) hash(key []byte) uint64 { return maphash.Bytes(c.seed, key) }

// get returns the plan cached for key, or nil.
func (c *planCache) get(hash uint64, key []byte) *plan {
	c.mu.RLock()
	var found *planEntry
	for _, e := range c.entries[hash] {
		if bytes.Equal(e.key, key) {
			found = e
			break
		}
	}
	c.mu.RUnlock()
	if found == nil {
		return nil
	}
	if !found.used.Load() {
		found.used.Store(true)
	}
	return found.plan
}

// put caches p under a copy of key, evicting an entry when the cache is
// full.
func (c *planCache) put(hash uint64, key []byte, p *plan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.entries[hash] {
		if bytes.Equal(o.key, key) {
			return // another goroutine planned the same document
		}
	}
	e := &planEntry{hash: hash, key: bytes.Clone(key), plan: p}
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
func (c *planCache) remove(e *planEntry) {
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

// len returns the number of cached plans.
func (c *planCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.ring)
}
