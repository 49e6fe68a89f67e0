package store

import (
	"context"
	"time"
)

// SearchQuery selects captured messages across inboxes. Every non-zero
// field narrows the result; string matches are case-insensitive substrings.
type SearchQuery struct {
	Scope         Scope
	Inbox         string // one inbox (a recipient address); "" = every inbox
	Login         string // submitted by this login
	From          string // in a From address or display name, or the envelope sender
	To            string // in an envelope recipient or a To/Cc address
	Subject       string
	Text          string    // in the subject or Message.Text
	Tag           string    // exact tag
	Since         time.Time // received at or after
	Until         time.Time // received before
	HasAttachment *bool

	// Paging. With AfterSeq > 0 the result is oldest first from AfterSeq
	// (the wait API's cursor); otherwise newest first, below BeforeSeq when
	// it is > 0.
	BeforeSeq int64
	AfterSeq  int64
	Limit     int // 0 = 50; capped at 1000
}

// InboxSummary is one inbox as listed by Inboxes.
type InboxSummary struct {
	Inbox    string    `json:"inbox"`
	Messages int       `json:"messages"`
	Unread   int       `json:"unread"`
	Latest   time.Time `json:"latest"` // received time of the newest message
	LastSeq  int64     `json:"last_seq"`
}

// Retention bounds the captured mail of one login.
type Retention struct {
	Login    string
	MaxCount int           // keep the newest MaxCount messages; 0 = no count limit
	MaxAge   time.Duration // drop messages received before now-MaxAge; 0 = no age limit
}

// Capture is the part of a Store that serves the capture UI and API beyond
// one inbox.
type Capture interface {
	// Search finds captured messages (without Raw, Original and Text),
	// each once however many inboxes hold it. Relayed messages are never
	// returned.
	Search(ctx context.Context, q SearchQuery) ([]*Message, error)
	// Inboxes lists the inboxes holding mail of the scope's logins (of
	// login only, if not ""), most recently used first, counting only that
	// mail. Limit 0 = 100; capped at 1000.
	Inboxes(ctx context.Context, scope Scope, login string, limit int) ([]InboxSummary, error)
	// InboxCount counts the messages of one inbox in scope.
	InboxCount(ctx context.Context, inbox string, scope Scope) (int, error)
	// DeleteInbox removes every message in scope from one inbox and returns
	// how many.
	DeleteInbox(ctx context.Context, inbox string, scope Scope) (int, error)
	// SetRead marks one inbox entry read or unread (the same message in
	// another inbox keeps its own mark). ErrNotFound if the inbox does not
	// hold it in scope.
	SetRead(ctx context.Context, inbox, id string, scope Scope, read bool) error
	// Prune deletes captured messages of r.Login beyond its limits, oldest
	// first, with their inbox entries and events, and returns how many. It
	// never touches relayed messages (queued, deferred or sent), and deletes
	// at most batch (<= 0: 1000) messages per call so readers are never
	// blocked for long.
	Prune(ctx context.Context, r Retention, now time.Time, batch int) (int, error)
}
