package relay

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/smtpgate/smtpgate/relay/smtpclient"
	"github.com/smtpgate/smtpgate/store"
)

// Smarthost TLS modes and direct-MX STARTTLS policies (Route.TLS,
// Route.StartTLS); the same strings as in the policy file.
const (
	TLSStartTLS           = smtpclient.TLSStartTLS
	TLSImplicit           = smtpclient.TLSImplicit
	TLSNone               = smtpclient.TLSNone
	StartTLSOpportunistic = smtpclient.StartTLSOpportunistic
	StartTLSRequire       = smtpclient.StartTLSRequire
)

// Defaults for the zero values of Route.
const (
	DefaultMaxAge      = 5 * 24 * time.Hour // Postfix's maximal_queue_lifetime
	DefaultConcurrency = 20
)

// Route is one upstream: a smarthost, or direct delivery to the MX hosts of
// each recipient domain. It is the policy's relay block with the files
// already read (the CA bundle is a cert pool here).
type Route struct {
	// Name is the relay's name, which deliveries refer to (Delivery.Route).
	Name string
	// MX selects direct delivery; Address is then unused.
	MX bool
	// Address is the smarthost's host:port.
	Address string
	// TLS is the smarthost's TLS mode: TLSStartTLS (default), TLSImplicit
	// or TLSNone.
	TLS string
	// StartTLS is the MX policy: StartTLSOpportunistic (default: never
	// checks certificates) or StartTLSRequire.
	StartTLS string
	// Username and Password authenticate to the smarthost (AUTH PLAIN, or
	// LOGIN when that is all it offers); never sent in plain text unless TLS
	// is TLSNone.
	Username, Password string
	// InsecureSkipVerify turns certificate checking off where it would
	// apply (a smarthost with TLS, MX with StartTLSRequire): the policy's
	// verify_tls = false.
	InsecureSkipVerify bool
	// RootCAs verifies certificates; nil means the system roots (see
	// LoadCAFile for the policy's ca_file).
	RootCAs *x509.CertPool
	// Port is the MX hosts' port; 0 means 25.
	Port int
	// Helo is the EHLO name; set it to the server's public host name.
	Helo string
	// MaxAge is how long a delivery is retried before its pending
	// recipients fail, counted from the message's arrival (Delivery.Expires
	// when set, else Created + MaxAge); 0 means DefaultMaxAge.
	MaxAge time.Duration
	// Concurrency bounds the attempts of this route in progress at once; 0
	// means DefaultConcurrency.
	Concurrency int
	// PerDomainConcurrency bounds the attempts to one recipient domain (MX
	// routes); 0 means Concurrency. A 421 or "too many connections" halves
	// the domain's bound for a while (see Config.SlowDownPeriod).
	PerDomainConcurrency int
	// RatePerMinute bounds the attempts per minute to one recipient domain
	// (for a smarthost: to the smarthost); 0 means no bound. Bursts of up to
	// a twelfth of it (five seconds' worth, at least one) pass at once.
	RatePerMinute int
}

// LoadCAFile returns the system roots plus the PEM certificates in file, for
// Route.RootCAs.
func LoadCAFile(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("relay: CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("relay: CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// withDefaults fills the zero values.
func (r Route) withDefaults() Route {
	if r.MaxAge <= 0 {
		r.MaxAge = DefaultMaxAge
	}
	if r.Concurrency <= 0 {
		r.Concurrency = DefaultConcurrency
	}
	if r.PerDomainConcurrency <= 0 || r.PerDomainConcurrency > r.Concurrency || !r.MX {
		// A smarthost is one destination: its bound is Concurrency.
		r.PerDomainConcurrency = r.Concurrency
	}
	if r.RatePerMinute < 0 {
		r.RatePerMinute = 0
	}
	return r
}

// clientConfig is the SMTP client's view of the route.
func (r Route) clientConfig(c *Config) smtpclient.Config {
	cc := smtpclient.Config{
		TLS: r.TLS, StartTLS: r.StartTLS, Username: r.Username, Password: r.Password,
		RootCAs: r.RootCAs, InsecureSkipVerify: r.InsecureSkipVerify, Port: r.Port, Helo: r.Helo,
		Resolver: c.Resolver, Dialer: c.Dialer,
		DialTimeout: c.DialTimeout, CommandTimeout: c.CommandTimeout, DataTimeout: c.DataTimeout,
		IdleTimeout: c.IdleTimeout,
	}
	if c.IdleTimeout > 0 {
		// Up to one idle session per attempt that may run at once.
		cc.MaxIdle = r.PerDomainConcurrency
	}
	if !r.MX {
		cc.Smarthost = r.Address
	}
	return cc
}

// Deliveries returns the relay jobs for a message about to be accepted on
// route r, for store.Message.Deliveries: with an MX route one delivery per
// recipient domain (in order of first appearance), with a smarthost one
// delivery for every recipient. A recipient listed twice (ignoring case) is
// delivered once. Each delivery is due at the message's SendAt (or its
// arrival, msg.Received) and expires at arrival + MaxAge. msg.Received must
// be set.
func Deliveries(msg *store.Message, r Route) []*store.Delivery {
	r = r.withDefaults()
	due := msg.Received
	if msg.SendAt.After(due) {
		due = msg.SendAt
	}
	var out []*store.Delivery
	byDomain := map[string]*store.Delivery{}
	seen := map[string]bool{}
	for i, addr := range msg.Recipients {
		key := strings.ToLower(strings.TrimSpace(addr))
		if key == "" || seen[key] {
			continue
		}
		seen[key] = true
		domain := ""
		if r.MX {
			domain = recipientDomain(key)
		}
		d := byDomain[domain]
		if d == nil {
			d = &store.Delivery{Route: r.Name, Domain: domain, State: store.DeliveryQueued,
				NextAttempt: due, Expires: msg.Received.Add(r.MaxAge)}
			byDomain[domain] = d
			out = append(out, d)
		}
		d.Recipients = append(d.Recipients, store.RecipientDelivery{Address: strings.TrimSpace(addr), Index: i, State: store.RecipientPending})
	}
	return out
}

// recipientDomain is the lower-case part after the last @ ("" without one).
func recipientDomain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// compileRoutes checks routes and builds their clients.
func compileRoutes(routes []Route, c *Config) (map[string]*route, error) {
	out := make(map[string]*route, len(routes))
	var errs []error
	for _, r := range routes {
		if r.Name == "" {
			errs = append(errs, errors.New("relay: a route has no name"))
			continue
		}
		if _, dup := out[r.Name]; dup {
			errs = append(errs, fmt.Errorf("relay: route %q defined twice", r.Name))
			continue
		}
		if !r.MX && r.Address == "" {
			errs = append(errs, fmt.Errorf("relay: route %q: a smarthost needs an address", r.Name))
			continue
		}
		r = r.withDefaults()
		cl, err := smtpclient.New(r.clientConfig(c))
		if err != nil {
			errs = append(errs, fmt.Errorf("relay: route %q: %w", r.Name, err))
			continue
		}
		out[r.Name] = &route{Route: r, client: cl}
	}
	return out, errors.Join(errs...)
}

// route is a checked Route with its client.
type route struct {
	Route
	client *smtpclient.Client
}
