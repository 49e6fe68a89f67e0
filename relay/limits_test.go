package relay

import (
	"testing"
	"time"
)

func testRoute(conc, perDomain, rate int) *route {
	r := Route{Name: "r", MX: true, Concurrency: conc, PerDomainConcurrency: perDomain, RatePerMinute: rate}.withDefaults()
	return &route{Route: r}
}

// TestLimitsAIMD: a slow-down halves the bound (never below 1), and it
// grows back by one per period.
func TestLimitsAIMD(t *testing.T) {
	l := newLimits(time.Minute)
	r := testRoute(20, 8, 0)
	t0 := time.Unix(1_000_000, 0)
	startN := func(n int, at time.Time) int {
		started := 0
		for range n {
			if ok, _ := l.admit(r, "d.test", at); ok {
				l.start(r, "d.test", at)
				started++
			}
		}
		return started
	}
	if got := startN(10, t0); got != 8 {
		t.Fatalf("started %d at once, want the bound 8", got)
	}
	l.done(r, "d.test", true, t0)
	if b := l.bound(r, "d.test", t0); b != 4 {
		t.Fatalf("bound after a slow-down = %d, want 4", b)
	}
	// 7 still in flight: nothing starts until fewer than 4 are.
	if got := startN(1, t0); got != 0 {
		t.Fatal("started above the halved bound")
	}
	for range 4 {
		l.done(r, "d.test", false, t0)
	}
	if got := startN(5, t0); got != 1 {
		t.Fatalf("with 3 in flight and bound 4, started %d, want 1", got)
	}
	for _, tc := range []struct {
		after time.Duration
		bound int
	}{{59 * time.Second, 4}, {time.Minute, 5}, {3 * time.Minute, 7}, {10 * time.Minute, 8}} {
		if b := l.bound(r, "d.test", t0.Add(tc.after)); b != tc.bound {
			t.Errorf("bound %v after the slow-down = %d, want %d", tc.after, b, tc.bound)
		}
	}
	// Repeated slow-downs bottom out at 1.
	for range 5 {
		l.done(r, "d.test", true, t0.Add(10*time.Minute))
		l.start(r, "d.test", t0.Add(10*time.Minute))
	}
	if b := l.bound(r, "d.test", t0.Add(10*time.Minute)); b != 1 {
		t.Errorf("bound after many slow-downs = %d, want 1", b)
	}
	// Other domains are not affected.
	if b := l.bound(r, "other.test", t0); b != 8 {
		t.Errorf("other domain bound %d", b)
	}
}

// TestLimitsRouteConcurrency: the route bound applies across domains.
func TestLimitsRouteConcurrency(t *testing.T) {
	l := newLimits(time.Minute)
	r := testRoute(3, 2, 0)
	now := time.Now()
	started := 0
	for _, d := range []string{"a", "a", "a", "b", "b", "c"} {
		if ok, _ := l.admit(r, d, now); ok {
			l.start(r, d, now)
			started++
		}
	}
	if started != 3 {
		t.Fatalf("started %d, want the route bound 3 (a, a, b)", started)
	}
	l.done(r, "a", false, now)
	if ok, _ := l.admit(r, "c", now); !ok {
		t.Error("a free route slot was not given to another domain")
	}
}

// TestLimitsRate: a bucket of RatePerMinute/12, refilled at
// RatePerMinute per minute, with the wait until the next token.
func TestLimitsRate(t *testing.T) {
	l := newLimits(time.Minute)
	r := testRoute(100, 100, 120) // burst 10, then one per 500 ms
	t0 := time.Unix(1_000_000, 0)
	for i := range 10 {
		ok, _ := l.admit(r, "d", t0)
		if !ok {
			t.Fatalf("message %d of the burst refused", i)
		}
		l.start(r, "d", t0)
		l.done(r, "d", false, t0)
	}
	ok, wait := l.admit(r, "d", t0)
	if ok || wait < 499*time.Millisecond || wait > 502*time.Millisecond {
		t.Fatalf("after the burst: ok %v wait %v, want refused for 500 ms", ok, wait)
	}
	if ok, _ := l.admit(r, "d", t0.Add(500*time.Millisecond)); !ok {
		t.Error("refused after the wait")
	}
	// Rate 1 per minute still lets one through (bucket of at least 1).
	r1 := testRoute(10, 10, 1)
	if ok, _ := l.admit(r1, "x", t0); !ok {
		t.Error("rate 1/min refused the first message")
	}
	l.start(r1, "x", t0)
	l.done(r1, "x", false, t0)
	if ok, wait := l.admit(r1, "x", t0); ok || wait < 59*time.Second {
		t.Errorf("rate 1/min: ok %v wait %v", ok, wait)
	}
}

// TestLimitsPrune: idle destinations back at their defaults are forgotten;
// busy, throttled or removed-route ones are handled accordingly.
func TestLimitsPrune(t *testing.T) {
	l := newLimits(time.Minute)
	r := testRoute(10, 4, 12) // a bucket of 1, refilled in 5 s
	routes := map[string]*route{"r": r}
	t0 := time.Unix(1_000_000, 0)
	for _, d := range []string{"idle", "busy", "slowed"} {
		l.start(r, d, t0)
	}
	l.done(r, "idle", false, t0)
	l.done(r, "slowed", true, t0)
	l.prune(routes, t0.Add(2*time.Second)) // the bucket of idle is not full yet
	if len(l.dests) != 3 {
		t.Fatalf("pruned too early: %d left", len(l.dests))
	}
	l.prune(routes, t0.Add(30*time.Second))
	if _, ok := l.dests[destKey{"r", "idle"}]; ok {
		t.Error("idle destination kept")
	}
	if len(l.dests) != 2 {
		t.Errorf("%d destinations left, want busy and slowed", len(l.dests))
	}
	l.prune(map[string]*route{}, t0.Add(time.Hour)) // the route is gone
	if _, ok := l.dests[destKey{"r", "slowed"}]; ok {
		t.Error("destination of a removed route kept")
	}
	if _, ok := l.dests[destKey{"r", "busy"}]; !ok {
		t.Error("busy destination forgotten")
	}
}
