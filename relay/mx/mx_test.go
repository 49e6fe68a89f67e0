package mx

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtpgate/smtpgate/internal/dnstest"
)

// zone publishes the test domains on a loopback DNS server.
func zone(t *testing.T) *dnstest.Server {
	s := dnstest.Start(t)
	s.AddMX("two.test", 20, "mx2.two.test")
	s.AddMX("two.test", 10, "mx1.two.test")
	s.AddA("mx1.two.test", "127.0.0.1")
	s.AddA("mx2.two.test", "127.0.0.1")

	s.AddA("implicit.test", "127.0.0.1")
	s.AddAAAA("implicit6.test", "::1")

	s.AddMX("null.test", 0, ".")

	s.AddTXT("nodata.test", "v=spf1 -all") // exists, no MX, no address

	s.AddMX("servfail.test", 10, "mx.servfail.test")
	s.SetRcode("servfail.test", dns.TypeMX, dns.RcodeServerFailure)

	s.AddTXT("afail.test", "exists") // no MX (NODATA), then the address lookup fails
	s.SetRcode("afail.test", dns.TypeA, dns.RcodeServerFailure)
	s.SetRcode("afail.test", dns.TypeAAAA, dns.RcodeServerFailure)

	s.AddMX("xn--bcher-kva.test", 10, "mx.xn--bcher-kva.test")

	s.AddMX("upper.test", 10, "MX.Upper.TEST")
	return s
}

func TestLookup(t *testing.T) {
	s := zone(t)
	r := s.Resolver()
	tests := []struct {
		domain    string
		hosts     string // space-separated, in order
		implicit  bool
		permanent bool   // when an error is expected
		reply     string // prefix of the error text
	}{
		{domain: "two.test", hosts: "mx1.two.test mx2.two.test"},
		{domain: "Two.Test.", hosts: "mx1.two.test mx2.two.test"},
		{domain: "upper.test", hosts: "mx.upper.test"},
		{domain: "implicit.test", hosts: "implicit.test", implicit: true},
		{domain: "implicit6.test", hosts: "implicit6.test", implicit: true},
		{domain: "bücher.test", hosts: "mx.xn--bcher-kva.test"},
		{domain: "[127.0.0.1]", hosts: "127.0.0.1", implicit: true},
		{domain: "[IPv6:::1]", hosts: "::1", implicit: true},
		{domain: "null.test", permanent: true, reply: "556 5.1.10 null.test: the domain publishes a null MX"},
		{domain: "nxdomain.test", permanent: true, reply: "550 5.1.2 nxdomain.test: no MX or address records"},
		{domain: "nodata.test", permanent: true, reply: "550 5.1.2 nodata.test: no MX or address records"},
		{domain: "servfail.test", reply: "451 4.4.3 servfail.test: MX lookup failed"},
		{domain: "afail.test", reply: "451 4.4.3 afail.test: address lookup failed"},
		{domain: "[300.1.1.1]", permanent: true, reply: "501 5.1.2 [300.1.1.1]: invalid address literal"},
		{domain: "[127.0.0.1", permanent: true, reply: "501 5.1.2 [127.0.0.1: invalid address literal"},
		{domain: "", permanent: true, reply: "501 5.1.2 : invalid domain name"},
		{domain: "bad..test", permanent: true, reply: "501 5.1.2 bad..test: invalid domain name"},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			hosts, err := Lookup(ctx, r, tt.domain)
			if tt.hosts == "" {
				var me *Error
				if !errors.As(err, &me) {
					t.Fatalf("Lookup = %v, %v; want an *Error", hosts, err)
				}
				if me.Permanent != tt.permanent {
					t.Errorf("Permanent = %v, want %v (%v)", me.Permanent, tt.permanent, err)
				}
				if (me.Code >= 500) != tt.permanent {
					t.Errorf("Code %d does not match Permanent %v", me.Code, tt.permanent)
				}
				if !strings.HasPrefix(err.Error(), tt.reply) {
					t.Errorf("error %q, want prefix %q", err, tt.reply)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			var names []string
			for _, h := range hosts {
				names = append(names, h.Name)
				if h.Implicit != tt.implicit {
					t.Errorf("%s: Implicit = %v, want %v", h.Name, h.Implicit, tt.implicit)
				}
			}
			if got := strings.Join(names, " "); got != tt.hosts {
				t.Errorf("hosts = %q, want %q", got, tt.hosts)
			}
		})
	}
}

// TestEqualPreferenceShuffled checks that hosts of equal preference come in
// varying order, always after the more preferred one and before the less
// preferred one.
func TestEqualPreferenceShuffled(t *testing.T) {
	s := dnstest.Start(t)
	s.AddMX("eq.test", 5, "first.eq.test")
	for _, h := range []string{"a.eq.test", "b.eq.test", "c.eq.test"} {
		s.AddMX("eq.test", 10, h)
	}
	s.AddMX("eq.test", 50, "last.eq.test")
	r := s.Resolver()
	seen := map[string]bool{}
	for range 60 {
		hosts, err := Lookup(t.Context(), r, "eq.test")
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts) != 5 || hosts[0].Name != "first.eq.test" || hosts[4].Name != "last.eq.test" {
			t.Fatalf("order broken: %v", hosts)
		}
		seen[hosts[1].Name] = true
		for i := 1; i < len(hosts); i++ {
			if hosts[i].Preference < hosts[i-1].Preference {
				t.Fatalf("not sorted by preference: %v", hosts)
			}
		}
	}
	// Each of three hosts comes second with probability 1/3 per lookup;
	// missing one in 60 lookups has probability 3*(2/3)^60 ≈ 1e-10.
	if len(seen) != 3 {
		t.Errorf("second place taken only by %v over 60 lookups", seen)
	}
}

// TestResolverDown checks that an unreachable DNS server is a temporary
// failure.
func TestResolverDown(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nothing answers there any more
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err = Lookup(ctx, r, "down.test")
	var me *Error
	if !errors.As(err, &me) || me.Permanent || me.Code != 451 {
		t.Fatalf("Lookup = %v, want a temporary *Error", err)
	}
}
