package inline

import (
	"cmp"
	"math"
	"slices"

	"github.com/andybalholm/cascadia"
	"golang.org/x/net/html"
)

// Cascade levels, lowest first.
const (
	levelSheet           uint8 = iota // a style sheet declaration
	levelInline                       // the element's style attribute
	levelSheetImportant               // a style sheet !important
	levelInlineImportant              // a style attribute !important
)

// inlineOrder is the source order given to style attribute declarations:
// after every rule (the level decides anyway).
const inlineOrder = math.MaxInt

// selRef names one inlinable selector: a member of a rule.
type selRef struct {
	rule, member int
}

// entry is one declaration competing for an element, with its cascade key.
type entry struct {
	d     *decl
	level uint8
	spec  cascadia.Specificity
	order int // rule order, or inlineOrder
	idx   int // position inside its rule or style attribute
}

// compareEntries orders entries by cascade key, lowest first.
func compareEntries(a, b entry) int {
	if a.level != b.level {
		return cmp.Compare(a.level, b.level)
	}
	if a.spec != b.spec {
		if a.spec.Less(b.spec) {
			return -1
		}
		return 1
	}
	if a.order != b.order {
		return cmp.Compare(a.order, b.order)
	}
	return cmp.Compare(a.idx, b.idx)
}

// buckets index the inlinable selectors by the key of their right-most
// compound selector.
type buckets struct {
	ids, classes, tags map[string][]selRef
	universal          []selRef
}

// newBuckets files the inlinable members of the style rules, leaving out
// those whose flags say to keep them.
func newBuckets(rules []rule, flags []uint8) buckets {
	bs := buckets{ids: map[string][]selRef{}, classes: map[string][]selRef{}, tags: map[string][]selRef{}}
	for ri := range rules {
		r := &rules[ri]
		if r.kind != styleRule || r.verbatim {
			continue
		}
		for mi, m := range r.members {
			if m.class == memberInline && (flags == nil || flags[m.index]&flagKeep == 0) {
				bs.add(m.bucket, selRef{ri, mi})
			}
		}
	}
	return bs
}

// add files ref under b.
func (bs *buckets) add(b bucket, ref selRef) {
	var m map[string][]selRef
	switch b.kind {
	case 'i':
		m = bs.ids
	case 'c':
		m = bs.classes
	case 't':
		m = bs.tags
	default:
		bs.universal = append(bs.universal, ref)
		return
	}
	m[b.key] = append(m[b.key], ref)
}

// cascadeState is the scratch space of cascade, reused across elements.
type cascadeState struct {
	cands, matched []selRef
	entries, out   []entry
	winners        []int // by decl.id: index in entries of the winner, or -1
	inline         []decl
	toks           []tok
	attrs          []rawAttr
}

// cascade matches every rendered element against the inlinable selectors,
// resolves the cascade with the element's style attribute and records the
// rewritten style attributes as edits.
func (d *document) cascade() {
	bs := &d.set.buckets
	if d.keepSome {
		b := newBuckets(d.rules, d.flags)
		bs = &b
	}
	st := &d.st
	for _, e := range d.elems {
		d.matchElement(bs, st, e.n)
		if len(st.matched) == 0 {
			continue
		}
		if e.tag < 0 {
			for _, m := range st.matched {
				d.flags[d.rules[m.rule].members[m.member].index] |= flagBlocked
			}
			continue
		}
		for _, m := range st.matched {
			d.flags[d.rules[m.rule].members[m.member].index] |= flagUsed
		}
		d.resolve(st, e)
	}
}

// matchElement leaves in st.matched the inlinable selectors matching n.
func (d *document) matchElement(bs *buckets, st *cascadeState, n *html.Node) {
	st.cands = append(st.cands[:0], bs.tags[n.Data]...)
	for _, a := range n.Attr {
		if a.Namespace != "" {
			continue
		}
		switch a.Key {
		case "id":
			st.cands = append(st.cands, bs.ids[a.Val]...)
		case "class":
			st.cands = appendClassCands(st.cands, bs.classes, a.Val)
		}
	}
	st.cands = append(st.cands, bs.universal...)
	st.matched = st.matched[:0]
	for _, c := range st.cands {
		if d.rules[c.rule].members[c.member].sel.Match(n) {
			st.matched = append(st.matched, c)
		}
	}
}

// appendClassCands appends the selectors filed under each distinct class
// of the class attribute value v.
func appendClassCands(dst []selRef, classes map[string][]selRef, v string) []selRef {
	if len(classes) == 0 {
		return dst
	}
	for i := 0; i < len(v); {
		for i < len(v) && isHTMLSpace(v[i]) {
			i++
		}
		j := i
		for j < len(v) && !isHTMLSpace(v[j]) {
			j++
		}
		if j > i {
			c := v[i:j]
			if !seenClass(v[:i], c) {
				dst = append(dst, classes[c]...)
			}
		}
		i = j
	}
	return dst
}

// seenClass reports whether the class c already occurs in the class list v.
func seenClass(v, c string) bool {
	for i := 0; i < len(v); {
		for i < len(v) && isHTMLSpace(v[i]) {
			i++
		}
		j := i
		for j < len(v) && !isHTMLSpace(v[j]) {
			j++
		}
		if v[i:j] == c {
			return true
		}
		i = j
	}
	return false
}

// resolve computes the style attribute of the mapped element e from the
// declarations of the rules in st.matched and its own style attribute, and
// records the edit of its start tag.
func (d *document) resolve(st *cascadeState, e elem) {
	// A rule that matches through several of its selectors counts once,
	// with the highest specificity among them.
	slices.SortFunc(st.matched, func(a, b selRef) int {
		if a.rule != b.rule {
			return cmp.Compare(a.rule, b.rule)
		}
		sa, sb := d.rules[a.rule].members[a.member].spec, d.rules[b.rule].members[b.member].spec
		if sa == sb {
			return 0
		}
		if sb.Less(sa) {
			return -1
		}
		return 1
	})
	st.entries = st.entries[:0]
	for i, m := range st.matched {
		if i > 0 && st.matched[i-1].rule == m.rule {
			continue
		}
		r := &d.rules[m.rule]
		spec := r.members[m.member].spec
		for di := range r.decls {
			lv := levelSheet
			if r.decls[di].important {
				lv = levelSheetImportant
			}
			st.entries = append(st.entries, entry{d: &r.decls[di], level: lv, spec: spec, order: r.order, idx: di})
		}
	}
	if len(st.entries) == 0 {
		return
	}
	if style, ok := attrValue(e.n, "style"); ok {
		b := []byte(style)
		st.toks = lexCSS(b, st.toks[:0])
		st.inline, _ = d.p.parseDecls(b, st.toks, 0, len(st.toks), st.inline[:0])
		for di := range st.inline {
			lv := levelInline
			if st.inline[di].important {
				lv = levelInlineImportant
			}
			st.entries = append(st.entries, entry{d: &st.inline[di], level: lv, order: inlineOrder, idx: di})
		}
	}
	// The winner of each property, then every declaration of that
	// property from the winner's own block and level (fallbacks such as
	// "width:100%; width:-webkit-fill-available" survive), in cascade order.
	for len(st.winners) < d.p.nameCount() {
		st.winners = append(st.winners, -1)
	}
	for i, en := range st.entries {
		w := st.winners[en.d.id]
		if w < 0 || compareEntries(st.entries[w], en) < 0 {
			st.winners[en.d.id] = i
		}
	}
	st.out = st.out[:0]
	fromSheet := false
	for _, en := range st.entries {
		w := st.entries[st.winners[en.d.id]]
		if en.level == w.level && en.order == w.order {
			st.out = append(st.out, en)
			if en.order != inlineOrder {
				fromSheet = true
			}
		}
	}
	for _, en := range st.entries {
		st.winners[en.d.id] = -1
	}
	if !fromSheet {
		return
	}
	slices.SortFunc(st.out, compareEntries)
	d.tagStyles = append(d.tagStyles, tagStyle{tag: e.tag, value: d.styleValue(st)})
}

// styleValue serialises st.out as the value of a style attribute, from
// `="` to the closing `"`, in d.vals.
func (d *document) styleValue(st *cascadeState) []byte {
	b := d.vals
	from := len(b)
	b = append(b, `="`...)
	for i, en := range st.out {
		if i > 0 {
			b = append(b, "; "...)
		}
		b = appendEscaped(b, en.d.name)
		b = append(b, ": "...)
		b = appendValue(b, en.d.value)
		if en.level == levelInlineImportant {
			b = append(b, " !important"...)
		}
	}
	b = append(b, '"')
	d.vals = b
	return b[from:len(b):len(b)]
}

// appendTagEdits appends to edits the edits that give start tags their
// style attributes: each replaces the tag's style attribute, or is added
// after its last attribute.
func (d *document) appendTagEdits(edits []edit, tags []tagStyle) []edit {
	for _, ts := range tags {
		edits = append(edits, d.styleAttrEdit(ts.tag, ts.value))
	}
	return edits
}

// styleAttrEdit returns the edit that gives start tag ti the style
// attribute value (from `="` to the closing `"`).
func (d *document) styleAttrEdit(ti int, value []byte) edit {
	st := &d.st
	t := d.scan.tags[ti]
	st.attrs = scanAttrs(d.src, t.start, t.end, t.nameEnd, st.attrs[:0])
	b := d.arena
	from := len(b)
	ed := edit{start: t.nameEnd, end: t.nameEnd}
	found := false
	for _, a := range st.attrs {
		if !a.dup && equalFoldASCII(d.src[a.keyStart:a.keyEnd], "style") {
			ed.start, ed.end = a.keyStart, a.end
			b = append(b, d.src[a.keyStart:a.keyEnd]...)
			found = true
			break
		}
	}
	if !found {
		// After the last attribute: before a "/" or ">" the tokenizer read
		// as part of no attribute, and never inside an unquoted value.
		for i := len(st.attrs) - 1; i >= 0; i-- {
			if a := st.attrs[i]; a.keyStart != a.keyEnd {
				if !a.dangling {
					ed.start, ed.end = a.end, a.end
				}
				break
			}
		}
		b = append(b, " style"...)
	}
	b = append(b, value...)
	ed.text = b[from:len(b):len(b)]
	d.arena = b
	return ed
}

// appendValue appends the CSS value v escaped for a double-quoted
// attribute. A double-quoted CSS string without single quotes or escapes
// inside is written with single quotes ('Helvetica Neue' rather than
// &quot;Helvetica Neue&quot;), which means the same and reads better.
func appendValue(b, v []byte) []byte {
	for i := 0; i < len(v); {
		switch c := v[i]; c {
		case '\\':
			end := min(i+2, len(v))
			b = appendEscaped(b, v[i:end])
			i = end
		case '"', '\'':
			end, closed, plain := i+1, false, true
			for end < len(v) {
				if v[end] == '\\' {
					plain = false
					end += 2
					continue
				}
				if v[end] == c {
					closed = true
					break
				}
				if v[end] == '\'' {
					plain = false
				}
				end++
			}
			end = min(end, len(v))
			if c == '"' && closed && plain {
				b = append(b, '\'')
				b = appendEscaped(b, v[i+1:end])
				b = append(b, '\'')
			} else {
				b = appendEscaped(b, v[i:min(end+1, len(v))])
			}
			i = end + 1
		default:
			j := i + 1
			for j < len(v) && v[j] != '\\' && v[j] != '"' && v[j] != '\'' {
				j++
			}
			b = appendEscaped(b, v[i:j])
			i = j
		}
	}
	return b
}

// appendEscaped appends s escaped for a double-quoted attribute value.
func appendEscaped[T string | []byte](b []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b = append(b, "&amp;"...)
		case '"':
			b = append(b, "&quot;"...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// attrValue returns the value of n's attribute key (no namespace).
func attrValue(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key && a.Namespace == "" {
			return a.Val, true
		}
	}
	return "", false
}
