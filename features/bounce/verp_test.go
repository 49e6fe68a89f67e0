package bounce

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/store"
)

func newCodec(t testing.TB, secret, domain string) *Codec {
	t.Helper()
	c, err := NewCodec([]byte(secret), domain)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const testSecret = "0123456789abcdef-verp-secret"

func TestVERPRoundTrip(t *testing.T) {
	c := newCodec(t, testSecret, "Bounce.Example.COM.")
	ids := []string{store.NewID(time.Now()), "a", strings.Repeat("z", 32), "01jwq3v5x8k2m4n6p8r0t2v4w6"}
	for _, id := range ids {
		for _, rcpt := range []int{0, 1, 255, 256, MaxRecipientIndex - 1} {
			addr, err := c.Address(id, rcpt)
			if err != nil {
				t.Fatalf("Address(%q, %d): %v", id, rcpt, err)
			}
			local, domain, _ := strings.Cut(addr, "@")
			if len(local) > 64 {
				t.Errorf("local part %q is %d octets, RFC 5321 allows 64", local, len(local))
			}
			if domain != "bounce.example.com" || !strings.HasPrefix(local, "b+") {
				t.Errorf("address %q is not b+...@bounce.example.com", addr)
			}
			if addr != strings.ToLower(addr) {
				t.Errorf("address %q is not lower case", addr)
			}
			// Some MTAs change the case of local parts; angle brackets come from MAIL FROM / RCPT TO.
			for _, in := range []string{addr, strings.ToUpper(addr), "<" + addr + ">", " " + addr + " "} {
				gotID, gotRcpt, err := c.Parse(in)
				if err != nil || gotID != id || gotRcpt != rcpt {
					t.Errorf("Parse(%q) = %q, %d, %v; want %q, %d", in, gotID, gotRcpt, err, id, rcpt)
				}
			}
		}
	}
}

func TestVERPDistinct(t *testing.T) {
	c := newCodec(t, testSecret, "bounce.example.com")
	seen := map[string]bool{}
	for _, id := range []string{"abc", "abd"} {
		for rcpt := range 3 {
			addr, err := c.Address(id, rcpt)
			if err != nil {
				t.Fatal(err)
			}
			if seen[addr] {
				t.Errorf("address %q made twice", addr)
			}
			seen[addr] = true
		}
	}
}

// TestVERPTamper changes every character of the local part in turn: no
// variant may parse (case changes aside).
func TestVERPTamper(t *testing.T) {
	c := newCodec(t, testSecret, "bounce.example.com")
	addr, err := c.Address("01jwq3v5x8k2m4n6p8r0t2v4w6", 7)
	if err != nil {
		t.Fatal(err)
	}
	at := strings.IndexByte(addr, '@')
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-+"
	for i := 0; i < at; i++ {
		for _, r := range alphabet {
			if byte(r) == addr[i] {
				continue
			}
			bad := addr[:i] + string(r) + addr[i+1:]
			if id, rcpt, err := c.Parse(bad); !errors.Is(err, ErrBadAddress) {
				t.Fatalf("tampered %q parsed as %q, %d, %v", bad, id, rcpt, err)
			}
		}
	}
}

func TestVERPRejects(t *testing.T) {
	c := newCodec(t, testSecret, "bounce.example.com")
	good, err := c.Address("01jwq3v5x8k2m4n6p8r0t2v4w6", 2)
	if err != nil {
		t.Fatal(err)
	}
	local := good[:strings.IndexByte(good, '@')]
	other := newCodec(t, "another secret of enough length", "bounce.example.com")
	otherDomain := newCodec(t, testSecret, "bounce.example.net")
	fromOther, _ := other.Address("01jwq3v5x8k2m4n6p8r0t2v4w6", 2)
	fromOtherDomain, _ := otherDomain.Address("01jwq3v5x8k2m4n6p8r0t2v4w6", 2)
	for _, addr := range []string{
		"",
		"postmaster@bounce.example.com",
		"b+@bounce.example.com",
		"b+abc@bounce.example.com",
		"b+abc-@bounce.example.com",
		local,                                // no domain
		local + "@bounce.example.org",        // wrong domain
		local + "@sub.bounce.example.com",    // wrong domain
		strings.Replace(good, "b+", "c+", 1), // wrong prefix
		local + "a@bounce.example.com",       // code too long
		local[:len(local)-1] + "@bounce.example.com",
		strings.Replace(good, "-", "=", 1),
		fromOther,       // signed with another secret
		fromOtherDomain, // signed for another domain...
		strings.Replace(fromOtherDomain, "example.net", "example.com", 1), // ...and moved here
	} {
		if id, rcpt, err := c.Parse(addr); !errors.Is(err, ErrBadAddress) {
			t.Errorf("Parse(%q) = %q, %d, %v; want ErrBadAddress", addr, id, rcpt, err)
		}
	}
}

func TestVERPBadInput(t *testing.T) {
	for _, tc := range []struct{ secret, domain string }{
		{"short", "bounce.example.com"},
		{testSecret, ""},
		{testSecret, "bad domain"},
		{testSecret, "-x.example.com"},
		{testSecret, "a..b"},
	} {
		if _, err := NewCodec([]byte(tc.secret), tc.domain); err == nil {
			t.Errorf("NewCodec(%q, %q) succeeded", tc.secret, tc.domain)
		}
	}
	c := newCodec(t, testSecret, "bounce.example.com")
	for _, tc := range []struct {
		id   string
		rcpt int
	}{
		{"", 0}, {"ABC", 0}, {"a-b", 0}, {strings.Repeat("a", 33), 0}, {"abc", -1}, {"abc", MaxRecipientIndex},
	} {
		if addr, err := c.Address(tc.id, tc.rcpt); err == nil {
			t.Errorf("Address(%q, %d) = %q, want an error", tc.id, tc.rcpt, addr)
		}
	}
}

// FuzzVERPParse: Parse never panics, and whatever it accepts is exactly what
// Address makes (case aside).
func FuzzVERPParse(f *testing.F) {
	c := newCodec(f, testSecret, "bounce.example.com")
	for i, id := range []string{"01jwq3v5x8k2m4n6p8r0t2v4w6", "x"} {
		addr, _ := c.Address(id, i*300)
		f.Add(addr)
		f.Add(strings.ToUpper(addr))
	}
	f.Add("b+zz-aaaaaaaaaaaaaaaaaaaa@bounce.example.com")
	f.Fuzz(func(t *testing.T, addr string) {
		id, rcpt, err := c.Parse(addr)
		if err != nil {
			if !errors.Is(err, ErrBadAddress) {
				t.Fatalf("error %v does not wrap ErrBadAddress", err)
			}
			return
		}
		again, err := c.Address(id, rcpt)
		if err != nil {
			t.Fatalf("parsed %q to %q, %d, which Address refuses: %v", addr, id, rcpt, err)
		}
		norm := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(addr), "<"), ">"))
		if strings.TrimSuffix(norm, ".") != again {
			t.Fatalf("accepted %q, but Address gives %q", addr, again)
		}
	})
}

func BenchmarkVERP(b *testing.B) {
	c := newCodec(b, testSecret, "bounce.example.com")
	id := store.NewID(time.Now())
	b.ReportAllocs()
	for b.Loop() {
		addr, err := c.Address(id, 3)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.Parse(addr); err != nil {
			b.Fatal(err)
		}
	}
}
