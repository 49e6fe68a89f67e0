package relay

import "time"

// limits decides, on the real clock, whether an attempt may start: the
// route's attempts in progress against Route.Concurrency, and per
// destination (a recipient domain of an MX route, or a smarthost) the
// attempts in progress against a bound and a token bucket.
//
// The destination bound follows AIMD: a slow-down reply (421, "too many
// connections") halves it, and it grows back by one per SlowDownPeriod up
// to Route.PerDomainConcurrency. Only the scheduler goroutine uses limits.
type limits struct {
	period time.Duration
	routes map[string]int
	dests  map[destKey]*dest
}

type destKey struct{ route, domain string }

type dest struct {
	inFlight int
	bound    int       // current concurrency bound; 0 until first used
	changed  time.Time // when bound last changed
	tokens   float64
	refilled time.Time
}

func newLimits(period time.Duration) *limits {
	return &limits{period: period, routes: map[string]int{}, dests: map[destKey]*dest{}}
}

// dest returns the state of a destination, creating it at full bound and a
// full bucket.
func (l *limits) dest(r *route, domain string, now time.Time) *dest {
	k := destKey{r.Name, domain}
	d := l.dests[k]
	if d == nil {
		d = &dest{bound: r.PerDomainConcurrency, changed: now, tokens: burst(r), refilled: now}
		l.dests[k] = d
	}
	d.update(r, now, l.period)
	return d
}

// update applies the time that passed: the bound grows by one per period,
// the bucket refills.
func (d *dest) update(r *route, now time.Time, period time.Duration) {
	if d.bound > r.PerDomainConcurrency {
		d.bound = r.PerDomainConcurrency // the route was reloaded with a lower bound
	}
	if d.bound < r.PerDomainConcurrency {
		if steps := int(now.Sub(d.changed) / period); steps > 0 {
			d.bound = min(d.bound+steps, r.PerDomainConcurrency)
			d.changed = d.changed.Add(time.Duration(steps) * period)
		}
	} else {
		d.changed = now
	}
	if r.RatePerMinute > 0 {
		if el := now.Sub(d.refilled); el > 0 {
			d.tokens = min(burst(r), d.tokens+el.Seconds()*float64(r.RatePerMinute)/60)
		}
	}
	d.refilled = now
}

// burst is a destination's bucket size: five seconds' worth, at least 1.
func burst(r *route) float64 {
	return max(1, float64(r.RatePerMinute)/12)
}

// admit reports whether an attempt to domain over r may start now. When
// only the rate stands in the way, wait is how long until it may.
func (l *limits) admit(r *route, domain string, now time.Time) (ok bool, wait time.Duration) {
	if l.routes[r.Name] >= r.Concurrency {
		return false, 0
	}
	d := l.dest(r, domain, now)
	if d.inFlight >= d.bound {
		return false, 0
	}
	if r.RatePerMinute > 0 && d.tokens < 1 {
		secs := (1 - d.tokens) * 60 / float64(r.RatePerMinute)
		return false, time.Duration(secs*float64(time.Second)) + time.Millisecond
	}
	return true, 0
}

// start records an attempt that admit allowed.
func (l *limits) start(r *route, domain string, now time.Time) {
	l.routes[r.Name]++
	d := l.dest(r, domain, now)
	d.inFlight++
	if r.RatePerMinute > 0 {
		d.tokens--
	}
}

// done records the end of an attempt; slowDown halves the destination's
// bound.
func (l *limits) done(r *route, domain string, slowDown bool, now time.Time) {
	if l.routes[r.Name]--; l.routes[r.Name] <= 0 {
		delete(l.routes, r.Name)
	}
	d := l.dest(r, domain, now)
	d.inFlight--
	if slowDown {
		d.bound = max(1, d.bound/2)
		d.changed = now
	}
}

// bound returns the current concurrency bound of a destination.
func (l *limits) bound(r *route, domain string, now time.Time) int {
	return l.dest(r, domain, now).bound
}

// prune forgets destinations that are back to their defaults: idle, full
// bound, full bucket. routes maps route names to the routes in force;
// destinations of removed routes are forgotten once idle.
func (l *limits) prune(routes map[string]*route, now time.Time) {
	for k, d := range l.dests {
		if d.inFlight > 0 {
			continue
		}
		r := routes[k.route]
		if r == nil {
			delete(l.dests, k)
			continue
		}
		d.update(r, now, l.period)
		if d.bound >= r.PerDomainConcurrency && (r.RatePerMinute == 0 || d.tokens >= burst(r)) {
			delete(l.dests, k)
		}
	}
}
