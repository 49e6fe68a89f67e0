package policy

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Defaults of the limits block.
const (
	defaultMaxConnections      = 1000
	defaultMaxConnectionsPerIP = 50
	defaultMaxAuthFailures     = 3
	defaultCommandTimeout      = 5 * time.Minute
	defaultDataTimeout         = 10 * time.Minute
)

// maxMessageSizeLimit is the largest max_message_size accepted.
const maxMessageSizeLimit = 1 << 30

// server checks the server block and fills in its defaults. bounceDomain
// says whether the tracking block has a bounce_domain, which a bounces
// listener needs.
func (c *checker) server(raw *rawServer, s *Server, bounceDomain bool) {
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
	s.MaxScheduleAhead = DefaultMaxScheduleAhead
	if c.ok(raw.MaxScheduleAheadRange) {
		s.MaxScheduleAhead = c.duration(raw.MaxScheduleAhead, raw.MaxScheduleAheadRange, s.MaxScheduleAhead)
	}
	s.CaptureSimulateSent = raw.CaptureSimulateSent
	s.Retention = c.retention(raw.Retention, Retention{})

	c.listeners(raw, s, bounceDomain)
	c.http(raw.HTTP, &s.HTTP)
	c.store(raw.Store, &s.Store, s.DataDir)
	c.limits(raw.Limits, &s.Limits)
}

// retention checks a retention block; def is the retention without one.
// Zero, written or left out, is no bound.
func (c *checker) retention(raw *rawRetention, def Retention) Retention {
	if raw == nil {
		return def
	}
	var r Retention
	if c.ok(raw.MaxMessagesRange) {
		if raw.MaxMessages < 0 {
			c.errorf(raw.MaxMessagesRange, "Invalid max_messages", "max_messages must be 0 (no bound) or more, not %d.", raw.MaxMessages)
		} else {
			r.MaxMessages = raw.MaxMessages
		}
	}
	if c.ok(raw.MaxAgeRange) {
		d, err := parseDuration(raw.MaxAge)
		if err != nil {
			c.errorf(raw.MaxAgeRange, "Invalid duration", "%q is not a duration such as \"12h\" or \"7d\" (1d = 24h), or \"0\" for no bound.", raw.MaxAge)
		} else {
			r.MaxAge = d
		}
	}
	return r
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

// between checks an integer that must be from lo to hi.
func (c *checker) between(v int, rng hcl.Range, attr string, lo, hi, def int) int {
	if v < lo || v > hi {
		c.errorf(rng, "Invalid "+attr, "%s must be between %d and %d, not %d.", attr, lo, hi, v)
		return def
	}
	return v
}

// listeners checks the listen blocks: names, addresses, clashes, purposes.
func (c *checker) listeners(raw *rawServer, s *Server, bounceDomain bool) {
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
		lst.Purpose = c.oneOf(l.Purpose, l.PurposeRange, "purpose", PurposeSubmission, PurposeSubmission, PurposeBounces)
		if lst.Purpose == PurposeBounces {
			if !bounceDomain {
				c.errorf(l.PurposeRange, "Missing tracking bounce_domain", "Listener %q receives bounces, which are addressed to tracking.bounce_domain, but there is none.", l.Name)
			}
			if lst.TLS == TLSImplicit {
				c.errorf(l.TLSRange, "Invalid tls", "A bounces listener receives mail from other mail servers, which connect in plain text and may use STARTTLS; tls = %q is not possible.", TLSImplicit)
			}
		}
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

// http checks the http block.
func (c *checker) http(raw *rawHTTP, h *HTTP) {
	h.Address = DefaultHTTPAddress
	h.UI = true
	if raw == nil {
		return
	}
	if c.ok(raw.UIRange) {
		h.UI = raw.UI
	}
	vals, rngs, _ := c.strings(raw.OpenNetworks)
	var seen []netip.Prefix
	for i, v := range vals {
		pfx, ok := c.network(v, rngs[i])
		if !ok || slices.Contains(seen, pfx) {
			continue
		}
		seen = append(seen, pfx)
		h.OpenNetworks = append(h.OpenNetworks, &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())})
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

// network checks a network in CIDR notation, such as "10.0.0.0/8", and
// returns it with an IPv4-mapped IPv6 network as IPv4.
func (c *checker) network(v string, rng hcl.Range) (netip.Prefix, bool) {
	pfx, err := netip.ParsePrefix(v)
	if err != nil {
		hint := ""
		if a, err := netip.ParseAddr(v); err == nil && a.Zone() == "" {
			hint = fmt.Sprintf(" Did you mean %q?", netip.PrefixFrom(a, a.BitLen()).String())
		}
		c.errorf(rng, "Invalid network", "%q is not a network in CIDR notation, such as \"127.0.0.0/8\" or \"::1/128\".%s", v, hint)
		return netip.Prefix{}, false
	}
	if pfx.Masked() != pfx {
		c.errorf(rng, "Invalid network", "%q has address bits beyond its /%d prefix; the network is %q.", v, pfx.Bits(), pfx.Masked().String())
		return netip.Prefix{}, false
	}
	if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
		pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
	}
	if pfx.Bits() == 0 {
		family := "IPv6"
		if pfx.Addr().Is4() {
			family = "IPv4"
		}
		c.warnf(rng, "Open to everyone", "%q is every %s address: from anywhere, the web UI and the capture API show the mail of every login without a key.", v, family)
	}
	return pfx, true
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

// store checks the store block; the sqlite store defaults to the data directory.
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

// limits checks the limits block and fills in its defaults.
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

// duration checks a positive duration (see parseDuration).
func (c *checker) duration(v string, rng hcl.Range, def time.Duration) time.Duration {
	d, err := parseDuration(v)
	if err != nil || d <= 0 {
		c.errorf(rng, "Invalid duration", "%q is not a positive duration such as \"90s\", \"5m\", \"1h30m\" or \"5d\" (1d = 24h).", v)
		return def
	}
	return d
}

// parseDuration parses every duration of the policy: a Go duration ("90s",
// "1h30m", "1.5h") whose units may include d, one day of 24 hours ("5d",
// "1d12h", "0.5d"). There is no sign; "0" is zero.
func parseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a duration such as \"90s\", \"5m\", \"1h30m\" or \"5d\"", s)
	if s == "0" {
		return 0, nil
	}
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, bad
	}
	var total time.Duration
	for t := s; t != ""; {
		i := 0
		for i < len(t) && (t[i] == '.' || t[i] >= '0' && t[i] <= '9') {
			i++
		}
		j := i
		for j < len(t) && t[j] != '.' && (t[j] < '0' || t[j] > '9') {
			j++
		}
		if i == 0 || i == j {
			return 0, bad // no number, or a number without a unit
		}
		num, unit := t[:i], t[i:j]
		var d time.Duration
		var err error
		if unit == "d" {
			if d, err = time.ParseDuration(num + "h"); err == nil {
				if d > math.MaxInt64/24 {
					return 0, fmt.Errorf("%q is too long", s)
				}
				d *= 24
			}
		} else {
			d, err = time.ParseDuration(num + unit)
		}
		if err != nil {
			return 0, bad
		}
		if d > math.MaxInt64-total {
			return 0, fmt.Errorf("%q is too long", s)
		}
		total += d
		t = t[j:]
	}
	return total, nil
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
