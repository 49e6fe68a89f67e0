package dnstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// exchange sends one raw query over net ("udp" or "tcp") and returns the reply.
func exchange(t *testing.T, s *Server, network, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s exchange %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestLookupMXSortedByPreference(t *testing.T) {
	s := Start(t)
	s.AddMX("example.test", 20, "mx2.example.test")
	s.AddMX("example.test", 5, "mx0.example.test")
	s.AddMX("example.test", 10, "mx1.example.test.")

	mxs, err := s.Resolver().LookupMX(testContext(t), "Example.TEST")
	if err != nil {
		t.Fatalf("LookupMX: %v", err)
	}
	var got []string
	for _, mx := range mxs {
		got = append(got, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
	}
	want := []string{"5 mx0.example.test.", "10 mx1.example.test.", "20 mx2.example.test."}
	if !slices.Equal(got, want) {
		t.Errorf("LookupMX = %q, want %q", got, want)
	}
}

func TestLookupHostAandAAAA(t *testing.T) {
	s := Start(t)
	s.AddA("mx.example.test", "192.0.2.1")
	s.AddA("mx.example.test", "192.0.2.2")
	s.AddAAAA("mx.example.test", "2001:db8::25")
	s.AddA("v4only.example.test", "192.0.2.9")

	r := s.Resolver()
	got, err := r.LookupHost(testContext(t), "mx.example.test")
	if err != nil {
		t.Fatalf("LookupHost: %v", err)
	}
	slices.Sort(got)
	if want := []string{"192.0.2.1", "192.0.2.2", "2001:db8::25"}; !slices.Equal(got, want) {
		t.Errorf("LookupHost = %q, want %q", got, want)
	}
	// A name with only A records: the AAAA query is NODATA, not an error.
	got, err = r.LookupHost(testContext(t), "v4only.example.test")
	if err != nil || !slices.Equal(got, []string{"192.0.2.9"}) {
		t.Errorf("LookupHost(v4only) = %q, %v; want [192.0.2.9]", got, err)
	}
}

func TestLookupTXTLongValueSplitAndJoined(t *testing.T) {
	s := Start(t)
	long := strings.Repeat("0123456789", 60) // 600 bytes: 255 + 255 + 90
	s.AddTXT("s1._domainkey.example.test", long)
	s.AddTXT("multi.example.test", "first", "second")

	raw := exchange(t, s, "udp", "s1._domainkey.example.test", dns.TypeTXT, true)
	if len(raw.Answer) != 1 {
		t.Fatalf("raw answer has %d records, want 1", len(raw.Answer))
	}
	parts := raw.Answer[0].(*dns.TXT).Txt
	var lens []int
	for _, p := range parts {
		lens = append(lens, len(p))
	}
	if !slices.Equal(lens, []int{255, 255, 90}) {
		t.Errorf("character-string lengths = %v, want [255 255 90]", lens)
	}

	r := s.Resolver()
	txts, err := r.LookupTXT(testContext(t), "s1._domainkey.example.test")
	if err != nil {
		t.Fatalf("LookupTXT: %v", err)
	}
	if len(txts) != 1 || txts[0] != long {
		t.Errorf("LookupTXT returned %d values (first %d bytes), want the 600-byte value once", len(txts), len(txts[0]))
	}
	txts, err = r.LookupTXT(testContext(t), "multi.example.test")
	slices.Sort(txts)
	if err != nil || !slices.Equal(txts, []string{"first", "second"}) {
		t.Errorf("LookupTXT(multi) = %q, %v; want one value per record", txts, err)
	}
}

func TestLargeAnswerTruncatedOverUDPAndServedOverTCP(t *testing.T) {
	s := Start(t)
	big := strings.Repeat("k", 3000)
	s.AddTXT("big.example.test", big)

	udp := exchange(t, s, "udp", "big.example.test", dns.TypeTXT, true)
	if !udp.Truncated {
		t.Errorf("UDP answer of a 3000-byte TXT is not truncated (TC=0, %d records)", len(udp.Answer))
	}
	tcp := exchange(t, s, "tcp", "big.example.test", dns.TypeTXT, false)
	if tcp.Truncated || len(tcp.Answer) != 1 {
		t.Fatalf("TCP answer: TC=%v, %d records; want the full record", tcp.Truncated, len(tcp.Answer))
	}
	// The stdlib resolver sees TC and retries over TCP on the same port.
	txts, err := s.Resolver().LookupTXT(testContext(t), "big.example.test")
	if err != nil || len(txts) != 1 || txts[0] != big {
		t.Errorf("LookupTXT(big) = %d values, %v; want the 3000-byte value", len(txts), err)
	}
}

// TestNegativeAnswers checks the three failure shapes as both the wire and the
// stdlib resolver see them.
func TestNegativeAnswers(t *testing.T) {
	s := Start(t)
	s.AddA("host.example.test", "192.0.2.1")
	s.AddTXT("s1._domainkey.example.test", "v=DKIM1; p=")
	s.AddMX("fail.example.test", 10, "mx.example.test")
	s.SetRcode("fail.example.test", dns.TypeMX, dns.RcodeServerFailure)
	s.AddTXT("allfail.example.test", "x")
	s.SetRcode("allfail.example.test", 0, dns.RcodeServerFailure)

	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		rcode     int
		notFound  bool
		temporary bool
	}{
		{"NXDOMAIN", "nope.example.test", dns.TypeTXT, dns.RcodeNameError, true, false},
		{"NODATA", "host.example.test", dns.TypeTXT, dns.RcodeSuccess, true, false},
		{"NODATA empty non-terminal", "_domainkey.example.test", dns.TypeTXT, dns.RcodeSuccess, true, false},
		{"SERVFAIL one type", "fail.example.test", dns.TypeMX, dns.RcodeServerFailure, false, true},
		{"SERVFAIL every type", "allfail.example.test", dns.TypeTXT, dns.RcodeServerFailure, false, true},
	}
	r := s.Resolver()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := exchange(t, s, "udp", tc.qname, tc.qtype, false)
			if raw.Rcode != tc.rcode || len(raw.Answer) != 0 || !raw.Authoritative {
				t.Errorf("wire: rcode %s, %d answers, AA=%v; want %s, 0 answers, AA",
					dns.RcodeToString[raw.Rcode], len(raw.Answer), raw.Authoritative, dns.RcodeToString[tc.rcode])
			}
			var err error
			switch tc.qtype {
			case dns.TypeTXT:
				_, err = r.LookupTXT(testContext(t), tc.qname)
			case dns.TypeMX:
				_, err = r.LookupMX(testContext(t), tc.qname)
			}
			var de *net.DNSError
			if !errors.As(err, &de) {
				t.Fatalf("lookup error = %v (%T), want *net.DNSError", err, err)
			}
			if de.IsNotFound != tc.notFound || de.IsTemporary != tc.temporary {
				t.Errorf("DNSError %q: IsNotFound=%v IsTemporary=%v, want %v %v",
					de.Err, de.IsNotFound, de.IsTemporary, tc.notFound, tc.temporary)
			}
		})
	}

	// SERVFAIL on MX leaves the other types of the name alone.
	if raw := exchange(t, s, "tcp", "fail.example.test", dns.TypeA, false); raw.Rcode != dns.RcodeSuccess {
		t.Errorf("A query on a name with an MX-only SERVFAIL: rcode %s, want NOERROR", dns.RcodeToString[raw.Rcode])
	}
	// Clearing the override brings the record back.
	s.SetRcode("fail.example.test", dns.TypeMX, dns.RcodeSuccess)
	if mxs, err := r.LookupMX(testContext(t), "fail.example.test"); err != nil || len(mxs) != 1 {
		t.Errorf("LookupMX after clearing SERVFAIL = %v, %v; want one MX", mxs, err)
	}
}

func TestRemove(t *testing.T) {
	s := Start(t)
	s.AddTXT("gone.example.test", "v=spf1 -all")
	s.SetRcode("gone.example.test", dns.TypeMX, dns.RcodeRefused)
	r := s.Resolver()
	if _, err := r.LookupTXT(testContext(t), "gone.example.test"); err != nil {
		t.Fatalf("LookupTXT before Remove: %v", err)
	}
	s.Remove("GONE.example.test.")
	for _, qtype := range []uint16{dns.TypeTXT, dns.TypeMX} {
		if raw := exchange(t, s, "udp", "gone.example.test", qtype, false); raw.Rcode != dns.RcodeNameError {
			t.Errorf("%s after Remove: rcode %s, want NXDOMAIN", dns.TypeToString[qtype], dns.RcodeToString[raw.Rcode])
		}
	}
}

// TestConcurrentChanges changes records while lookups run; run it with -race.
func TestConcurrentChanges(t *testing.T) {
	s := Start(t)
	s.AddMX("busy.example.test", 10, "mx.example.test")
	r := s.Resolver()
	ctx := testContext(t)

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 4 {
		wg.Go(func() {
			for range 20 {
				mxs, err := r.LookupMX(ctx, "busy.example.test")
				if err != nil {
					errs <- fmt.Errorf("reader %d: %w", i, err)
					return
				}
				if len(mxs) == 0 || mxs[0].Host != "mx.example.test." {
					errs <- fmt.Errorf("reader %d: first MX %v", i, mxs)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			host := fmt.Sprintf("h%d.example.test", i)
			s.AddA(host, "192.0.2.7")
			s.AddMX("busy.example.test", uint16(20+i), host)
			s.Remove(host)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mxs, err := r.LookupMX(ctx, "busy.example.test")
	if err != nil || len(mxs) != 51 {
		t.Errorf("after the writer: %d MX records, %v; want 51", len(mxs), err)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message instead of
// stopping the goroutine, to check what the Add helpers refuse.
type fatalRecorder struct {
	testing.TB
	msgs []string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

func TestAddRejectsWrongAddressFamily(t *testing.T) {
	s := Start(t)
	rec := &fatalRecorder{TB: t}
	s.t = rec
	s.AddA("a.example.test", "2001:db8::1")
	s.AddA("a.example.test", "not-an-ip")
	s.AddAAAA("a.example.test", "192.0.2.1")
	s.AddAAAA("a.example.test", "::ffff:192.0.2.1")
	if len(rec.msgs) != 4 {
		t.Errorf("got %d refusals, want 4: %q", len(rec.msgs), rec.msgs)
	}
	if raw := exchange(t, s, "udp", "a.example.test", dns.TypeA, false); raw.Rcode != dns.RcodeNameError {
		t.Errorf("refused records were stored: rcode %s", dns.RcodeToString[raw.Rcode])
	}
}
