package inline

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
)

// DefaultSheetCache is the number of compiled style sheet sets an Inliner
// keeps when Options.SheetCache is zero.
const DefaultSheetCache = 64

// maxCachedSheetBytes bounds the text of one cached sheet set: a larger
// one is compiled for its document and not kept.
const maxCachedSheetBytes = 64 << 10

// sheetSet is the compiled form of the processed <style> elements of a
// document: their rules in cascade order, the selectors filed by bucket and
// the interned property names. It never changes once built, so documents
// with the same sheets share one (what changes per document lives in
// document.flags).
type sheetSet struct {
	rules   []rule
	names   map[string]int
	members int // number of members of all rules
	buckets buckets
}

// compileSheets parses the sheets texts (in document order) as one
// document in quirks mode or not would.
func compileSheets(texts [][]byte, quirks bool) *sheetSet {
	p := cssParser{quirks: quirks}
	var rules []rule
	for i, text := range texts {
		rules = p.parseSheet(text, i, rules)
	}
	set := &sheetSet{rules: rules, names: p.names}
	for i := range rules {
		r := &rules[i]
		r.order = i
		for j := range r.members {
			r.members[j].index = set.members
			set.members++
		}
	}
	set.buckets = newBuckets(rules, nil)
	return set
}

// sheetCache keeps the sheetSets of the last distinct sheet texts seen, so
// that messages made from one template (bulk mail) parse their style sheet
// and compile its selectors once. It is a clockCache (bounded, CLOCK
// eviction) of entries found by a hash of the texts and compared with them
// in full.
type sheetCache struct {
	seed maphash.Seed
	*clockCache[*cacheEntry]
}

// cacheEntry is one cached sheetSet.
type cacheEntry struct {
	quirks bool
	texts  [][]byte // private copies of the sheet texts
	set    *sheetSet
}

// matches reports whether e was compiled from texts in quirks mode or not.
func (e *cacheEntry) matches(texts [][]byte, quirks bool) bool {
	if e.quirks != quirks || len(e.texts) != len(texts) {
		return false
	}
	for i, t := range texts {
		if !bytes.Equal(e.texts[i], t) {
			return false
		}
	}
	return true
}

func newSheetCache(max int) *sheetCache {
	return &sheetCache{seed: maphash.MakeSeed(), clockCache: newClockCache[*cacheEntry](max)}
}

// hash returns the key of texts in quirks mode or not.
func (c *sheetCache) hash(texts [][]byte, quirks bool) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	if quirks {
		h.WriteByte(1)
	} else {
		h.WriteByte(0)
	}
	var n [binary.MaxVarintLen64]byte
	for _, t := range texts {
		h.Write(binary.AppendUvarint(n[:0], uint64(len(t))))
		h.Write(t)
	}
	return h.Sum64()
}

// get returns the sheetSet cached for texts, or nil.
func (c *sheetCache) get(hash uint64, texts [][]byte, quirks bool) *sheetSet {
	e, ok := c.clockCache.get(hash, func(e *cacheEntry) bool { return e.matches(texts, quirks) })
	if !ok {
		return nil
	}
	return e.set
}

// put caches e under hash unless another goroutine compiled the same
// sheets meanwhile.
func (c *sheetCache) put(hash uint64, e *cacheEntry) {
	c.clockCache.put(hash, e, func(o *cacheEntry) bool { return o.matches(e.texts, e.quirks) })
}

// sheetSet returns the compiled form of the document's sheets: from the
// cache when in has one and has seen them, else compiled (and cached).
// A set that is cached is compiled from a copy of the texts, so that it
// never refers to the caller's input; owned reports such a set.
func (in *Inliner) sheetSet(texts [][]byte, quirks bool) (set *sheetSet, owned bool) {
	size := 0
	for _, t := range texts {
		size += len(t)
	}
	if in.cache == nil || size > maxCachedSheetBytes {
		return compileSheets(texts, quirks), false
	}
	hash := in.cache.hash(texts, quirks)
	if set := in.cache.get(hash, texts, quirks); set != nil {
		return set, true
	}
	own := make([][]byte, len(texts))
	copied := make([]byte, 0, size)
	for i, t := range texts {
		copied = append(copied, t...)
		own[i] = copied[len(copied)-len(t) : len(copied) : len(copied)]
	}
	e := &cacheEntry{quirks: quirks, texts: own, set: compileSheets(own, quirks)}
	in.cache.put(hash, e)
	return e.set, true
}
