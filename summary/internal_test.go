package summary

import (
	"reflect"
	"testing"
)

func TestDecodeQP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Caf=E9", "Caf\xe9"},
		{"soft=\r\nbreak", "softbreak"},
		{"soft=\nbreak LF", "softbreak LF"},
		{"trailing  \r\nspace", "trailing\r\nspace"},
		{"bad =ZZ and =4", "bad =ZZ and =4"},
		{"lower =c3=a9", "lower \xc3\xa9"},
		{"a=3D=\r\n", "a="},
	}
	for _, tt := range tests {
		if got := string(decodeQP(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("decodeQP(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	tests := []struct{ in, want string }{
		{"aGVsbG8=", "hello"},
		{"aGVs\r\nbG8=", "hello"},
		{"aGVsbG8", "hello"},       // missing padding
		{" aG Vs\tbG8 =", "hello"}, // stray white space
		{"aGVsbG8=garbage", "hello"},
		{"aGVsbG8h!", "hello!"},
		{"a", ""},
	}
	for _, tt := range tests {
		if got := string(decodeBase64(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("decodeBase64(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTextLinks(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"see https://a.example/x.", []string{"https://a.example/x"}},
		{"(https://a.example/x)", []string{"https://a.example/x"}},
		{"https://en.example/wiki/Go_(lang)", []string{"https://en.example/wiki/Go_(lang)"}},
		{"<HTTP://A.EXAMPLE/>, http://b.example?q=1&r=2;", []string{"HTTP://A.EXAMPLE/", "http://b.example?q=1&r=2"}},
		{"xhttp://no.example https:// http:///path ftp://no.example", nil},
		{`"https://q.example/"`, []string{"https://q.example/"}},
		{"https://a.example https://a.example", []string{"https://a.example"}},
	}
	for _, tt := range tests {
		var s linkSet
		s.textLinks([]byte(tt.in))
		if !reflect.DeepEqual(s.list, tt.want) {
			t.Errorf("textLinks(%q) = %q, want %q", tt.in, s.list, tt.want)
		}
	}
}

func TestHTMLLinks(t *testing.T) {
	doc := `<a href="https://a.example/?x=1&amp;y=2">a</a><A HREF='https://b.example/'>b</A>
<a name="n">no href</a><a href="/relative">r</a><a href="https://c.ex
ample/">split</a><area href="https://area.example/"><a title="t" href=https://d.example/>d</a>`
	var s linkSet
	s.htmlLinks([]byte(doc))
	want := []string{"https://a.example/?x=1&y=2", "https://b.example/", "https://c.example/", "https://d.example/"}
	if !reflect.DeepEqual(s.list, want) {
		t.Errorf("htmlLinks = %q, want %q", s.list, want)
	}
}

func TestLinkSetDedupBeyondLinearScan(t *testing.T) {
	var s linkSet
	for round := 0; round < 2; round++ {
		for i := 0; i < 40; i++ {
			s.add("https://x.example/" + string(rune('A'+i)))
		}
	}
	if len(s.list) != 40 {
		t.Errorf("got %d links, want 40", len(s.list))
	}
}

func TestSplitHeader(t *testing.T) {
	tests := []struct{ in, hdr, body string }{
		{"A: 1\r\n\r\nbody", "A: 1\r\n", "body"},
		{"A: 1\nB: 2\n continued\n\nbody\n", "A: 1\nB: 2\n continued\n", "body\n"},
		{"From sender@x Mon Jan 1\nA: 1\n\nb", "A: 1\n", "b"},
		{"A: 1\r\nnot a header\r\nmore", "A: 1\r\n", "not a header\r\nmore"},
		{"A: 1", "A: 1", ""},
		{" cont: x\r\n\r\nb", "", " cont: x\r\n\r\nb"},
	}
	for _, tt := range tests {
		h, b := splitHeader([]byte(tt.in), true)
		if string(h) != tt.hdr || string(b) != tt.body {
			t.Errorf("splitHeader(%q) = %q, %q; want %q, %q", tt.in, h, b, tt.hdr, tt.body)
		}
	}
}

func TestValidUTF8(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"caf\xe9", "café"},                 // latin-1
		{"caf\xc3\xa9 \xff", "café \uFFFD"}, // mostly UTF-8 with a stray byte
	}
	for _, tt := range tests {
		if got := validUTF8(tt.in); got != tt.want {
			t.Errorf("validUTF8(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAddressSalvage(t *testing.T) {
	tests := []struct {
		in   string
		want []Address
	}{
		{"a@x.example, b@y.example", []Address{{Address: "a@x.example"}, {Address: "b@y.example"}}},
		{"Team: a@x.example, <b@y.example>;", []Address{{Address: "a@x.example"}, {Address: "b@y.example"}}},
		{"broken name <c@z.example>>, , d@w.example", []Address{{Address: "c@z.example", Name: "broken name"}, {Address: "d@w.example"}}},
		{"garbage only", nil},
	}
	for _, tt := range tests {
		got := appendAddresses(nil, tt.in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("appendAddresses(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestSplitMultipart(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"crlf", "preamble\r\n--b\r\nA: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\nepilogue\r\n", []string{"A: 1\r\n\r\none", "\r\ntwo"}},
		{"lf and padding", "--b  \nx\n--b\t\ny\n--b--", []string{"x", "y"}},
		{"longer boundary is not a delimiter", "--b\r\n--bc\r\n--b\r\nz\r\n--b--\r\n", []string{"--bc", "z"}},
		{"not at line start", "--b\r\nsee --b\r\n--b--", []string{"see --b"}},
		{"missing close", "--b\r\nfirst\r\n--b\r\ncut off", []string{"first", "cut off"}},
		{"no delimiter", "--c\r\ntext\r\n--c--\r\n", nil},
		{"empty parts", "--b\r\n--b\r\n\r\n--b--", []string{"", ""}},
	}
	for _, tt := range tests {
		var got []string
		n := splitMultipart([]byte(tt.body), "b", func(p []byte) bool {
			got = append(got, string(p))
			return true
		})
		if !reflect.DeepEqual(got, tt.want) || n != len(tt.want) {
			t.Errorf("%s: parts %q (n=%d), want %q", tt.name, got, n, tt.want)
		}
	}
}
