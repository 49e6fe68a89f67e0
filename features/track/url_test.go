package track

import "testing"

func TestLocation(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"https://x.example/a?b=1&c=2#f", "https://x.example/a?b=1&c=2#f", true},
		{"HTTP://X.EXAMPLE", "HTTP://X.EXAMPLE", true},
		{"https://u:p@x.example:8443/p", "https://u:p@x.example:8443/p", true},
		{"https://[2001:db8::1]:8080/p", "https://[2001:db8::1]:8080/p", true},
		{"https://exämple.com/ü?q=ä#é", "https://xn--exmple-cua.com/%C3%BC?q=%C3%A4#%C3%A9", true},
		{"HTTPS://bücher.example", "https://xn--bcher-kva.example", true},
		{"https://x.example/a b", "https://x.example/a%20b", true},
		{"https://x.example/a\x01b\x7f", "https://x.example/a%01b%7F", true},
		// A browser removes every tab, CR and LF before parsing, and strips
		// C0 controls and spaces at both ends (WHATWG URL parsing).
		{"https://x.example/a\r\nb?c=1", "https://x.example/ab?c=1", true},
		{"https://x.example/a\tb\x7f", "https://x.example/ab%7F", true},
		{"https://x.example/?q=a\nb&r=\r1#f\tg", "https://x.example/?q=ab&r=1#fg", true},
		{"\r\n\t https://x.example/p \x00\r\n", "https://x.example/p", true},
		{"ht\r\ntps://x.exa\r\nmple:80\t80/p", "https://x.example:8080/p", true},
		{"https://x.example\r\n/p", "https://x.example/p", true},
		{"https://x.example/a\r\n b", "https://x.example/a%20b", true},
		{"https://exä\r\nmple.com/ü\r\nü", "https://xn--exmple-cua.com/%C3%BC%C3%BC", true},
		{"https://\r\n/p", "", false},
		{"https://x.exa\r\n mple/", "", false},
		{"\x01", "", false},
		{"https://x.example/%C3%A4", "https://x.example/%C3%A4", true},
		{"https://x.example\\path", "https://x.example\\path", true},
		{"", "", false},
		{"x.example", "", false},
		{"javascript:alert(1)", "", false},
		{"mailto:a@x.example", "", false},
		{"//x.example/", "", false},
		{"ftp://x.example/", "", false},
		{"https://", "", false},
		{"https:///p", "", false},
		{"https://u@/p", "", false},
		{"https://x.example:8a/", "", false},
		{"https://[]/", "", false},
		{"https://ex ample.com/", "", false},
		{"https://x.example\r\nSet-Cookie: a=b", "", false},
		{"https://%zz/", "", false},
	}
	for _, tc := range cases {
		got, ok := location(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("location(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCleanURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"https://x.example/a", "https://x.example/a"},
		{"https://x.example/a\r\nb?c=1", "https://x.example/ab?c=1"},
		{"https://x.example/a\rb\nc\td", "https://x.example/abcd"},
		{" \t\r\n\x00\x1fhttps://x.example/ \x1f\n", "https://x.example/"},
		{"https://x.example/a b\x01\x0b\x0c\x7f", "https://x.example/a b\x01\x0b\x0c\x7f"},
		{"https://x.example/a\r\n b", "https://x.example/a b"},
		{"https://x.example/ü\r\n\u00a0", "https://x.example/ü\u00a0"},
		{"\r\n\t", ""},
		{"", ""},
	}
	for _, tc := range cases {
		if got := cleanURL(tc.in); got != tc.want {
			t.Errorf("cleanURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(10, func() { cleanURL(" https://x.example/a?b=1 ") }); n != 0 {
		t.Errorf("cleanURL of a URL without inner tab or line break allocates %v times", n)
	}
}

func TestHasPlaceholder(t *testing.T) {
	yes := []string{"{{x}}", "https://x/?a={{b}}", "{%url%}", "*|UNSUB|*", "%recipient.x%", "%%view%%", "100%", "%4", "%g0"}
	no := []string{"https://x/", "https://x/a%20b%C3%A4", "https://x/{a}", "https://x/*a*", "https://x/|", "https://x/?a=%7B%7B"}
	for _, s := range yes {
		if !hasPlaceholder(s) {
			t.Errorf("hasPlaceholder(%q) = false", s)
		}
	}
	for _, s := range no {
		if hasPlaceholder(s) {
			t.Errorf("hasPlaceholder(%q) = true", s)
		}
	}
}

func TestUnderBase(t *testing.T) {
	const base = "https://t.example.com/t"
	yes := []string{"https://t.example.com/t", "HTTPS://T.EXAMPLE.COM/t/c/x", "https://t.example.com/t?x", "https://t.example.com/t#x"}
	no := []string{"https://t.example.com/", "https://t.example.com/tx", "https://t.example.com.evil/t", "http://t.example.com/t/c/x"}
	for _, s := range yes {
		if !underBase(s, base) {
			t.Errorf("underBase(%q) = false", s)
		}
	}
	for _, s := range no {
		if underBase(s, base) {
			t.Errorf("underBase(%q) = true", s)
		}
	}
}
