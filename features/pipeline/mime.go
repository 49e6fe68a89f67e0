package pipeline

import (
	"bytes"
	"mime"
	"strconv"
	"strings"
)

// Limits on the MIME tree: deeper or further parts are left as they are
// (with a note). Real mail nests four or five levels and has tens of parts.
const (
	maxDepth    = 24
	maxParts    = 1000
	maxBoundary = 200 // RFC 2046 allows 70; longer ones are accepted up to this
)

// kind is what the pipeline may do with a part.
type kind uint8

const (
	kindOpaque    kind = iota // kept byte for byte: images, files, calendars, message/rfc822, ...
	kindMultipart             // its parts are walked
	kindHTML                  // text/html: CSS inlining, click tracking, the open pixel
	kindText                  // text/plain: text link tracking
)

// part is one entity of the message: the message itself or a body part.
// Offsets are into the whole message, so that a part that does not change
// is copied from the input byte for byte.
type part struct {
	path      string // IMAP-style part number ("1.2"); "" for the message itself
	start     int    // first byte of the header
	bodyStart int    // first byte of the body
	end       int    // one past the last byte of the body
	hdr       header
	mediaType string // lower case
	params    map[string]string
	kind      kind
	// body is true for a part a mail client shows as (part of) the message
	// body: not an attachment, not a resource of a multipart/related other
	// than its root, not inside a signed or encrypted multipart.
	body     bool
	children []*part

	newBody []byte // the transformed body; nil while unchanged
	changed bool   // the header, the body or a descendant changed
}

// label names the part in notes.
func (p *part) label() string {
	if p.path == "" {
		return "message (" + p.mediaType + ")"
	}
	return "part " + p.path + " (" + p.mediaType + ")"
}

// maxNotes bounds Output.Notes; one more says how many were dropped.
const maxNotes = 32

// notes collects the notes of one message.
type notes struct {
	list    []string
	dropped int
}

func (n *notes) add(s string) {
	if len(n.list) >= maxNotes {
		n.dropped++
		return
	}
	n.list = append(n.list, s)
}

// result returns the notes, with a last one counting those dropped.
func (n *notes) result() []string {
	if n.dropped > 0 {
		return append(n.list, strconv.Itoa(n.dropped)+" more notes dropped")
	}
	return n.list
}

// parser builds the MIME tree of one message.
type parser struct {
	raw   []byte
	parts int
	notes *notes
	// wideNoted and deepNoted keep the limit notes to one per message.
	wideNoted, deepNoted bool
}

func (ps *parser) note(s string) { ps.notes.add(s) }

// build classifies p (whose header is parsed) and, for a multipart, splits
// and builds its parts. digest is true inside a multipart/digest, where the
// default type is message/rfc822 (RFC 2046 §5.1.5).
func (ps *parser) build(p *part, depth int, body, digest bool) {
	p.body = body
	ctype, n := p.hdr.get("content-type")
	switch {
	case n > 1:
		p.mediaType, p.kind = "unknown", kindOpaque
		ps.note(p.label() + ": more than one Content-Type, left as is")
		return
	case n == 0 && digest:
		p.mediaType, p.params = "message/rfc822", map[string]string{}
	case n == 0:
		p.mediaType, p.params = "text/plain", map[string]string{}
	default:
		mt, params, err := mime.ParseMediaType(ctype)
		if err != nil {
			p.mediaType, p.kind = "unknown", kindOpaque
			if mt != "" {
				p.mediaType = strings.ToLower(mt)
			}
			if body {
				ps.note(p.label() + ": unreadable Content-Type, left as is: " + err.Error())
			}
			return
		}
		p.mediaType, p.params = strings.ToLower(mt), params
	}
	if body && isAttachment(&p.hdr, p.params) {
		p.body = false
	}
	if !p.body {
		p.kind = kindOpaque
		return
	}
	for i := range p.hdr.fields {
		if p.hdr.fields[i].name == "" {
			p.kind = kindOpaque
			ps.note(p.label() + ": header has lines that are not fields, left as is")
			return
		}
	}
	switch {
	case strings.HasPrefix(p.mediaType, "multipart/"):
		p.kind = kindMultipart
		ps.multipart(p, depth)
	case p.mediaType == "text/html":
		p.kind = kindHTML
	case p.mediaType == "text/plain":
		p.kind = kindText
	default:
		p.kind = kindOpaque
	}
}

// multipart splits the body of p into its parts and builds them.
func (ps *parser) multipart(p *part, depth int) {
	sub := strings.TrimPrefix(p.mediaType, "multipart/")
	if sub == "signed" || sub == "encrypted" {
		p.kind = kindOpaque
		ps.note(p.label() + ": left as is, changing it would break its signature or encryption")
		return
	}
	if depth >= maxDepth {
		p.kind = kindOpaque
		if !ps.deepNoted {
			ps.deepNoted = true
			ps.note(p.label() + ": nested deeper than " + strconv.Itoa(maxDepth) + " levels, left as is")
		}
		return
	}
	boundary := p.params["boundary"]
	ranges, total, why := splitMultipart(ps.raw[p.bodyStart:p.end], boundary, maxParts-ps.parts)
	if why != "" {
		p.kind = kindOpaque
		ps.note(p.label() + ": " + why + ", left as is")
		return
	}
	rootID := ""
	if sub == "related" {
		rootID = strings.Trim(p.params["start"], "<> \t")
	}
	rootIndex := 0
	if rootID != "" {
		rootIndex = -1
	}
	p.children = make([]*part, 0, len(ranges))
	if total > len(ranges) && !ps.wideNoted {
		ps.wideNoted = true
		ps.note("more than " + strconv.Itoa(maxParts) + " parts: part " + childPath(p.path, len(ranges)) + " and the ones after it left as is")
	}
	for i, r := range ranges {
		ps.parts++
		start, end := p.bodyStart+r[0], p.bodyStart+r[1]
		c := &part{path: childPath(p.path, i), start: start, end: end}
		var n int
		c.hdr, n = parseHeader(ps.raw[start:end])
		c.bodyStart = start + n
		if rootIndex < 0 && rootID != "" {
			if cid, _ := c.hdr.get("content-id"); strings.Trim(cid, "<> \t") == rootID {
				rootIndex = i
			}
		}
		p.children = append(p.children, c)
	}
	if rootIndex < 0 {
		rootIndex = 0 // a start parameter that names no part: the first is the root
	}
	for i, c := range p.children {
		// Only the root of a multipart/related is shown; the other parts are
		// its resources (images, style sheets) and are never rewritten.
		childBody := sub != "related" || i == rootIndex
		ps.build(c, depth+1, childBody, sub == "digest")
	}
}

// childPath returns the IMAP part number of the i-th (0-based) part of the
// multipart at path.
func childPath(path string, i int) string {
	if path == "" {
		return strconv.Itoa(i + 1)
	}
	return path + "." + strconv.Itoa(i+1)
}

// splitMultipart finds the parts of a multipart body: each range is a part's
// header and body, without the line break that belongs to the next
// delimiter. The preamble, the delimiter lines and the epilogue are outside
// every range. It returns at most limit ranges, and the number of parts. A
// body it cannot split without guessing gives no ranges and the reason: no
// boundary, no delimiter, no close delimiter, or a line that starts like a
// delimiter but is not one (parsers disagree on those).
func splitMultipart(body []byte, boundary string, limit int) ([][2]int, int, string) {
	if boundary == "" {
		return nil, 0, "multipart without a boundary"
	}
	if len(boundary) > maxBoundary {
		return nil, 0, "multipart boundary longer than " + strconv.Itoa(maxBoundary) + " characters"
	}
	total := 0
	delim := make([]byte, 0, len(boundary)+2)
	delim = append(append(delim, "--"...), boundary...)
	var ranges [][2]int
	partStart := -1 // start of the current part, after its delimiter line
	for i := 0; i <= len(body); {
		j := bytes.Index(body[i:], delim)
		if j < 0 {
			break
		}
		pos := i + j
		i = pos + len(delim)
		if pos > 0 && body[pos-1] != '\n' {
			continue // not at the start of a line
		}
		k := pos + len(delim)
		if k < len(body) && !isDelimiterFollower(body[k]) {
			continue // "--b1" is not a delimiter of "--b1_alt": every parser agrees
		}
		closing := bytes.HasPrefix(body[k:], []byte("--"))
		if closing {
			k += 2
		}
		for k < len(body) && (body[k] == ' ' || body[k] == '\t') {
			k++
		}
		lineEnd := -1
		switch {
		case k == len(body):
			lineEnd = k
		case body[k] == '\n':
			lineEnd = k + 1
		case body[k] == '\r' && k+1 < len(body) && body[k+1] == '\n':
			lineEnd = k + 2
		}
		if lineEnd < 0 {
			return nil, 0, "a line starts with the boundary but is not a delimiter"
		}
		if partStart >= 0 {
			total++
		}
		if partStart >= 0 && len(ranges) < limit {
			end := pos
			if end > partStart && body[end-1] == '\n' {
				end--
				if end > partStart && body[end-1] == '\r' {
					end--
				}
			}
			ranges = append(ranges, [2]int{partStart, end})
		}
		if closing {
			if partStart < 0 {
				return nil, 0, "multipart closes before its first part"
			}
			return ranges, total, ""
		}
		partStart = lineEnd
		i = lineEnd
	}
	if partStart < 0 {
		return nil, 0, "multipart body has no delimiter line"
	}
	return nil, 0, "multipart has no close delimiter"
}

// isDelimiterFollower reports whether c, right after "--boundary" at the
// start of a line, may make the line a delimiter to some parser.
func isDelimiterFollower(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '-'
}

// isAttachment reports whether a part is a file rather than a body: its
// disposition is attachment, or it has a file name (a text/html or
// text/plain part with a file name is a document, never the message).
func isAttachment(h *header, ctParams map[string]string) bool {
	if ctParams["name"] != "" {
		return true
	}
	cd, n := h.get("content-disposition")
	if n == 0 {
		return false
	}
	d, params, err := mime.ParseMediaType(cd)
	if err != nil {
		// Unreadable: believe the disposition type if it says attachment,
		// and treat a part with a file name we cannot read as a file.
		l := strings.ToLower(cd)
		return strings.HasPrefix(l, "attachment") || strings.Contains(l, "filename")
	}
	return strings.EqualFold(d, "attachment") || params["filename"] != ""
}

// mainHTML returns the HTML part a mail client shows as the message, or
// nil: the last HTML alternative (clients show the last alternative they
// can render), the root of a multipart/related, the first part of any
// other multipart that is not a file. It never looks into attachments,
// message/rfc822 parts, or signed and encrypted multiparts.
func mainHTML(p *part) *part {
	if p == nil || !p.body {
		return nil
	}
	switch p.kind {
	case kindHTML:
		return p
	case kindMultipart:
		switch p.mediaType {
		case "multipart/alternative":
			for i := len(p.children) - 1; i >= 0; i-- {
				if m := mainHTML(p.children[i]); m != nil {
					return m
				}
			}
		default:
			for _, c := range p.children {
				if c.body {
					return mainHTML(c)
				}
			}
		}
	}
	return nil
}
