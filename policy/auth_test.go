package policy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAuthenticate(t *testing.T) {
	p := loadTest(t, "testdata/good/full.hcl")
	ctx := t.Context()
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{
		{"webapp", "webapp-password", true},     // argon2id
		{"newsletter", "bcrypt-password", true}, // bcrypt
		{"other", "other-password", true},       // argon2id from file()
		{"webapp", "webapp-passwore", false},
		{"webapp", "", false},
		{"newsletter", "webapp-password", false},
		{"Webapp", "webapp-password", false}, // login names are exact
		{"nobody", "webapp-password", false},
		{"", "", false},
	} {
		before := p.verified.Load()
		c, err := p.Authenticate(ctx, tc.user, tc.pass)
		if tc.ok {
			if err != nil || c == nil || c.Name() != tc.user || c != p.Credentials[tc.user] {
				t.Errorf("Authenticate(%q, %q) = %v, %v; want the credential", tc.user, tc.pass, c, err)
			}
		} else if c != nil || !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Authenticate(%q, %q) = %v, %v; want ErrBadCredentials", tc.user, tc.pass, c, err)
		}
		// Every first attempt, unknown users included, costs one verification.
		if n := p.verified.Load() - before; n != 1 {
			t.Errorf("Authenticate(%q, %q) ran %d hash verifications, want 1", tc.user, tc.pass, n)
		}
	}
}

func TestAuthenticateCache(t *testing.T) {
	p := loadTest(t, "testdata/good/full.hcl")
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	ctx := t.Context()
	auth := func(user, pass string) error {
		t.Helper()
		_, err := p.Authenticate(ctx, user, pass)
		return err
	}
	for i := range 20 {
		if err := auth("webapp", "webapp-password"); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if n := p.verified.Load(); n != 1 {
		t.Errorf("20 good logins ran %d verifications, want 1 (the rest from the cache)", n)
	}
	// Failures are never cached, and a wrong password never hits the cache.
	for range 3 {
		if err := auth("webapp", "wrong"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if n := p.verified.Load(); n != 4 {
		t.Errorf("after 3 failures: %d verifications, want 4", n)
	}
	// The cache is per user and password.
	if err := auth("newsletter", "bcrypt-password"); err != nil {
		t.Fatal(err)
	}
	if err := auth("newsletter", "bcrypt-password"); err != nil {
		t.Fatal(err)
	}
	if n := p.verified.Load(); n != 5 {
		t.Errorf("after newsletter twice: %d verifications, want 5", n)
	}
	// An entry lives 5 minutes.
	now = now.Add(authCacheTTL - time.Second)
	if err := auth("webapp", "webapp-password"); err != nil || p.verified.Load() != 5 {
		t.Errorf("before expiry: %v, %d verifications, want 5", err, p.verified.Load())
	}
	now = now.Add(2 * time.Second)
	if err := auth("webapp", "webapp-password"); err != nil || p.verified.Load() != 6 {
		t.Errorf("after expiry: %v, %d verifications, want 6", err, p.verified.Load())
	}
	// A reloaded policy starts with an empty cache.
	q := loadTest(t, "testdata/good/full.hcl")
	if _, err := q.Authenticate(ctx, "webapp", "webapp-password"); err != nil || q.verified.Load() != 1 {
		t.Errorf("reloaded policy: %v, %d verifications, want 1", err, q.verified.Load())
	}
}

func TestAuthenticateCanceled(t *testing.T) {
	p := loadTest(t, "testdata/good/full.hcl")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := p.Authenticate(ctx, "webapp", "webapp-password"); !errors.Is(err, context.Canceled) {
		t.Errorf("Authenticate with a canceled context = %v", err)
	}
	if p.verified.Load() != 0 {
		t.Error("a canceled Authenticate verified a hash")
	}
}

func TestAuthenticateConcurrent(t *testing.T) {
	p := loadTest(t, "testdata/good/full.hcl")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			pass := "webapp-password"
			if i%2 == 1 {
				pass = "nope"
			}
			for range 3 {
				_, err := p.Authenticate(t.Context(), "webapp", pass)
				if (err == nil) != (i%2 == 0) {
					t.Errorf("goroutine %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
}

func TestAuthCacheBounded(t *testing.T) {
	c := newAuthCache([]byte("k"), 4, time.Minute)
	now := time.Now()
	var keys [][32]byte
	for i := range 10 {
		k := c.sum("u", strings.Repeat("p", i))
		keys = append(keys, k)
		c.add(k, now)
		if len(c.entries) > 4 {
			t.Fatalf("cache holds %d entries, bound 4", len(c.entries))
		}
	}
	if !c.hit(keys[9], now) {
		t.Error("the newest entry was evicted")
	}
	// Expired entries go first.
	c = newAuthCache([]byte("k"), 2, time.Minute)
	old, fresh, newest := c.sum("a", "1"), c.sum("b", "2"), c.sum("c", "3")
	c.add(old, now.Add(-2*time.Minute))
	c.add(fresh, now)
	c.add(newest, now)
	if !c.hit(fresh, now) || !c.hit(newest, now) || c.hit(old, now) {
		t.Error("a full cache evicted a live entry before the expired one")
	}
	// The key depends on the separator: ("ab", "c") is not ("a", "bc").
	if c.sum("ab", "c") == c.sum("a", "bc") {
		t.Error("cache keys collide across the user/password boundary")
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("HashPassword = %q", h)
	}
	parsed, err := parseHash(h)
	if err != nil || len(parsed.salt) != 16 || len(parsed.key) != 32 {
		t.Fatalf("parseHash(%q) = %+v, %v", h, parsed, err)
	}
	h2, _ := HashPassword("s3cret")
	if h2 == h {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	for _, tc := range []struct {
		hash, pass string
		ok         bool
	}{
		{h, "s3cret", true},
		{h, "s3cret ", false},
		{h2, "s3cret", true},
		{"$2a$10$7WrWDPtZxUtGCxkoj0061eCc7NTmNfJmSvjyi/rRAfLJutMEgbYJS", "bcrypt-password", true},
		{"$2a$10$7WrWDPtZxUtGCxkoj0061eCc7NTmNfJmSvjyi/rRAfLJutMEgbYJS", "bcrypt-passworD", false},
	} {
		ok, err := VerifyPassword(tc.hash, tc.pass)
		if err != nil || ok != tc.ok {
			t.Errorf("VerifyPassword(%q, %q) = %v, %v; want %v", tc.hash, tc.pass, ok, err, tc.ok)
		}
	}
	for _, bad := range []string{"", "plain", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$", "$2a$10$short",
		"$argon2id$v=19$m=19456,t=2,p=1,x=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo",
		"$argon2id$v=19$m=19456,t=0,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo",
		"$argon2id$v=19$m=19456,m=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo",
		"$argon2id$v=19$m=019456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo",
		"$argon2id$v=19$m=19456,t=2,p=1$iRW9PyZRlEB5U7gAI6rg5Q==$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo",
		"$2x$10$7WrWDPtZxUtGCxkoj0061eCc7NTmNfJmSvjyi/rRAfLJutMEgbYJS",
		"$2a$03$7WrWDPtZxUtGCxkoj0061eCc7NTmNfJmSvjyi/rRAfLJutMEgbYJS",
	} {
		if ok, err := VerifyPassword(bad, "x"); err == nil || ok {
			t.Errorf("VerifyPassword(%q) = %v, %v; want an error", bad, ok, err)
		}
	}
}

// TestDummyHash checks that an unknown user costs a verification of the same
// kind and cost as a real credential's.
func TestDummyHash(t *testing.T) {
	for _, tc := range []struct{ hash string }{
		{"$2a$10$7WrWDPtZxUtGCxkoj0061eCc7NTmNfJmSvjyi/rRAfLJutMEgbYJS"},
		{"$argon2id$v=19$m=4096,t=3,p=2$iRW9PyZRlEB5U7gAI6rg5Q$0UFOzfpOMYHlZA+Rg1vYf1HRfOuTg619NE7NI5/XlTo"},
	} {
		h, err := parseHash(tc.hash)
		if err != nil {
			t.Fatal(err)
		}
		d := h.dummy()
		if d.kind != h.kind || d.cost != h.cost || d.memory != h.memory || d.time != h.time || d.threads != h.threads || len(d.key) != len(h.key) {
			t.Errorf("dummy of %q = %+v", tc.hash, d)
		}
		if d.kind == kindBcrypt {
			if _, err := parseBcrypt(string(d.bcrypt)); err != nil {
				t.Errorf("dummy bcrypt hash %q does not parse: %v", d.bcrypt, err)
			}
		}
		if d.verify("") || d.verify("bcrypt-password") {
			t.Error("a password matched the dummy hash")
		}
	}
}

func BenchmarkAuthenticateCached(b *testing.B) {
	p := loadTest(b, "testdata/good/full.hcl")
	ctx := b.Context()
	if _, err := p.Authenticate(ctx, "webapp", "webapp-password"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Authenticate(ctx, "webapp", "webapp-password"); err != nil {
			b.Fatal(err)
		}
	}
	if n := p.verified.Load(); n != 1 {
		b.Fatalf("%d verifications, want 1", n)
	}
}

func BenchmarkVerifyArgon2id(b *testing.B) {
	h, err := HashPassword("webapp-password")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := VerifyPassword(h, "webapp-password"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkVerifyBcrypt(b *testing.B) {
	const h = "$2a$10$7WrWDPtZxUtGCxkoj0061eCc7NTmNfJmSvjyi/rRAfLJutMEgbYJS"
	for b.Loop() {
		if ok, err := VerifyPassword(h, "bcrypt-password"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// Concurrent first logins with the same credentials share one verification.
func TestAuthenticateConcurrentShareOneVerification(t *testing.T) {
	p := loadTest(t, "testdata/good/full.hcl")
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Authenticate(context.Background(), "webapp", "webapp-password")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if v := p.verified.Load(); v >= n/2 {
		t.Fatalf("%d concurrent logins ran %d hash verifications; want them to share", n, v)
	}
}
