package pipeline

import (
	"bytes"
	"io"
	"mime/quotedprintable"
	"testing"
)

// FuzzEncodeQP: the standard library's quoted-printable reader gives back
// exactly the text encodeQP was given (LF line breaks as CRLF), and no line
// is longer than 76 characters.
func FuzzEncodeQP(f *testing.F) {
	for _, s := range []string{
		"", "a", "=", " ", "a \r\nb\t\nc", "caf\xc3\xa9 \xff\x00\r", "line\r\r\n",
		string(bytes.Repeat([]byte("x"), 200)), string(bytes.Repeat([]byte("\xe2\x82\xac"), 60)),
		string(bytes.Repeat([]byte("a "), 100)) + "\n", "<a href=\"https://example.com/?a=1&b=2\">x</a>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		for _, nl := range []string{"\r\n", "\n"} {
			enc := encodeQP(text, nl)
			for _, l := range bytes.Split(enc, []byte("\n")) {
				if len(bytes.TrimSuffix(l, []byte("\r"))) > 76 {
					t.Fatalf("line of %d characters: %q", len(l), l)
				}
			}
			for _, c := range enc {
				if c > '~' || c < ' ' && c != '\r' && c != '\n' && c != '\t' {
					t.Fatalf("unescaped byte %#x in %q", c, enc)
				}
			}
			dec, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(enc)))
			if err != nil {
				t.Fatalf("stdlib reader: %v on %q", err, enc)
			}
			want := text
			if nl == "\n" {
				want = bytes.ReplaceAll(text, []byte("\r\n"), []byte("\n"))
			} else {
				want = bytes.ReplaceAll(bytes.ReplaceAll(text, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
			}
			if !bytes.Equal(dec, want) {
				t.Fatalf("nl %q: decode(encode(%q)) = %q", nl, text, dec)
			}
		}
	})
}

// TestEncodePart pins the choice of transfer encoding.
func TestEncodePart(t *testing.T) {
	long := bytes.Repeat([]byte("a"), maxLine+1)
	tests := []struct {
		text, cte, wantCTE string
	}{
		{"ascii\r\n", "7bit", "7bit"},
		{"ascii\r\n", "", ""},
		{"caf\xc3\xa9\r\n", "7bit", "quoted-printable"},
		{"caf\xc3\xa9\r\n", "8bit", "8bit"},
		{"caf\xc3\xa9\r\n", "binary", "binary"},
		{string(long), "8bit", "quoted-printable"},
		{string(long[:maxLine]) + "\r\n" + string(long[:maxLine]), "8bit", "8bit"},
		{"nul\x00", "8bit", "quoted-printable"},
		{"lone\rcr", "8bit", "quoted-printable"},
		{"x", "quoted-printable", "quoted-printable"},
		{"x", "base64", "base64"},
	}
	for _, tt := range tests {
		got, cte := encodePart([]byte(tt.text), tt.cte, "\r\n")
		if cte != tt.wantCTE {
			t.Errorf("encodePart(%.20q, %q): %q, want %q", tt.text, tt.cte, cte, tt.wantCTE)
		}
		if cte == tt.cte && cte != "base64" && cte != "quoted-printable" && !bytes.Equal(got, []byte(tt.text)) {
			t.Errorf("encodePart(%.20q, %q) changed an identity body", tt.text, tt.cte)
		}
	}
	if got, _ := encodePart(bytes.Repeat([]byte{0xff}, 100), "base64", "\r\n"); len(bytes.Split(got, []byte("\r\n"))[0]) != 76 {
		t.Errorf("base64 lines are not 76 characters: %q", got)
	}
}
