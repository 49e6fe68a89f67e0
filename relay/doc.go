// Package relay delivers relayed mail: a Worker claims due deliveries from
// the store's queue (store.Queue), DKIM-signs each message last (relay/dkim),
// sends it to a smarthost or to the recipients' MX hosts (relay/smtpclient,
// relay/mx), and records the outcome of every attempt with one event per
// recipient.
//
// # Queue model
//
// The gateway commits a message with its deliveries in one transaction;
// Deliveries builds them from the message and its route: one per recipient
// domain for an MX route, one for all recipients with a smarthost, due at
// the message's send-at time (or arrival) and expiring MaxAge after arrival.
// A delivery not yet due is simply not claimed; Notify wakes the worker when
// new work arrives instead of waiting for the next poll, and Remember hands
// it the committed message: its due deliveries are claimed by id rather
// than by looking through the queue (which walks past every delivery in
// flight), and the message is kept in a bounded cache (Config.MessageCache)
// so that the first attempts need not read it back from the store.
//
// The worker's writes are batched: attempt outcomes and the deliveries
// handed over by Remember wait a few milliseconds for each other and go in
// one write of the store (store.Queue.CompleteAndClaim), which mostly
// rides along with the gateway's commits instead of costing a commit of
// its own. An attempt frees its concurrency slot when its SMTP transaction
// ends; its delivery stays leased until the outcome is recorded, and
// shutdown records every outcome before it releases the leases.
//
// An attempt sends only to the recipients still pending, so a recipient
// that got a 2xx is never sent to again by this package. Each recipient
// ends sent (2xx), bounced (5xx) or, when temporary failures (4xx,
// connection and DNS failures) last until the delivery would expire,
// failed; until then the delivery is deferred with an exponential backoff
// (Config.Backoff). A lost lease (a crashed worker) makes the delivery due
// again for any worker: delivery is at least once, never lost.
//
// # Limits
//
// Attempts run concurrently up to Route.Concurrency per route and
// Route.PerDomainConcurrency per destination domain, with at most
// Route.RatePerMinute attempts per minute per destination (a token bucket).
// A receiver that answers 421 or "too many connections" halves its domain's
// concurrency, which then grows back by one per Config.SlowDownPeriod; the
// delivery itself is deferred, not failed.
//
// # Shutdown
//
// When Run's context ends the worker stops claiming, lets attempts in
// progress finish for Config.ShutdownGrace, interrupts the rest (recording
// what they achieved), and releases every delivery it still holds
// (store.Queue.ReleaseDeliveries) so that another worker picks them up.
// A crash loses only outcomes not yet recorded: those deliveries are sent
// again once their leases expire (at least once).
package relay
