package app

import (
	"path/filepath"
	"testing"

	"github.com/smtpgate/smtpgate/policy"
)

// TestExamplesLoad keeps examples/ in step with the schema: every policy in it
// must load, with every env() it names set.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("../examples/*.hcl")
	if err != nil || len(files) < 2 {
		t.Fatalf("examples: %v %v", files, err)
	}
	hash, err := policy.HashPassword("example-password")
	if err != nil {
		t.Fatal(err)
	}
	env := func(k string) (string, bool) {
		if len(k) > 5 && k[len(k)-5:] == "_HASH" {
			return hash, true
		}
		return "value-of-" + k + "-0123456789abcdef", true // distinct per variable
	}
	for _, f := range files {
		if _, err := policy.Load(f, policy.Options{LookupEnv: env}); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
}
