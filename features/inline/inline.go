// Package inline moves the rules of an HTML e-mail's <style> elements into
// the style attributes of the elements they match, the way premailer does,
// so that mail clients which ignore <style> still render the message as its
// author saw it in a browser. It is a pure transform: bytes in, bytes out.
//
// # What is inlined and what stays
//
// Every declaration of a style rule that matches an element competes with
// the element's own style attribute in a browser's cascade. The cascade key
// of a declaration is (level, specificity, source order) with the levels
//
//	sheet normal < inline normal < sheet !important < inline !important
//
// and specificities compared as tuples (eleven classes lose to one id). The
// winners are written to the style attribute in ascending cascade order, so a
// shorthand and a longhand (padding and padding-left) resolve as in a browser.
// A sheet !important is written without !important, so that !important rules
// kept in @media blocks still override it; an !important the author wrote in
// the style attribute is kept.
//
// These stay in <style>: every at-rule (@media, @font-face, @import,
// @supports, @keyframes, @page, ...); every selector with a dynamic or state
// pseudo-class (:hover, :focus, :active, :visited, :link, :target, :checked,
// ...), a pseudo-element (::before, ::selection, ...) or a pseudo-class this
// package does not evaluate (:is, :where, ...); a rule whose selector list
// has an invalid or vendor-prefixed member (a browser may drop the whole
// rule, so nothing of it is inlined); a rule with nested rules or at-rules
// (its own declarations are inlined, what is nested stays and, like an
// @media block, loses to inlined declarations unless !important); a rule
// that matched no element (it may target markup inside Outlook's
// conditional comments, which are comments to an HTML parser); and a rule
// that matched an element with no start tag of its own in the input (an
// html, body or tbody the parser created), which cannot carry a style
// attribute. A selector list is split: in "a:hover, .b" the .b member is
// inlined and "a:hover" is kept with the same declarations. Kept rules keep
// their bytes, !important included. A <style> element left with no rule is
// removed unless Options.KeepStyleTags is set. On a document with more than
// 1000 element siblings or 20000 elements, selectors whose cost grows with
// the number of siblings (:nth-child, :last-of-type, :has, ...) are kept
// rather than evaluated.
//
// Selectors match as in a browser: in quirks mode (no DOCTYPE, or a legacy
// one) class and id selectors ignore case.
//
// These <style> elements are neither read nor changed: the ones inside
// conditional comments (<!--[if mso]><style>...</style><![endif]-->) and
// inside downlevel-revealed ones (<![if !mso]>...<![endif]> and
// <!--[if !mso]><!-->...<!--<![endif]-->: moving their rules inline would
// show them to the clients the condition hides them from); the ones marked
// data-inline="false" or carrying a data-embed attribute (the premailer and
// juice conventions for "leave this block alone"); the ones whose media
// attribute is neither empty, "all" nor "screen"; the ones whose type is not
// text/css; and the ones inside <svg> or <template>. Their rules still apply
// in clients that read <style>, but do not take part in inlining.
//
// # Byte preservation
//
// The input is never re-serialised from a parse tree. It is parsed with
// golang.org/x/net/html only to evaluate selectors; the output is the input's
// own bytes with only two kinds of change: the style attribute of a start tag
// that received declarations, and the text (or the whole element) of a
// processed <style>. Entities stay as written, tables get no <tbody>,
// attribute order, the DOCTYPE, conditional comments and downlevel-revealed
// <![if !mso]> markers are unchanged. Each element of the parse tree is tied
// to its start tag by a marker attribute added in a tokenizer pass; an
// element that cannot be tied to a start tag keeps its bytes.
//
// Broken CSS is read the way a browser reads it (CSS Syntax Level 3 error
// recovery): a bad declaration or rule is skipped, never an error.
package inline

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
)

// DefaultMaxInputBytes is the input size limit used when
// Options.MaxInputBytes is zero or negative.
const DefaultMaxInputBytes = 10 << 20

// ErrTooLarge is returned (wrapped) by Inline for an input larger than the
// configured limit.
var ErrTooLarge = errors.New("inline: html input too large")

// Options configure an Inliner.
type Options struct {
	// KeepStyleTags keeps a <style> element even when all its rules were
	// inlined (it is left with whatever comments and white space remain).
	// By default such an emptied element is removed.
	KeepStyleTags bool
	// MaxInputBytes bounds the size of the HTML accepted by Inline; zero
	// or negative means DefaultMaxInputBytes.
	MaxInputBytes int
	// SheetCache is the number of distinct sets of style sheets whose
	// parsed and compiled rules the Inliner keeps, so that messages made
	// from one template parse their CSS once; zero means
	// DefaultSheetCache, negative disables the cache. The output is the
	// same with or without it.
	SheetCache int
	// PlanCache is the number of distinct documents, as far as inlining
	// can tell them apart (their markup and style sheets, not their text
	// or the attributes no selector reads), whose inlining plan the
	// Inliner keeps, so that messages made from one template are parsed
	// and matched against the sheets once; zero means DefaultPlanCache,
	// negative disables the cache. Only plans built with the sheet cache
	// are kept. The output is the same with or without it.
	PlanCache int
}

// Inliner inlines CSS. It holds its options and a bounded cache of
// compiled style sheets: it is safe for concurrent use; construct it once.
type Inliner struct {
	opts  Options
	cache *sheetCache // nil when disabled
	plans *planCache  // nil when disabled
	pool  sync.Pool   // of *document: scratch buffers of finished calls
}

// New returns an Inliner with opts, defaults filled in.
func New(opts Options) *Inliner {
	if opts.MaxInputBytes <= 0 {
		opts.MaxInputBytes = DefaultMaxInputBytes
	}
	if opts.SheetCache == 0 {
		opts.SheetCache = DefaultSheetCache
	}
	if opts.PlanCache == 0 {
		opts.PlanCache = DefaultPlanCache
	}
	in := &Inliner{opts: opts}
	if opts.SheetCache > 0 {
		in.cache = newSheetCache(opts.SheetCache)
	}
	if opts.PlanCache > 0 && in.cache != nil {
		in.plans = newPlanCache(opts.PlanCache)
	}
	return in
}

// Inline returns html with the rules of its <style> elements moved into
// style attributes. Input and output are UTF-8. When there is nothing to
// change the result is html itself (the same slice, not a copy). Broken
// CSS or HTML is never an error; the errors are an input over the size
// limit (ErrTooLarge) and markup the HTML parser refuses (elements nested
// more than 512 deep). On error the caller should keep the part unchanged.
func (in *Inliner) Inline(html []byte) ([]byte, error) {
	if len(html) > in.opts.MaxInputBytes {
		return nil, fmt.Errorf("inline %d bytes (limit %d): %w", len(html), in.opts.MaxInputBytes, ErrTooLarge)
	}
	if !hasStyleTag(html) {
		return html, nil
	}
	d := in.getDocument(html)
	defer in.putDocument(d)
	if len(d.scan.styles) == 0 || d.scan.prefix == "" {
		return html, nil
	}
	d.quirks = quirksDoctype(d.scan.doctype)
	var key []byte
	var hash uint64
	if in.plans != nil {
		if key = d.planKey(); len(key) > maxPlanKeyBytes {
			key = nil
		} else {
			hash = in.plans.hash(key)
			if p := in.plans.get(hash, key); p != nil {
				d.usePlan(p)
				return d.finish(in.opts.KeepStyleTags), nil
			}
		}
	}
	if err := d.parse(); err != nil {
		return nil, fmt.Errorf("inline: parse html: %w", err)
	}
	d.loadSheets(in)
	if len(d.rules) == 0 {
		d.set = nil
	} else {
		d.cascade()
	}
	if key != nil && (d.set == nil || d.ownSet) {
		in.plans.put(hash, key, d.newPlan())
	}
	return d.finish(in.opts.KeepStyleTags), nil
}

// finish returns the input with the edits of d's cascade applied, or the
// input itself when there are none. keep is Options.KeepStyleTags.
func (d *document) finish(keep bool) []byte {
	if d.set == nil {
		return d.src
	}
	edits := d.styleEdits(keep)
	edits = d.appendTagEdits(edits, d.tagStyles)
	if len(edits) == 0 {
		return d.src
	}
	return applyEdits(d.src, edits)
}

// hasStyleTag reports whether b contains "<style" in any letter case: the
// quick exit for the common message without a style sheet.
func hasStyleTag(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '<')
		if i < 0 || len(b)-i < 6 {
			return false
		}
		if equalFoldASCII(b[i+1:i+6], "style") {
			return true
		}
		b = b[i+1:]
	}
}

// equalFoldASCII reports whether b equals the lower-case ASCII string s,
// ignoring ASCII case.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
