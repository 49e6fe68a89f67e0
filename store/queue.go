package store

import (
	"context"
	"time"
)

// Delivery states.
const (
	DeliveryQueued    = "queued"    // waiting for its first attempt (or its send-at time)
	DeliveryDeferred  = "deferred"  // an attempt failed temporarily; retried at NextAttempt
	DeliverySent      = "sent"      // every recipient accepted (or permanently refused: see Recipients)
	DeliveryBounced   = "bounced"   // every recipient permanently refused
	DeliveryFailed    = "failed"    // gave up: Expires passed while still deferred
	DeliveryCancelled = "cancelled" // cancelled through the queue API
)

// Recipient states inside a delivery.
const (
	RecipientPending = "pending"
	RecipientSent    = "sent"
	RecipientBounced = "bounced" // permanent failure (5xx)
	RecipientFailed  = "failed"  // temporary failures until the delivery expired
)

// Delivery is one relay job: one message to the recipients of one
// destination domain (direct MX) or all of them (a smarthost), over one
// route. Accept creates the deliveries listed in Message.Deliveries in the
// same transaction as the message.
type Delivery struct {
	ID          int64               `json:"id"` // assigned by the store
	MessageID   string              `json:"message_id"`
	Login       string              `json:"login"` // set by the store from the message
	Route       string              `json:"route"`
	Domain      string              `json:"domain,omitempty"`
	Recipients  []RecipientDelivery `json:"recipients"`
	State       string              `json:"state"`
	Attempts    int                 `json:"attempts"`
	NextAttempt time.Time           `json:"next_attempt"` // due time: send-at, then backoff
	Expires     time.Time           `json:"expires"`      // give up when a retry would start after this
	LastReply   string              `json:"last_reply,omitempty"`
	Created     time.Time           `json:"created"`
	Updated     time.Time           `json:"updated"`
}

// RecipientDelivery is one recipient's state within a delivery.
type RecipientDelivery struct {
	Address string `json:"address"`
	Index   int    `json:"index"` // position in Message.Recipients (the VERP recipient index)
	State   string `json:"state"`
	Reply   string `json:"reply,omitempty"`
}

// Attempt is one delivery attempt, for the queue API and diagnostics.
type Attempt struct {
	DeliveryID int64         `json:"delivery_id"`
	Time       time.Time     `json:"time"`
	Host       string        `json:"host,omitempty"` // the MX or smarthost that answered, host:port
	Reply      string        `json:"reply"`          // the deciding SMTP reply or error text
	Duration   time.Duration `json:"duration"`
}

// Outcome is the result of one attempt, applied by CompleteAttempt in one
// transaction: the attempt is recorded, the delivery updated, the events
// appended, and the lease released.
type Outcome struct {
	Attempt     Attempt
	Recipients  []RecipientDelivery // new state of every recipient
	State       string              // new delivery state
	NextAttempt time.Time           // when State is DeliveryDeferred
	Events      []*Event            // sent, deferred, bounced, failed per recipient
}

// Completion is one delivery's attempt outcome for Queue.CompleteAttempts.
type Completion struct {
	ID      int64 // the delivery
	Outcome Outcome
}

// DeliveryQuery selects deliveries for the queue API.
type DeliveryQuery struct {
	Scope     Scope
	States    []string // empty = every state
	MessageID string
	AfterID   int64 // paging: ID > AfterID, ascending
	Limit     int   // 0 = 100; capped at 1000
}

// Queue is the part of a Store that keeps relay deliveries.
type Queue interface {
	// ClaimDeliveries leases up to limit deliveries that are due (state
	// queued or deferred, NextAttempt <= now, not leased or lease expired) to
	// owner until now+lease, oldest NextAttempt first. A delivery is never
	// leased to two owners at once.
	ClaimDeliveries(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*Delivery, error)
	// ClaimDeliveriesByID leases to owner until now+lease those of the
	// deliveries ids that ClaimDeliveries could lease at now (queued or
	// deferred, NextAttempt <= now, not leased or lease expired), and
	// returns them, oldest NextAttempt first; the others are left as they
	// are. A worker handed new deliveries by the process that committed
	// them claims them this way, without looking through the queue.
	ClaimDeliveriesByID(ctx context.Context, owner string, ids []int64, now time.Time, lease time.Duration) ([]*Delivery, error)
	// CompleteAttempt applies o to delivery id if owner still holds its
	// lease; ErrLeaseLost otherwise (another worker took it over, or it was
	// released: the outcome is dropped, the attempt not recorded). A lease
	// that expired but was not taken over is still held. Nil o.Recipients
	// leave the recipients unchanged; o.Events get their MessageID, Login
	// and Seq from the store.
	CompleteAttempt(ctx context.Context, id int64, owner string, o Outcome) error
	// CompleteAttempts applies several outcomes, each as CompleteAttempt
	// would, in one write of the store (one transaction), and returns one
	// error per completion, in order: nil, or ErrLeaseLost or ErrNotFound
	// for that completion alone (nothing of it is recorded), or the error
	// of the whole write (nothing of any is recorded). Workers that finish
	// attempts at the same time record them together this way.
	CompleteAttempts(ctx context.Context, owner string, cs []Completion) []error
	// CompleteAndClaim records the outcomes cs as CompleteAttempts does and
	// then claims the deliveries ids as ClaimDeliveriesByID does, in one
	// write where the store can (SQLite: one transaction): a worker hands
	// back what it finished and takes what it was handed, for the price of
	// one commit. errs has one entry per completion; err is the claim's
	// error, or the whole write's (then every completion has it too).
	CompleteAndClaim(ctx context.Context, owner string, cs []Completion, ids []int64, now time.Time, lease time.Duration) (errs []error, claimed []*Delivery, err error)
	// ReleaseDeliveries returns every delivery leased to owner to the queue
	// unchanged (graceful shutdown).
	ReleaseDeliveries(ctx context.Context, owner string) error
	// Deliveries lists deliveries in scope.
	Deliveries(ctx context.Context, q DeliveryQuery) ([]*Delivery, error)
	// Attempts lists a delivery's attempts in order.
	Attempts(ctx context.Context, id int64, scope Scope) ([]Attempt, error)
	// RetryNow makes a queued or deferred delivery due now. ErrNotFound if
	// it is not in scope; ErrState if it is not queued or deferred.
	RetryNow(ctx context.Context, id int64, scope Scope, now time.Time) error
	// CancelDelivery cancels a queued or deferred delivery: its pending
	// recipients become failed, with a failed event each. ErrState if it is
	// in another state, or leased at now (an attempt is in flight: its
	// outcome must not be lost); ErrNotFound if it is not in scope.
	CancelDelivery(ctx context.Context, id int64, scope Scope, now time.Time) error
}

// WebhookJob is one event to deliver to one webhook endpoint.
type WebhookJob struct {
	ID          int64     `json:"id"`
	Webhook     string    `json:"webhook"` // the webhook's name in the policy
	EventSeq    int64     `json:"event_seq"`
	Login       string    `json:"login"`
	State       string    `json:"state"` // queued, deferred, sent, failed
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	LastStatus  int       `json:"last_status,omitempty"` // HTTP status of the last attempt, 0 if none
	LastError   string    `json:"last_error,omitempty"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

// Webhooks is the part of a Store that keeps webhook deliveries. Events are
// fanned out to jobs by the webhook worker: EnqueueWebhookJobs reads events
// after the webhook's cursor and creates one job per matching event, moving
// the cursor, in one transaction, so no event is ever skipped or sent twice
// to one endpoint by the store's doing.
type Webhooks interface {
	// EnqueueWebhookJobs reads up to limit events after the webhook's
	// cursor, creates a job (queued, due at now) for each whose Type is in
	// types and whose Login is in logins (nil or empty = all, for either;
	// exact matches), moves the cursor past every event it read, and
	// returns how many it read, matching or not. The cursor of a webhook
	// never seen before is before the first event.
	EnqueueWebhookJobs(ctx context.Context, webhook string, types, logins []string, limit int, now time.Time) (int, error)
	// ClaimWebhookJobs leases due jobs like ClaimDeliveries: up to limit
	// jobs (queued or deferred, NextAttempt <= now, not leased or lease
	// expired) to owner until now+lease, oldest NextAttempt first, then in
	// creation order. With webhook != "" only that webhook's jobs are
	// claimed, so that one endpoint's backlog never fills the claims of
	// another; "" claims the jobs of every webhook. A webhook's jobs are
	// created in event Seq order, so (unless the enqueuers' clock goes
	// back) its first attempts are claimed in Seq order.
	ClaimWebhookJobs(ctx context.Context, webhook, owner string, now time.Time, limit int, lease time.Duration) ([]*WebhookJob, error)
	// CompleteWebhookJob records an attempt: state sent, deferred (with
	// next), or failed. ErrLeaseLost if owner no longer holds the lease.
	CompleteWebhookJob(ctx context.Context, id int64, owner string, state string, status int, errText string, next time.Time) error
	// ReleaseWebhookJobs returns every job leased to owner to the queue
	// unchanged, claimable at once (graceful shutdown), like
	// ReleaseDeliveries; the owner's outcomes for them are then refused
	// with ErrLeaseLost.
	ReleaseWebhookJobs(ctx context.Context, owner string) error
	// WebhookJobs lists jobs newest first (the delivery history), in scope
	// (by the event's login). Limit 0 = 100; capped at 1000.
	WebhookJobs(ctx context.Context, webhook string, scope Scope, limit int) ([]*WebhookJob, error)
	// Event returns one event by Seq (the webhook payload source), or
	// ErrNotFound (events go with their message when it is deleted).
	Event(ctx context.Context, seq int64) (*Event, error)
}
