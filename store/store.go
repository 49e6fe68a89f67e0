// Package store owns smtpgate's durable state: accepted messages, the capture
// index (one inbox per recipient address), and later events and delivery jobs.
// Backends (store/sqlite, store/postgres) implement Store and must pass the
// shared conformance suite in store/storetest.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/smtpgate/smtpgate/summary"
)

// RouteCapture is the route of a message that is captured, never delivered.
const RouteCapture = "capture"

// ErrNotFound is returned when a message does not exist or is outside the
// caller's Scope. The two cases are deliberately indistinguishable.
var ErrNotFound = errors.New("store: not found")

// Message is one accepted message with everything smtpgate knows about it.
type Message struct {
	ID         string    // unique, assigned by the caller with NewID
	Seq        int64     // commit order, assigned by the store in Accept; strictly increasing
	Login      string    // the SMTP login that submitted it
	Route      string    // RouteCapture or the name of a relay
	MailFrom   string    // envelope sender as submitted ("" for the null sender)
	Recipients []string  // envelope recipients as submitted
	RemoteIP   string    // client IP (after PROXY protocol)
	Helo       string    // EHLO/HELO name
	TLS        bool      // submitted over TLS
	Received   time.Time // when the message was accepted (UTC)
	Size       int64     // len(Raw)

	// Raw is the message as delivered (after the features ran). It is only
	// filled in by Get and InboxMessage, never by listings or GetMeta.
	Raw []byte
	// Original is the message as submitted, when it differs from Raw; nil
	// otherwise. Filled in like Raw.
	Original []byte

	Summary summary.Summary // parsed view of Raw
	Tags    []string
	// Text is the message's readable text (text body, else the HTML's text),
	// capped at 64 KiB, for SearchQuery.Text. Set by the caller of Accept.
	// It is an input to full-text search only: backends keep it once, in
	// their search index, and no read returns it (the text of a message is
	// derived from Raw when it is shown).
	Text string

	// ReturnPath is the envelope sender for delivery when it differs from
	// MailFrom (the VERP address of bounce tracking); "" means MailFrom.
	ReturnPath string
	Metadata   map[string]string // from metadata directives; carried into events and webhooks
	SendAt     time.Time         // hold delivery until then; zero means now
	Processing Processing        // what the content features did

	// Events are committed with the message by Accept (captured, queued,
	// directive outcomes); Accept sets their Seq, MessageID and Login. Not
	// filled in by reads: use EventStore.Events.
	Events []*Event
	// Deliveries are the relay jobs committed with the message by Accept
	// (route other than capture); Accept sets their ID, MessageID, Login,
	// Created and Updated, and fills in the defaults: an empty State is
	// DeliveryQueued, an empty recipient State is RecipientPending, and a
	// zero NextAttempt is SendAt, or Received when SendAt is zero. Not
	// filled in by reads: use Queue.Deliveries.
	Deliveries []*Delivery
}

// Scope restricts what a reader may see: the logins whose mail it may read.
// The zero Scope sees nothing; All sees everything (the admin/dev key).
type Scope struct {
	All    bool
	Logins []string
}

// Allows reports whether mail submitted by login is visible in the scope.
func (s Scope) Allows(login string) bool {
	if s.All {
		return true
	}
	for _, l := range s.Logins {
		if l == login {
			return true
		}
	}
	return false
}

// InboxQuery selects captured messages of one inbox.
type InboxQuery struct {
	Inbox     string // recipient address; matched case-insensitively
	Scope     Scope
	Limit     int   // 0 means a backend default of 100; backends cap it at 1000
	BeforeSeq int64 // if > 0, only entries with Seq < BeforeSeq (paging, newest first)
}

// InboxEntry is one message as it appears in one recipient's inbox.
type InboxEntry struct {
	Inbox   string   // the normalised (lower-case) inbox address
	Message *Message // without Raw and Original
	Read    bool
	Labels  []string
	Folder  string // "inbox" unless moved
}

// Store is the durable state behind smtpgate. Every method is safe for
// concurrent use. Backends keep times to the millisecond at least and
// return them in UTC; the zero time stays zero.
type Store interface {
	EventStore
	Queue
	Webhooks
	Capture

	// Accept commits msg durably before it returns nil: on disk with fsync,
	// or committed in PostgreSQL. When msg.Route is RouteCapture it also adds
	// one inbox entry per distinct recipient (lower-cased) in the same
	// transaction. It sets msg.Seq.
	Accept(ctx context.Context, msg *Message) error
	// Get returns a message with Raw and Original, if scope allows its login.
	Get(ctx context.Context, id string, scope Scope) (*Message, error)
	// GetMeta returns a message like Get, under the same scope rules
	// (ErrNotFound outside the scope), but without Raw, Original and Text,
	// which it does not read: for callers that need the envelope, summary,
	// tags or metadata of a message and not its body.
	GetMeta(ctx context.Context, id string, scope Scope) (*Message, error)
	// Inbox lists an inbox newest first.
	Inbox(ctx context.Context, q InboxQuery) ([]*InboxEntry, error)
	// InboxMessage returns one message of an inbox, with Raw and Original.
	InboxMessage(ctx context.Context, inbox, id string, scope Scope) (*InboxEntry, error)
	// DeleteInboxMessage removes a message from one inbox; the message itself
	// is removed once no inbox holds it. ErrNotFound if it was not there.
	DeleteInboxMessage(ctx context.Context, inbox, id string, scope Scope) error
	// Close flushes pending writes and releases the backend.
	Close() error
}
