package app

import (
	"regexp"
	"testing"
)

// Dev secrets go into the banner's shell commands: letters and digits only,
// so none can start with '-' (swaks read such a password as an option).
func TestRandomTokenIsShellSafe(t *testing.T) {
	safe := regexp.MustCompile(`^[A-Za-z0-9]{16}$`)
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		tok := randomToken(12)
		if !safe.MatchString(tok) {
			t.Fatalf("token %q is not 16 letters and digits", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q repeated", tok)
		}
		seen[tok] = true
	}
}
