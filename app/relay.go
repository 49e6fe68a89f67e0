package app

import (
	"fmt"
	"sort"

	"github.com/smtpgate/smtpgate/policy"
	"github.com/smtpgate/smtpgate/relay"
	"github.com/smtpgate/smtpgate/relay/dkim"
)

// relaySettings builds the relay worker's reloadable settings from a policy:
// its routes, the DKIM signer of every dkim block, the per-login signing
// domain, and the VERP codec. Key files are read here, so a reload with a
// missing or bad key is refused like a policy error.
func relaySettings(pol *policy.Policy, tr *transforms) (relay.Settings, error) {
	var s relay.Settings
	names := make([]string, 0, len(pol.Relays))
	for n := range pol.Relays {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := pol.Relays[n]
		rt := relay.Route{
			Name: r.Name, MX: r.MX, Address: r.Address, TLS: r.TLS, StartTLS: r.StartTLS,
			Username: r.Username, Password: r.Password, InsecureSkipVerify: !r.VerifyTLS,
			Port: r.Port, Helo: r.Helo, MaxAge: r.MaxAge, Concurrency: r.Concurrency,
			PerDomainConcurrency: r.PerDomainConcurrency, RatePerMinute: r.RatePerMinute,
		}
		if rt.Helo == "" {
			rt.Helo = pol.Server.Hostname
		}
		if r.CAFile != "" {
			pool, err := relay.LoadCAFile(r.CAFile)
			if err != nil {
				return s, fmt.Errorf("app: relay %q: %w", r.Name, err)
			}
			rt.RootCAs = pool
		}
		s.Routes = append(s.Routes, rt)
	}

	var keys []*dkim.Key
	domains := make([]string, 0, len(pol.DKIM))
	for d := range pol.DKIM {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	for _, d := range domains {
		for _, k := range pol.DKIM[d] {
			key, err := dkim.LoadKey(k.Domain, k.Selector, k.Algorithm, k.KeyFile)
			if key == nil {
				return s, fmt.Errorf("app: dkim %s selector %s: %w", k.Domain, k.Selector, err)
			}
			// A weak (1024-bit) RSA key still signs; the error only warns.
			keys = append(keys, key)
		}
	}
	if len(keys) > 0 {
		s.Signer = dkim.NewSigner(keys, dkim.Options{})
	}
	creds := pol.Credentials
	s.SigningDomain = func(login string) string {
		if c := creds[login]; c != nil {
			return c.DKIMDomain
		}
		return ""
	}
	if tr.pipeline.Bounce != nil {
		s.Bounce = tr.pipeline.Bounce
	}
	return s, nil
}

// routesByName indexes settings' routes for the gateway.
func routesByName(s relay.Settings) map[string]relay.Route {
	m := make(map[string]relay.Route, len(s.Routes))
	for _, r := range s.Routes {
		m[r.Name] = r
	}
	return m
}
