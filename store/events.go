package store

import (
	"context"
	"time"
)

// Event types. Every event belongs to one message.
const (
	EventCaptured  = "captured"  // stored in capture mode (one per recipient)
	EventQueued    = "queued"    // accepted for relay (one per recipient)
	EventDirective = "directive" // a directive header was refused, malformed or ignored (Detail says which)
	EventSent      = "sent"
	EventDeferred  = "deferred"
	EventBounced   = "bounced"
	EventFailed    = "failed"
	EventOpened    = "opened"
	EventClicked   = "clicked"
	EventReply     = "reply" // a reply to a VERP address that is not a delivery report (autoreply, human answer)
)

// Event is one thing that happened to a message.
type Event struct {
	Seq       int64     `json:"seq"`        // assigned by the store; increasing across all events
	MessageID string    `json:"message_id"` // the store id of the message
	Login     string    `json:"login"`      // the message's login; set by the store
	Type      string    `json:"type"`
	Recipient string    `json:"recipient,omitempty"`
	Time      time.Time `json:"time"`
	IP        string    `json:"ip,omitempty"`         // opened, clicked: the reader's address
	UserAgent string    `json:"user_agent,omitempty"` // opened, clicked
	URL       string    `json:"url,omitempty"`        // clicked: the original URL
	Reply     string    `json:"reply,omitempty"`      // sent, deferred, bounced, failed: the SMTP reply
	Detail    string    `json:"detail,omitempty"`     // free text: a directive's outcome, an MX host, a reason
}

// Processing records what the content features did to a message, for the
// API, the UI and `check --explain`.
type Processing struct {
	Features   map[string]bool   `json:"features,omitempty"`   // the resolved feature set, by feature name
	Directives []DirectiveRecord `json:"directives,omitempty"` // every directive header seen, all stripped
	Stats      map[string]int    `json:"stats,omitempty"`      // e.g. links_tracked, pixels_added, css_inlined
	Notes      []string          `json:"notes,omitempty"`      // transforms skipped and why
}

// DirectiveRecord is what became of one directive header.
type DirectiveRecord struct {
	Header    string `json:"header"`
	Value     string `json:"value"`
	Directive string `json:"directive,omitempty"`
	Outcome   string `json:"outcome"` // applied, refused, malformed, ignored
	Reason    string `json:"reason,omitempty"`
}

// EventQuery selects events.
type EventQuery struct {
	MessageID string // "" = every message in scope
	Scope     Scope
	AfterSeq  int64 // only events with Seq > AfterSeq
	Limit     int   // 0 = 1000; capped at 10000
}

// EventStore is the part of a Store that keeps events. Accept also commits
// Message.Events in the same transaction as the message.
type EventStore interface {
	// AddEvents appends events to existing messages in one transaction and
	// sets their Seq and Login. ErrNotFound (and nothing added) if any
	// MessageID does not exist.
	AddEvents(ctx context.Context, events ...*Event) error
	// Events lists events in Seq order, only of messages the scope allows.
	Events(ctx context.Context, q EventQuery) ([]*Event, error)
}
