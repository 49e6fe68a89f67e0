package web

import (
	"strconv"
	"strings"

	"github.com/smtpgate/smtpgate/store"
)

// diffLine is one line of a line diff.
type diffLine struct {
	// Op is " " for a line both sides have, "-" for a line only the
	// original has, "+" for a line only the delivered message has, and "~"
	// for a run of unchanged lines left out (Text says how many).
	Op   string `json:"op"`
	Text string `json:"text"`
}

// diffAnswer is what GET /api/v1/messages/{id}/diff answers: the processing
// record and line diffs of the decoded header fields, HTML body and text
// body of the message as submitted (original) and as delivered.
type diffAnswer struct {
	Changed    bool                    `json:"changed"`
	Features   map[string]bool         `json:"features"`
	Stats      map[string]int          `json:"stats"`
	Notes      []string                `json:"notes"`
	Directives []store.DirectiveRecord `json:"directives"`
	Headers    []diffLine              `json:"headers"`
	HTML       []diffLine              `json:"html"`
	Text       []diffLine              `json:"text"`
}

// Diff limits.
const (
	diffContext   = 3    // unchanged lines shown around a change
	diffMaxEdits  = 1000 // beyond this many edits the middle is shown as replaced
	diffMaxLines  = 50_000
	diffLongLine  = 200 // HTML lines longer than this are split before each tag
	diffLineBytes = 2000
)

// messageDiff compares m.Original (or m.Raw when the features changed
// nothing) with m.Raw.
func (s *Server) messageDiff(m *store.Message) diffAnswer {
	p := m.Processing
	out := diffAnswer{Changed: m.Original != nil, Features: p.Features, Stats: p.Stats,
		Notes: nonNil(p.Notes), Directives: nonNil(p.Directives),
		Headers: []diffLine{}, HTML: []diffLine{}, Text: []diffLine{}}
	if out.Features == nil {
		out.Features = map[string]bool{}
	}
	if out.Stats == nil {
		out.Stats = map[string]int{}
	}
	if m.Original == nil {
		return out
	}
	before, after := s.extract(m.ID, m.Original), s.extract(m.ID, m.Raw)
	headerLines := func(hs []headerField) []string {
		lines := make([]string, 0, len(hs))
		for _, h := range hs {
			lines = append(lines, h.Name+": "+h.Value)
		}
		return lines
	}
	out.Headers = lineDiff(headerLines(headerList(before.Headers)), headerLines(headerList(after.Headers)))
	out.HTML = lineDiff(htmlLines(before.HTML), htmlLines(after.HTML))
	out.Text = lineDiff(textLines(before.Text), textLines(after.Text))
	return out
}

// textLines splits a body into lines without their line ends.
func textLines(s string) []string {
	if s == "" {
		return nil
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		if len(l) > diffLineBytes {
			lines[i] = l[:diffLineBytes] + "…"
		}
	}
	return lines
}

// htmlLines splits an HTML body into lines, breaking long lines before
// each tag so that one changed attribute does not mark a whole minified
// document as changed.
func htmlLines(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(strings.ReplaceAll(s, "\r\n", "\n"), "\n"), "\n") {
		if len(l) <= diffLongLine {
			out = append(out, l)
			continue
		}
		for len(l) > 0 {
			i := strings.IndexByte(l[1:], '<')
			if i < 0 {
				out = append(out, l)
				break
			}
			out = append(out, l[:i+1])
			l = l[i+1:]
		}
	}
	for i, l := range out {
		if len(l) > diffLineBytes {
			out[i] = l[:diffLineBytes] + "…"
		}
	}
	return out
}

// lineDiff returns the shortest edit script from a to b (Myers' algorithm
// after the common prefix and suffix are set aside), with unchanged runs
// cut down to diffContext lines around each change. Equal inputs give an
// empty diff.
func lineDiff(a, b []string) []diffLine {
	if len(a) > diffMaxLines {
		a = a[:diffMaxLines]
	}
	if len(b) > diffMaxLines {
		b = b[:diffMaxLines]
	}
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	if pre == len(a) && pre == len(b) {
		return []diffLine{}
	}
	var full []diffLine
	for _, l := range a[:pre] {
		full = append(full, diffLine{" ", l})
	}
	full = append(full, myers(a[pre:len(a)-suf], b[pre:len(b)-suf])...)
	for _, l := range a[len(a)-suf:] {
		full = append(full, diffLine{" ", l})
	}
	return trimContext(full)
}

// myers returns an edit script from a to b with the fewest insertions and
// deletions, or, when that needs more than diffMaxEdits edits, all of a
// removed and all of b added.
func myers(a, b []string) []diffLine {
	n, m := len(a), len(b)
	maxD := min(n+m, diffMaxEdits)
	off := maxD + 1
	v := make([]int, 2*maxD+3)
	var trace [][]int
	for d := 0; d <= maxD; d++ {
		trace = append(trace, append([]int(nil), v[off-d-1:off+d+2]...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || k != d && v[off+k-1] < v[off+k+1] {
				x = v[off+k+1] // down: an insertion
			} else {
				x = v[off+k-1] + 1 // right: a deletion
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x, y = x+1, y+1
			}
			v[off+k] = x
			if x >= n && y >= m {
				return backtrack(a, b, trace, d)
			}
		}
	}
	out := make([]diffLine, 0, n+m)
	for _, l := range a {
		out = append(out, diffLine{"-", l})
	}
	for _, l := range b {
		out = append(out, diffLine{"+", l})
	}
	return out
}

// backtrack walks the saved frontiers back from (len(a), len(b)) after d
// edits. trace[e] holds v[-e-1 .. e+1] as it was before round e.
func backtrack(a, b []string, trace [][]int, d int) []diffLine {
	get := func(e, k int) int { return trace[e][k+e+1] }
	x, y := len(a), len(b)
	var rev []diffLine
	for e := d; e > 0; e-- {
		k := x - y
		var prevK int
		if k == -e || k != e && get(e, k-1) < get(e, k+1) {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevX := get(e, prevK)
		prevY := prevX - prevK
		for x > prevX && y > prevY {
			x, y = x-1, y-1
			rev = append(rev, diffLine{" ", a[x]})
		}
		if x == prevX {
			y--
			rev = append(rev, diffLine{"+", b[y]})
		} else {
			x--
			rev = append(rev, diffLine{"-", a[x]})
		}
	}
	for x > 0 && y > 0 {
		x, y = x-1, y-1
		rev = append(rev, diffLine{" ", a[x]})
	}
	out := make([]diffLine, len(rev))
	for i, l := range rev {
		out[len(rev)-1-i] = l
	}
	return out
}

// trimContext keeps diffContext unchanged lines on each side of a change
// and replaces the rest of each unchanged run by one "~" line.
func trimContext(full []diffLine) []diffLine {
	out := make([]diffLine, 0, len(full))
	for i := 0; i < len(full); {
		if full[i].Op != " " {
			out = append(out, full[i])
			i++
			continue
		}
		j := i
		for j < len(full) && full[j].Op == " " {
			j++
		}
		keepHead, keepTail := diffContext, diffContext
		if i == 0 {
			keepHead = 0
		}
		if j == len(full) {
			keepTail = 0
		}
		if j-i <= keepHead+keepTail+1 {
			out = append(out, full[i:j]...)
		} else {
			out = append(out, full[i:i+keepHead]...)
			skipped := j - i - keepHead - keepTail
			out = append(out, diffLine{"~", strconv.Itoa(skipped) + " unchanged lines"})
			out = append(out, full[j-keepTail:j]...)
		}
		i = j
	}
	return out
}
