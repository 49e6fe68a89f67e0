package track

import (
	"strings"
	"testing"
)

// htmlRule is one click-tracking rule: input, options, and the expected
// output with each tracking URL shown as [[click:ORIGINAL-URL]].
type htmlRule struct {
	name        string
	in          string
	preventScam bool
	want        string // "" means: unchanged
	n           int
}

var htmlRules = []htmlRule{
	// What is tracked, and how the URL is read.
	{name: "basic", in: `<a href="https://x.example/a">x</a>`, want: `<a href="[[click:https://x.example/a]]">x</a>`, n: 1},
	{name: "http", in: `<a href="http://x.example/">x</a>`, want: `<a href="[[click:http://x.example/]]">x</a>`, n: 1},
	{name: "upper case tag, attribute and scheme kept", in: `<A HREF="HTTPS://X.example/P">x</A>`, want: `<A HREF="[[click:HTTPS://X.example/P]]">x</A>`, n: 1},
	{name: "amp entity decoded", in: `<a href="https://x.example/?a=1&amp;b=2&amp;c">x</a>`, want: `<a href="[[click:https://x.example/?a=1&b=2&c]]">x</a>`, n: 1},
	{name: "legacy entity before = kept (attribute rule)", in: `<a href="https://x.example/?a=1&copy=2&reg=3">x</a>`, want: `<a href="[[click:https://x.example/?a=1&copy=2&reg=3]]">x</a>`, n: 1},
	{name: "numeric entities", in: `<a href="https://x.example/&#x41;&#66;&#x2F;">x</a>`, want: `<a href="[[click:https://x.example/AB/]]">x</a>`, n: 1},
	{name: "single quotes kept", in: `<a href='https://x.example/'>x</a>`, want: `<a href='[[click:https://x.example/]]'>x</a>`, n: 1},
	{name: "unquoted becomes double-quoted", in: `<a href=https://x.example/?a=1 class=b>x</a>`, want: `<a href="[[click:https://x.example/?a=1]]" class=b>x</a>`, n: 1},
	{name: "attribute order, spacing and other attributes kept", in: "<a  class=\"btn\"\n\thref = \"https://x.example/\"  style='color:red' target=_blank data-x>x</a>", want: "<a  class=\"btn\"\n\thref = \"[[click:https://x.example/]]\"  style='color:red' target=_blank data-x>x</a>", n: 1},
	{name: "whitespace around URL trimmed", in: "<a href=\"  https://x.example/a\n \">x</a>", want: `<a href="[[click:https://x.example/a]]">x</a>`, n: 1},
	{name: "inner space kept in the token", in: `<a href="https://x.example/a b">x</a>`, want: `<a href="[[click:https://x.example/a b]]">x</a>`, n: 1},
	{name: "unicode URL kept in the token", in: `<a href="https://exämple.com/ü?q=ä">ü</a>`, want: `<a href="[[click:https://exämple.com/ü?q=ä]]">ü</a>`, n: 1},
	{name: "percent escapes are not placeholders", in: `<a href="https://x.example/a%20b?q=%C3%A4">x</a>`, want: `<a href="[[click:https://x.example/a%20b?q=%C3%A4]]">x</a>`, n: 1},
	{name: "self-closing", in: `<a href="https://x.example/"/>`, want: `<a href="[[click:https://x.example/]]"/>`, n: 1},
	{name: "'>' inside a quoted attribute", in: `<a title="a>b" href="https://x.example/">x</a>`, want: `<a title="a>b" href="[[click:https://x.example/]]">x</a>`, n: 1},
	{name: "slash separators", in: `<a/href="https://x.example/">x</a>`, want: `<a/href="[[click:https://x.example/]]">x</a>`, n: 1},
	{name: "first of duplicate hrefs", in: `<a href="https://x.example/1" href="https://x.example/2">x</a>`, want: `<a href="[[click:https://x.example/1]]" href="https://x.example/2">x</a>`, n: 1},
	{name: "similar-looking host is not the tracking host", in: `<a href="https://t.example.com.evil.example/">x</a>`, want: `<a href="[[click:https://t.example.com.evil.example/]]">x</a>`, n: 1},
	{name: "port and userinfo", in: `<a href="https://u@x.example:8443/p">x</a>`, want: `<a href="[[click:https://u@x.example:8443/p]]">x</a>`, n: 1},
	// Tabs and line breaks inside an href: a browser removes them (WHATWG
	// URL parsing), so the token holds the URL it would open.
	{name: "CRLF inside the path removed", in: "<a href=\"https://x.example/a\r\nb?c=1\">x</a>", want: `<a href="[[click:https://x.example/ab?c=1]]">x</a>`, n: 1},
	{name: "LF, CR and tab anywhere removed", in: "<a href='ht\ttps://x.exa\nmple/p?q=1\r&amp;r=\t2#f\ng'>x</a>", want: `<a href='[[click:https://x.example/p?q=1&r=2#fg]]'>x</a>`, n: 1},
	{name: "entity-encoded line breaks removed", in: `<a href="https://x.example/a&#13;&#10;b&Tab;c&NewLine;d&#x9;">x</a>`, want: `<a href="[[click:https://x.example/abcd]]">x</a>`, n: 1},
	{name: "one-digit tab reference without ';' removed", in: `<a href="https://x.example/a&#9b">x</a>`, want: `<a href="[[click:https://x.example/ab]]">x</a>`, n: 1},
	{name: "folded with a leading space keeps the space", in: "<a href=\"https://x.example/a\r\n b\">x</a>", want: `<a href="[[click:https://x.example/a b]]">x</a>`, n: 1},
	{name: "line break before the host's end", in: "<a href=\"https://x.example\r\n/p\">x</a>", want: `<a href="[[click:https://x.example/p]]">x</a>`, n: 1},
	{name: "several links", in: `<p><a href="https://a.example/">a</a> <a href="https://b.example/">b</a></p>`, want: `<p><a href="[[click:https://a.example/]]">a</a> <a href="[[click:https://b.example/]]">b</a></p>`, n: 2},

	// Left alone.
	{name: "mailto", in: `<a href="mailto:a@example.com">m</a>`},
	{name: "tel", in: `<a href="tel:+3212345678">t</a>`},
	{name: "sms", in: `<a href="sms:+3212345678">s</a>`},
	{name: "fragment", in: `<a href="#top">top</a>`},
	{name: "relative path", in: `<a href="/account">a</a><a href="page.html">p</a><a href="?q=1">q</a>`},
	{name: "protocol-relative", in: `<a href="//x.example/">x</a>`},
	{name: "javascript", in: `<a href="javascript:alert(1)">j</a><a href=" JavaScript:void(0)">j</a>`},
	{name: "data", in: `<a href="data:text/html,hi">d</a>`},
	{name: "ftp", in: `<a href="ftp://x.example/f">f</a>`},
	{name: "no href", in: `<a name="top">t</a><a>x</a>`},
	{name: "empty href", in: `<a href>x</a><a href="">y</a><a href=>z</a>`},
	{name: "no host", in: `<a href="https://">x</a><a href="https:///path">y</a><a href="https://:80/">z</a>`},
	{name: "bad host or port", in: `<a href="https://x.example:80a/">x</a><a href="http://exa mple.com/">y</a>`},
	{name: "already on the tracking host", in: `<a href="https://t.example.com/c/abc">x</a><a href="HTTPS://T.EXAMPLE.COM/unsubscribe">y</a><a href="https://t.example.com">z</a>`},
	{name: "handlebars placeholder", in: `<a href="{{unsubscribe_url}}">u</a><a href="https://x.example/?u={{user.id}}">x</a>`},
	{name: "liquid placeholder", in: `<a href="https://x.example/{% url %}">x</a>`},
	{name: "mailchimp placeholder", in: `<a href="*|UNSUB|*">u</a><a href="https://x.example/?e=*|EMAIL|*">x</a>`},
	{name: "mailgun placeholder", in: `<a href="https://x.example/?id=%recipient.id%">x</a>`},
	{name: "stray percent", in: `<a href="https://x.example/100%">x</a>`},
	{name: "area, base and form are not links", in: `<base href="https://x.example/"><map><area href="https://x.example/a"></map><form action="https://x.example/f"></form>`},
	{name: "a leading = makes another attribute name", in: `<a =href="https://x.example/">x</a>`},
	{name: "unterminated tag at the end", in: `<p>x</p><a href="https://x.example/"`},
	{name: "unterminated quote at the end", in: `<a href="https://x.example/>x</a>`},
	{name: "placeholder broken over lines", in: "<a href=\"https://x.example/?u={\r\n{id}}\">x</a>"},
	{name: "tracking host broken over lines", in: "<a href=\"https://t.example.com\r\n/c/abc\">x</a>"},
	{name: "space left in the host by a fold", in: "<a href=\"https://x.exa\r\n mple/\">x</a>"},
	{name: "URL too long for a token", in: `<a href="https://x.example/` + strings.Repeat("a", 3100) + `">x</a>`},

	// Comments, conditional comments, raw text.
	{name: "comment", in: `<!-- <a href="https://x.example/">x</a> -->`},
	{name: "mso conditional comment with VML button", in: `<!--[if mso]><v:roundrect href="https://x.example/"><a href="https://x.example/">x</a></v:roundrect><![endif]-->`},
	{name: "VML href outside comments", in: `<v:roundrect href="https://x.example/">x</v:roundrect>`},
	{name: "not-mso block is ordinary markup", in: `<!--[if !mso]><!--><a href="https://x.example/b">b</a><!--<![endif]-->`, want: `<!--[if !mso]><!--><a href="[[click:https://x.example/b]]">b</a><!--<![endif]-->`, n: 1},
	{name: "downlevel-revealed block is tracked, its markers kept", in: `<![if !mso]><a href="https://x.example/c">c</a><![endif]>`, want: `<![if !mso]><a href="[[click:https://x.example/c]]">c</a><![endif]>`, n: 1},
	{name: "style", in: `<style>a[href="https://x.example/"]{color:red}</style>`},
	{name: "script", in: `<script>var s = '<a href="https://x.example/">';</script>`},
	{name: "textarea and title", in: `<title><a href="https://x.example/"></title><textarea><a href="https://x.example/"></textarea>`},

	// Vendor opt-outs: link untouched, attribute removed.
	{name: "sendgrid clicktracking=off", in: `<a clicktracking=off href="https://x.example/">x</a>`, want: `<a href="https://x.example/">x</a>`},
	{name: "sendgrid any case, quoted", in: `<a href="https://x.example/" ClickTracking="OFF">x</a>`, want: `<a href="https://x.example/">x</a>`},
	{name: "postmark data-pm-no-track", in: `<a href="https://x.example/" data-pm-no-track>x</a>`, want: `<a href="https://x.example/">x</a>`},
	{name: "mailgun disable-tracking=true", in: `<a href="https://x.example/" disable-tracking=true class="b">x</a>`, want: `<a href="https://x.example/" class="b">x</a>`},
	{name: "ses ses:no-track", in: `<a ses:no-track href="https://x.example/">x</a>`, want: `<a href="https://x.example/">x</a>`},
	{name: "sparkpost data-msys-clicktrack=0", in: `<a href="https://x.example/" data-msys-clicktrack="0">x</a>`, want: `<a href="https://x.example/">x</a>`},
	{name: "opt-out glued to a quoted value", in: `<a href="https://x.example/"ses:no-track>x</a>`, want: `<a href="https://x.example/">x</a>`},
	{name: "opt-out before a slash", in: `<a href="https://x.example/" data-pm-no-track/>x`, want: `<a href="https://x.example/"/>x`},
	{name: "repeated opt-out attributes all removed", in: `<a data-pm-no-track href="https://x.example/" DATA-PM-NO-TRACK="">x</a>`, want: `<a href="https://x.example/">x</a>`},
	{name: "opt-out between an unquoted value and '/' keeps the value", in: `<a href=https://x.example/ ses:no-track/>x`, want: `<a href=https://x.example/ />x`},
	{name: "opt-out with a bare '=' goes with its '='", in: `<a x=1 / data-pm-no-track=>t</a>`, want: `<a x=1 />t</a>`},
	{name: "adjacent removals", in: `<a x=1 ses:no-track data-pm-no-track/>x<a href="https://x.example/" clicktracking="on" data-msys-clicktrack="1">y</a>`, want: `<a x=1 />x<a href="[[click:https://x.example/]]">y</a>`, n: 1},
	{name: "opt-out on an untracked link still removed", in: `<a clicktracking=off href="mailto:a@example.com">m</a>`, want: `<a href="mailto:a@example.com">m</a>`},
	{name: "opt-in values: attribute removed, link tracked", in: `<a clicktracking="on" href="https://x.example/" data-msys-clicktrack="1" disable-tracking=false>x</a>`, want: `<a href="[[click:https://x.example/]]">x</a>`, n: 1},
	{name: "postal +notrack scheme", in: `<a href="https+notrack://x.example/?a=1&amp;b">x</a><a href=http+notrack://y.example/>y</a>`, want: `<a href="https://x.example/?a=1&amp;b">x</a><a href="http://y.example/">y</a>`},
	{name: "postal +notrack scheme broken over lines", in: "<a href=\"https+notrack://x.example/a\r\nb?c=1&amp;d\">x</a>", want: `<a href="https://x.example/ab?c=1&amp;d">x</a>`},
	{name: "opt-out outside an a tag is not touched", in: `<div clicktracking=off><img ses:no-track src="https://x.example/i.png"></div>`},

	// preventscam.
	{name: "preventscam: text is the URL", in: `<a href="https://x.example/">https://x.example/</a>`, preventScam: true},
	{name: "preventscam: case, no scheme, no slash, spaces", in: `<a href="https://x.example/">  X.Example </a>`, preventScam: true},
	{name: "preventscam: http text for https URL", in: `<a href="https://x.example/p/">http://x.example/p</a>`, preventScam: true},
	{name: "preventscam: text split over elements and entities", in: `<a href="https://x.example/?a=1&amp;b=2"><b>x.example</b>/?a=1&amp;b=2</a>`, preventScam: true},
	{name: "preventscam: other text is tracked", in: `<a href="https://x.example/">Click here</a>`, preventScam: true, want: `<a href="[[click:https://x.example/]]">Click here</a>`, n: 1},
	{name: "preventscam: another URL as text is tracked", in: `<a href="https://x.example/a">https://x.example/b</a>`, preventScam: true, want: `<a href="[[click:https://x.example/a]]">https://x.example/b</a>`, n: 1},
	{name: "preventscam: image link is tracked", in: `<a href="https://x.example/"><img src="https://x.example/i.png" alt="https://x.example/"></a>`, preventScam: true, want: `<a href="[[click:https://x.example/]]"><img src="https://x.example/i.png" alt="https://x.example/"></a>`, n: 1},
	{name: "preventscam: comments and style are not text", in: `<a href="https://x.example/"><!--x.example--><style>x.example</style>go</a>`, preventScam: true, want: `<a href="[[click:https://x.example/]]"><!--x.example--><style>x.example</style>go</a>`, n: 1},
	{name: "preventscam: a new <a> ends the previous one", in: `<a href="https://x.example/">x.example<a href="https://y.example/">y.example</a>`, preventScam: true},
	{name: "preventscam: unclosed at the end", in: `<a href="https://x.example/">x.example`, preventScam: true},
	{name: "preventscam: text is the URL the broken href opens", in: "<a href=\"https://x.example/a\r\nb\">https://x.example/ab</a>", preventScam: true},
	{name: "preventscam off: text is the URL but tracked", in: `<a href="https://x.example/">https://x.example/</a>`, want: `<a href="[[click:https://x.example/]]">https://x.example/</a>`, n: 1},
}

func TestRewriteHTMLRules(t *testing.T) {
	r := newTestRewriter(t)
	for _, tc := range htmlRules {
		t.Run(tc.name, func(t *testing.T) {
			o := testOpts
			o.PreventScam = tc.preventScam
			out, n, err := r.RewriteHTML([]byte(tc.in), o)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want == "" {
				want = tc.in
			}
			if got := readable(t, r.Codec, string(out), o); got != want {
				t.Errorf("RewriteHTML(%q)\n got %q\nwant %q", tc.in, got, want)
			}
			if n != tc.n {
				t.Errorf("n = %d, want %d", n, tc.n)
			}
		})
	}
}

func TestRewriteHTMLTokenFields(t *testing.T) {
	r := newTestRewriter(t)
	o := Options{MessageID: "msg-42", Recipient: "bob@example.org"}
	out, _, err := r.RewriteHTML([]byte(`<a href="https://x.example/">x</a>`), o)
	if err != nil {
		t.Fatal(err)
	}
	m := trackRE.FindStringSubmatch(string(out))
	if m == nil || m[1] != "c" {
		t.Fatalf("no click URL in %q", out)
	}
	tok, err := r.Codec.Open(KindClick, m[2])
	if err != nil {
		t.Fatal(err)
	}
	want := Token{Kind: KindClick, MessageID: "msg-42", Recipient: "bob@example.org", URL: "https://x.example/", Issued: testIssued}
	if tok != want {
		t.Errorf("token = %+v, want %+v", tok, want)
	}
}

func TestRewriterConfiguration(t *testing.T) {
	c := newTestCodec(t)
	for _, u := range []string{"", "t.example.com", "ftp://t.example.com", "https://", "https://t.example.com/?x=1", "https://t.example.com/#f", "https://t.ex\"ample.com", "https://tëst.example"} {
		if _, err := NewRewriter(c, u); err == nil {
			t.Errorf("NewRewriter(%q) succeeded, want an error", u)
		}
		r := &Rewriter{Codec: c, PublicURL: u}
		if _, _, err := r.RewriteHTML([]byte("<a href=https://x.example/>"), testOpts); err == nil {
			t.Errorf("RewriteHTML with PublicURL %q succeeded, want an error", u)
		}
		if _, _, err := r.RewriteText([]byte("https://x.example/"), testOpts); err == nil {
			t.Errorf("RewriteText with PublicURL %q succeeded, want an error", u)
		}
		if in := []byte("<body></body>"); string(r.AddPixel(in, testOpts)) != string(in) {
			t.Errorf("AddPixel with PublicURL %q changed the input", u)
		}
	}
	if _, err := NewRewriter(nil, testBase); err == nil {
		t.Error("NewRewriter(nil codec) succeeded, want an error")
	}
	// A trailing slash and a path prefix are fine.
	r, err := NewRewriter(c, "https://example.com/t/")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := r.RewriteHTML([]byte(`<a href="https://x.example/">x</a>`), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), `<a href="https://example.com/t/c/`) {
		t.Errorf("with PublicURL https://example.com/t/: %q", out)
	}
	out, _, _ = r.RewriteHTML([]byte(`<a href="https://example.com/t/c/x">x</a>`), testOpts)
	if string(out) != `<a href="https://example.com/t/c/x">x</a>` {
		t.Errorf("link under a path-prefixed PublicURL was rewritten: %q", out)
	}
}

func TestRewriteHTMLDoesNotModifyInput(t *testing.T) {
	r := newTestRewriter(t)
	in := []byte(`<a href="https://x.example/" clicktracking="on">x</a>`)
	orig := string(in)
	out, _, err := r.RewriteHTML(in, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if string(in) != orig {
		t.Errorf("input modified: %q", in)
	}
	out[0] = 'X'
	if string(in) != orig {
		t.Error("output shares memory with the input")
	}
}

// TestOptOutRemovalCombinations builds every <a> tag of up to three
// attributes from a small alphabet of attributes and separators and checks
// each rewrite against x/net/html (checkRewrite): removing an opt-out
// attribute must never change another attribute or the rest of the tag.
func TestOptOutRemovalCombinations(t *testing.T) {
	attrs := []string{"x=1", `x="1"`, "x", "ses:no-track", "clicktracking=off", "data-pm-no-track=", "href=https://x.example/", "/"}
	seps := []string{" ", "", "/", " / "}
	ends := []string{">", "/>", " >"}
	r := newTestRewriter(t)
	count := 0
	var build func(prefix string, depth int)
	build = func(prefix string, depth int) {
		for _, e := range ends {
			in := []byte(prefix + e + "t</a>")
			out, n, err := r.RewriteHTML(in, testOpts)
			if err != nil {
				t.Fatal(err)
			}
			checkRewrite(t, r.Codec, in, out, n)
			count++
		}
		if depth == 3 {
			return
		}
		for _, s := range seps {
			for _, a := range attrs {
				build(prefix+s+a, depth+1)
			}
		}
	}
	build("<a", 0)
	if count < 10000 {
		t.Fatalf("only %d combinations", count)
	}
}
