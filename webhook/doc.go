// Package webhook delivers smtpgate's events (queued, sent, bounced,
// opened, clicked, …) to the HTTP endpoints named in the policy: signed,
// durable, retried, with a history.
//
// # How events travel
//
// Events are committed to the store by whoever observes them (the gateway,
// the relay, the tracking handlers). The Worker fans them out per endpoint
// with store.Webhooks.EnqueueWebhookJobs, which moves a per-endpoint cursor
// in the same transaction that creates the jobs, so no event is skipped or
// enqueued twice. It then leases due jobs (ClaimWebhookJobs), sends each as
// one POST, and records the outcome (CompleteWebhookJob). A job is the
// durable unit: a crash at any point loses nothing; at worst a job whose
// 2xx arrived just before the crash is sent again once its lease runs out.
// Delivery is therefore at least once; receivers dedupe on the
// Smtpgate-Delivery header (the payload's "id"), which is the same on every
// retry of one event to one endpoint.
//
// Call Worker.Notify after committing events to have them sent at once;
// otherwise they go out at the next poll.
//
// # The request
//
//	POST <url>
//	Content-Type: application/json
//	User-Agent: smtpgate-webhook/1
//	Smtpgate-Event: sent
//	Smtpgate-Delivery: 8812
//	Smtpgate-Attempt: 1
//	Smtpgate-Signature: t=1767225600,v1=<64 hex digits>
//
//	{"id":"8812","seq":40211,"event":"sent","timestamp":"2026-01-01T00:00:00.123Z",
//	 "webhook":"events","message_id":"01JG…","message_id_header":"<a1@app.example>",
//	 "login":"webapp","recipient":"ann@example.org","subject":"Welcome",
//	 "tags":["signup"],"metadata":{"user":"42"},"reply":"250 2.0.0 Ok: queued as 4Xk"}
//
// The body is the same on every attempt; the signature is not (it covers
// the time of the attempt). See Payload for the fields, Sign for the
// signature scheme and why, and Verify for the receiver's side.
//
// # Outcomes and retries
//
// A 2xx answer delivers the event. 410 Gone fails the job at once: the
// endpoint says it is gone. Anything else, a redirect (never followed),
// another 4xx or 5xx, a timeout (the client's, 10 s by default) or a
// connection error defers the job by Config.Backoff (10 s doubling up to an
// hour, ±20 % jitter; a Retry-After header lengthens the delay) until the
// next attempt would come more than Endpoint.MaxAge (24 h by default)
// after the event: then it fails. An event that is already older than
// MaxAge when its first turn comes (the worker was down, or the webhook is
// new: the store starts a new webhook's cursor before the first event) is
// failed without a request. The first 4 KiB of an error answer's body is
// kept in the job's LastError.
//
// # Isolation
//
// Each endpoint has its own senders (Endpoint.Concurrency, 4 by default)
// and its own queue of claimed jobs, sized to what it sends in half a lease
// at its measured pace, so a slow or dead endpoint only delays its own
// events: a timeout or a refused connection occupies one of its senders,
// never another endpoint's. Nothing here is on
// the SMTP path: the worker runs in its own goroutines and only talks to
// the store and the endpoints.
//
// Each endpoint claims its own jobs (store.Webhooks.ClaimWebhookJobs for
// one webhook), oldest first, only as many as its queue has room for, so
// one endpoint's backlog never holds up another's jobs. Events of logins
// or types an endpoint does not select get no job at all. A job whose
// lease would run out before its turn comes (its endpoint slowed down) is
// left unsent and claimed again when the lease runs out (Config.Lease, 2
// min by default); a stopping worker hands its unsent jobs back at once.
// Due jobs of webhooks that are no longer configured are failed, once a
// minute.
//
// # Ordering
//
// While an endpoint answers 2xx, first attempts to it are made one at a
// time in Seq order, so it receives events in the order they were committed
// (the cursor fans out in Seq order and each endpoint's jobs are claimed
// oldest first); its other senders carry retries only. Once an attempt
// fails, order is lost anyway (the retry comes later), so until an attempt succeeds again
// all its senders take first attempts too. A first attempt that waited for
// a lease to run out (after a crash, or behind a backlog) also comes late.
// The payload's "seq" and "timestamp" let receivers order events
// themselves. One request at a time bounds a healthy endpoint's rate to one
// event per round trip.
//
// # History
//
// The delivery history is the store's: store.Webhooks.WebhookJobs lists an
// endpoint's jobs newest first with their state, attempt count, last HTTP
// status and last error, within a store.Scope.
//
// # Security
//
// Endpoint URLs come from the operator's policy, never from mail or API
// users, so the worker does not restrict the addresses it connects to (an
// operator may well post to a service on localhost or a private network).
// If that ever changes, the dialer must refuse loopback, private and
// link-local addresses. Redirects are not followed, so an endpoint cannot
// bounce a signed request elsewhere. Errors kept in the history leave out
// the URL, which may carry credentials.
package webhook
