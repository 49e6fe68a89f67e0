package track

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smtpgate/smtpgate/features/internal/htmlscan"
)

// Golden files: testdata/html/NAME.html -> NAME.golden.html (RewriteHTML),
// testdata/pixel/NAME.html -> NAME.golden.html (AddPixel) and
// testdata/text/NAME.txt -> NAME.golden.txt (RewriteText), all with the
// fixed test secret and issue time so the tokens are stable. Inputs whose
// name starts with "preventscam-" are rewritten with PreventScam. Run with
// UPDATE_GOLDEN=1 to rewrite the golden files, then review the diff.

func goldenInputs(t *testing.T, dir, ext string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*"+ext))
	if err != nil {
		t.Fatal(err)
	}
	var in []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".golden"+ext) {
			in = append(in, f)
		}
	}
	if len(in) == 0 {
		t.Fatalf("no inputs in testdata/%s", dir)
	}
	return in
}

func goldenOptions(path string) Options {
	o := testOpts
	o.PreventScam = strings.HasPrefix(filepath.Base(path), "preventscam-")
	return o
}

// checkGolden compares got with the golden file for input path.
func checkGolden(t *testing.T, c *Codec, path, ext string, got []byte, o Options) {
	t.Helper()
	golden := strings.TrimSuffix(path, ext) + ".golden" + ext
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s; with tracking URLs decoded:\n got: %s\nwant: %s",
			path, golden, readable(t, c, string(got), o), readable(t, c, string(want), o))
	}
}

func TestGoldenRewriteHTML(t *testing.T) {
	r := newTestRewriter(t)
	for _, path := range goldenInputs(t, "html", ".html") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			o := goldenOptions(path)
			out, n, err := r.RewriteHTML(in, o)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Errorf("no link rewritten in %s", path)
			}
			checkGolden(t, r.Codec, path, ".html", out, o)
		})
	}
}

func TestGoldenAddPixel(t *testing.T) {
	r := newTestRewriter(t)
	for _, path := range goldenInputs(t, "pixel", ".html") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out := r.AddPixel(in, testOpts)
			if len(out) <= len(in) {
				t.Errorf("no pixel added to %s", path)
			}
			checkGolden(t, r.Codec, path, ".html", out, testOpts)
		})
	}
}

func TestGoldenRewriteText(t *testing.T) {
	r := newTestRewriter(t)
	for _, path := range goldenInputs(t, "text", ".txt") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out, n, err := r.RewriteText(in, testOpts)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Errorf("no URL rewritten in %s", path)
			}
			checkGolden(t, r.Codec, path, ".txt", out, testOpts)
		})
	}
}

// TestGoldenOnlyLinksChange checks each HTML golden against its input:
// remove every tracking URL and opt-out attribute from both and the bytes
// left must be identical, so nothing else was touched.
func TestGoldenOnlyLinksChange(t *testing.T) {
	r := newTestRewriter(t)
	for _, path := range goldenInputs(t, "html", ".html") {
		in, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := r.RewriteHTML(in, goldenOptions(path))
		if err != nil {
			t.Fatal(err)
		}
		a, b := skeleton(in), skeleton(out)
		if a != b {
			t.Errorf("%s: more than links changed:\n in: %q\nout: %q", path, a, b)
		}
	}
}

// skeleton blanks the href values of <a> tags, drops vendor opt-out
// attributes, and keeps every other byte.
func skeleton(doc []byte) string {
	var sb strings.Builder
	s := htmlscan.Scanner{In: doc, WantAttrs: isAnchor}
	last := 0
	for k := s.Next(); k != htmlscan.EOF; k = s.Next() {
		if k != htmlscan.StartTag || !isAnchor(doc[s.NameStart:s.NameEnd]) {
			continue
		}
		for _, a := range s.Attrs {
			key := string(asciiLower(doc[a.KeyStart:a.KeyEnd]))
			_, drop := optOut(doc[a.KeyStart:a.KeyEnd])
			switch {
			case drop:
				sb.Write(doc[last:a.WSStart])
				last = a.End
			case key == "href" && a.HasValue:
				sb.Write(doc[last:a.ValStart])
				sb.WriteString("HREF")
				last = a.ValEnd
			}
		}
	}
	sb.Write(doc[last:])
	// An unquoted href value is quoted when rewritten.
	return strings.ReplaceAll(sb.String(), `"HREF"`, "HREF")
}

// TestOpenPixelOptionMatchesAddPixel: RewriteHTML with OpenPixel gives the
// same bytes as AddPixel on the result of RewriteHTML without it.
func TestOpenPixelOptionMatchesAddPixel(t *testing.T) {
	r := newTestRewriter(t)
	inputs := append(goldenInputs(t, "html", ".html"), goldenInputs(t, "pixel", ".html")...)
	for _, path := range inputs {
		in, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		checkOpenPixelOption(t, r, in, goldenOptions(path))
	}
	for _, s := range []string{"", "<p>no links, no body</p>", "<body></body><!-- </body> -->", "<a href=https://x.example/>x"} {
		checkOpenPixelOption(t, r, []byte(s), testOpts)
	}
}

func checkOpenPixelOption(t *testing.T, r *Rewriter, in []byte, o Options) {
	t.Helper()
	two, n2, err := r.RewriteHTML(in, o)
	if err != nil {
		t.Fatal(err)
	}
	two = r.AddPixel(two, o)
	o.OpenPixel = true
	one, n1, err := r.RewriteHTML(in, o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one, two) || n1 != n2 {
		t.Errorf("OpenPixel differs from AddPixel for %q:\none pass: %q (%d)\ntwo passes: %q (%d)", in, one, n1, two, n2)
	}
}

// asciiLower returns a lower-cased copy of b (ASCII letters only).
func asciiLower(b []byte) []byte {
	out := bytes.Clone(b)
	for i, c := range out {
		if 'A' <= c && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return out
}
