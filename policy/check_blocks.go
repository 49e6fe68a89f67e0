package policy

import (
	"crypto/sha256"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/smtpgate/smtpgate/features"
	"github.com/smtpgate/smtpgate/store"
)

// minSecretLen is the length, in bytes, below which a secret or key gets a warning.
const minSecretLen = 16

// Names a policy may use. They are never modified.
var (
	vendorNames  = []string{"mailgun", "postmark", "emailengine", "sendgrid"}
	webhookNames = []string{store.EventQueued, store.EventCaptured, store.EventSent, store.EventDeferred, store.EventBounced,
		store.EventFailed, store.EventOpened, store.EventClicked, store.EventDirective, store.EventReply}
	// trackingNames are the features that need tracking.secret.
	trackingNames = []string{features.TrackClicks, features.TrackTextLinks, features.TrackOpens, features.TrackBounces}
)

// directives checks the directives block and fills in its defaults.
func (c *checker) directives(raw *rawDirectives, d *Directives) {
	d.Prefixes = []string{"X-Smtpgate-", "X-Smtpeter-"}
	d.OnError = OnErrorIgnore
	if raw == nil {
		return
	}
	if vals, rngs, state := c.strings(raw.Prefixes); state == listOK {
		d.Prefixes = []string{}
		for i, v := range vals {
			if !isHeaderPrefix(v) {
				c.errorf(rngs[i], "Invalid prefix", "%q is not the start of a header field name (printable ASCII without spaces or colons).", v)
				continue
			}
			d.Prefixes = append(d.Prefixes, v)
		}
	}
	if vals, rngs, state := c.strings(raw.Vendors); state == listOK {
		for i, v := range vals {
			lv := strings.ToLower(v)
			if !slices.Contains(vendorNames, lv) {
				c.errorf(rngs[i], "Unknown vendor", "%q is not one of %s.%s", v, quoteList(vendorNames), suggestion(lv, vendorNames))
				continue
			}
			if !slices.Contains(d.Vendors, lv) {
				d.Vendors = append(d.Vendors, lv)
			}
		}
	}
	d.OnError = c.oneOf(raw.OnError, raw.OnErrorRange, "on_error", OnErrorIgnore, OnErrorIgnore, OnErrorReject)
}

// isHeaderPrefix reports whether s can start a header field name.
func isHeaderPrefix(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == ':' {
			return false
		}
	}
	return true
}

// tracking checks the tracking block; public_url defaults to server.http.public_url.
func (c *checker) tracking(raw *rawTracking, t *Tracking, httpURL string) {
	t.PublicURL = httpURL
	if raw == nil {
		return
	}
	if c.ok(raw.SecretRange) && c.secret(raw.Secret, raw.SecretRange, "tracking.secret signs tracking links") {
		t.Secret = raw.Secret
	}
	if c.ok(raw.PublicURLRange) {
		t.PublicURL = c.publicURL(raw.PublicURL, raw.PublicURLRange)
	}
	if c.ok(raw.BounceDomainRange) {
		if !isDomain(raw.BounceDomain) {
			c.errorf(raw.BounceDomainRange, "Invalid bounce_domain", "%q is not a domain name.", raw.BounceDomain)
		} else {
			t.BounceDomain = strings.ToLower(raw.BounceDomain)
		}
	}
}

// featureSet adds a features block.
func (c *checker) featureSet(raw *rawFeatures, sets map[string]features.Set, seen map[string]hcl.Range) {
	if c.duplicate(seen, "features block", raw.Name, raw.NameRange) {
		return
	}
	sets[raw.Name] = features.Set{
		InlineCSS:      raw.InlineCSS,
		TrackClicks:    raw.TrackClicks,
		TrackTextLinks: raw.TrackTextLinks,
		TrackOpens:     raw.TrackOpens,
		TrackBounces:   raw.TrackBounces,
		PreventScam:    raw.PreventScam,
	}
}

// maxRelayConcurrency is the largest concurrency of a relay.
const maxRelayConcurrency = 1000

// relay checks a relay block: a smarthost (address) or direct delivery (mx).
// hostname is server.hostname, the default EHLO name.
func (c *checker) relay(raw *rawRelay, relays map[string]*Relay, seen map[string]hcl.Range, hostname string) {
	if c.duplicate(seen, "relay", raw.Name, raw.NameRange) {
		return
	}
	if raw.Name == RouteCapture || raw.Name == "" {
		c.errorf(raw.NameRange, "Invalid relay name", "%q cannot name a relay: route = %q means capture.", raw.Name, RouteCapture)
		return
	}
	r := &Relay{Name: raw.Name, MX: raw.MX, Username: raw.Username, Password: raw.Password}
	c.relayLimits(raw, r, hostname)
	if present(raw.MXRange) && !c.ok(raw.MXRange) {
		relays[raw.Name] = r
		return
	}
	switch {
	case raw.MX && present(raw.AddressRange):
		c.errorf(raw.AddressRange, "Conflicting relay", "A relay with mx = true delivers to the recipients' MX hosts and takes no address.")
	case !raw.MX && !present(raw.AddressRange):
		c.errorf(raw.DefRange, "Missing address", "A relay needs an address (a smarthost as host:port) or mx = true.")
	case c.ok(raw.AddressRange):
		host, _, err := splitHostPort(raw.Address)
		if err == nil && host == "" {
			err = fmt.Errorf("%q has no host", raw.Address)
		}
		if err != nil {
			c.errorf(raw.AddressRange, "Invalid address", "%v.", err)
		}
		r.Address = raw.Address
	}
	if raw.MX {
		for _, a := range []struct {
			rng  hcl.Range
			name string
		}{{raw.TLSRange, "tls"}, {raw.UsernameRange, "username"}, {raw.PasswordRange, "password"}} {
			if present(a.rng) {
				c.errorf(a.rng, "Unexpected "+a.name, "%s is for a smarthost; a relay with mx = true uses starttls (%q or %q) and no login.", a.name, StartTLSOpportunistic, StartTLSRequire)
			}
		}
		r.StartTLS = c.oneOf(raw.StartTLS, raw.StartTLSRange, "starttls", StartTLSOpportunistic, StartTLSOpportunistic, StartTLSRequire)
		r.Port = DefaultMXPort
		if c.ok(raw.PortRange) {
			r.Port = c.between(raw.Port, raw.PortRange, "port", 1, 65535, r.Port)
		}
	} else {
		r.TLS = c.oneOf(raw.TLS, raw.TLSRange, "tls", TLSStartTLS, TLSStartTLS, TLSImplicit, TLSNone)
		if present(raw.UsernameRange) != present(raw.PasswordRange) {
			rng, missing := raw.UsernameRange, "password"
			if !present(rng) {
				rng, missing = raw.PasswordRange, "username"
			}
			c.errorf(rng, "Missing "+missing, "A relay login needs both username and password.")
		}
		if present(raw.StartTLSRange) {
			c.errorf(raw.StartTLSRange, "Unexpected starttls", "starttls is for a relay with mx = true; a smarthost uses tls = %q, %q or %q.", TLSStartTLS, TLSImplicit, TLSNone)
		}
		if present(raw.PortRange) {
			c.errorf(raw.PortRange, "Unexpected port", "port is for a relay with mx = true; a smarthost's port is part of its address.")
		}
	}
	c.relayTLS(raw, r)
	relays[raw.Name] = r
}

// relayLimits checks the settings common to both kinds of relay: retries,
// concurrency, rate and EHLO name.
func (c *checker) relayLimits(raw *rawRelay, r *Relay, hostname string) {
	r.Helo = hostname
	if c.ok(raw.HeloRange) {
		if isDomain(raw.Helo) {
			r.Helo = raw.Helo
		} else {
			c.errorf(raw.HeloRange, "Invalid helo", "%q is not a host name (letters, digits, hyphens and dots).", raw.Helo)
		}
	}
	r.MaxAge = DefaultRelayMaxAge
	if c.ok(raw.MaxAgeRange) {
		r.MaxAge = c.duration(raw.MaxAge, raw.MaxAgeRange, r.MaxAge)
	}
	r.Concurrency = DefaultRelayConcurrency
	if c.ok(raw.ConcurrencyRange) {
		r.Concurrency = c.between(raw.Concurrency, raw.ConcurrencyRange, "concurrency", 1, maxRelayConcurrency, r.Concurrency)
	}
	r.PerDomainConcurrency = min(DefaultRelayPerDomainConcurrency, r.Concurrency)
	if c.ok(raw.PerDomainConcurrencyRange) {
		v := raw.PerDomainConcurrency
		if v < 1 || v > r.Concurrency {
			c.errorf(raw.PerDomainConcurrencyRange, "Invalid per_domain_concurrency", "per_domain_concurrency must be between 1 and the relay's concurrency (%d), not %d.", r.Concurrency, v)
		} else {
			r.PerDomainConcurrency = v
		}
	}
	if c.ok(raw.RatePerMinuteRange) {
		if raw.RatePerMinute < 0 {
			c.errorf(raw.RatePerMinuteRange, "Invalid rate_per_minute", "rate_per_minute must be 0 (no limit) or more, not %d.", raw.RatePerMinute)
		} else {
			r.RatePerMinute = raw.RatePerMinute
		}
	}
}

// relayTLS checks verify_tls and ca_file, after tls or starttls: only a
// relay that insists on TLS can check a certificate.
func (c *checker) relayTLS(raw *rawRelay, r *Relay) {
	var cannot string // why this relay cannot check a certificate
	switch {
	case r.MX && r.StartTLS != StartTLSRequire:
		cannot = fmt.Sprintf("with starttls = %q it delivers in plain text when TLS fails, so there is nothing to check; set starttls = %q to check certificates", StartTLSOpportunistic, StartTLSRequire)
	case !r.MX && r.TLS == TLSNone:
		cannot = fmt.Sprintf("it has tls = %q", TLSNone)
	}
	r.VerifyTLS = cannot == ""
	explicit := c.ok(raw.VerifyTLSRange)
	if explicit {
		if raw.VerifyTLS && cannot != "" {
			c.errorf(raw.VerifyTLSRange, "Invalid verify_tls", "Relay %q cannot check its peer's certificate: %s.", r.Name, cannot)
		}
		r.VerifyTLS = r.VerifyTLS && raw.VerifyTLS
	}
	if !c.ok(raw.CAFileRange) {
		return
	}
	r.CAFile = c.path(raw.CAFile, raw.CAFileRange, "ca_file")
	switch {
	case r.VerifyTLS || raw.CAFile == "":
	case cannot == "":
		c.errorf(raw.CAFileRange, "Unexpected ca_file", "ca_file adds CAs for checking the relay's certificate, but relay %q has verify_tls = false.", r.Name)
	case !explicit || !raw.VerifyTLS:
		c.errorf(raw.CAFileRange, "Unexpected ca_file", "ca_file adds CAs for checking the relay's certificate, but relay %q cannot check it: %s.", r.Name, cannot)
	}
}

// credential checks a credential block and its references to features and relays.
func (c *checker) credential(raw *rawCredential, p *Policy, tracking *rawTracking, seen map[string]hcl.Range) {
	if c.duplicate(seen, "credential", raw.Label, raw.LabelRange) {
		return
	}
	if !isLogin(raw.Label) {
		c.errorf(raw.LabelRange, "Invalid credential name", "%q cannot be a login name: it must be 1 to 255 printable characters without spaces, and not \"*\".", raw.Label)
	}
	cr := &Credential{Label: raw.Label, PasswordHash: raw.PasswordHash, Route: RouteCapture}
	if c.ok(raw.PasswordHashRange) {
		h, err := parseHash(raw.PasswordHash)
		if err != nil {
			c.errorf(raw.PasswordHashRange, "Malformed password hash", "%s.", strings.TrimPrefix(err.Error(), errMalformedHash.Error()+": "))
		}
		cr.hash = h
	}
	if c.ok(raw.FeaturesRange) {
		set, ok := p.Features[raw.Features]
		if !ok {
			c.errorf(raw.FeaturesRange, "Unknown features block", "There is no features %q block.%s", raw.Features, suggestion(raw.Features, mapKeys(p.Features)))
		}
		cr.FeaturesName, cr.Features = raw.Features, set
	}
	var overRngs []hcl.Range
	if vals, rngs, state := c.strings(raw.Overridable); state == listOK {
		for i, v := range vals {
			switch {
			case v == "*":
				for _, n := range features.AllNames {
					if !slices.Contains(cr.Overridable, n) {
						cr.Overridable = append(cr.Overridable, n)
						overRngs = append(overRngs, rngs[i])
					}
				}
			case slices.Contains(features.AllNames, v):
				if !slices.Contains(cr.Overridable, v) {
					cr.Overridable = append(cr.Overridable, v)
					overRngs = append(overRngs, rngs[i])
				}
			default:
				c.errorf(rngs[i], "Unknown feature", "%q is not a feature; overridable takes %s, or \"*\".%s", v, quoteList(features.AllNames), suggestion(v, features.AllNames))
			}
		}
	}
	if vals, rngs, state := c.strings(raw.AllowFrom); state == listOK {
		if len(vals) == 0 {
			c.errorf(raw.AllowFrom.Range(), "Empty allow_from", "An empty allow_from allows no sender at all; leave it out to allow any sender.")
		}
		cr.AllowFrom = []string{}
		for i, v := range vals {
			pat := strings.ToLower(v)
			if err := checkPattern(pat); err != nil {
				c.errorf(rngs[i], "Invalid sender pattern", "%v.", err)
				continue
			}
			cr.AllowFrom = append(cr.AllowFrom, pat)
		}
	}
	if c.ok(raw.RouteRange) {
		if _, ok := p.Relays[raw.Route]; !ok && raw.Route != RouteCapture {
			c.errorf(raw.RouteRange, "Unknown route", "%q is neither %q nor a relay.%s", raw.Route, RouteCapture, suggestion(raw.Route, append(mapKeys(p.Relays), RouteCapture)))
		} else {
			cr.Route = raw.Route
		}
	}
	if c.ok(raw.DKIMDomainRange) {
		d := strings.ToLower(strings.TrimSuffix(raw.DKIMDomain, "."))
		if len(p.DKIM[d]) == 0 {
			c.errorf(raw.DKIMDomainRange, "Unknown dkim_domain", "There is no dkim %q block.%s", raw.DKIMDomain, suggestion(d, mapKeys(p.DKIM)))
		} else {
			cr.DKIMDomain = d
		}
	}
	cr.Retention = c.retention(raw.Retention, p.Server.Retention)
	c.trackingNeeds(raw, cr, overRngs, p, tracking)
	p.Credentials[raw.Label] = cr
}

// trackingNeeds checks that the tracking block has what the credential's
// tracking features need. A feature that is on needs the secret, and the
// public URL (clicks, text links, opens) or the bounce domain (bounces). A
// feature that only a header may turn on (overridable) needs the secret.
func (c *checker) trackingNeeds(raw *rawCredential, cr *Credential, overRngs []hcl.Range, p *Policy, tracking *rawTracking) {
	missing := func(attr string) string {
		if tracking == nil {
			return "there is no tracking block"
		}
		return "the tracking block has no valid " + attr
	}
	for _, name := range trackingNames {
		on, _ := cr.Features.Get(name)
		i := slices.Index(cr.Overridable, name)
		if !on && i < 0 {
			continue
		}
		rng, why := raw.FeaturesRange, fmt.Sprintf("features %q turns on %s", cr.FeaturesName, name)
		if !on {
			rng, why = overRngs[i], "a header may turn on "+name
		}
		if p.Tracking.Secret == "" && (tracking == nil || !present(tracking.SecretRange)) {
			c.errorf(rng, "Missing tracking secret", "Credential %q: %s, which needs tracking.secret, but %s.", cr.Label, why, missing("secret"))
			return
		}
		if !on {
			continue // a feature only a header turns on needs no more than the secret
		}
		if name != features.TrackBounces && p.Tracking.PublicURL == "" && (tracking == nil || !present(tracking.PublicURLRange)) {
			c.errorf(rng, "Missing tracking public_url", "Credential %q: %s, which needs tracking.public_url (or server.http.public_url) for its links.", cr.Label, why)
			return
		}
		if name == features.TrackBounces && p.Tracking.BounceDomain == "" && (tracking == nil || !present(tracking.BounceDomainRange)) {
			c.errorf(rng, "Missing tracking bounce_domain", "Credential %q: %s, which needs tracking.bounce_domain, but %s.", cr.Label, why, missing("bounce_domain"))
			return
		}
	}
}

// isLogin reports whether s can be an SMTP login name.
func isLogin(s string) bool {
	if s == "" || s == "*" || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// apiKeys checks the api_key blocks, after the credentials they name.
func (c *checker) apiKeys(raws []rawAPIKey, p *Policy) {
	names := map[string]hcl.Range{}
	sums := map[[32]byte]hcl.Range{}
	for _, raw := range raws {
		if c.duplicate(names, "api_key", raw.Name, raw.NameRange) {
			continue
		}
		k := APIKey{Name: raw.Name}
		if c.ok(raw.KeyRange) {
			c.secret(raw.Key, raw.KeyRange, "An API key gives access to captured mail")
			k.sum = sha256.Sum256([]byte(raw.Key))
			if first, dup := sums[k.sum]; dup {
				c.errorf(raw.KeyRange, "Duplicate key", "api_key %q has the same key as the one at %s.", raw.Name, posString(first))
			}
			sums[k.sum] = raw.KeyRange
		}
		vals, rngs, state := c.strings(raw.Logins)
		if state == listOK && len(vals) == 0 {
			c.errorf(raw.Logins.Range(), "Empty logins", `An api_key with no logins can read nothing; list logins, or ["*"] for all.`)
		}
		for i, v := range vals {
			switch {
			case v == "*" && len(vals) == 1:
				k.All = true
			case v == "*":
				c.errorf(rngs[i], "Invalid logins", `"*" (all logins) must be alone in the list.`)
			case p.Credentials[v] == nil:
				c.errorf(rngs[i], "Unknown login", "There is no credential %q.%s", v, suggestion(v, p.loginNames()))
			case !slices.Contains(k.Logins, v):
				k.Logins = append(k.Logins, v)
			}
		}
		p.APIKeys = append(p.APIKeys, k)
	}
}

// dkim checks a dkim block. A domain may have several, for dual signing
// (RSA and Ed25519) or a key rotation, each with its own selector; seen holds
// where each domain and lower-case selector pair was first defined.
func (c *checker) dkim(raw *rawDKIM, keys map[string][]*DKIM, seen map[string]hcl.Range) {
	domain := strings.ToLower(strings.TrimSuffix(raw.Domain, "."))
	if !isDomain(domain) {
		c.errorf(raw.DomainRange, "Invalid domain", "%q is not a domain name.", raw.Domain)
	}
	d := &DKIM{Domain: domain, Selector: raw.Selector}
	if c.ok(raw.SelectorRange) {
		if !isDomain(raw.Selector) {
			c.errorf(raw.SelectorRange, "Invalid selector", "%q is not a DKIM selector (DNS labels: letters, digits, hyphens, dots).", raw.Selector)
		}
		pair := domain + " " + strings.ToLower(raw.Selector)
		if first, dup := seen[pair]; dup {
			c.errorf(raw.SelectorRange, "Duplicate dkim selector", "The domain %q already has a key with selector %q (selectors ignore case), at %s; each key of a domain needs its own selector.", domain, raw.Selector, posString(first))
			return
		}
		seen[pair] = raw.SelectorRange
	}
	d.Algorithm = c.oneOf(raw.Algorithm, raw.AlgorithmRange, "algorithm", "rsa", "rsa", "ed25519")
	d.KeyFile = c.path(raw.KeyFile, raw.KeyFileRange, "key_file")
	keys[domain] = append(keys[domain], d)
}

// webhook checks a webhook block, after the credentials it may name.
func (c *checker) webhook(raw *rawWebhook, p *Policy, seen map[string]hcl.Range) {
	if c.duplicate(seen, "webhook", raw.Name, raw.NameRange) {
		return
	}
	w := &Webhook{Name: raw.Name, URL: raw.URL, Secret: raw.Secret, MaxAge: DefaultWebhookMaxAge}
	if c.ok(raw.URLRange) {
		u, err := url.Parse(raw.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.errorf(raw.URLRange, "Invalid url", "%q is not an absolute http or https URL.", raw.URL)
		}
	}
	if c.ok(raw.SecretRange) {
		c.secret(raw.Secret, raw.SecretRange, "A webhook secret signs its events")
	}
	vals, rngs, state := c.strings(raw.Events)
	if state == listOK && len(vals) == 0 {
		c.errorf(raw.Events.Range(), "Empty events", `A webhook with no events gets nothing; list events, or ["*"] for all.`)
	}
	for i, v := range vals {
		if v == "accepted" {
			c.warnf(rngs[i], "Old event name", "%q is now called %q.", v, store.EventQueued)
			v = store.EventQueued
		}
		switch {
		case v == "*":
			w.Events = append(w.Events[:0], webhookNames...)
		case slices.Contains(webhookNames, v):
			if !slices.Contains(w.Events, v) {
				w.Events = append(w.Events, v)
			}
		default:
			c.errorf(rngs[i], "Unknown event", "%q is not one of %s, or \"*\".%s", v, quoteList(webhookNames), suggestion(v, webhookNames))
		}
	}
	vals, rngs, state = c.strings(raw.Logins)
	if state == listOK && len(vals) == 0 {
		c.errorf(raw.Logins.Range(), "Empty logins", `A webhook with no logins gets nothing; list logins, or leave logins out for all.`)
	}
	for i, v := range vals {
		switch {
		case v == "*" && len(vals) == 1:
		case v == "*":
			c.errorf(rngs[i], "Invalid logins", `"*" (all logins) must be alone in the list.`)
		case p.Credentials[v] == nil:
			c.errorf(rngs[i], "Unknown login", "There is no credential %q.%s", v, suggestion(v, p.loginNames()))
		case !slices.Contains(w.Logins, v):
			w.Logins = append(w.Logins, v)
		}
	}
	if c.ok(raw.MaxAgeRange) {
		w.MaxAge = c.duration(raw.MaxAge, raw.MaxAgeRange, w.MaxAge)
	}
	p.Webhooks[raw.Name] = w
}
