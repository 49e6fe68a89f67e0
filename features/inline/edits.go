package inline

import (
	"slices"
)

// edit replaces src[start:end] with text (an insertion when start == end).
type edit struct {
	start, end int
	text       []byte
}

// applyEdits returns src with the non-overlapping edits applied.
func applyEdits(src []byte, edits []edit) []byte {
	slices.SortStableFunc(edits, func(a, b edit) int { return a.start - b.start })
	size := len(src)
	for _, e := range edits {
		size += len(e.text) - (e.end - e.start)
	}
	out := make([]byte, 0, size)
	pos := 0
	for _, e := range edits {
		if e.start < pos {
			continue // overlapping edits cannot be produced; never apply one
		}
		out = append(out, src[pos:e.start]...)
		out = append(out, e.text...)
		pos = e.end
	}
	return append(out, src[pos:]...)
}

// styleEdits decides the fate of every rule of every processed sheet and
// returns the edits of the <style> elements: rules fully inlined are cut,
// selector lists lose their inlined members, and an emptied element is
// removed unless keep is set.
func (d *document) styleEdits(keep bool) []edit {
	edits := d.edits[:0]
	defer func() { d.edits = edits }()
	ri := 0
	for si, sh := range d.sheets {
		text := sh.text
		var out []byte
		pos, prevCut := 0, 0
		changed, kept := false, false
		for ; ri < len(d.rules) && d.rules[ri].sheet == si; ri++ {
			r := &d.rules[ri]
			switch {
			case r.kind == junkRule:
				continue
			case r.kind == atRule || r.verbatim || r.nested:
				kept = true
				continue
			}
			all, some := len(r.decls) == 0, false
			if !all {
				all = true
				for _, m := range r.members {
					if d.removable(m) {
						some = true
					} else {
						all = false
					}
				}
			}
			switch {
			case all:
				a, b := cutSpan(text, r.start, r.end, prevCut)
				out = append(out, text[pos:a]...)
				pos, prevCut, changed = b, b, true
			case some:
				out = append(out, text[pos:r.preludeStart]...)
				first := true
				for _, m := range r.members {
					if d.removable(m) {
						continue
					}
					if !first {
						out = append(out, ", "...)
					}
					out = append(out, text[m.start:m.end]...)
					first = false
				}
				pos, changed, kept = r.preludeEnd, true, true
			default:
				kept = true
			}
		}
		if !changed {
			continue
		}
		out = append(out, text[pos:]...)
		s := d.scan.styles[sh.style]
		start := d.scan.tags[s.tag].start
		if kept || keep || start > 0 && (d.src[start-1] == '<' || d.src[start-1] == '&') {
			// Removing the element would join a "<" or "&" before it
			// with the bytes after it into a tag or a character reference.
			edits = append(edits, edit{start: s.textStart, end: s.textEnd, text: out})
			continue
		}
		a, b := lineSpan(d.src, start, s.end)
		edits = append(edits, edit{start: a, end: b})
	}
	return edits
}

// removable reports whether a selector was fully inlined: it could be
// evaluated, matched at least one element, and every element it matched
// received its declarations.
func (d *document) removable(m member) bool {
	return m.class == memberInline && d.flags[m.index]&(flagUsed|flagBlocked|flagKeep) == flagUsed
}

// cutSpan widens the span [a,b) of a removed rule: to its whole line when
// it is alone on it, else over the blanks that follow it. The result never
// starts before min.
func cutSpan(text []byte, a, b, min int) (int, int) {
	left := a
	for left > min && (text[left-1] == ' ' || text[left-1] == '\t') {
		left--
	}
	right := b
	for right < len(text) && (text[right] == ' ' || text[right] == '\t') {
		right++
	}
	atStart := left == 0 || text[left-1] == '\n' || text[left-1] == '\r'
	atEnd := right == len(text) || text[right] == '\n' || text[right] == '\r'
	if !atStart || !atEnd {
		return a, right
	}
	if right < len(text) {
		if text[right] == '\r' {
			right++
		}
		if right < len(text) && text[right] == '\n' {
			right++
		}
	}
	return left, right
}

// lineSpan widens the span [a,b) of a removed element to its whole line
// when nothing else is on that line.
func lineSpan(src []byte, a, b int) (int, int) {
	left := a
	for left > 0 && (src[left-1] == ' ' || src[left-1] == '\t') {
		left--
	}
	right := b
	for right < len(src) && (src[right] == ' ' || src[right] == '\t') {
		right++
	}
	if left > 0 && src[left-1] != '\n' || right < len(src) && src[right] != '\n' && src[right] != '\r' {
		return a, b
	}
	if right < len(src) && src[right] == '\r' {
		right++
	}
	if right < len(src) && src[right] == '\n' {
		right++
	}
	return left, right
}
