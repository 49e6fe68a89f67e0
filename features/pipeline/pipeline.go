// Package pipeline applies the content features to a whole MIME message: it
// reads and strips the header directives, then walks the MIME tree and runs
// CSS inlining, click tracking and the open pixel on the HTML body parts and
// text link tracking on the text/plain body parts, and finally picks the
// envelope sender for bounce tracking.
//
// # What is changed, and what never is
//
// The message is never re-serialised. A part that no feature changes keeps
// its bytes, header included; a message that no feature changes comes out
// byte-identical, apart from the directive headers stripped from its top
// header (all other header fields keep their bytes and order). A part that
// is changed is transfer-decoded (quoted-printable, base64, 7bit, 8bit,
// binary) and converted from its charset to UTF-8, transformed, and
// re-encoded: base64 as base64 in lines of 76, quoted-printable as
// quoted-printable, 7bit/8bit/binary as they were while every line still fits
// in 998 bytes (and, for 7bit, stays ASCII), quoted-printable otherwise. Its
// Content-Transfer-Encoding follows, and when its charset was converted its
// charset parameter (and any <meta> charset in an HTML head) becomes utf-8;
// only those two fields change.
//
// # Which parts
//
//   - Body parts are the parts a mail client shows as the message: the parts
//     of multipart/mixed, /alternative and other multiparts, the root of a
//     multipart/related (the part its start parameter names, else the first).
//     Only text/html and text/plain body parts are ever changed.
//   - Never changed: a part that is an attachment (Content-Disposition
//     attachment, or any file name: an HTML document sent as a file is not
//     the message), the resources of a multipart/related (images, style
//     sheets), message/rfc822 parts and everything inside them (a forwarded
//     message keeps its own links and is never tracked twice),
//     multipart/signed and multipart/encrypted (a change would break them),
//     and every other media type (text/calendar, images, PDFs).
//   - The open pixel goes into one part only, the main HTML body: the last
//     HTML alternative of a multipart/alternative (clients show the last one
//     they can render; with two HTML alternatives that is the second), the
//     root of a multipart/related, the first non-attachment part of any
//     other multipart. A message whose main body is text/plain gets no pixel.
//
// # Bad input
//
// Apply never fails a message for its MIME structure: a part it cannot
// handle (no or broken boundary, no close delimiter, nesting deeper than 24
// levels, more than 1000 parts, invalid base64 or quoted-printable, an
// unknown charset or transfer encoding, an unreadable header) is left as it
// is, and Output.Notes says which and why.
package pipeline

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/features/bounce"
	"github.com/smtpgate/smtpgate/features/directives"
	"github.com/smtpgate/smtpgate/features/inline"
	"github.com/smtpgate/smtpgate/features/track"
)

// Pipeline holds the transforms, built once from the policy; it is safe for
// concurrent use. Inliner, Tracker and Bounce may be nil when the policy has
// no use for them: a feature that is on without its transform does nothing,
// and Apply says so in Output.Notes.
type Pipeline struct {
	Inliner    *inline.Inliner
	Tracker    *track.Rewriter
	Bounce     *bounce.Codec
	Directives directives.Config
}

// Input is one message and the plan of its login.
type Input struct {
	Raw         []byte       // the message as submitted (CRLF or LF line ends)
	Base        features.Set // the login's features from the policy
	Overridable []string     // feature names a header may change ("*" = all)
	MessageID   string       // smtpgate's id of the message (carried in tokens)
	MailFrom    string       // envelope sender
	// Recipients are the envelope recipients. The message is transformed
	// once for all of them, so tracking tokens name the recipient only when
	// there is exactly one; otherwise their recipient is empty.
	Recipients []string
}

// Output is the transformed message and what happened to it.
type Output struct {
	Raw        []byte            `json:"-"`         // the message to store and deliver; Input.Raw itself when unchanged
	Changed    bool              `json:"changed"`   // Raw differs from Input.Raw
	MailFrom   string            `json:"mail_from"` // envelope sender to use (VERP when bounce tracking ran)
	Directives directives.Result `json:"directives"`
	Stats      Stats             `json:"stats"`
	// Notes tell what was skipped and why; the message is never refused for
	// any of them.
	Notes []string `json:"notes,omitempty"`
}

// Stats counts what the transforms did.
type Stats struct {
	HTMLParts    int `json:"html_parts"`    // text/html body parts
	TextParts    int `json:"text_parts"`    // text/plain body parts
	CSSInlined   int `json:"css_inlined"`   // HTML parts whose CSS was inlined
	LinksTracked int `json:"links_tracked"` // links rewritten, HTML and text
	PixelsAdded  int `json:"pixels_added"`  // 0 or 1
}

// Apply strips the directive headers from in.Raw, resolves the features and
// applies them. The only errors are a *directives.MalformedError, when the
// policy rejects malformed directives (the caller answers 550 5.6.0), and an
// invalid directives.Config; anything wrong with the message itself leaves
// the affected part unchanged and adds a note.
func (p *Pipeline) Apply(in Input) (*Output, error) {
	out := &Output{MailFrom: in.MailFrom}
	hdr, n := parseHeader(in.Raw)
	top := &part{start: 0, bodyStart: n, end: len(in.Raw), hdr: hdr}

	th := top.hdr.textprotoHeader()
	res, err := directives.Apply(&th, p.Directives, in.Base, in.Overridable)
	if err != nil {
		if _, ok := errors.AsType[*directives.MalformedError](err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("pipeline: directives: %w", err)
	}
	top.hdr.syncDeleted(&th)
	out.Directives = res
	set := res.Features

	var ns notes
	ps := parser{raw: in.Raw, notes: &ns}
	ps.build(top, 0, true, false)

	w := walker{p: p, raw: in.Raw, nl: lineBreak(in.Raw), set: set, out: out, notes: &ns}
	if len(in.Recipients) == 1 {
		w.opts.Recipient = in.Recipients[0]
	}
	w.opts.MessageID = in.MessageID
	w.opts.PreventScam = set.PreventScam
	if set.InlineCSS && p.Inliner == nil {
		w.note("CSS inlining is on but no inliner is configured: styles left alone")
	}
	if (set.TrackClicks || set.TrackTextLinks || set.TrackOpens) && p.Tracker == nil {
		w.note("tracking is on but the policy has no tracking section: links and pixel left alone")
	}
	if set.TrackOpens && p.Tracker != nil {
		w.pixel = mainHTML(top)
	}
	w.walk(top, true)
	if top.hdr.dirty() {
		top.changed = true
	}

	if top.changed {
		var buf bytes.Buffer
		buf.Grow(len(in.Raw) + len(in.Raw)/8 + 256)
		render(&buf, in.Raw, top)
		out.Raw = buf.Bytes()
		out.Changed = !bytes.Equal(out.Raw, in.Raw)
	} else {
		out.Raw = in.Raw
	}

	if set.TrackBounces {
		w.bounce(in)
	}
	out.Notes = ns.result()
	return out, nil
}

// bounce sets the VERP envelope sender when there is one recipient.
func (w *walker) bounce(in Input) {
	switch {
	case w.p.Bounce == nil:
		w.note("bounce tracking is on but the policy has no bounce domain: envelope sender kept")
	case in.MailFrom == "":
		// The null sender stays null: it marks a bounce itself.
	case len(in.Recipients) != 1:
		// Each recipient needs its own VERP sender: the relay sets it per
		// delivery from bounce.Codec.Address(id, recipient index).
	default:
		verp, err := w.p.Bounce.Address(in.MessageID, 0)
		if err != nil {
			w.note("bounce tracking skipped: %v", err)
			return
		}
		w.out.MailFrom = verp
	}
}

// lineBreak returns the line break the message uses: that of its first line.
func lineBreak(raw []byte) string {
	if i := bytes.IndexByte(raw, '\n'); i > 0 && raw[i-1] == '\r' || i < 0 {
		return "\r\n"
	}
	return "\n"
}

// walker carries the per-message state of one walk.
type walker struct {
	p     *Pipeline
	raw   []byte
	nl    string
	set   features.Set
	out   *Output
	opts  track.Options
	pixel *part // the main HTML body, when the open pixel is on
	notes *notes
}

func (w *walker) note(format string, args ...any) {
	w.notes.add(fmt.Sprintf(format, args...))
}

// walk transforms the body parts under p and marks what changed.
func (w *walker) walk(p *part, top bool) {
	switch p.kind {
	case kindMultipart:
		for _, c := range p.children {
			w.walk(c, false)
			p.changed = p.changed || c.changed
		}
	case kindHTML:
		w.out.Stats.HTMLParts++
		if (w.set.InlineCSS && w.p.Inliner != nil) || (w.set.TrackClicks && w.p.Tracker != nil) || w.pixel == p {
			w.leaf(p, top)
		}
	case kindText:
		w.out.Stats.TextParts++
		if w.set.TrackTextLinks && w.p.Tracker != nil {
			w.leaf(p, top)
		}
	}
}

// leaf decodes a text part, transforms it and, if that changed it, encodes
// it again and fixes its header.
func (w *walker) leaf(p *part, top bool) {
	body := w.raw[p.bodyStart:p.end]
	if len(body) == 0 {
		return
	}
	d, err := decodePart(p, body)
	if err != nil {
		w.note("%s left as is: %v", p.label(), err)
		return
	}
	var text []byte
	var changed bool
	if p.kind == kindHTML {
		text, changed = w.html(p, d.text)
	} else {
		text, changed = w.text(p, d.text)
	}
	if !changed {
		return
	}
	if d.converted && p.kind == kindHTML {
		text = relabelMeta(text)
	}
	enc, cte := encodePart(text, d.cte, w.nl)
	if cte != d.cte {
		p.hdr.setField("content-transfer-encoding", "Content-Transfer-Encoding", cte, w.nl)
	}
	if d.converted {
		p.hdr.setCharsetUTF8(p.mediaType, p.params, w.nl)
	}
	if top && p.hdr.dirty() && p.hdr.find("mime-version") == nil {
		p.hdr.add("MIME-Version: 1.0" + w.nl)
	}
	p.newBody = enc
	p.changed = true
}

// html runs the HTML transforms in order: CSS inlining, click tracking, the
// open pixel (with click tracking on, in RewriteHTML's pass; otherwise by
// AddPixel). It reports whether doc changed.
func (w *walker) html(p *part, doc []byte) ([]byte, bool) {
	changed := false
	if w.set.InlineCSS && w.p.Inliner != nil {
		out, err := w.p.Inliner.Inline(doc)
		switch {
		case err != nil:
			w.note("%s: CSS inlining skipped: %v", p.label(), err)
		case !bytes.Equal(out, doc):
			doc, changed = out, true
			w.out.Stats.CSSInlined++
		}
	}
	pixel := w.pixel == p
	if w.set.TrackClicks && w.p.Tracker != nil {
		// In the main HTML body the pixel goes in during the same pass,
		// byte for byte where AddPixel would put it.
		o := w.opts
		o.OpenPixel = pixel
		out, n, err := w.p.Tracker.RewriteHTML(doc, o)
		if err != nil {
			// A misconfigured Rewriter, on which AddPixel adds nothing either.
			w.note("%s: click tracking skipped: %v", p.label(), err)
			return doc, changed
		}
		// Opt-out attributes are removed even when no link is tracked, and
		// a pixel always changes the document.
		if !bytes.Equal(out, doc) {
			doc, changed = out, true
			w.out.Stats.LinksTracked += n
		}
		if pixel {
			w.out.Stats.PixelsAdded++
		}
		return doc, changed
	}
	if pixel {
		if out := w.p.Tracker.AddPixel(doc, w.opts); !bytes.Equal(out, doc) {
			doc, changed = out, true
			w.out.Stats.PixelsAdded++
		}
	}
	return doc, changed
}

// text tracks the URLs of a text/plain part.
func (w *walker) text(p *part, doc []byte) ([]byte, bool) {
	out, n, err := w.p.Tracker.RewriteText(doc, w.opts)
	if err != nil {
		w.note("%s: text link tracking skipped: %v", p.label(), err)
		return doc, false
	}
	if bytes.Equal(out, doc) {
		return doc, false
	}
	w.out.Stats.LinksTracked += n
	return out, true
}

// render writes p: its input bytes when it did not change, else its header
// and its new body or its parts.
func render(buf *bytes.Buffer, raw []byte, p *part) {
	if !p.changed {
		buf.Write(raw[p.start:p.end])
		return
	}
	if p.hdr.dirty() {
		p.hdr.appendTo(buf)
	} else {
		buf.Write(raw[p.start:p.bodyStart])
	}
	switch {
	case p.newBody != nil:
		buf.Write(p.newBody)
	case len(p.children) > 0:
		pos := p.bodyStart
		for _, c := range p.children {
			buf.Write(raw[pos:c.start])
			render(buf, raw, c)
			pos = c.end
		}
		buf.Write(raw[pos:p.end])
	default:
		buf.Write(raw[p.bodyStart:p.end])
	}
}
