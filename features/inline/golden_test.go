package inline

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// goldenOptions lists the test inputs that run with non-default options.
var goldenOptions = map[string]Options{
	"keep_style_tags": {KeepStyleTags: true},
}

// TestGolden inlines every testdata/NAME.html and compares the result with
// testdata/NAME.golden.html. UPDATE_GOLDEN=1 rewrites the golden files.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.html"))
	if err != nil {
		t.Fatal(err)
	}
	update := os.Getenv("UPDATE_GOLDEN") == "1"
	n := 0
	for _, path := range inputs {
		if strings.HasSuffix(path, ".golden.html") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(path), ".html")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out, err := New(goldenOptions[name]).Inline(in)
			if err != nil {
				t.Fatalf("Inline: %v", err)
			}
			if _, err := html.Parse(bytes.NewReader(out)); err != nil {
				t.Fatalf("output does not parse: %v", err)
			}
			golden := filepath.Join("testdata", name+".golden.html")
			if update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("output differs from %s; diff it with UPDATE_GOLDEN=1 and git diff\n got:\n%s", golden, out)
			}
		})
	}
	if n < 15 {
		t.Errorf("only %d golden inputs, want at least 15", n)
	}
}
