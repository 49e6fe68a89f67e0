package policy

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/smtpgate/smtpgate/features"
)

// parse parses and checks a policy. The Policy is nil when diags has errors.
func parse(filename string, src []byte, lookupEnv func(string) (string, bool)) (*Policy, hcl.Diagnostics, map[string]*hcl.File) {
	parser := hclparse.NewParser()
	f, diags := parser.ParseHCL(src, filename)
	if diags.HasErrors() {
		sortDiags(diags)
		return nil, diags, parser.Files()
	}
	dir := filepath.Dir(filename)
	c := &checker{
		dir: dir,
		ctx: &hcl.EvalContext{Functions: functions(dir, lookupEnv)},
	}
	var raw rawFile
	c.addDecode(gohcl.DecodeBody(f.Body, c.ctx, &raw))
	p := c.policy(&raw)
	sortDiags(c.diags)
	if c.diags.HasErrors() {
		return nil, c.diags, parser.Files()
	}
	p.Warnings = c.diags
	return p, c.diags, parser.Files()
}

// checker turns a decoded file into a Policy and collects diagnostics.
type checker struct {
	dir   string
	ctx   *hcl.EvalContext
	diags hcl.Diagnostics
	// failed are the subjects of decoding errors: a value there was not
	// decoded, so later checks of it would only add noise.
	failed []hcl.Range
}

// addDecode adds decoding diagnostics, less the "value must be known" that hcl
// adds after a failed function call, and notes where they are.
func (c *checker) addDecode(diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Summary == "Unsuitable value type" && strings.Contains(d.Detail, "value must be known") {
			continue
		}
		c.diags = append(c.diags, d)
		if d.Severity == hcl.DiagError && d.Subject != nil {
			c.failed = append(c.failed, *d.Subject)
		}
	}
}

// errorf adds an error diagnostic at rng.
func (c *checker) errorf(rng hcl.Range, summary, format string, args ...any) {
	r := rng
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  &r,
	})
}

// warnf adds a warning diagnostic at rng.
func (c *checker) warnf(rng hcl.Range, summary, format string, args ...any) {
	r := rng
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  &r,
	})
}

// secret checks a secret or key: empty is an error, short a warning. It
// reports whether the secret is usable.
func (c *checker) secret(v string, rng hcl.Range, what string) bool {
	switch {
	case v == "":
		c.errorf(rng, "Empty secret", "%s and must not be empty.", what)
		return false
	case len(v) < minSecretLen:
		c.warnf(rng, "Short secret", "%s and should be at least %d bytes; this one has %d.", what, minSecretLen, len(v))
	}
	return true
}

// present reports whether an attribute was in the file (its range is set).
func present(rng hcl.Range) bool { return rng.Filename != "" }

// ok reports whether an attribute is present and was decoded without error.
func (c *checker) ok(rng hcl.Range) bool {
	if !present(rng) {
		return false
	}
	for _, f := range c.failed {
		if f.Filename == rng.Filename && f.Start.Byte >= rng.Start.Byte && f.Start.Byte <= rng.End.Byte {
			return false
		}
	}
	return true
}

// listState says what strings found.
type listState int

const (
	listAbsent listState = iota // not in the file, or null
	listOK
	listFailed // a diagnostic was reported
)

// strings evaluates a list of strings. Each element gets its own range when
// the list is written out as [ ... ]; otherwise all share the list's range.
func (c *checker) strings(expr hcl.Expression) ([]string, []hcl.Range, listState) {
	if expr == nil {
		return nil, nil, listAbsent
	}
	if elems, d := hcl.ExprList(expr); !d.HasErrors() {
		vals := make([]string, 0, len(elems))
		rngs := make([]hcl.Range, 0, len(elems))
		state := listOK
		for _, e := range elems {
			var s string
			if d := gohcl.DecodeExpression(e, c.ctx, &s); d.HasErrors() {
				c.addDecode(d)
				state = listFailed
				continue
			}
			vals = append(vals, s)
			rngs = append(rngs, e.Range())
		}
		return vals, rngs, state
	}
	v, d := expr.Value(c.ctx)
	if d.HasErrors() {
		c.addDecode(d)
		return nil, nil, listFailed
	}
	if v.IsNull() {
		return nil, nil, listAbsent
	}
	lv, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || !lv.IsWhollyKnown() {
		c.errorf(expr.Range(), "Unsuitable value type", "A list of strings is required.")
		return nil, nil, listFailed
	}
	var vals []string
	var rngs []hcl.Range
	for it := lv.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			c.errorf(expr.Range(), "Unsuitable value type", "The list must not contain null.")
			return nil, nil, listFailed
		}
		vals = append(vals, e.AsString())
		rngs = append(rngs, expr.Range())
	}
	return vals, rngs, listOK
}

// policy checks everything and builds the Policy.
func (c *checker) policy(raw *rawFile) *Policy {
	p := &Policy{
		Features:    map[string]features.Set{},
		Credentials: map[string]*Credential{},
		Relays:      map[string]*Relay{},
		DKIM:        map[string][]*DKIM{},
		Webhooks:    map[string]*Webhook{},
		now:         time.Now,
	}
	c.server(&raw.Server, &p.Server, raw.Tracking != nil && present(raw.Tracking.BounceDomainRange))
	c.directives(raw.Directives, &p.Directives)
	c.tracking(raw.Tracking, &p.Tracking, p.Server.HTTP.PublicURL)
	// Each kind of labelled block has its own name space; these remember
	// where each name was first defined.
	featureNames, relayNames := map[string]hcl.Range{}, map[string]hcl.Range{}
	loginNames, dkimNames, hookNames := map[string]hcl.Range{}, map[string]hcl.Range{}, map[string]hcl.Range{}
	for i := range raw.Features {
		c.featureSet(&raw.Features[i], p.Features, featureNames)
	}
	for i := range raw.Relays {
		c.relay(&raw.Relays[i], p.Relays, relayNames, p.Server.Hostname)
	}
	for i := range raw.DKIM {
		c.dkim(&raw.DKIM[i], p.DKIM, dkimNames)
	}
	for i := range raw.Credentials {
		c.credential(&raw.Credentials[i], p, raw.Tracking, loginNames)
	}
	c.apiKeys(raw.APIKeys, p)
	for i := range raw.Webhooks {
		c.webhook(&raw.Webhooks[i], p, hookNames)
	}

	// Unknown users are verified against a hash of the same kind and cost as
	// a real credential's.
	p.dummy = defaultDummy()
	if names := p.loginNames(); len(names) > 0 {
		if h := p.Credentials[names[0]].hash; h != nil {
			p.dummy = h.dummy()
		}
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails: crypto/rand crashes the program instead
	p.auth = newAuthCache(key, authCacheSize, authCacheTTL)
	return p
}

// duplicate reports a second block with the same name; it returns true if
// name was seen before, and otherwise notes it.
func (c *checker) duplicate(seen map[string]hcl.Range, kind, name string, rng hcl.Range) bool {
	if first, ok := seen[name]; ok {
		c.errorf(rng, "Duplicate "+kind, "%s %q is already defined at %s.", kind, name, posString(first))
		return true
	}
	seen[name] = rng
	return false
}

// posString formats the start of a range as file:line:col.
func posString(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// oneOf checks an enumerated value and returns it, or def when absent.
func (c *checker) oneOf(v string, rng hcl.Range, attr, def string, allowed ...string) string {
	if !present(rng) {
		return def
	}
	if !c.ok(rng) {
		return def
	}
	if slices.Contains(allowed, v) {
		return v
	}
	c.errorf(rng, "Invalid "+attr, "%q is not one of %s.%s", v, quoteList(allowed), suggestion(v, allowed))
	return def
}

// quoteList formats names as "a", "b" or "c".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) <= 1 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// isDomain reports whether s is an ASCII host name: dot-separated labels of
// letters, digits and hyphens (and underscores, as in DKIM selectors), none
// starting or ending with a hyphen.
func isDomain(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
				return false
			}
		}
	}
	return true
}

// mapKeys returns the keys of m, sorted.
func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// suggestion returns ` Did you mean "x"?` for the candidate closest to s, or "".
func suggestion(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, cand := range candidates {
		if d := levenshtein(strings.ToLower(s), strings.ToLower(cand)); d < bestDist {
			best, bestDist = cand, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

// levenshtein is the edit distance between a and b, in bytes.
func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
