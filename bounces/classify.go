package bounces

import (
	"strings"
	"unicode/utf8"

	"github.com/smtpgate/smtpgate/features/bounce"
	"github.com/smtpgate/smtpgate/store"
)

// Limits of the text an event keeps.
const (
	// MaxReplyLines is how many non-blank lines of a reply's text go into
	// its event's Detail.
	MaxReplyLines = 5
	// MaxDetail caps an event's Detail, in bytes.
	MaxDetail = 1000
	// MaxReply caps an event's Reply, in bytes.
	MaxReply = 1000
)

// Classify makes the event that the bounce rep (with perr, the error of
// bounce.ParseDSN) says about rcpt, the address the bounced message was
// sent to. The event's Type, Reply and Detail are set; the caller sets the
// rest. ok is false for a report with no failure and no delay in it (a
// "delivered" or "relayed" notification): there is no event to make.
//
// A report with per-recipient statuses (a DSN, or a qmail bounce) gives
// store.EventBounced for a permanent failure and store.EventDeferred for a
// delay or a failure with a 4.x.x status, with Reply "<status>
// <diagnostic>" and Detail "dsn from <Reporting-MTA> remote <Remote-MTA>".
// The status used is the one for rcpt (by Original-Recipient or
// Final-Recipient); when the report names only other addresses (a
// forward, an alias) the first failure or delay is used, still for rcpt,
// and Detail says which address it named. Anything else gives store.EventReply.
func Classify(rep *bounce.Report, perr error, rcpt string) (e *store.Event, ok bool) {
	switch {
	case perr != nil || rep == nil:
		return &store.Event{Type: store.EventReply, Detail: "unreadable message"}, true
	case len(rep.Recipients) == 0:
		return &store.Event{Type: store.EventReply, Detail: replyDetail(rep)}, true
	}
	st, named := pick(rep.Recipients, rcpt)
	if st == nil {
		return nil, false
	}
	e = &store.Event{Type: store.EventDeferred}
	if st.Permanent {
		e.Type = store.EventBounced
	}
	e.Reply = clip(strings.TrimSpace(st.Status+" "+st.Diagnostic), MaxReply)
	var d strings.Builder
	if rep.IsDSN {
		d.WriteString("dsn")
	} else {
		d.WriteString("plain-text bounce")
	}
	if rep.Reporting != "" {
		d.WriteString(" from " + rep.Reporting)
	}
	if st.RemoteMTA != "" {
		d.WriteString(" remote " + st.RemoteMTA)
	}
	if st.Action == "failed" && !st.Permanent {
		d.WriteString("; failed with a temporary status")
	}
	if named != "" {
		d.WriteString("; the report names " + named + ", not " + rcpt)
	}
	e.Detail = clip(d.String(), MaxDetail)
	return e, true
}

// pick returns the status about rcpt (nil when it is a success: delivered,
// relayed, expanded), else, when the report does not name rcpt, the first
// failure or delay together with the address it names. It returns nil when
// there is no failure or delay for rcpt.
func pick(list []bounce.RecipientStatus, rcpt string) (st *bounce.RecipientStatus, named string) {
	var first *bounce.RecipientStatus
	for i := range list {
		s := &list[i]
		if sameAddress(s.Original, rcpt) || sameAddress(s.Recipient, rcpt) {
			if !failure(s.Action) {
				return nil, ""
			}
			return s, ""
		}
		if first == nil && failure(s.Action) {
			first = s
		}
	}
	if first == nil {
		return nil, ""
	}
	named = first.Recipient
	if named == "" {
		named = first.Original
	}
	if named == "" {
		named = "no address"
	}
	return first, clip(named, 256)
}

// failure reports whether a DSN action is a failure or a delay (qmail
// bounces and DSNs without an Action field count as failures).
func failure(action string) bool {
	switch action {
	case "failed", "delayed", "":
		return true
	}
	return false // delivered, relayed, expanded
}

// sameAddress compares two addresses without regard to case.
func sameAddress(a, b string) bool {
	a = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(a), "<"), ">")
	return a != "" && strings.EqualFold(a, b)
}

// replyDetail is the Detail of an store.EventReply: the first non-blank lines of
// the text.
func replyDetail(rep *bounce.Report) string {
	var lines []string
	for line := range strings.SplitSeq(rep.Human, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		lines = append(lines, line)
		if len(lines) == MaxReplyLines {
			break
		}
	}
	d := strings.Join(lines, "\n")
	switch {
	case d == "" && rep.IsDSN:
		return "dsn without per-recipient status"
	case d == "":
		return "no text"
	case rep.IsDSN:
		d = "dsn without per-recipient status: " + d
	}
	return clip(d, MaxDetail)
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
