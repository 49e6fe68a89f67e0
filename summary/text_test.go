package summary

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseText(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"plain", "Subject: s\r\n\r\nHello  world\r\nsecond line\r\n", "Hello  world\r\nsecond line"},
		{"html only: visible text, no head, style or script",
			"Subject: s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><title>T</title><style>p{color:red}</style></head>" +
				"<body><p>Your code is <b>482913</b></p><script>var x=1</script><p>Caf&eacute;</p></body></html>\r\n",
			"Your code is 482913 Café"},
		{"alternative prefers the text part",
			"Subject: s\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain words\r\n" +
				"--b\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--b--\r\n", "plain words"},
		{"quoted-printable latin-1",
			"Subject: s\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 cr=E8me\r\n",
			"Café crème"},
		{"attachments never count",
			"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n" +
				"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nsecret attachment\r\n--b--\r\n", "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, text, err := ParseText([]byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			if text != tc.want {
				t.Fatalf("text %q, want %q", text, tc.want)
			}
			ref, _ := Parse([]byte(tc.raw))
			if s.Subject != ref.Subject || len(s.Attachments) != len(ref.Attachments) || len(s.Links) != len(ref.Links) {
				t.Fatalf("ParseText's summary differs from Parse's: %+v vs %+v", s, ref)
			}
		})
	}
}

func TestParseTextCap(t *testing.T) {
	body := strings.Repeat("é", MaxText) // 2 bytes each: the cap falls mid-character
	_, text, err := ParseText([]byte("Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nx" + body))
	if err != nil {
		t.Fatal(err)
	}
	if len(text) > MaxText || !utf8.ValidString(text) || len(text) < MaxText-2 {
		t.Fatalf("text of %d bytes, valid UTF-8 %v", len(text), utf8.ValidString(text))
	}
}
