package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"slices"

	"github.com/smtpgate/smtpgate/features"
)

// Plan is what the policy says to do with a login's mail.
type Plan struct {
	Login       string
	Route       string       // RouteCapture or a relay name
	Features    features.Set // before header directives
	Overridable []string     // the features a header directive may flip
	// DKIMDomain is the domain whose dkim keys sign the mail (the
	// credential's dkim_domain); "" signs with the From domain's keys.
	DKIMDomain string
	// Retention bounds the login's captured mail.
	Retention Retention
}

// Resolve returns the plan of a login. In capture mode every route is
// RouteCapture.
func (p *Policy) Resolve(login string) (Plan, error) {
	c := p.Credentials[login]
	if c == nil {
		return Plan{}, fmt.Errorf("policy: resolve: unknown login %q", login)
	}
	route := c.Route
	if p.Server.Mode == ModeCapture {
		route = RouteCapture
	}
	return Plan{Login: c.Label, Route: route, Features: c.Features, Overridable: slices.Clone(c.Overridable),
		DKIMDomain: c.DKIMDomain, Retention: c.Retention}, nil
}

// APIKeyScope returns the logins whose mail an API key may read: all is true
// for logins = ["*"]; ok is false for an unknown key. The comparison takes
// the same time whichever key matches, or none.
func (p *Policy) APIKeyScope(key string) (logins []string, all bool, ok bool) {
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i := range p.APIKeys {
		if subtle.ConstantTimeCompare(sum[:], p.APIKeys[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil, false, false
	}
	k := &p.APIKeys[found]
	return slices.Clone(k.Logins), k.All, true
}
