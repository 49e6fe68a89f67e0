package policy

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smtpgate/smtpgate/features"
)

// Explain writes what the policy does, for a person: the server (listeners,
// store, web server, scheduling and retention), for each login its route,
// features, overridable features, allowed senders, DKIM domain and
// retention, then the API keys, relays, DKIM keys and webhooks. Secrets are
// never written: no password, key or webhook secret, and of a webhook URL
// only its scheme and host.
func (p *Policy) Explain(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	s := p.Server
	fmt.Fprintf(tw, "server %s, mode %s, messages up to %d bytes and %d recipients\n", s.Hostname, s.Mode, s.MaxMessageSize, s.MaxRecipients)
	for _, l := range s.Listeners {
		proxy := ""
		if l.ProxyProtocol {
			proxy = ", PROXY protocol"
		}
		tlsMode := l.TLS
		if l.Purpose == PurposeBounces {
			tlsMode += " (optional), receives bounces"
		}
		fmt.Fprintf(tw, "  listen %q\t%s\t%s%s\n", l.Name, l.Address, tlsMode, proxy)
	}
	if s.TLS != nil {
		fmt.Fprintf(tw, "  certificate\t%s, key %s\n", s.TLS.CertFile, s.TLS.KeyFile)
	} else {
		fmt.Fprintf(tw, "  certificate\tself-signed, in %s\n", s.DataDir)
	}
	switch s.Store.Driver {
	case DriverPostgres:
		fmt.Fprintf(tw, "  store\tpostgres\n")
	default:
		fmt.Fprintf(tw, "  store\tsqlite in %s\n", s.Store.Path)
	}
	fmt.Fprintf(tw, "  http\t%s\t%s\n", s.HTTP.Address, s.HTTP.PublicURL)
	ui := "off"
	if s.HTTP.UI {
		ui = "on"
	}
	fmt.Fprintf(tw, "  web UI\t%s\n", ui)
	if len(s.HTTP.OpenNetworks) > 0 {
		nets := make([]string, len(s.HTTP.OpenNetworks))
		for i, n := range s.HTTP.OpenNetworks {
			nets[i] = n.String()
		}
		fmt.Fprintf(tw, "  no API key needed from\t%s (sees every login)\n", strings.Join(nets, ", "))
	}
	fmt.Fprintf(tw, "  send-at\tup to %s ahead\n", formatDuration(s.MaxScheduleAhead))
	if s.CaptureSimulateSent {
		fmt.Fprintf(tw, "  captured mail\talso gets a simulated sent event per recipient\n")
	}
	fmt.Fprintf(tw, "  retention\t%s (logins without their own)\n", formatRetention(s.Retention))
	if len(p.Credentials) == 0 {
		fmt.Fprintf(tw, "no credentials: nobody can log in\n")
	}
	for _, name := range p.loginNames() {
		c := p.Credentials[name]
		route := c.Route
		if s.Mode == ModeCapture && route != RouteCapture {
			route = fmt.Sprintf("%s (route %q ignored: server mode is capture)", RouteCapture, c.Route)
		}
		fmt.Fprintf(tw, "login %q\n", name)
		fmt.Fprintf(tw, "  route\t%s\n", route)
		fs := "none"
		if on := enabled(c.Features); len(on) > 0 {
			fs = strings.Join(on, ", ")
		}
		if c.FeaturesName != "" {
			fs += fmt.Sprintf(" (features %q)", c.FeaturesName)
		}
		fmt.Fprintf(tw, "  features\t%s\n", fs)
		over := "none"
		if len(c.Overridable) > 0 {
			over = strings.Join(c.Overridable, ", ")
		}
		fmt.Fprintf(tw, "  headers may flip\t%s\n", over)
		from := "any sender"
		if c.AllowFrom != nil {
			from = strings.Join(c.AllowFrom, ", ")
		}
		fmt.Fprintf(tw, "  may send as\t%s\n", from)
		if c.DKIMDomain != "" {
			fmt.Fprintf(tw, "  DKIM\tsigned with the keys of %s, whatever the From domain\n", c.DKIMDomain)
		}
		fmt.Fprintf(tw, "  retention\t%s\n", formatRetention(c.Retention))
	}
	for _, k := range p.APIKeys {
		scope := strings.Join(k.Logins, ", ")
		if k.All {
			scope = "all logins"
		}
		fmt.Fprintf(tw, "api key %q reads mail of\t%s\n", k.Name, scope)
	}
	for _, name := range mapKeys(p.Relays) {
		explainRelay(tw, p.Relays[name])
	}
	for _, domain := range mapKeys(p.DKIM) {
		keys := make([]string, len(p.DKIM[domain]))
		for i, k := range p.DKIM[domain] {
			keys[i] = fmt.Sprintf("selector %s (%s)", k.Selector, k.Algorithm)
		}
		fmt.Fprintf(tw, "dkim %q\t%s\n", domain, strings.Join(keys, ", "))
	}
	for _, name := range mapKeys(p.Webhooks) {
		h := p.Webhooks[name]
		logins := "all logins"
		if h.Logins != nil {
			logins = strings.Join(h.Logins, ", ")
		}
		fmt.Fprintf(tw, "webhook %q\t%s\n", name, redactURL(h.URL))
		fmt.Fprintf(tw, "  events\t%s, of %s\n", strings.Join(h.Events, ", "), logins)
		fmt.Fprintf(tw, "  retried for\t%s\n", formatDuration(h.MaxAge))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("policy: explain: %w", err)
	}
	return nil
}

// explainRelay writes a relay's lines of Explain.
func explainRelay(w io.Writer, r *Relay) {
	var how, tlsMode string
	if r.MX {
		how = fmt.Sprintf("the recipients' MX hosts, port %d", r.Port)
		tlsMode = "starttls " + r.StartTLS
	} else {
		how = "smarthost " + r.Address
		tlsMode = r.TLS
	}
	switch {
	case r.VerifyTLS && r.CAFile != "":
		tlsMode += ", certificate checked (with CAs of " + r.CAFile + ")"
	case r.VerifyTLS:
		tlsMode += ", certificate checked"
	case r.MX && r.StartTLS == StartTLSOpportunistic, r.TLS == TLSNone:
	default:
		tlsMode += ", certificate NOT checked"
	}
	if r.Username != "" {
		tlsMode += fmt.Sprintf(", login %q", r.Username)
	}
	rate := "no rate limit"
	if r.RatePerMinute > 0 {
		rate = fmt.Sprintf("%d messages a minute per domain", r.RatePerMinute)
	}
	fmt.Fprintf(w, "relay %q\t%s\n", r.Name, how)
	fmt.Fprintf(w, "  tls\t%s\n", tlsMode)
	fmt.Fprintf(w, "  EHLO\t%s\n", r.Helo)
	fmt.Fprintf(w, "  connections\t%d, %d per domain; %s\n", r.Concurrency, r.PerDomainConcurrency, rate)
	fmt.Fprintf(w, "  retried for\t%s\n", formatDuration(r.MaxAge))
}

// redactURL returns the scheme and host of a URL, for a webhook URL may
// carry a secret in its user, path or query.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(an invalid URL)"
	}
	out := u.Scheme + "://" + u.Host
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		out += "/…"
	}
	return out
}

// formatRetention describes a retention.
func formatRetention(r Retention) string {
	switch {
	case r.MaxMessages > 0 && r.MaxAge > 0:
		return fmt.Sprintf("keeps at most %d messages, none older than %s", r.MaxMessages, formatDuration(r.MaxAge))
	case r.MaxMessages > 0:
		return fmt.Sprintf("keeps at most %d messages", r.MaxMessages)
	case r.MaxAge > 0:
		return "keeps messages for " + formatDuration(r.MaxAge)
	}
	return "keeps every message"
}

// formatDuration formats d as the policy writes durations: "5d", "1d12h",
// "30m".
func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d < day || d%time.Second != 0 {
		s := d.String() // such as "2h0m0s" or "30m0s"
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	}
	out := fmt.Sprintf("%dd", d/day)
	if rest := d % day; rest > 0 {
		out += formatDuration(rest)
	}
	return out
}

// enabled lists the features that are on in s.
func enabled(s features.Set) []string {
	var on []string
	for _, n := range features.AllNames {
		if v, _ := s.Get(n); v {
			on = append(on, n)
		}
	}
	return on
}
