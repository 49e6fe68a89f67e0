package policy

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
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

// Defaults of the limits block.
const (
	defaultMaxConnections      = 1000
	defaultMaxConnectionsPerIP = 50
	defaultMaxAuthFailures     = 3
	defaultCommandTimeout      = 5 * time.Minute
	defaultDataTimeout         = 10 * time.Minute
)

// minSecretLen is the length, in bytes, below which a secret or key gets a warning.
const minSecretLen = 16

// maxMessageSizeLimit is the largest max_message_size accepted.
const maxMessageSizeLimit = 1 << 30

var (
	vendorNames  = []string{"mailgun", "postmark", "emailengine", "sendgrid"}
	webhookNames = []string{"accepted", "captured", "sent", "deferred", "bounced", "failed", "opened", "clicked"}
	// trackingNames are the features that need tracking.secret.
	trackingNames = []string{features.TrackClicks, features.TrackTextLinks, features.TrackOpens, features.TrackBounces}
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
		DKIM:        map[string]*DKIM{},
		Webhooks:    map[string]*Webhook{},
		now:         time.Now,
	}
	c.server(&raw.Server, &p.Server)
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
		c.relay(&raw.Relays[i], p.Relays, relayNames)
	}
	for i := range raw.Credentials {
		c.credential(&raw.Credentials[i], p, raw.Tracking, loginNames)
	}
	c.apiKeys(raw.APIKeys, p)
	for i := range raw.DKIM {
		c.dkim(&raw.DKIM[i], p.DKIM, dkimNames)
	}
	for i := range raw.Webhooks {
		c.webhook(&raw.Webhooks[i], p.Webhooks, hookNames)
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

func (c *checker) server(raw *rawServer, s *Server) {
	s.Hostname = raw.Hostname
	if !present(raw.HostnameRange) {
		h, err := os.Hostname()
		if err != nil || !isDomain(h) {
			h = "localhost"
		}
		s.Hostname = h
	} else if c.ok(raw.HostnameRange) && !isDomain(raw.Hostname) {
		c.errorf(raw.HostnameRange, "Invalid hostname", "%q is not a host name (letters, digits, hyphens and dots).", raw.Hostname)
	}
	s.Mode = c.oneOf(raw.Mode, raw.ModeRange, "mode", ModeRelay, ModeRelay, ModeCapture)

	s.MaxMessageSize = DefaultMaxMessageSize
	if c.ok(raw.MaxMessageSizeRange) {
		n, err := parseSize(raw.MaxMessageSize)
		switch {
		case err != nil:
			c.errorf(raw.MaxMessageSizeRange, "Invalid size", "%v.", err)
		case n < 1024 || n > maxMessageSizeLimit:
			c.errorf(raw.MaxMessageSizeRange, "Invalid size", "max_message_size must be between 1KB and 1GB, not %q.", raw.MaxMessageSize)
		default:
			s.MaxMessageSize = n
		}
	}
	s.MaxRecipients = DefaultMaxRecipients
	if c.ok(raw.MaxRecipientsRange) {
		s.MaxRecipients = c.positive(raw.MaxRecipients, raw.MaxRecipientsRange, "max_recipients", DefaultMaxRecipients)
	}
	s.DataDir = resolvePath(c.dir, DefaultDataDir)
	if c.ok(raw.DataDirRange) {
		if raw.DataDir == "" {
			c.errorf(raw.DataDirRange, "Invalid data_dir", "data_dir must not be empty; leave it out for %q.", DefaultDataDir)
		} else {
			s.DataDir = resolvePath(c.dir, raw.DataDir)
		}
	}

	if raw.TLS != nil {
		s.TLS = &TLSFiles{CertFile: c.path(raw.TLS.CertFile, raw.TLS.CertFileRange, "cert_file"),
			KeyFile: c.path(raw.TLS.KeyFile, raw.TLS.KeyFileRange, "key_file")}
	}
	c.listeners(raw, s)
	c.http(raw.HTTP, &s.HTTP)
	c.store(raw.Store, &s.Store, s.DataDir)
	c.limits(raw.Limits, &s.Limits)
}

// path checks a required file path and resolves it.
func (c *checker) path(v string, rng hcl.Range, attr string) string {
	if c.ok(rng) && v == "" {
		c.errorf(rng, "Invalid "+attr, "%s must not be empty.", attr)
	}
	return resolvePath(c.dir, v)
}

// positive checks an integer that must be at least 1.
func (c *checker) positive(v int, rng hcl.Range, attr string, def int) int {
	if v < 1 {
		c.errorf(rng, "Invalid "+attr, "%s must be at least 1, not %d.", attr, v)
		return def
	}
	return v
}

func (c *checker) listeners(raw *rawServer, s *Server) {
	if len(raw.Listeners) == 0 && present(raw.DefRange) {
		c.errorf(raw.DefRange, "Missing listen block", `The server needs at least one listen block, such as listen "submission" { address = ":587" }.`)
	}
	names := map[string]hcl.Range{}
	type bound struct {
		host string
		rng  hcl.Range
	}
	ports := map[string][]bound{}
	for _, l := range raw.Listeners {
		if c.duplicate(names, "listener", l.Name, l.NameRange) {
			continue
		}
		if l.Name == "" {
			c.errorf(l.NameRange, "Invalid listener name", "A listener needs a name, such as \"submission\".")
		}
		lst := Listener{Name: l.Name, Address: l.Address, ProxyProtocol: l.ProxyProtocol}
		lst.TLS = c.oneOf(l.TLS, l.TLSRange, "tls", TLSStartTLS, TLSStartTLS, TLSImplicit)
		if c.ok(l.AddressRange) {
			host, port, err := splitHostPort(l.Address)
			if err != nil {
				c.errorf(l.AddressRange, "Invalid address", "%v.", err)
			} else if port != "0" { // port 0 is an ephemeral port: never a clash
				for _, b := range ports[port] {
					if b.host == host || isWildcard(b.host) || isWildcard(host) {
						c.errorf(l.AddressRange, "Duplicate listener address", "%q clashes with the listener at %s.", l.Address, posString(b.rng))
						break
					}
				}
				ports[port] = append(ports[port], bound{host, l.AddressRange})
			}
		}
		s.Listeners = append(s.Listeners, lst)
	}
}

// isWildcard reports whether host listens on every address.
func isWildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

// splitHostPort checks a listen address, host:port with a numeric port, and
// returns the host in lower case.
func splitHostPort(addr string) (string, string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("%q is not host:port (such as \":587\" or \"127.0.0.1:587\")", addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", "", fmt.Errorf("the port of %q is not a number from 0 to 65535", addr)
	}
	host = strings.ToLower(host)
	if host != "" {
		if ip, err := netip.ParseAddr(host); err == nil {
			host = ip.String()
		} else if !isDomain(host) {
			return "", "", fmt.Errorf("the host of %q is neither an IP address nor a host name", addr)
		}
	}
	return host, strconv.FormatUint(n, 10), nil
}

func (c *checker) http(raw *rawHTTP, h *HTTP) {
	h.Address = DefaultHTTPAddress
	if raw == nil {
		return
	}
	if c.ok(raw.AddressRange) {
		if _, _, err := splitHostPort(raw.Address); err != nil {
			c.errorf(raw.AddressRange, "Invalid address", "%v.", err)
		} else {
			h.Address = raw.Address
		}
	}
	if c.ok(raw.PublicURLRange) {
		h.PublicURL = c.publicURL(raw.PublicURL, raw.PublicURLRange)
	}
}

// publicURL checks an absolute http(s) URL and returns it without a trailing slash.
func (c *checker) publicURL(v string, rng hcl.Range) string {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		c.errorf(rng, "Invalid public_url", "%q is not an absolute http or https URL without query, fragment or user, such as \"https://t.example.com\".", v)
		return ""
	}
	return strings.TrimRight(v, "/")
}

func (c *checker) store(raw *rawStore, st *Store, dataDir string) {
	st.Driver = DriverSQLite
	st.Path = dataDir
	if raw == nil {
		return
	}
	st.Driver = c.oneOf(raw.Driver, raw.DriverRange, "driver", DriverSQLite, DriverSQLite, DriverPostgres)
	switch st.Driver {
	case DriverSQLite:
		if present(raw.DSNRange) {
			c.errorf(raw.DSNRange, "Unexpected dsn", "dsn is for driver = %q; the sqlite store takes a path.", DriverPostgres)
		}
		if c.ok(raw.PathRange) {
			st.Path = c.path(raw.Path, raw.PathRange, "path")
		}
	case DriverPostgres:
		st.Path = ""
		if present(raw.PathRange) {
			c.errorf(raw.PathRange, "Unexpected path", "path is for driver = %q; the postgres store takes a dsn.", DriverSQLite)
		}
		switch {
		case !present(raw.DSNRange):
			c.errorf(raw.DefRange, "Missing dsn", `The postgres store needs a dsn, such as dsn = env("PG_DSN").`)
		case c.ok(raw.DSNRange) && raw.DSN == "":
			c.errorf(raw.DSNRange, "Invalid dsn", "dsn must not be empty.")
		default:
			st.DSN = raw.DSN
		}
	}
}

func (c *checker) limits(raw *rawLimits, l *Limits) {
	*l = Limits{
		MaxConnections:      defaultMaxConnections,
		MaxConnectionsPerIP: defaultMaxConnectionsPerIP,
		MaxAuthFailures:     defaultMaxAuthFailures,
		CommandTimeout:      defaultCommandTimeout,
		DataTimeout:         defaultDataTimeout,
	}
	if raw == nil {
		return
	}
	if c.ok(raw.MaxConnectionsRange) {
		l.MaxConnections = c.positive(raw.MaxConnections, raw.MaxConnectionsRange, "max_connections", l.MaxConnections)
	}
	if c.ok(raw.MaxConnectionsPerIPRange) {
		l.MaxConnectionsPerIP = c.positive(raw.MaxConnectionsPerIP, raw.MaxConnectionsPerIPRange, "max_connections_per_ip", l.MaxConnectionsPerIP)
	}
	if c.ok(raw.MaxAuthFailuresRange) {
		l.MaxAuthFailures = c.positive(raw.MaxAuthFailures, raw.MaxAuthFailuresRange, "max_auth_failures", l.MaxAuthFailures)
	}
	if c.ok(raw.CommandTimeoutRange) {
		l.CommandTimeout = c.duration(raw.CommandTimeout, raw.CommandTimeoutRange, l.CommandTimeout)
	}
	if c.ok(raw.DataTimeoutRange) {
		l.DataTimeout = c.duration(raw.DataTimeout, raw.DataTimeoutRange, l.DataTimeout)
	}
}

// duration checks a positive Go duration.
func (c *checker) duration(v string, rng hcl.Range, def time.Duration) time.Duration {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		c.errorf(rng, "Invalid duration", "%q is not a positive duration such as \"90s\", \"5m\" or \"1h30m\".", v)
		return def
	}
	return d
}

// parseSize parses "25MB", "512 KB", "1GB", "100B" or "26214400" (bytes);
// units are 1024-based and case-insensitive, KiB, MiB and GiB are synonyms.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, unit := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size such as \"25MB\" (units B, KB, MB, GB; 1KB = 1024 bytes)", s)
	}
	var shift uint
	switch unit {
	case "", "B":
	case "K", "KB", "KIB":
		shift = 10
	case "M", "MB", "MIB":
		shift = 20
	case "G", "GB", "GIB":
		shift = 30
	default:
		return 0, fmt.Errorf("%q has an unknown unit %q (units B, KB, MB, GB; 1KB = 1024 bytes)", s, t[i:])
	}
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << shift, nil
}

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

func (c *checker) relay(raw *rawRelay, relays map[string]*Relay, seen map[string]hcl.Range) {
	if c.duplicate(seen, "relay", raw.Name, raw.NameRange) {
		return
	}
	if raw.Name == RouteCapture || raw.Name == "" {
		c.errorf(raw.NameRange, "Invalid relay name", "%q cannot name a relay: route = %q means capture.", raw.Name, RouteCapture)
		return
	}
	r := &Relay{Name: raw.Name, MX: raw.MX, Username: raw.Username, Password: raw.Password}
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
				c.errorf(a.rng, "Unexpected "+a.name, "%s is for a smarthost; a relay with mx = true uses opportunistic STARTTLS and no login.", a.name)
			}
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
	}
	relays[raw.Name] = r
}

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

func (c *checker) dkim(raw *rawDKIM, keys map[string]*DKIM, seen map[string]hcl.Range) {
	domain := strings.ToLower(strings.TrimSuffix(raw.Domain, "."))
	if c.duplicate(seen, "dkim", domain, raw.DomainRange) {
		return
	}
	if !isDomain(domain) {
		c.errorf(raw.DomainRange, "Invalid domain", "%q is not a domain name.", raw.Domain)
	}
	d := &DKIM{Domain: domain, Selector: raw.Selector}
	if c.ok(raw.SelectorRange) && !isDomain(raw.Selector) {
		c.errorf(raw.SelectorRange, "Invalid selector", "%q is not a DKIM selector (DNS labels: letters, digits, hyphens, dots).", raw.Selector)
	}
	d.Algorithm = c.oneOf(raw.Algorithm, raw.AlgorithmRange, "algorithm", "rsa", "rsa", "ed25519")
	d.KeyFile = c.path(raw.KeyFile, raw.KeyFileRange, "key_file")
	keys[domain] = d
}

func (c *checker) webhook(raw *rawWebhook, hooks map[string]*Webhook, seen map[string]hcl.Range) {
	if c.duplicate(seen, "webhook", raw.Name, raw.NameRange) {
		return
	}
	w := &Webhook{Name: raw.Name, URL: raw.URL, Secret: raw.Secret}
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
	hooks[raw.Name] = w
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
