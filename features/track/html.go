package track

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"slices"
	"strings"
	"time"

	"github.com/smtpgate/smtpgate/features/internal/htmlscan"
)

// Rewriter rewrites the links of a message part into tracking links and adds
// the open pixel. Its zero value is not usable: Codec and PublicURL must be
// set (NewRewriter checks them). A Rewriter is safe for concurrent use.
type Rewriter struct {
	Codec *Codec
	// PublicURL is the base of the tracking endpoints, e.g.
	// "https://t.example.com" or "https://example.com/track"; a trailing slash
	// is ignored. Links become {PublicURL}/c/{token}, the pixel
	// {PublicURL}/o/{token}.
	PublicURL string
	// Now stamps Token.Issued; nil means time.Now. Tests set a fixed clock.
	Now func() time.Time
}

// Options carry the per-message inputs of a rewrite.
type Options struct {
	MessageID string
	Recipient string
	// PreventScam leaves a link untracked when its visible text is its own
	// URL (SMTPeter's preventscam), so the text a reader sees and the host
	// the link opens agree and spam filters see no mismatch.
	PreventScam bool
	// OpenPixel makes RewriteHTML also insert the open pixel, exactly where
	// AddPixel would, in the same pass over the document: cheaper than
	// calling AddPixel on its result. RewriteText ignores it.
	OpenPixel bool
}

// NewRewriter returns a Rewriter after checking its configuration.
func NewRewriter(c *Codec, publicURL string) (*Rewriter, error) {
	r := &Rewriter{Codec: c, PublicURL: publicURL}
	if _, err := r.base(); err != nil {
		return nil, err
	}
	return r, nil
}

// base returns PublicURL without a trailing slash, or why it is unusable.
func (r *Rewriter) base() (string, error) {
	if r == nil || r.Codec == nil {
		return "", errors.New("track: rewriter has no codec")
	}
	b := strings.TrimRight(r.PublicURL, "/")
	if _, ok := location(b); !ok || !isPlainASCII(b) || strings.ContainsAny(b, "?#\"'<>&") {
		return "", fmt.Errorf("track: public URL %q is not an absolute ASCII http(s) URL without query", r.PublicURL)
	}
	return b, nil
}

func (r *Rewriter) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// job is the state of one rewrite: its inputs, the edits found so far and
// an arena holding the replacement bytes (one allocation for all links).
type job struct {
	codec  *Codec
	base   string
	o      Options
	issued time.Time
	arena  []byte
	edits  []edit
}

// newJob starts a rewrite expecting about links tracked links.
func (r *Rewriter) newJob(o Options, links int) (*job, error) {
	base, err := r.base()
	if err != nil {
		return nil, err
	}
	// A tracking URL is the base plus the token: the sealed fields, ~24
	// bytes of framing and tag, and an original URL of typically < 100 bytes.
	per := len(base) + 4 + encoding.EncodedLen(len(o.MessageID)+len(o.Recipient)+24+100)
	return &job{codec: r.Codec, base: base, o: o, issued: r.now(), arena: make([]byte, 0, links*per)}, nil
}

// click returns the tracking URL for u, wrapped in quote unless quote is 0,
// or ok=false when u is not tracked or its token would be longer than
// MaxTokenLen. The URL needs no HTML escaping: base is checked to be plain
// and the token is URL-safe base64.
func (j *job) click(u string, quote byte) ([]byte, bool) {
	if !trackable(u, j.base) {
		return nil, false
	}
	start := len(j.arena)
	if quote != 0 {
		j.arena = append(j.arena, quote)
	}
	j.arena = append(j.arena, j.base...)
	j.arena = append(j.arena, "/c/"...)
	tok := len(j.arena)
	j.arena = j.codec.appendSeal(j.arena, Token{Kind: KindClick, MessageID: j.o.MessageID, Recipient: j.o.Recipient, URL: u, Issued: j.issued})
	if len(j.arena)-tok > MaxTokenLen {
		j.arena = j.arena[:start]
		return nil, false
	}
	if quote != 0 {
		j.arena = append(j.arena, quote)
	}
	// Later appends may move the arena; this slice keeps the old bytes.
	return j.arena[start:len(j.arena):len(j.arena)], true
}

// optOut reports whether key names a vendor per-link opt-out attribute and,
// if so, the value that opts out ("" when presence alone does). Such
// attributes are removed from every <a>; the link stays untracked only when
// the value says so.
func optOut(key []byte) (value string, ok bool) {
	for _, a := range [...]struct{ key, value string }{
		{"clicktracking", "off"},      // SendGrid
		{"data-pm-no-track", ""},      // Postmark
		{"disable-tracking", "true"},  // Mailgun
		{"ses:no-track", ""},          // Amazon SES
		{"data-msys-clicktrack", "0"}, // SparkPost
	} {
		if htmlscan.EqualFold(key, a.key) {
			return a.value, true
		}
	}
	return "", false
}

// edit replaces in[start:end] with repl in the output.
type edit struct {
	start, end int
	repl       []byte
}

// pendingLink is a rewritten href held back until the link text is known
// (preventscam).
type pendingLink struct {
	e    edit
	url  string
	text []byte
	long bool // the text outgrew maxLinkText: it cannot equal the URL
}

// maxLinkText bounds the link text kept for the preventscam comparison:
// longer text cannot be a trackable URL.
const maxLinkText = 4 * MaxTokenLen

// RewriteHTML rewrites every trackable <a href> of the HTML document in to
// a tracking link and returns the result (always a new slice) with the
// number of links rewritten. It tokenizes the document as x/net/html would
// (see features/internal/htmlscan) and splices only href values (and removes vendor opt-out
// attributes), so every other byte is kept: DOCTYPE, entities, attribute
// order and quoting, comments, whitespace, invalid markup. The document
// must be UTF-8: decode the MIME part first.
//
// Rules:
//   - Only <a> tags with an absolute http:// or https:// href (entity-decoded:
//     &amp; is &; then cleaned as a browser does: trimmed, and every tab, CR
//     and LF inside removed) are tracked; the token carries that URL, the
//     one a browser would open.
//   - mailto:, tel:, sms:, #fragment, relative, protocol-relative,
//     javascript: and data: links, links already on PublicURL, and URLs with
//     unresolved merge tags ({{x}}, {%x%}, *|X|*, %x%) are left alone.
//   - Per-link opt-outs clicktracking=off, data-pm-no-track,
//     disable-tracking=true, ses:no-track, data-msys-clicktrack="0" leave the
//     href untouched; those attributes are removed from every <a> whatever
//     their value. Postal's "https+notrack://" becomes "https://", untracked.
//   - Markup inside comments is never touched. That includes Outlook
//     conditional comments (<!--[if mso]>…<![endif]-->) and the VML buttons
//     in them (<v:roundrect href>): clicks from Outlook's Word renderer on
//     such buttons are not counted. A comment is one opaque token to an HTML
//     tokenizer, and rewriting markup inside it would mean a second,
//     Outlook-specific parser whose mistakes break exactly the mails that
//     are hardest to test; an untracked Outlook button costs only a count.
//     Content between <!--[if !mso]><!--> and <!--<![endif]--> or between
//     <![if !mso]> and <![endif]> is ordinary markup and is tracked.
//   - With o.PreventScam, a link whose visible text (trimmed, any case, with
//     or without scheme and trailing slash) is its own URL is left alone.
//   - <area>, <base> and <form action> are not rewritten.
//   - With o.OpenPixel, the open pixel is inserted as AddPixel would.
//
// The error is non-nil only for a misconfigured Rewriter.
func (r *Rewriter) RewriteHTML(in []byte, o Options) (out []byte, n int, err error) {
	j, err := r.newJob(o, bytes.Count(in, []byte("href")))
	if err != nil {
		return nil, 0, err
	}
	if !containsFold(in, "<a") && !o.OpenPixel {
		return bytes.Clone(in), 0, nil // no <a> start tag can be in there
	}
	var pend *pendingLink
	bodyEnd := -1 // the last </body>
	settle := func() {
		if pend == nil {
			return
		}
		if pend.long || !sameURLText(string(pend.text), pend.url) {
			j.edits = append(j.edits, pend.e)
			n++
		}
		pend = nil
	}
	s := htmlscan.Scanner{In: in, WantAttrs: isAnchor}
	for {
		switch s.Next() {
		case htmlscan.EOF:
			settle()
			if o.OpenPixel {
				if bodyEnd < 0 {
					bodyEnd = len(in)
				}
				j.edits = append(j.edits, edit{bodyEnd, bodyEnd, j.pixel()})
			}
			return splice(in, j.edits), n, nil
		case htmlscan.Text:
			if pend != nil && !pend.long && !s.RawText {
				pend.text = append(pend.text, in[s.Start:s.End]...)
				pend.long = len(pend.text) > maxLinkText
			}
		case htmlscan.EndTag:
			name := in[s.NameStart:s.NameEnd]
			if pend != nil && isAnchor(name) {
				settle()
			}
			if htmlscan.EqualFold(name, "body") {
				bodyEnd = s.Start
			}
		case htmlscan.StartTag:
			if !isAnchor(in[s.NameStart:s.NameEnd]) {
				continue
			}
			settle() // a new <a> closes an open one
			switch link := j.anchor(in, s.Attrs); {
			case link == nil:
			case o.PreventScam:
				pend = link
			default:
				j.edits = append(j.edits, link.e)
				n++
			}
		}
	}
}

func isAnchor(name []byte) bool { return htmlscan.EqualFold(name, "a") }

// anchor decides what happens to one <a> tag with attributes attrs. It
// adds the edits that always apply (opt-out attribute removals, +notrack
// fix-ups) to j and returns the href edit of a tracked link, or nil.
func (j *job) anchor(in []byte, attrs []htmlscan.Attr) *pendingLink {
	skip, href := false, -1
	var drop []int
	for i := range attrs {
		a := &attrs[i]
		key := in[a.KeyStart:a.KeyEnd]
		if a.Saved && href < 0 && htmlscan.EqualFold(key, "href") {
			href = i
			continue
		}
		if want, ok := optOut(key); ok {
			drop = append(drop, i)
			if a.Saved && (want == "" || strings.EqualFold(strings.TrimSpace(htmlscan.UnescapeAttr(in[a.ValStart:a.ValEnd])), want)) {
				skip = true
			}
		}
	}
	j.edits = append(j.edits, removals(in, attrs, drop)...)
	if href < 0 || !attrs[href].HasValue {
		return nil
	}
	a := &attrs[href]
	u := cleanURL(htmlscan.UnescapeAttr(in[a.ValStart:a.ValEnd]))
	if plain, ok := notrackScheme(u); ok {
		v := html.EscapeString(plain) // escapes both quote characters
		if a.Quote == 0 {
			v = `"` + v + `"`
		}
		j.edits = append(j.edits, edit{a.ValStart, a.ValEnd, []byte(v)})
		return nil
	}
	if skip {
		return nil
	}
	q := byte('"')
	if a.Quote != 0 {
		q = 0 // keep the original quotes around the new value
	}
	v, ok := j.click(u, q)
	if !ok {
		return nil
	}
	return &pendingLink{e: edit{a.ValStart, a.ValEnd, v}, url: u}
}

// removals deletes the attributes at the given (increasing) indexes with
// the whitespace before each, without changing how the rest of the tag
// reads: where the deleted run would leave an unquoted value glued to a
// following '/' (<a x=1 ses:no-track/> must not become <a x=1/>, which
// changes x to "1/"), one space stays.
func removals(in []byte, attrs []htmlscan.Attr, idx []int) []edit {
	var out []edit
	for _, i := range idx {
		a := &attrs[i]
		if n := len(out); n > 0 && out[n-1].end == a.WSStart {
			out[n-1].end = a.End // adjacent: one run
			continue
		}
		out = append(out, edit{a.WSStart, a.End, nil})
	}
	for k := range out {
		e := &out[k]
		if e.end >= len(in) || in[e.end] != '/' {
			continue
		}
		for _, p := range attrs {
			if p.HasValue && p.Quote == 0 && p.End == e.start {
				e.start++ // keep the whitespace that ended the value
				break
			}
		}
	}
	return out
}

// splice applies non-overlapping edits to in and returns a new slice.
func splice(in []byte, edits []edit) []byte {
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	grow := 0
	for _, e := range edits {
		grow += len(e.repl) - (e.end - e.start)
	}
	out := make([]byte, 0, len(in)+max(grow, 0))
	last := 0
	for _, e := range edits {
		if e.start < last {
			continue // overlapping edits are a bug; FuzzRewriteHTML looks for them
		}
		out = append(out, in[last:e.start]...)
		out = append(out, e.repl...)
		last = e.end
	}
	return append(out, in[last:]...)
}

// sameURLText reports whether a link's visible text (raw HTML text, entities
// not yet decoded) is its URL: compared trimmed, without case, and with or
// without scheme and trailing slashes.
func sameURLText(text, u string) bool {
	return normURLText(html.UnescapeString(text)) == normURLText(u)
}

func normURLText(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "https://")
	s = strings.TrimPrefix(s, "http://")
	return strings.TrimRight(s, "/")
}

// AddPixel returns a copy of the HTML document in with the open-tracking
// pixel
//
//	<img src="{PublicURL}/o/{token}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px" />
//
// inserted right before the last </body> tag (any case) that is real markup,
// not inside a comment, <script>, <style>, <textarea> or <title>; without
// one the pixel is appended at the end. Every other byte is kept. A
// misconfigured Rewriter (see NewRewriter) returns an unchanged copy. To
// track clicks too, RewriteHTML with Options.OpenPixel does both in one pass.
func (r *Rewriter) AddPixel(in []byte, o Options) []byte {
	j, err := r.newJob(o, 0)
	if err != nil {
		return bytes.Clone(in)
	}
	at := lastBodyEnd(in)
	if at < 0 {
		at = len(in)
	}
	return splice(in, []edit{{at, at, j.pixel()}})
}

// pixel returns the open pixel tag for the job's message and recipient. Its
// URL needs no HTML escaping: base is checked to be plain and the token is
// URL-safe base64.
func (j *job) pixel() []byte {
	b := make([]byte, 0, 160+len(j.base)+encoding.EncodedLen(len(j.o.MessageID)+len(j.o.Recipient)+24))
	b = append(b, `<img src="`...)
	b = append(b, j.base...)
	b = append(b, "/o/"...)
	b = j.codec.appendSeal(b, Token{Kind: KindOpen, MessageID: j.o.MessageID, Recipient: j.o.Recipient, Issued: j.issued})
	return append(b, `" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px" />`...)
}

// lastBodyEnd returns the offset of the last </body> end tag, or -1.
func lastBodyEnd(in []byte) int {
	if !containsFold(in, "</body") {
		return -1
	}
	s := htmlscan.Scanner{In: in}
	at := -1
	for {
		switch s.Next() {
		case htmlscan.EOF:
			return at
		case htmlscan.EndTag:
			if htmlscan.EqualFold(in[s.NameStart:s.NameEnd], "body") {
				at = s.Start
			}
		}
	}
}

// containsFold reports whether b contains the lower-case ASCII string s in
// any case.
func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		j := bytes.IndexByte(b[i:], s[0])
		if j < 0 {
			return false
		}
		i += j
		if i+len(s) <= len(b) && htmlscan.EqualFold(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}
