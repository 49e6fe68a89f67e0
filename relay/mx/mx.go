// Package mx finds the hosts that receive mail for a domain, as RFC 5321
// section 5.1 says: the domain's MX records in order of preference (shuffled
// among equal preferences, to spread the load), or the domain itself when it
// has no MX records but has an address (the implicit MX).
//
// A null MX (RFC 7505; any MX record whose host is "." is taken as one)
// means the domain accepts no mail: a permanent failure, as is a domain with
// neither MX nor address records. Any other DNS failure (SERVFAIL, a
// timeout) is temporary.
package mx

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/net/idna"
)

// Host is one host to try, in the order Lookup returns them.
type Host struct {
	// Name is the host name without a trailing dot, or an IP address when
	// the domain was an address literal such as "[192.0.2.1]".
	Name string
	// Preference is the MX preference; 0 for an implicit MX.
	Preference uint16
	// Implicit is set when the domain has no MX records and Name is the
	// domain itself (or the address of an address literal).
	Implicit bool
}

// Error is a failure to find any host for a domain. Reply formats it as an
// SMTP reply, the way an MTA reports it in a bounce or a deferral.
type Error struct {
	Domain    string
	Permanent bool   // retrying will not help: no such domain, null MX, bad name
	Code      int    // the SMTP reply code: 5xx when Permanent, 451 otherwise
	Enhanced  string // the RFC 3463 enhanced status code, e.g. "5.1.10"
	Reason    string // what went wrong, in words
	Err       error  // the resolver's error, if any
}

// Error returns the reply text: code, enhanced code, domain and reason.
func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s %s: %s", e.Code, e.Enhanced, e.Domain, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the resolver's error.
func (e *Error) Unwrap() error { return e.Err }

// Lookup returns the hosts that receive mail for domain, most preferred
// first. domain may be a U-label (it is converted to its A-label form) or
// an address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]"), which yields
// that address. Failures are *Error values.
func Lookup(ctx context.Context, r *net.Resolver, domain string) ([]Host, error) {
	if lit, ok := strings.CutPrefix(domain, "["); ok {
		return literal(domain, lit)
	}
	name, err := canonical(domain)
	if err != nil {
		return nil, &Error{Domain: domain, Permanent: true, Code: 501, Enhanced: "5.1.2",
			Reason: "invalid domain name", Err: err}
	}
	records, err := r.LookupMX(ctx, name)
	if len(records) == 0 && err != nil {
		if !isNotFound(err) {
			return nil, &Error{Domain: name, Code: 451, Enhanced: "4.4.3", Reason: "MX lookup failed", Err: err}
		}
		// No MX records (NODATA) or no such name (NXDOMAIN): the
		// address lookup below tells them apart.
		return implicit(ctx, r, name)
	}
	// Partial results with an error mean some records had malformed host
	// names; the valid ones are still worth trying.
	if len(records) == 0 {
		return implicit(ctx, r, name)
	}
	hosts := make([]Host, 0, len(records))
	for _, rec := range records {
		h := strings.TrimSuffix(rec.Host, ".")
		if h == "" {
			return nil, &Error{Domain: name, Permanent: true, Code: 556, Enhanced: "5.1.10",
				Reason: "the domain publishes a null MX: it accepts no mail"}
		}
		hosts = append(hosts, Host{Name: strings.ToLower(h), Preference: rec.Pref})
	}
	rand.Shuffle(len(hosts), func(i, j int) { hosts[i], hosts[j] = hosts[j], hosts[i] })
	slices.SortStableFunc(hosts, func(a, b Host) int { return int(a.Preference) - int(b.Preference) })
	return hosts, nil
}

// implicit is the RFC 5321 fallback: the domain itself, if it has an
// address.
func implicit(ctx context.Context, r *net.Resolver, name string) ([]Host, error) {
	addrs, err := r.LookupIPAddr(ctx, name)
	switch {
	case err == nil && len(addrs) > 0:
		return []Host{{Name: name, Implicit: true}}, nil
	case err == nil || isNotFound(err):
		return nil, &Error{Domain: name, Permanent: true, Code: 550, Enhanced: "5.1.2",
			Reason: "no MX or address records: the domain does not receive mail", Err: err}
	default:
		return nil, &Error{Domain: name, Code: 451, Enhanced: "4.4.3", Reason: "address lookup failed", Err: err}
	}
}

// literal handles an address literal (RFC 5321 section 4.1.3).
func literal(domain, inner string) ([]Host, error) {
	inner, ok := strings.CutSuffix(inner, "]")
	if v6, isV6 := strings.CutPrefix(inner, "IPv6:"); isV6 {
		inner = v6
	}
	a, err := netip.ParseAddr(inner)
	if !ok || err != nil || a.Zone() != "" {
		return nil, &Error{Domain: domain, Permanent: true, Code: 501, Enhanced: "5.1.2",
			Reason: "invalid address literal", Err: err}
	}
	return []Host{{Name: a.String(), Implicit: true}}, nil
}

// canonical returns the lower-case A-label form of a domain name, without a
// trailing dot.
func canonical(domain string) (string, error) {
	d := strings.TrimSuffix(strings.TrimSpace(domain), ".")
	if d == "" {
		return "", errors.New("empty domain")
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", err
	}
	if len(a) > 253 {
		return "", errors.New("name longer than 253 octets")
	}
	for label := range strings.SplitSeq(a, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("label %q is empty or longer than 63 octets", label)
		}
	}
	return strings.ToLower(a), nil
}

// isNotFound reports whether err says the name or its records do not
// exist, as opposed to a failure to find out.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
