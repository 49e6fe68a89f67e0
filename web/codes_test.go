package web

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/smtpgate/smtpgate/summary"
)

// codeCase is one case of testdata/codes/cases.json.
type codeCase struct {
	Name    string   `json:"name"`
	Subject string   `json:"subject"`
	Text    string   `json:"text"`
	HTML    string   `json:"html"`
	Want    []string `json:"want"`   // the codes, best first
	Source  string   `json:"source"` // where the first code is found, when checked
}

func loadCodeCases(t testing.TB) []codeCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "codes", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []codeCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	return cases
}

func TestFindCodes(t *testing.T) {
	for _, tc := range loadCodeCases(t) {
		t.Run(tc.Name, func(t *testing.T) {
			got := findCodes(tc.Subject, &summary.Content{Text: tc.Text, HTML: tc.HTML})
			var codes []string
			for _, c := range got {
				codes = append(codes, c.Code)
				if c.Context == "" || !strings.Contains(strings.Join(strings.Fields(tc.Subject+" "+tc.Text+" "+htmlToText(tc.HTML)), " "), strings.Fields(c.Context)[0]) {
					t.Errorf("code %s has context %q, not from the message", c.Code, c.Context)
				}
			}
			if !slices.Equal(codes, tc.Want) && !(len(codes) == 0 && len(tc.Want) == 0) {
				t.Fatalf("codes %q, want %q (%+v)", codes, tc.Want, got)
			}
			if tc.Source != "" && got[0].Source != tc.Source {
				t.Errorf("first code found in %s, want %s", got[0].Source, tc.Source)
			}
		})
	}
}

func TestLinksOf(t *testing.T) {
	c := &summary.Content{HTML: `<p><a href="https://app.example/confirm?a=1&amp;b=2">Confirm <b>your</b>
	address</a> or <a href=" https://app.example/help ">help</a> <a href="javascript:alert(1)">x</a>
	<a href="https://app.example/logo"><img src="cid:x" alt="Acme logo"></a> <a href="#top">top</a>
	<a href="https://app.example/help">help</a></p>`}
	got := linksOf(c, []string{"https://app.example/confirm?a=1&b=2", "https://text-only.example/x"}, nil)
	want := []apiLink{
		{URL: "https://app.example/confirm?a=1&b=2", Text: "Confirm your address", Source: "html"},
		{URL: "https://app.example/help", Text: "help", Source: "html"},
		{URL: "https://app.example/logo", Text: "Acme logo", Source: "html"},
		{URL: "https://text-only.example/x", Source: "text"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("links\n got %+v\nwant %+v", got, want)
	}
}

// FuzzFindCodes checks that code extraction never panics and only returns
// codes of the documented shapes that occur in the message.
func FuzzFindCodes(f *testing.F) {
	for _, tc := range loadCodeCases(f) {
		f.Add(tc.Subject, tc.Text, tc.HTML)
	}
	f.Fuzz(func(t *testing.T, subject, text, html string) {
		for _, c := range findCodes(subject, &summary.Content{Text: text, HTML: html}) {
			if _, _, ok := codeShape(c.Code); !ok {
				t.Fatalf("code %q has no code shape", c.Code)
			}
			if n := len(c.Code); n < 4 || n > 12 {
				t.Fatalf("code %q of length %d", c.Code, n)
			}
		}
	})
}
