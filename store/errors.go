package store

import (
	"errors"
	"strings"
)

// ErrDuplicateID is returned by Accept when a message with the same ID is
// already stored. The stored message is left unchanged.
var ErrDuplicateID = errors.New("store: duplicate message id")

// ErrClosed is returned by a Store used after Close.
var ErrClosed = errors.New("store: closed")

// NormalizeInbox returns the inbox name of a recipient address: without
// surrounding white space and lower-cased. Backends use it for the capture
// index and for queries.
func NormalizeInbox(addr string) string {
	return strings.ToLower(strings.TrimSpace(addr))
}

// Inboxes returns the distinct non-empty inbox names of recipients, in
// their first order of appearance.
func Inboxes(recipients []string) []string {
	out := make([]string, 0, len(recipients))
	for _, r := range recipients {
		n := NormalizeInbox(r)
		if n != "" && !contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ErrLeaseLost is returned when a worker completes a job whose lease it no
// longer holds.
var ErrLeaseLost = errors.New("store: lease lost")

// ErrState is returned when an operation does not fit the current state of
// a delivery (retrying a sent delivery, cancelling a cancelled one).
var ErrState = errors.New("store: operation not allowed in this state")
