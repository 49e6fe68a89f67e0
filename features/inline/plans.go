package inline

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
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

// planCache keeps the plans of the last distinct keys seen: a clockCache
// (bounded, CLOCK eviction, as sheetCache) of entries found by a hash of
// the key and compared with it in full.
type planCache struct {
	seed maphash.Seed
	*clockCache[*planEntry]
}

// planEntry is one cached plan.
type planEntry struct {
	key  []byte // a private copy
	plan *plan
}

func newPlanCache(max int) *planCache {
	return &planCache{seed: maphash.MakeSeed(), clockCache: newClockCache[*planEntry](max)}
}

// hash returns the hash of key.
func (c *planCache) hash(key []byte) uint64 { return maphash.Bytes(c.seed, key) }

// get returns the plan cached for key, or nil.
func (c *planCache) get(hash uint64, key []byte) *plan {
	e, ok := c.clockCache.get(hash, func(e *planEntry) bool { return bytes.Equal(e.key, key) })
	if !ok {
		return nil
	}
	return e.plan
}

// put caches p under a copy of key unless another goroutine planned the
// same document meanwhile.
func (c *planCache) put(hash uint64, key []byte, p *plan) {
	c.clockCache.put(hash, &planEntry{key: bytes.Clone(key), plan: p}, func(o *planEntry) bool { return bytes.Equal(o.key, key) })
}
