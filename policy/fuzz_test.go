package policy

import (
	"errors"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that it returns
// either a usable Policy or a *Error whose diagnostics all have a position.
// The seed corpus (testdata/fuzz/FuzzParse) is the test policies; TestBad
// rewrites it with UPDATE_GOLDEN=1.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	filename := filepath.Join(dir, "fuzz.hcl")
	opts := testOptions()
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse(filename, src, opts)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse returned %T %v, want a *Error", err, err)
			}
			if perr.Error() == "" || !perr.Diags.HasErrors() {
				t.Fatalf("a *Error without error diagnostics: %q", perr.Error())
			}
			for _, d := range perr.Diags {
				if d.Subject == nil {
					t.Fatalf("a diagnostic without a position: %s", formatDiag(d))
				}
			}
			return
		}
		if p == nil || len(p.Server.Listeners) == 0 || p.Server.MaxMessageSize <= 0 {
			t.Fatalf("Parse succeeded with an unusable policy: %+v", p)
		}
		for name := range p.Credentials {
			if _, err := p.Resolve(name); err != nil {
				t.Fatalf("Resolve(%q): %v", name, err)
			}
		}
	})
}
