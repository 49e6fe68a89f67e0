package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/smtpgate/smtpgate/policy"
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

// A data directory from a version whose passwords could start with '-'
// gets a new password; the API key and tracking secret are kept.
func TestDevPasswordStartingWithDashIsReplaced(t *testing.T) {
	dir := t.TempDir()
	old := DevSecrets{Password: "-Ab3_x9", PasswordHash: "$argon2id$old", APIKey: "key-kept-0123456789", TrackingSecret: "secret-kept-0123456789abcdef"}
	b, _ := json.Marshal(old)
	if err := os.WriteFile(filepath.Join(dir, "dev-secrets.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"replaced", "kept from the first load"} {
		s, err := loadDevSecrets(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[A-Za-z0-9]{16}$`).MatchString(s.Password) || s.APIKey != old.APIKey || s.TrackingSecret != old.TrackingSecret {
			t.Fatalf("load %d (%s): %+v", i, want, s)
		}
		if ok, err := policy.VerifyPassword(s.PasswordHash, s.Password); err != nil || !ok {
			t.Errorf("load %d: the hash does not match the new password (%v)", i, err)
		}
		if i == 0 {
			old.Password = s.Password
		} else if s.Password != old.Password {
			t.Errorf("the replaced password changed again on the next load")
		}
	}
}
