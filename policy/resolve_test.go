package policy

import (
	"slices"
	"testing"
	"time"

	"github.com/smtpgate/smtpgate/features"
)

func TestSenderAllowed(t *testing.T) {
	for _, tc := range []struct {
		allow []string // nil: no allow_from
		addr  string
		want  bool
	}{
		{nil, "anyone@anywhere.example", true},
		{nil, "", true},
		{[]string{"*"}, "", true},
		{[]string{"*"}, "x@y.example", true},
		{[]string{"*@mywebapp.com"}, "", false},
		{[]string{"*@mywebapp.com"}, "news@mywebapp.com", true},
		{[]string{"*@mywebapp.com"}, "News@MyWebApp.COM", true},
		{[]string{"*@mywebapp.com"}, "news@mywebapp.com.", true},
		{[]string{"*@mywebapp.com"}, "news@eu.mywebapp.com", false},
		{[]string{"*@mywebapp.com"}, "news@notmywebapp.com", false},
		{[]string{"*@mywebapp.com"}, "mywebapp.com", false},
		{[]string{"*@mywebapp.com"}, "@mywebapp.com", false},
		{[]string{"*@mywebapp.com"}, "news@", false},
		{[]string{"*@*.mywebapp.com"}, "news@eu.mywebapp.com", true},
		{[]string{"*@*.mywebapp.com"}, "news@a.b.mywebapp.com", true},
		{[]string{"*@*.mywebapp.com"}, "news@mywebapp.com", false},
		{[]string{"*@*.mywebapp.com"}, "news@evilmywebapp.com", false},
		{[]string{"ops@example.org"}, "ops@example.org", true},
		{[]string{"ops@example.org"}, "OPS@Example.Org", true},
		{[]string{"ops@example.org"}, "ops2@example.org", false},
		{[]string{"ops@example.org"}, "ops@sub.example.org", false},
		{[]string{"ops@example.org"}, "\"ops@example.org\"@evil.example", false},
		{[]string{"ops@example.org", "*@mywebapp.com"}, "x@mywebapp.com", true},
		{[]string{"*@bücher.example"}, "a@BÜCHER.example", true},
		{[]string{}, "a@b.example", false},
		{[]string{}, "", false},
	} {
		c := &Credential{AllowFrom: tc.allow}
		if got := c.SenderAllowed(tc.addr); got != tc.want {
			t.Errorf("allow_from %q: SenderAllowed(%q) = %v, want %v", tc.allow, tc.addr, got, tc.want)
		}
	}
}

func TestCheckPattern(t *testing.T) {
	for _, ok := range []string{"*", "a@b.example", "*@b.example", "*@*.b.example", "a.b+c@x.example", "*@bücher.example"} {
		if err := checkPattern(ok); err != nil {
			t.Errorf("checkPattern(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "b.example", "@b.example", "a@", "*@*", "a@@b", "a*@b.example", "*@b.*.example",
		"*@*.*.example", "a@b..example", "a b@c.example", "*@b example", "**@b.example"} {
		if err := checkPattern(bad); err == nil {
			t.Errorf("checkPattern(%q) = nil, want an error", bad)
		}
	}
}

func TestResolve(t *testing.T) {
	p := loadTest(t, "testdata/good/full.hcl")
	plan, err := p.Resolve("webapp")
	if err != nil {
		t.Fatal(err)
	}
	want := Plan{Login: "webapp", Route: "sendgrid", Features: p.Features["marketing"], Overridable: []string{features.TrackOpens},
		DKIMDomain: "mywebapp.com", Retention: Retention{MaxMessages: 1000, MaxAge: 7 * 24 * time.Hour}}
	if plan.Login != want.Login || plan.Route != want.Route || plan.Features != want.Features || !slices.Equal(plan.Overridable, want.Overridable) ||
		plan.DKIMDomain != want.DKIMDomain || plan.Retention != want.Retention {
		t.Errorf("Resolve(webapp) = %+v, want %+v", plan, want)
	}
	plan.Overridable[0] = "mutated"
	if p.Credentials["webapp"].Overridable[0] != features.TrackOpens {
		t.Error("a Plan shares its Overridable slice with the policy")
	}
	// other has no retention block of its own: server.retention applies.
	if plan, err := p.Resolve("other"); err != nil || plan.Route != RouteCapture || plan.Features != (features.Set{}) || plan.Overridable != nil ||
		plan.DKIMDomain != "" || plan.Retention != (Retention{MaxMessages: 5000, MaxAge: 14 * 24 * time.Hour}) {
		t.Errorf("Resolve(other) = %+v, %v", plan, err)
	}
	// newsletter's empty retention block keeps everything.
	if plan, err := p.Resolve("newsletter"); err != nil || plan.Retention != (Retention{}) {
		t.Errorf("Resolve(newsletter) = %+v, %v", plan, err)
	}
	if _, err := p.Resolve("nobody"); err == nil {
		t.Error("Resolve(nobody) succeeded")
	}

	// In capture mode every route is capture, whatever the credential says.
	c := loadTest(t, "testdata/good/capture.hcl")
	if c.Credentials["app"].Route != "upstream" {
		t.Fatalf("credential route = %q", c.Credentials["app"].Route)
	}
	plan, err = c.Resolve("app")
	if err != nil || plan.Route != RouteCapture || !plan.Features.TrackClicks || !plan.Features.TrackOpens || plan.Retention != (Retention{}) {
		t.Errorf("Resolve(app) in capture mode = %+v, %v", plan, err)
	}
}

func TestAPIKeyScope(t *testing.T) {
	p := loadTest(t, "testdata/good/full.hcl")
	logins, all, ok := p.APIKeyScope(testEnv["STAGING_KEY"])
	if !ok || all || !slices.Equal(logins, []string{"webapp", "other"}) {
		t.Errorf("staging key: %v, %v, %v", logins, all, ok)
	}
	logins, all, ok = p.APIKeyScope("admin-key-0123456789abcdef")
	if !ok || !all || logins != nil {
		t.Errorf("admin key: %v, %v, %v", logins, all, ok)
	}
	for _, k := range []string{"", "admin-key-0123456789abcde", "admin-key-0123456789abcdef ", "ADMIN-KEY-0123456789ABCDEF"} {
		if logins, all, ok := p.APIKeyScope(k); ok || all || logins != nil {
			t.Errorf("APIKeyScope(%q) = %v, %v, %v; want nothing", k, logins, all, ok)
		}
	}
	logins, _, _ = p.APIKeyScope(testEnv["STAGING_KEY"])
	logins[0] = "mutated"
	if p.APIKeys[0].Logins[0] != "webapp" {
		t.Error("APIKeyScope shares its slice with the policy")
	}
}
