package policy

import (
	"errors"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that it returns
// either a usable Policy, whose values are within their bounds, or a *Error
// whose diagnostics all have a position.
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
		for name, c := range p.Credentials {
			plan, err := p.Resolve(name)
			if err != nil {
				t.Fatalf("Resolve(%q): %v", name, err)
			}
			if plan.DKIMDomain != "" && len(p.DKIM[plan.DKIMDomain]) == 0 {
				t.Fatalf("login %q signs with dkim domain %q, which has no keys", name, plan.DKIMDomain)
			}
			if c.Retention.MaxMessages < 0 || c.Retention.MaxAge < 0 {
				t.Fatalf("login %q: retention %+v", name, c.Retention)
			}
		}
		for name, r := range p.Relays {
			if r.Concurrency < 1 || r.Concurrency > maxRelayConcurrency || r.PerDomainConcurrency < 1 ||
				r.PerDomainConcurrency > r.Concurrency || r.MaxAge <= 0 || r.RatePerMinute < 0 || r.Helo == "" ||
				r.MX != (r.Port > 0) || (r.VerifyTLS && (r.TLS == TLSNone || r.MX && r.StartTLS != StartTLSRequire)) {
				t.Fatalf("relay %q: %+v", name, r)
			}
		}
		for name, w := range p.Webhooks {
			if w.MaxAge <= 0 || len(w.Events) == 0 || (w.Logins != nil && len(w.Logins) == 0) {
				t.Fatalf("webhook %q: %+v", name, w)
			}
		}
		if p.Server.MaxScheduleAhead <= 0 {
			t.Fatalf("MaxScheduleAhead = %v", p.Server.MaxScheduleAhead)
		}
	})
}
