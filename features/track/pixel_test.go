package track

import (
	"strings"
	"testing"
)

const testPixel = `<img src="[[open]]" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px" />`

func TestAddPixel(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"before </body>", "<html><body><p>x</p></body></html>", "<html><body><p>x</p>" + testPixel + "</body></html>"},
		{"any case", "<BODY>x</BODY >\n", "<BODY>x" + testPixel + "</BODY >\n"},
		{"last of two", "<body>a</body><body>b</body>", "<body>a</body><body>b" + testPixel + "</body>"},
		{"not one inside a comment", "<body>x</body><!-- </body> -->", "<body>x" + testPixel + "</body><!-- </body> -->"},
		{"not one inside a conditional comment", "<body>x</body><!--[if mso]></body><![endif]-->", "<body>x" + testPixel + "</body><!--[if mso]></body><![endif]-->"},
		{"not one inside script or style", "<body>x</body><script>'</body>'</script><style>/*</body>*/</style>", "<body>x" + testPixel + "</body><script>'</body>'</script><style>/*</body>*/</style>"},
		{"not one in text", "<body>&lt;/body&gt; x</body>", "<body>&lt;/body&gt; x" + testPixel + "</body>"},
		{"no </body>: appended", "<p>fragment</p>", "<p>fragment</p>" + testPixel},
		{"only a commented </body>: appended", "<p>x</p><!-- </body> -->", "<p>x</p><!-- </body> -->" + testPixel},
		{"</bodyx> is another tag", "<p>x</p></bodyx>", "<p>x</p></bodyx>" + testPixel},
		{"empty", "", testPixel},
	}
	r := newTestRewriter(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := r.AddPixel([]byte(tc.in), testOpts)
			if got := readable(t, r.Codec, string(out), testOpts); got != tc.want {
				t.Errorf("AddPixel(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestAddPixelToken(t *testing.T) {
	r := newTestRewriter(t)
	out := string(r.AddPixel([]byte("<body></body>"), testOpts))
	m := trackRE.FindStringSubmatch(out)
	if m == nil || m[1] != "o" {
		t.Fatalf("no pixel URL in %q", out)
	}
	tok, err := r.Codec.Open(KindOpen, m[2])
	if err != nil {
		t.Fatal(err)
	}
	want := Token{Kind: KindOpen, MessageID: testOpts.MessageID, Recipient: testOpts.Recipient, Issued: testIssued}
	if tok != want {
		t.Errorf("pixel token = %+v, want %+v", tok, want)
	}
	if _, err := r.Codec.Open(KindClick, m[2]); err == nil {
		t.Error("the pixel token opens as a click token")
	}
	if !strings.HasPrefix(out, `<body><img src="https://t.example.com/o/`) {
		t.Errorf("pixel = %q", out)
	}
}
