package web

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// testImages resolves the Content-IDs used in testdata/sanitize.
func testImages(cid string) (string, bool) {
	switch cid {
	case "logo@example.com", "header@news.example", "bg@example.com":
		return "data:image/png;base64,iVBORw0KGgo=", true
	}
	return "", false
}

// TestSanitizeGolden runs the sanitiser over testdata/sanitize/NAME.html and
// compares with NAME.golden.html (rewritten with UPDATE_GOLDEN=1). Every
// output must also pass checkSafe, whatever the golden file says.
func TestSanitizeGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/sanitize/*.html")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.html") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(in), ".html")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got := sanitizeHTML(string(src), testImages)
			checkSafe(t, got)
			golden := strings.TrimSuffix(in, ".html") + ".golden.html"
			if os.Getenv("UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
			}
			if got != string(want) {
				t.Errorf("sanitizeHTML(%s) differs from %s:\n--- got\n%s\n--- want\n%s", in, golden, got, want)
			}
			if again := sanitizeHTML(got, testImages); again != got {
				t.Errorf("sanitising the output again changes it:\n--- once\n%s\n--- twice\n%s", got, again)
			}
		})
	}
	if n < 8 {
		t.Fatalf("found %d inputs in testdata/sanitize, want at least 8", n)
	}
}

// checkSafe fails t when out mentions what the testdata inputs use for
// hostile content, or fails checkSafeStructure.
func checkSafe(t *testing.T, out string) {
	t.Helper()
	lower := strings.ToLower(out)
	for _, bad := range []string{"javascript:", "vbscript:", "evil.example", "tracker.example", "expression(", "<script", "<iframe", "<object", "<embed", "<form", "<svg", "<math", "@import"} {
		if strings.Contains(lower, bad) {
			t.Errorf("output contains %q:\n%s", bad, out)
		}
	}
	checkSafeStructure(t, out)
}

// checkSafeStructure fails t unless out, parsed as a browser would, holds
// only allowlisted elements and attributes with safe URLs, and style text
// that cannot leave its element.
func checkSafeStructure(t *testing.T, out string) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(out))
	if err != nil {
		t.Fatalf("output does not parse: %v", err)
	}
	structural := setOf("html", "head", "body", "meta", "style")
	for n := range doc.Descendants() {
		switch n.Type {
		case html.CommentNode:
			t.Errorf("output keeps a comment: %q", n.Data)
		case html.ElementNode:
			if n.Namespace != "" || !elementsKept[n.Data] && !structural[n.Data] {
				t.Errorf("output has element <%s> (namespace %q)", n.Data, n.Namespace)
			}
			if n.Data == "style" {
				for c := range n.ChildNodes() {
					if strings.Contains(c.Data, "<") {
						t.Errorf("style text holds '<': %q", c.Data)
					}
				}
			}
			for _, a := range n.Attr {
				ok := attributesKept[a.Key] || a.Key == "style"
				switch {
				case n.Data == "a" && a.Key == "href":
					_, ok = safeHref(a.Val)
				case n.Data == "a" && (a.Key == "rel" || a.Key == "target"):
					ok = true
				case n.Data == "img" && a.Key == "src", a.Key == "background":
					ok = strings.HasPrefix(a.Val, "cid:") || dataImage.MatchString(a.Val)
				case n.Data == "meta" && a.Key == "charset":
					ok = true
				}
				if !ok || strings.HasPrefix(a.Key, "on") {
					t.Errorf("output has <%s %s=%q>", n.Data, a.Key, a.Val)
				}
			}
		}
	}
}

// FuzzSanitizeHTML checks the safety properties on arbitrary input; its
// seeds are the testdata/sanitize inputs and testdata/fuzz/FuzzSanitizeHTML.
func FuzzSanitizeHTML(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/sanitize/*.html")
	for _, in := range inputs {
		if b, err := os.ReadFile(in); err == nil && !bytes.Contains([]byte(in), []byte(".golden.")) {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		out := sanitizeHTML(src, testImages)
		checkSafeStructure(t, out)
	})
}
