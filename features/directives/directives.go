// Package directives reads the header directives that override a login's
// feature set (X-Smtpgate-TrackOpens: false, X-Smtpgate-Tags: a, b, ...),
// maps the directive headers of other senders (Mailgun, Postmark, EmailEngine,
// SendGrid) onto the same model, and strips all of them from the message.
//
// # Rules
//
//   - Names and values are case-insensitive: x-SMTPGATE-trackopens: FALSE is a
//     directive. Booleans are true/false, yes/no, 1/0 or on/off.
//   - Every header under a configured prefix, and every header of an enabled
//     vendor, is removed from the header, whether it was applied, refused,
//     malformed or unknown. All other fields stay byte-exact and in order.
//   - A feature changes only when the login lists it as overridable (or "*");
//     otherwise the directive is refused and its Record says which feature.
//     Tags, metadata and the send time are not features and always apply.
//   - The first well-formed occurrence of a directive wins; later repeats are
//     recorded as ignored ("duplicate"). X-Smtpgate- and X-Smtpeter- spell the
//     same directives, and inlinizecss is inlinecss. X-Mailgun-Tag is
//     repeatable and accumulates.
//   - When different directives set the same feature or the send time, the
//     own directives win over vendor ones, and a vendor's specific switch
//     (X-Mailgun-Track-Opens) over its general one (X-Mailgun-Track); between
//     equals the first header wins. The loser is recorded as ignored.
//   - Tags are merged from every source in header order and de-duplicated;
//     metadata keys are taken first-wins in the same precedence as features.
//     Past 20 tags or 50 metadata keys the rest are dropped (and recorded);
//     a tag over 128 bytes, a metadata key over 64 bytes or value over 1000
//     bytes makes its header malformed.
//   - track_clicks is links in HTML parts and track_text_links is URLs in text
//     parts; they are independent. The own directive for text parts is
//     "tracktext". Vendor switches that mean "all tracking" (X-Mailgun-Track,
//     X-EE-Tracking-Enabled) set track_clicks, track_text_links and
//     track_opens together.
package directives

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"

	"github.com/smtpgate/smtpgate/features"
)

// Vendor names accepted in Config.Vendors.
const (
	Mailgun     = "mailgun"
	Postmark    = "postmark"
	EmailEngine = "emailengine"
	SendGrid    = "sendgrid"
)

// DefaultPrefixes are the directive prefixes used when Config.Prefixes is empty.
var DefaultPrefixes = []string{"X-Smtpgate-", "X-Smtpeter-"}

// Limits on what directives may carry.
const (
	MaxTags          = 20              // tags per message; the rest are dropped
	MaxTagLen        = 128             // bytes per tag
	MaxMetadataKeys  = 50              // metadata keys per message; the rest are dropped
	MaxMetadataKey   = 64              // bytes per metadata key
	MaxMetadataValue = 1000            // bytes per metadata value
	MaxJSON          = 64 << 10        // bytes of X-SMTPAPI or X-Mailgun-Variables
	maxRecordValue   = 512             // bytes of a header value kept in a Record
	maxReasonValue   = 64              // bytes of a value quoted in a Reason
	maxEpochMillis   = 253402300799999 // 9999-12-31T23:59:59.999Z
)

// Config says which headers are directives.
type Config struct {
	// Prefixes of the own directives, case-insensitive. Empty means
	// DefaultPrefixes.
	Prefixes []string
	// Vendors whose headers are read and stripped: any of Mailgun, Postmark,
	// EmailEngine, SendGrid.
	Vendors []string
	// RejectMalformed makes Apply return a *MalformedError for the first
	// malformed directive (policy on_error = "reject"); otherwise a malformed
	// directive is stripped and recorded, and has no effect.
	RejectMalformed bool
}

// Validate reports an empty prefix or an unknown vendor.
func (c Config) Validate() error {
	for _, p := range c.Prefixes {
		if strings.TrimSpace(p) == "" {
			return errors.New("directives: empty header prefix")
		}
		for i := 0; i < len(p); i++ {
			if p[i] <= ' ' || p[i] >= 0x7f || p[i] == ':' {
				return fmt.Errorf("directives: header prefix %q has a character not allowed in a header name", p)
			}
		}
	}
	for _, v := range c.Vendors {
		switch strings.ToLower(v) {
		case Mailgun, Postmark, EmailEngine, SendGrid:
		default:
			return fmt.Errorf("directives: unknown vendor %q (want %s, %s, %s or %s)", v, Mailgun, Postmark, EmailEngine, SendGrid)
		}
	}
	return nil
}

// Outcome is what happened to one directive header.
type Outcome string

// Outcomes of a directive header. Every one of them is stripped.
const (
	Applied   Outcome = "applied"   // took effect, at least in part
	Refused   Outcome = "refused"   // changes a feature the login may not override
	Malformed Outcome = "malformed" // value could not be read
	Ignored   Outcome = "ignored"   // unknown directive, duplicate, or superseded
)

// Record tells what became of one stripped header, for the event log and
// `check --explain`.
type Record struct {
	Header    string  `json:"header"`              // the name as written
	Value     string  `json:"value"`               // unfolded value, cut at 512 bytes
	Directive string  `json:"directive,omitempty"` // e.g. "trackopens", "mailgun:track-clicks"
	Outcome   Outcome `json:"outcome"`
	Reason    string  `json:"reason,omitempty"`
}

// Result is the outcome of Apply.
type Result struct {
	Features features.Set      `json:"features"` // base with the allowed overrides applied
	Tags     []string          `json:"tags,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	SendAt   time.Time         `json:"send_at,omitzero"` // UTC; zero if none
	Records  []Record          `json:"records,omitempty"`
}

// MalformedError is returned by Apply when Config.RejectMalformed is set and
// a directive cannot be read. Reason is printable ASCII, fit for an SMTP reply
// ("550 5.6.0 " + err.Error()).
type MalformedError struct {
	Header string
	Reason string
}

// Error implements error.
func (e *MalformedError) Error() string {
	return fmt.Sprintf("malformed %s header: %s", e.Header, e.Reason)
}

// Apply reads every directive header of h, strips all headers under the
// configured prefixes and of the enabled vendors (even refused or malformed
// ones), and returns the resulting feature set, tags, metadata and send time.
// base is the login's feature set from the policy; overridable the feature
// names the login may change (["*"] = all).
//
// The error is a *MalformedError only when cfg.RejectMalformed is set and a
// directive is malformed (the Result is still complete, and h stripped), or a
// plain error when cfg is invalid (h is then untouched).
func Apply(h *textproto.Header, cfg Config, base features.Set, overridable []string) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{Features: base}, err
	}
	prefixes := cfg.Prefixes
	if len(prefixes) == 0 {
		prefixes = DefaultPrefixes
	}
	lower := make([]string, len(prefixes))
	for i, p := range prefixes {
		lower[i] = strings.ToLower(strings.TrimSpace(p))
	}
	vendors := make(map[string]bool, len(cfg.Vendors))
	for _, v := range cfg.Vendors {
		vendors[strings.ToLower(v)] = true
	}

	var ds []*directive
	for f := h.Fields(); f.Next(); {
		key := strings.ToLower(f.Key())
		d := classify(key, lower, vendors)
		if d == nil {
			continue
		}
		d.header = rawName(f)
		d.value = f.Value()
		d.parse(d)
		f.Del()
		ds = append(ds, d)
	}

	res := resolve(ds, base, overridableSet(overridable))
	if cfg.RejectMalformed {
		for _, d := range ds {
			if d.outcome == Malformed {
				return res, &MalformedError{Header: d.header, Reason: d.reason}
			}
		}
	}
	return res, nil
}

// directive is one stripped header on its way to a Record.
type directive struct {
	header string // name as written
	value  string // unfolded value
	name   string // Record.Directive
	dedup  string // identity for "first one wins"; "" = repeatable
	rank   int    // 0 own, 1 vendor-specific, 2 vendor-general: lower wins
	parse  func(*directive)

	assigns []assign
	tags    []string
	meta    []kv
	sendAt  time.Time

	outcome Outcome // preset for malformed and ignored
	reason  string
	notes   []string
	hit     bool // contributed something to the Result
}

type assign struct {
	feature string
	value   bool
	state   Outcome // Applied, Refused or Ignored (superseded)
	by      *directive
}

type kv struct{ k, v string }

func (d *directive) fail(format string, args ...any) {
	d.outcome = Malformed
	d.reason = fmt.Sprintf(format, args...)
	d.assigns, d.tags, d.meta, d.sendAt = nil, nil, nil, time.Time{}
}

func (d *directive) ignore(reason string) {
	d.outcome = Ignored
	d.reason = reason
}

func (d *directive) note(format string, args ...any) {
	d.notes = append(d.notes, fmt.Sprintf(format, args...))
}

func (d *directive) set(value bool, names ...string) {
	for _, n := range names {
		d.assigns = append(d.assigns, assign{feature: n, value: value})
	}
}

// rawName returns the field name as written (the canonical form loses case).
func rawName(f textproto.HeaderFields) string {
	raw, err := f.Raw()
	if err == nil {
		if i := bytes.IndexByte(raw, ':'); i > 0 {
			if n := strings.TrimSpace(string(raw[:i])); n != "" {
				return n
			}
		}
	}
	return f.Key()
}

func overridableSet(names []string) func(string) bool {
	all := slices.Contains(names, "*")
	return func(n string) bool { return all || slices.Contains(names, n) }
}

// resolve settles duplicates, precedence and permissions, and builds the Result.
func resolve(ds []*directive, base features.Set, overridable func(string) bool) Result {
	res := Result{Features: base}
	live := make([]*directive, 0, len(ds))
	first := map[string]*directive{}
	for _, d := range ds {
		if d.outcome != "" {
			continue
		}
		if d.dedup != "" {
			if w, ok := first[d.dedup]; ok {
				d.ignore("duplicate of an earlier " + w.header + " header; the first one wins")
				continue
			}
			first[d.dedup] = d
		}
		live = append(live, d)
	}
	// Precedence order: own directives, then vendor-specific, then
	// vendor-general; header order between equals.
	byRank := slices.Clone(live)
	slices.SortStableFunc(byRank, func(a, b *directive) int { return cmp.Compare(a.rank, b.rank) })

	// Features.
	won := map[string]*directive{}
	for _, d := range byRank {
		for i := range d.assigns {
			a := &d.assigns[i]
			switch w, taken := won[a.feature]; {
			case !overridable(a.feature):
				a.state = Refused
			case taken:
				a.state, a.by = Ignored, w
			default:
				won[a.feature] = d
				a.state = Applied
				d.hit = true
				res.Features, _ = res.Features.With(a.feature, a.value)
			}
		}
	}

	// Tags: every source, header order.
	seen := map[string]bool{}
	for _, d := range live {
		var dropped []string
		for _, t := range d.tags {
			switch {
			case seen[t]:
				d.hit = true
			case len(res.Tags) >= MaxTags:
				dropped = append(dropped, t)
			default:
				seen[t] = true
				d.hit = true
				res.Tags = append(res.Tags, t)
			}
		}
		if len(dropped) > 0 {
			d.note("%d-tag limit reached, dropped %s", MaxTags, quoteList(dropped))
		}
	}

	// Metadata and send time: precedence order, first wins.
	var sendBy *directive
	metaBy := map[string]*directive{}
	for _, d := range byRank {
		var dropped []string
		for _, m := range d.meta {
			switch w, ok := metaBy[m.k]; {
			case ok && w != d:
				d.note("metadata %s already set by %s", quote(m.k), w.header)
			case ok:
			case len(metaBy) >= MaxMetadataKeys:
				dropped = append(dropped, m.k)
			default:
				if res.Metadata == nil {
					res.Metadata = map[string]string{}
				}
				res.Metadata[m.k] = m.v
				metaBy[m.k] = d
				d.hit = true
			}
		}
		if len(dropped) > 0 {
			d.note("%d-key metadata limit reached, dropped %s", MaxMetadataKeys, quoteList(dropped))
		}
		if !d.sendAt.IsZero() {
			if sendBy != nil {
				d.note("send time already set by %s", sendBy.header)
			} else {
				sendBy = d
				d.hit = true
				res.SendAt = d.sendAt
			}
		}
		d.settle()
	}

	res.Records = make([]Record, len(ds))
	for i, d := range ds {
		res.Records[i] = Record{
			Header:    d.header,
			Value:     clip(d.value, maxRecordValue),
			Directive: d.name,
			Outcome:   d.outcome,
			Reason:    d.reason,
		}
	}
	return res
}

// settle decides the outcome of a live directive from what it contributed.
func (d *directive) settle() {
	var refused, superseded []string
	for _, a := range d.assigns {
		switch a.state {
		case Refused:
			refused = append(refused, a.feature+" is not overridable for this login")
		case Ignored:
			superseded = append(superseded, a.feature+" set by "+a.by.header)
		}
	}
	reasons := refused
	if len(superseded) > 0 {
		reasons = append(reasons, "superseded: "+strings.Join(superseded, ", "))
	}
	reasons = append(reasons, d.notes...)
	switch {
	case d.hit:
		d.outcome = Applied
	case len(refused) > 0:
		d.outcome = Refused
	default:
		d.outcome = Ignored
		if len(reasons) == 0 {
			reasons = append(reasons, "no effect")
		}
	}
	d.reason = strings.Join(reasons, "; ")
}

// clip cuts s to at most n bytes on a rune boundary and makes it valid UTF-8.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
