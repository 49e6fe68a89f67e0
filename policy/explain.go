package policy

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/smtpgate/smtpgate/features"
)

// Explain writes what the policy does, for a person: the listeners, the
// store, and for each login its route, features, overridable features and
// allowed senders, then the API keys. Secrets are never written.
func (p *Policy) Explain(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	s := p.Server
	fmt.Fprintf(tw, "server %s, mode %s, messages up to %d bytes and %d recipients\n", s.Hostname, s.Mode, s.MaxMessageSize, s.MaxRecipients)
	for _, l := range s.Listeners {
		proxy := ""
		if l.ProxyProtocol {
			proxy = ", PROXY protocol"
		}
		fmt.Fprintf(tw, "  listen %q\t%s\t%s%s\n", l.Name, l.Address, l.TLS, proxy)
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
	}
	for _, k := range p.APIKeys {
		scope := strings.Join(k.Logins, ", ")
		if k.All {
			scope = "all logins"
		}
		fmt.Fprintf(tw, "api key %q reads mail of\t%s\n", k.Name, scope)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("policy: explain: %w", err)
	}
	return nil
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
