package web

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// Paging of message listings, as Mailsac documents it.
const (
	defaultListLimit = 20
	maxListLimit     = 1000
	untilBatch       = 500 // store page size while skipping entries newer than ?until=
)

// receivedLayout is how Mailsac writes dates: ISO 8601 in UTC with
// milliseconds.
const receivedLayout = "2006-01-02T15:04:05.000Z07:00"

// message is Mailsac's EmailMessage object (@mailsac/api 1.0.8 typings).
type message struct {
	ID            string            `json:"_id"`
	From          []summary.Address `json:"from"`
	To            []summary.Address `json:"to"`
	Cc            []summary.Address `json:"cc"`
	Bcc           []summary.Address `json:"bcc"`
	Subject       string            `json:"subject"`
	SavedBy       *string           `json:"savedBy"` // starring does not exist here: always null
	OriginalInbox string            `json:"originalInbox"`
	Inbox         string            `json:"inbox"`
	Domain        string            `json:"domain"`
	Received      string            `json:"received"`
	Size          int64             `json:"size"`
	Attachments   []string          `json:"attachments"` // MD5 sums, as Mailsac
	IP            string            `json:"ip"`
	Via           string            `json:"via"` // the SMTP login that submitted the message
	Folder        string            `json:"folder"`
	Labels        []string          `json:"labels"`
	Read          bool              `json:"read"`
	RTLS          bool              `json:"rtls"`
	Links         []string          `json:"links"`
	Spam          float64           `json:"spam"`
}

// newMessage builds the Mailsac view of one inbox entry.
func newMessage(e *store.InboxEntry) message {
	m := e.Message
	s := &m.Summary
	out := message{
		ID:            m.ID,
		From:          nonNil(s.From),
		To:            nonNil(s.To),
		Cc:            nonNil(s.Cc),
		Bcc:           bcc(m),
		Subject:       s.Subject,
		OriginalInbox: e.Inbox,
		Inbox:         e.Inbox,
		Domain:        domainOf(e.Inbox),
		Received:      m.Received.UTC().Format(receivedLayout),
		Size:          m.Size,
		Attachments:   make([]string, 0, len(s.Attachments)),
		IP:            m.RemoteIP,
		Via:           m.Login,
		Folder:        e.Folder,
		Labels:        nonNil(e.Labels),
		Read:          e.Read,
		RTLS:          m.TLS,
		Links:         nonNil(s.Links),
	}
	if out.Folder == "" {
		out.Folder = "inbox"
	}
	for _, a := range s.Attachments {
		out.Attachments = append(out.Attachments, a.MD5)
	}
	return out
}

// bcc returns the Bcc header's addresses or, when the header is absent as it
// should be, the envelope recipients that neither To nor Cc name: for
// captured mail those are exactly the blind copies.
func bcc(m *store.Message) []summary.Address {
	if len(m.Summary.Bcc) > 0 {
		return m.Summary.Bcc
	}
	named := make(map[string]bool, len(m.Summary.To)+len(m.Summary.Cc))
	for _, a := range m.Summary.To {
		named[strings.ToLower(a.Address)] = true
	}
	for _, a := range m.Summary.Cc {
		named[strings.ToLower(a.Address)] = true
	}
	out := []summary.Address{}
	for _, rcpt := range m.Recipients {
		l := strings.ToLower(rcpt)
		if !named[l] {
			named[l] = true
			out = append(out, summary.Address{Address: rcpt})
		}
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// listMessages serves GET /api/addresses/{email}/messages: the inbox newest
// first. Mailsac's ?limit= (default 20, at most 1000) and ?until= (only
// messages received at or before that time) are honoured, and so is
// smtpgate's ?before=<seq> cursor, which the Link: rel="next" header of a
// full page carries.
func (s *Server) listMessages(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	inbox, err := inboxParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit := defaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errorf(http.StatusBadRequest, "limit must be an integer from 0 to 1000")
		}
		if n > 0 {
			limit = min(n, maxListLimit)
		}
	}
	var before int64
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return errorf(http.StatusBadRequest, "before must be a positive integer (a cursor from the Link header)")
		}
		before = n
	}
	var until time.Time
	if v := q.Get("until"); v != "" {
		t, err := parseDate(v)
		if err != nil {
			return errorf(http.StatusBadRequest, "until must be an ISO 8601 date, e.g. 2026-01-02T15:04:05.000Z")
		}
		until = t
	}

	entries, next, err := s.page(r, inbox, scope, limit, before, until)
	if err != nil {
		return err
	}
	out := make([]message, 0, len(entries))
	for _, e := range entries {
		out = append(out, newMessage(e))
	}
	if next > 0 {
		v := url.Values{"before": {strconv.FormatInt(next, 10)}, "limit": {strconv.Itoa(limit)}}
		if !until.IsZero() {
			v.Set("until", until.UTC().Format(receivedLayout))
		}
		link := "/api/addresses/" + url.PathEscape(inbox) + "/messages?" + v.Encode()
		w.Header().Set("Link", "<"+link+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// page reads up to limit entries of an inbox older than before, skipping
// those received after until. next is the cursor of the following page, or
// 0 when this page is the last.
func (s *Server) page(r *http.Request, inbox string, scope store.Scope, limit int, before int64, until time.Time) (entries []*store.InboxEntry, next int64, err error) {
	q := store.InboxQuery{Inbox: inbox, Scope: scope, Limit: limit, BeforeSeq: before}
	if until.IsZero() {
		entries, err = s.st.Inbox(r.Context(), q)
		if err != nil {
			return nil, 0, fmt.Errorf("list inbox: %w", err)
		}
		if len(entries) == limit {
			next = entries[len(entries)-1].Message.Seq
		}
		return entries, next, nil
	}
	// Received times follow commit order only roughly, so entries newer
	// than until are skipped one by one rather than by a seek.
	q.Limit = max(limit, untilBatch)
	skipped := 0
	for {
		batch, err := s.st.Inbox(r.Context(), q)
		if err != nil {
			return nil, 0, fmt.Errorf("list inbox: %w", err)
		}
		for _, e := range batch {
			if e.Message.Received.After(until) {
				skipped++
				continue
			}
			entries = append(entries, e)
			if len(entries) == limit {
				return entries, e.Message.Seq, nil
			}
		}
		if len(batch) < q.Limit {
			return entries, 0, nil
		}
		if skipped > s.cfg.MaxUntilScan {
			return nil, 0, errorf(http.StatusBadRequest,
				fmt.Sprintf("more than %d messages are newer than until; page with the Link header's before cursor instead", s.cfg.MaxUntilScan))
		}
		q.BeforeSeq = batch[len(batch)-1].Message.Seq
	}
}

// parseDate accepts the ISO 8601 forms Mailsac clients send: a full
// timestamp with or without fractional seconds, or a plain date (midnight
// UTC).
func parseDate(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse date %q: %w", v, err)
	}
	return t, nil
}

// entry loads the inbox entry that the {email} and {id} path parameters of
// r name, with its raw message.
func (s *Server) entry(r *http.Request, scope store.Scope) (*store.InboxEntry, error) {
	inbox, err := inboxParam(r)
	if err != nil {
		return nil, err
	}
	id, err := idParam(r)
	if err != nil {
		return nil, err
	}
	e, err := s.st.InboxMessage(r.Context(), inbox, id, scope)
	if err != nil {
		return nil, fmt.Errorf("load message %s of %s: %w", id, inbox, err)
	}
	return e, nil
}

// getMessage serves GET /api/addresses/{email}/messages/{id}.
func (s *Server) getMessage(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	e, err := s.entry(r, scope)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newMessage(e))
	return nil
}

// deleteResult is Mailsac's answer to a deleted message.
type deleteResult struct {
	ID      string `json:"_id"`
	Inbox   string `json:"inbox"`
	Message string `json:"message"`
}

// deleteMessage serves DELETE /api/addresses/{email}/messages/{id}.
func (s *Server) deleteMessage(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	inbox, err := inboxParam(r)
	if err != nil {
		return err
	}
	id, err := idParam(r)
	if err != nil {
		return err
	}
	if err := s.st.DeleteInboxMessage(r.Context(), inbox, id, scope); err != nil {
		return fmt.Errorf("delete message %s of %s: %w", id, inbox, err)
	}
	writeJSON(w, http.StatusOK, deleteResult{ID: id, Inbox: inbox, Message: "Message was deleted."})
	return nil
}

// me serves GET /api/me, Mailsac's "current account": here the logins the
// key may read.
func (s *Server) me(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	logins := slices.Clone(scope.Logins)
	slices.Sort(logins)
	id := strings.Join(logins, ",")
	if scope.All {
		id, logins = "*", []string{}
	}
	writeJSON(w, http.StatusOK, struct {
		ID        string   `json:"_id"`
		Logins    []string `json:"logins"`
		AllLogins bool     `json:"allLogins"`
		APIAccess int      `json:"apiAccess"`
	}{ID: id, Logins: nonNil(logins), AllLogins: scope.All, APIAccess: 1})
	return nil
}

// purgeInbox serves DELETE /api/addresses/{email}/messages: it deletes
// every message of the inbox that the key may see and answers 204, as
// Mailsac does. Smtpgate has no starred messages to spare.
func (s *Server) purgeInbox(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	inbox, err := inboxParam(r)
	if err != nil {
		return err
	}
	if _, err := s.st.DeleteInbox(r.Context(), inbox, scope); err != nil {
		return fmt.Errorf("delete inbox %s: %w", inbox, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// countMessages serves GET /api/addresses/{email}/message-count.
func (s *Server) countMessages(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	inbox, err := inboxParam(r)
	if err != nil {
		return err
	}
	n, err := s.st.InboxCount(r.Context(), inbox, scope)
	if err != nil {
		return fmt.Errorf("count inbox %s: %w", inbox, err)
	}
	writeJSON(w, http.StatusOK, struct {
		Count int    `json:"count"`
		Inbox string `json:"inbox"`
	}{n, inbox})
	return nil
}

// setReadMailsac serves PUT /api/addresses/{email}/messages/{id}/read/{read}
// with read "true" or "false".
func (s *Server) setReadMailsac(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	inbox, err := inboxParam(r)
	if err != nil {
		return err
	}
	id, err := idParam(r)
	if err != nil {
		return err
	}
	read, err := strconv.ParseBool(r.PathValue("read"))
	if err != nil {
		return errorf(http.StatusBadRequest, "the read flag must be true or false")
	}
	if err := s.st.SetRead(r.Context(), inbox, id, scope, read); err != nil {
		return fmt.Errorf("mark message %s of %s: %w", id, inbox, err)
	}
	writeJSON(w, http.StatusOK, struct {
		ID   string `json:"_id"`
		Read bool   `json:"read"`
	}{id, read})
	return nil
}
