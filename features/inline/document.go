package inline

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/html"
)

// wideLimit is the number of element children of one parent, and
// manyLimit the number of elements, beyond which selectors whose matching
// cost grows with the number of siblings or descendants (:nth-child,
// :nth-of-type, :has, ...) are kept in <style> instead of being evaluated,
// so that a hostile message cannot make matching quadratic.
const (
	wideLimit = 1000
	manyLimit = 20000
)

// document is the state of one Inline call.
type document struct {
	src   []byte
	scan  scanResult
	elems []elem // rendered elements in document order
	// costly is set when the document is too wide or too large for
	// sibling- and descendant-counting selectors.
	costly bool
	// quirks: the document renders in quirks mode, where class and id
	// selectors ignore ASCII case.
	quirks bool
	sheets []sheet
	// set is the compiled form of the sheets, maybe shared with other
	// documents: read only. rules is set.rules.
	set *sheetSet
	// ownSet: set refers to no byte of src (it was cached).
	ownSet bool
	rules  []rule
	// flags holds what this document learnt about each member of the
	// rules, by member.index.
	flags []uint8
	// keepSome: some flags have flagKeep.
	keepSome bool
	tagEdits []edit
	// tagStyles are the style attributes the cascade gave start tags,
	// their values in vals (or in a plan).
	tagStyles []tagStyle
	p         cssParser

	// Scratch reused by the next document when this one goes back to
	// its Inliner's pool.
	st    cascadeState
	texts [][]byte
	edits []edit
	arena []byte // the text of tagEdits
	vals  []byte // the values of tagStyles
	key   []byte // the plan cache key
}

// maxPooledBytes bounds the marked copy of a document whose buffers are
// kept for reuse: one huge message does not pin its memory.
const maxPooledBytes = 256 << 10

// reset makes d ready for src, keeping its buffers.
func (d *document) reset(src []byte) {
	d.scan.reset()
	clear(d.elems)
	clear(d.texts)
	clear(d.sheets)
	clear(d.tagStyles)
	clear(d.p.names)
	clear(d.st.entries[:cap(d.st.entries)])
	clear(d.st.out[:cap(d.st.out)])
	clear(d.st.inline[:cap(d.st.inline)])
	*d = document{
		src:       src,
		scan:      d.scan,
		elems:     d.elems[:0],
		sheets:    d.sheets[:0],
		flags:     d.flags[:0],
		tagEdits:  d.tagEdits[:0],
		tagStyles: d.tagStyles[:0],
		p:         cssParser{toks: d.p.toks[:0], stack: d.p.stack[:0], names: d.p.names},
		st:        d.st,
		texts:     d.texts[:0],
		edits:     d.edits[:0],
		arena:     d.arena[:0],
		vals:      d.vals[:0],
		key:       d.key[:0],
	}
}

// Per-document flags of a selector member.
const (
	flagUsed    uint8 = 1 << iota // matched at least one element that received its declarations
	flagBlocked                   // matched an element without a start tag of its own
	flagKeep                      // too costly to evaluate on this document: kept in <style>
)

// elem is one rendered element of the parse tree.
type elem struct {
	n   *html.Node
	tag int // index in scan.tags, or -1 when it has no start tag of its own
}

// sheet is one processed <style> element.
type sheet struct {
	style int    // index in scan.styles
	text  []byte // its raw text, a slice of the input
}

// newDocument runs the tokenizer pass over src.
func newDocument(src []byte) *document {
	d := &document{}
	d.init(src)
	return d
}

// init resets d for src and runs the tokenizer pass.
func (d *document) init(src []byte) {
	d.reset(src)
	d.scan.scanInto(src)
}

// getDocument returns a document for src from in's pool.
func (in *Inliner) getDocument(src []byte) *document {
	d, _ := in.pool.Get().(*document)
	if d == nil {
		d = &document{}
	}
	d.init(src)
	return d
}

// putDocument gives d back to in's pool, without what it points to.
func (in *Inliner) putDocument(d *document) {
	if cap(d.scan.marked) > maxPooledBytes {
		return
	}
	d.reset(nil)
	in.pool.Put(d)
}

// parse parses the marked copy of the input and ties its elements to their
// start tags.
func (d *document) parse() error {
	root, err := html.Parse(bytes.NewReader(d.scan.marked))
	if err != nil {
		return err
	}
	d.elems = slices.Grow(d.elems[:0], len(d.scan.tags))
	d.quirks = quirksDoctype(d.scan.doctype)
	d.p.quirks = d.quirks
	d.walk(root, false)
	return nil
}

// walk visits the element children of n in document order. hidden is set
// inside subtrees that are never rendered (head, template, script, ...).
func (d *document) walk(n *html.Node, hidden bool) {
	children := 0
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type != html.ElementNode {
			continue
		}
		children++
		tag := d.bind(c)
		if d.quirks {
			for i, a := range c.Attr {
				if a.Namespace == "" && (a.Key == "class" || a.Key == "id") {
					c.Attr[i].Val = lowerString([]byte(a.Val))
				}
			}
		}
		h := hidden
		if c.Namespace == "" {
			switch c.Data {
			case "head", "template", "script", "style", "title", "meta", "link", "base":
				h = true
			}
		}
		if !h {
			d.elems = append(d.elems, elem{n: c, tag: tag})
		}
		d.walk(c, h)
	}
	if children > wideLimit {
		d.costly = true
	}
}

// bind reads and removes the marker attributes of n and ties n to its start
// tag. It returns the start tag's index, or -1 when n has none (an element
// the parser created, a clone made by the adoption agency, a marker that
// does not name a start tag of the same name). An html or body element can
// hold several markers, merged from repeated tags: the first one is the
// tag that created it or first gave it attributes.
func (d *document) bind(n *html.Node) int {
	idx, found := -1, false
	for i := 0; i < len(n.Attr); {
		a := n.Attr[i]
		if !strings.HasPrefix(a.Key, d.scan.prefix) || a.Namespace != "" {
			i++
			continue
		}
		n.Attr = append(n.Attr[:i], n.Attr[i+1:]...)
		if found {
			continue
		}
		found = true
		v, err := strconv.Atoi(a.Key[len(d.scan.prefix):])
		if err != nil || v < 0 || v >= len(d.scan.tags) || a.Val != "" {
			continue
		}
		t := &d.scan.tags[v]
		if t.node != nil || !equalFoldBytes(d.src[t.start+1:t.nameEnd], []byte(n.Data)) {
			continue
		}
		t.node, idx = n, v
	}
	return idx
}

// loadSheets finds the <style> elements that take part in inlining and
// gets their compiled rules from in.
func (d *document) loadSheets(in *Inliner) {
	texts := d.texts[:0]
	defer func() { d.texts = texts }()
	for si, s := range d.scan.styles {
		n := d.scan.tags[s.tag].node
		if s.revealed || n == nil || n.Namespace != "" || n.Data != "style" || !d.processable(n) {
			continue
		}
		text := d.src[s.textStart:s.textEnd]
		d.sheets = append(d.sheets, sheet{style: si, text: text})
		texts = append(texts, text)
	}
	if len(texts) == 0 {
		return
	}
	d.set, d.ownSet = in.sheetSet(texts, d.quirks)
	d.rules = d.set.rules
	d.p.base = d.set.names
	d.flags = slices.Grow(d.flags[:0], d.set.members)[:d.set.members]
	clear(d.flags)
	if len(d.elems) > manyLimit {
		d.costly = true
	}
	if !d.costly {
		return
	}
	for i := range d.rules {
		r := &d.rules[i]
		for _, m := range r.members {
			if m.class == memberInline && isCostly(d.sheets[r.sheet].text[m.start:m.end]) {
				d.flags[m.index] |= flagKeep
				d.keepSome = true
			}
		}
	}
}

// processable reports whether the <style> element n is one this package may
// read and rewrite: an active CSS sheet for the screen, not opted out.
func (d *document) processable(n *html.Node) bool {
	for p := n.Parent; p != nil; p = p.Parent {
		if p.Type == html.ElementNode && (p.Data == "template" || p.Namespace != "") {
			return false
		}
	}
	for _, a := range n.Attr {
		if a.Namespace != "" {
			continue
		}
		v := bytes.TrimSpace([]byte(a.Val))
		switch a.Key {
		case "data-embed":
			return false
		case "data-inline":
			if equalFoldASCII(v, "false") {
				return false
			}
		case "media":
			if len(v) > 0 && !equalFoldASCII(v, "all") && !equalFoldASCII(v, "screen") {
				return false
			}
		case "type":
			if len(v) > 0 && !equalFoldASCII(v, "text/css") {
				return false
			}
		}
	}
	return true
}

// isCostly reports whether a selector uses a pseudo-class whose matching
// cost grows with the number of siblings or descendants.
func isCostly(sel []byte) bool {
	sel = bytes.ToLower(sel)
	return bytes.Contains(sel, []byte("nth-")) || bytes.Contains(sel, []byte("-of-type")) ||
		bytes.Contains(sel, []byte("last-")) || bytes.Contains(sel, []byte("only-")) ||
		bytes.Contains(sel, []byte("has(")) || bytes.Contains(sel, []byte("empty"))
}
