// Package dnstest runs a small authoritative DNS server on the loopback
// interface for tests. It answers over UDP and TCP on the same ephemeral
// port, serves records that the test adds and removes while the server runs
// (MX, A, AAAA, TXT), and can fail chosen queries with a response code such as
// SERVFAIL. Resolver returns a stdlib *net.Resolver that talks only to this
// server, so code under test can use LookupMX, LookupHost and LookupTXT
// unchanged.
//
// Answers follow the usual authoritative semantics: an unknown name is
// NXDOMAIN, a known name (or an empty non-terminal such as
// _domainkey.example.com when s1._domainkey.example.com exists) without
// records of the asked type is NOERROR with no answer (NODATA). UDP answers
// larger than the client's EDNS0 buffer (512 bytes without EDNS0) are
// truncated so the client retries over TCP, as a real server does.
package dnstest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TTL is the time to live of every record the server hands out, in seconds.
const TTL = 60

// maxTXTString is the longest character-string a TXT record can hold
// (RFC 1035 section 3.3).
const maxTXTString = 255

// Server is an authoritative DNS server on 127.0.0.1 for one test. All its
// methods are safe for concurrent use, so a test may change records while the
// code under test is resolving.
type Server struct {
	t    testing.TB
	addr string
	udp  *dns.Server
	tcp  *dns.Server

	mu      sync.RWMutex
	records map[string][]dns.RR // canonical FQDN -> records, in insertion order
	rcodes  map[rcodeKey]int
}

// rcodeKey names the queries a forced response code applies to; qtype 0
// stands for every type.
type rcodeKey struct {
	name  string
	qtype uint16
}

// Start starts a server on 127.0.0.1 (UDP and TCP on the same ephemeral port)
// and stops it in t.Cleanup. It fails the test if the server cannot start.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:       t,
		records: make(map[string][]dns.RR),
		rcodes:  make(map[rcodeKey]int),
	}
	pc, ln, err := listenPair()
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	s.addr = pc.LocalAddr().String()
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serveUDP)}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serveTCP)}

	var started sync.WaitGroup
	errc := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started.Add(1)
		srv.NotifyStartedFunc = started.Done
		go func() { errc <- srv.ActivateAndServe() }()
	}
	started.Wait()

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			if err := srv.ShutdownContext(ctx); err != nil {
				t.Errorf("dnstest: shutdown: %v", err)
			}
		}
		for range 2 {
			if err := <-errc; err != nil {
				t.Errorf("dnstest: serve: %v", err)
			}
		}
	})
	return s
}

// listenPair opens a UDP socket on an ephemeral loopback port and a TCP
// listener on the same port, retrying when the TCP port happens to be taken.
func listenPair() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp: %w", err)
		}
		ln, err := net.Listen("tcp4", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		lastErr = err
		_ = pc.Close()
	}
	return nil, nil, fmt.Errorf("listen tcp on the udp port: %w", lastErr)
}

// Addr returns the server's address, "127.0.0.1:port", valid for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Resolver returns a pure-Go stdlib resolver whose every query goes to this
// server, over UDP or TCP as the resolver chooses. Names in /etc/hosts are
// still answered from that file first, as with any Go resolver, so tests
// should use names under a reserved suffix such as .test or example.com.
func (s *Server) Resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, s.addr)
		},
	}
}

// AddMX adds an MX record for domain pointing at host with preference pref.
func (s *Server) AddMX(domain string, pref uint16, host string) {
	s.add(&dns.MX{Hdr: header(domain, dns.TypeMX), Preference: pref, Mx: dns.Fqdn(host)})
}

// AddA adds an A record; ip must be an IPv4 address or the test fails.
func (s *Server) AddA(host, ip string) {
	s.t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		s.t.Fatalf("dnstest: AddA(%q, %q): not an IPv4 address", host, ip)
		return
	}
	s.add(&dns.A{Hdr: header(host, dns.TypeA), A: a.AsSlice()})
}

// AddAAAA adds an AAAA record; ip must be an IPv6 address or the test fails.
func (s *Server) AddAAAA(host, ip string) {
	s.t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		s.t.Fatalf("dnstest: AddAAAA(%q, %q): not an IPv6 address", host, ip)
		return
	}
	s.add(&dns.AAAA{Hdr: header(host, dns.TypeAAAA), AAAA: a.AsSlice()})
}

// AddTXT adds one TXT record per value. A value longer than 255 bytes is
// split into 255-byte character-strings inside its record, which resolvers
// such as net.Resolver.LookupTXT join back together.
func (s *Server) AddTXT(name string, txt ...string) {
	for _, v := range txt {
		s.add(&dns.TXT{Hdr: header(name, dns.TypeTXT), Txt: splitTXT(v)})
	}
}

// SetRcode makes every query for name and qtype (a dns.Type* value; 0 means
// every type) answer with rcode (a dns.Rcode* value, e.g. dns.RcodeServerFailure
// to simulate a temporary DNS failure) and no records. dns.RcodeSuccess
// removes the override.
func (s *Server) SetRcode(name string, qtype uint16, rcode int) {
	k := rcodeKey{dns.CanonicalName(name), qtype}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcodes, k)
		return
	}
	s.rcodes[k] = rcode
}

// Remove deletes every record of name and every response code set for it.
func (s *Server) Remove(name string) {
	n := dns.CanonicalName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, n)
	for k := range s.rcodes {
		if k.name == n {
			delete(s.rcodes, k)
		}
	}
}

func header(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: dns.CanonicalName(name), Rrtype: rrtype, Class: dns.ClassINET, Ttl: TTL}
}

func splitTXT(v string) []string {
	if v == "" {
		return []string{""}
	}
	var parts []string
	for len(v) > maxTXTString {
		parts = append(parts, v[:maxTXTString])
		v = v[maxTXTString:]
	}
	return append(parts, v)
}

func (s *Server) add(rr dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := rr.Header().Name
	s.records[n] = append(s.records[n], rr)
}

// answer looks a question up under the read lock.
func (s *Server) answer(q dns.Question) (rcode int, rrs []dns.RR) {
	name := dns.CanonicalName(q.Name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if rc, ok := s.rcodes[rcodeKey{name, q.Qtype}]; ok {
		return rc, nil
	}
	if rc, ok := s.rcodes[rcodeKey{name, 0}]; ok {
		return rc, nil
	}
	for _, rr := range s.records[name] {
		if q.Qtype == dns.TypeANY || rr.Header().Rrtype == q.Qtype {
			c := dns.Copy(rr)
			c.Header().Name = q.Name // echo the asker's spelling
			rrs = append(rrs, c)
		}
	}
	if len(rrs) > 0 || s.exists(name) {
		return dns.RcodeSuccess, rrs
	}
	return dns.RcodeNameError, nil
}

// exists reports whether name owns records or is an empty non-terminal above
// a name that does. The caller holds the lock.
func (s *Server) exists(name string) bool {
	if len(s.records[name]) > 0 {
		return true
	}
	suffix := "." + name
	if name == "." {
		suffix = "."
	}
	for n, rrs := range s.records {
		if len(rrs) > 0 && strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}

func (s *Server) serveUDP(w dns.ResponseWriter, req *dns.Msg) { s.serve(w, req, true) }

func (s *Server) serveTCP(w dns.ResponseWriter, req *dns.Msg) { s.serve(w, req, false) }

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg, udp bool) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		m.SetRcode(req, dns.RcodeFormatError)
	} else {
		m.Rcode, m.Answer = s.answer(req.Question[0])
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(dns.DefaultMsgSize, false)
	}
	if udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	// A write error means the client went away; the client sees it as a
	// timeout, which is all a test server can offer.
	_ = w.WriteMsg(m)
}
