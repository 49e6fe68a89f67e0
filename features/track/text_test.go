package track

import (
	"strings"
	"testing"
)

func TestRewriteTextRules(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string // "" means unchanged
		n    int
	}{
		{"bare URL", "Go to https://x.example/a now", "Go to [[click:https://x.example/a]] now", 1},
		{"http and any case", "HTTP://X.example/ and hTTps://y.example/", "[[click:HTTP://X.example/]] and [[click:hTTps://y.example/]]", 2},
		{"line start and end", "https://x.example/\nhttps://y.example/", "[[click:https://x.example/]]\n[[click:https://y.example/]]", 2},
		{"CRLF kept", "a\r\nhttps://x.example/\r\nb", "a\r\n[[click:https://x.example/]]\r\nb", 1},
		{"trailing full stop", "See https://x.example/a.", "See [[click:https://x.example/a]].", 1},
		{"trailing punctuation run", "(https://x.example/a?!), ok", "([[click:https://x.example/a]]?!), ok", 1},
		{"each listed punctuation", "https://x.example/1. https://x.example/2, https://x.example/3; https://x.example/4: https://x.example/5! https://x.example/6?",
			"[[click:https://x.example/1]]. [[click:https://x.example/2]], [[click:https://x.example/3]]; [[click:https://x.example/4]]: [[click:https://x.example/5]]! [[click:https://x.example/6]]?", 6},
		{"angle brackets", "<https://x.example/a>", "<[[click:https://x.example/a]]>", 1},
		{"angle brackets and full stop", "Link: <https://x.example/a>.", "Link: <[[click:https://x.example/a]]>.", 1},
		{"parenthesised URL", "(see https://x.example/a)", "(see [[click:https://x.example/a]])", 1},
		{"balanced parentheses are part of the URL", "(https://en.wikipedia.org/wiki/Go_(game))", "([[click:https://en.wikipedia.org/wiki/Go_(game)]])", 1},
		{"markdown link", "[docs](https://x.example/docs)", "[docs]([[click:https://x.example/docs]])", 1},
		{"quotes", `"https://x.example/a" 'https://x.example/b'`, `"[[click:https://x.example/a]]" '[[click:https://x.example/b]]'`, 2},
		{"query and fragment", "https://x.example/?a=1&b=2#frag", "[[click:https://x.example/?a=1&b=2#frag]]", 1},
		{"query ending in ?", "Is it https://x.example/a?", "Is it [[click:https://x.example/a]]?", 1},
		{"unicode path", "Voir https://exämple.com/café, merci", "Voir [[click:https://exämple.com/café]], merci", 1},
		{"unicode space ends the URL", "https://x.example/a\u00a0suite", "[[click:https://x.example/a]]\u00a0suite", 1},
		// A mail client's linkifier ends a plain-text URL at a line break,
		// so the part before it is what a click opens, and all that is sealed.
		{"line break ends the URL", "https://x.example/a\r\nb?c=1", "[[click:https://x.example/a]]\r\nb?c=1", 1},
		{"tab ends the URL", "https://x.example/a\tb", "[[click:https://x.example/a]]\tb", 1},
		{"glued scheme is not a URL", "xhttps://x.example/ and foo+https://y.example/", "", 0},
		{"after punctuation is a URL", "url:https://x.example/a", "url:[[click:https://x.example/a]]", 1},
		{"no host", "https:// and https:///x", "", 0},
		{"other schemes", "ftp://x.example/ mailto:a@example.com tel:+32", "", 0},
		{"placeholders", "https://x.example/?u={{id}} https://x.example/*|EMAIL|* %recipient.url%", "", 0},
		{"tracking host", "https://t.example.com/c/abc", "", 0},
		{"postal notrack", "https+notrack://x.example/a", "https://x.example/a", 0},
		{"empty", "", "", 0},
		{"invalid UTF-8 ends the URL", "https://x.example/a\xffb", "[[click:https://x.example/a]]\xffb", 1},
		{"long line is not wrapped", strings.Repeat("word ", 20) + "https://x.example/" + strings.Repeat("p", 200),
			strings.Repeat("word ", 20) + "[[click:https://x.example/" + strings.Repeat("p", 200) + "]]", 1},
	}
	r := newTestRewriter(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, n, err := r.RewriteText([]byte(tc.in), testOpts)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want == "" {
				want = tc.in
			}
			if got := readable(t, r.Codec, string(out), testOpts); got != want {
				t.Errorf("RewriteText(%q)\n got %q\nwant %q", tc.in, got, want)
			}
			if n != tc.n {
				t.Errorf("n = %d, want %d", n, tc.n)
			}
			if strings.Count(string(out), "\n") != strings.Count(tc.in, "\n") {
				t.Errorf("line count changed: %q", out)
			}
		})
	}
}

func TestRewriteTextIgnoresPreventScam(t *testing.T) {
	r := newTestRewriter(t)
	o := testOpts
	o.PreventScam = true
	out, n, err := r.RewriteText([]byte("https://x.example/"), o)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || readable(t, r.Codec, string(out), o) != "[[click:https://x.example/]]" {
		t.Errorf("RewriteText with PreventScam = %q, %d", out, n)
	}
}
