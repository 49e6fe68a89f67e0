package web

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// Paging of the native API.
const (
	defaultV1Limit = 50
	maxV1Limit     = 1000
	maxFilterLen   = 512 // bytes of one search filter
)

// apiMessage is a message in the native API's listings.
type apiMessage struct {
	ID          string            `json:"id"`
	Seq         int64             `json:"seq"`
	Login       string            `json:"login"`
	Route       string            `json:"route"`           // "capture", or the relay it was sent through
	Inbox       string            `json:"inbox,omitempty"` // set when listed from one inbox
	Read        *bool             `json:"read,omitempty"`  // set when listed from one inbox
	MailFrom    string            `json:"mail_from"`
	Recipients  []string          `json:"recipients"`
	From        []summary.Address `json:"from"`
	To          []summary.Address `json:"to"`
	Cc          []summary.Address `json:"cc"`
	ReplyTo     []summary.Address `json:"reply_to"`
	Subject     string            `json:"subject"`
	MessageID   string            `json:"message_id"`
	Date        *time.Time        `json:"date,omitempty"`
	Received    time.Time         `json:"received"`
	Size        int64             `json:"size"`
	Attachments []apiAttachment   `json:"attachments"`
	Tags        []string          `json:"tags"`
	Stats       map[string]int    `json:"stats"` // what the features did: links_tracked, pixels_added, ...
}

// apiAttachment describes one attachment or inline file.
type apiAttachment struct {
	Index       int    `json:"index"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	ContentID   string `json:"content_id,omitempty"`
	Size        int64  `json:"size"`
	MD5         string `json:"md5"`
	Inline      bool   `json:"inline"`
	URL         string `json:"url"`
}

// apiMessageDetail is one message with everything the API knows about it.
type apiMessageDetail struct {
	apiMessage
	RemoteIP    string            `json:"remote_ip"`
	Helo        string            `json:"helo"`
	TLS         bool              `json:"tls"`
	ReturnPath  string            `json:"return_path,omitempty"`
	SendAt      *time.Time        `json:"send_at,omitempty"`
	Metadata    map[string]string `json:"metadata"`
	Text        string            `json:"text"` // the text body, or text made from the HTML
	HTML        string            `json:"html"` // the HTML body as sent
	Headers     []headerField     `json:"headers"`
	Links       []apiLink         `json:"links"`
	Codes       []apiCode         `json:"codes"`
	Processing  store.Processing  `json:"processing"`
	Events      []*store.Event    `json:"events"`
	HasOriginal bool              `json:"has_original"` // the features changed the message
	URLs        apiURLs           `json:"urls"`
}

// apiURLs are the routes with the message's content.
type apiURLs struct {
	Raw        string `json:"raw"`
	Original   string `json:"original"`
	HTML       string `json:"html"`
	Text       string `json:"text"`
	Diff       string `json:"diff"`
	Codes      string `json:"codes"`
	Deliveries string `json:"deliveries"`
}

// messagePath is the API path of message id.
func messagePath(id string) string { return "/api/v1/messages/" + id }

// newAPIMessage builds the listing view of m, which need not carry Raw.
func newAPIMessage(m *store.Message) apiMessage {
	s := &m.Summary
	out := apiMessage{
		ID: m.ID, Seq: m.Seq, Login: m.Login, Route: m.Route, MailFrom: m.MailFrom, Recipients: nonNil(m.Recipients),
		From: nonNil(s.From), To: nonNil(s.To), Cc: nonNil(s.Cc), ReplyTo: nonNil(s.ReplyTo),
		Subject: s.Subject, MessageID: s.MessageID, Received: m.Received.UTC(), Size: m.Size,
		Attachments: make([]apiAttachment, 0, len(s.Attachments)), Tags: nonNil(m.Tags),
		Stats: m.Processing.Stats,
	}
	if out.Stats == nil {
		out.Stats = map[string]int{}
	}
	if !s.Date.IsZero() {
		d := s.Date
		out.Date = &d
	}
	for i, a := range s.Attachments {
		out.Attachments = append(out.Attachments, apiAttachment{Index: i, Filename: a.Filename, ContentType: a.ContentType,
			ContentID: a.ContentID, Size: a.Size, MD5: a.MD5, Inline: a.Inline,
			URL: messagePath(m.ID) + "/attachments/" + strconv.Itoa(i)})
	}
	return out
}

// messageList is the answer of GET /api/v1/messages.
type messageList struct {
	Messages   []apiMessage `json:"messages"`
	NextCursor string       `json:"next_cursor,omitempty"` // the next (older) page; absent on the last page
}

// searchParams are the query parameters of a search, in the order the
// error message lists them.
var searchParams = []string{"inbox", "login", "from", "to", "subject", "text", "tag", "since", "until", "has_attachment"}

// parseSearch reads the search filters of q into a SearchQuery. extra names
// the other parameters the route accepts; any parameter outside both lists
// is refused, so a misspelt filter cannot silently widen a search.
func parseSearch(q url.Values, scope store.Scope, extra ...string) (store.SearchQuery, error) {
	sq := store.SearchQuery{Scope: scope}
	for k, v := range q {
		if !slices.Contains(searchParams, k) && !slices.Contains(extra, k) && k != "_mailsacKey" {
			return sq, errorf(http.StatusBadRequest, fmt.Sprintf("unknown parameter %q; this route takes %s",
				k, strings.Join(append(slices.Clone(searchParams), extra...), ", ")))
		}
		if len(v) > 1 {
			return sq, errorf(http.StatusBadRequest, fmt.Sprintf("parameter %q is given %d times", k, len(v)))
		}
		if len(v[0]) > maxFilterLen {
			return sq, errorf(http.StatusBadRequest, fmt.Sprintf("parameter %q is longer than %d bytes", k, maxFilterLen))
		}
	}
	if v := q.Get("inbox"); v != "" {
		addr, reason := normalizeAddress(v)
		if reason != "" {
			return sq, errorf(http.StatusBadRequest, "invalid inbox address: "+reason)
		}
		sq.Inbox = addr
	}
	sq.Login, sq.From, sq.To, sq.Subject = q.Get("login"), q.Get("from"), q.Get("to"), q.Get("subject")
	sq.Text, sq.Tag = q.Get("text"), q.Get("tag")
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &sq.Since}, {"until", &sq.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := parseDate(v)
			if err != nil {
				return sq, errorf(http.StatusBadRequest, p.name+" must be an RFC 3339 time or a date, e.g. 2026-01-02T15:04:05Z or 2026-01-02")
			}
			*p.dst = t
		}
	}
	if v := q.Get("has_attachment"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return sq, errorf(http.StatusBadRequest, "has_attachment must be true or false")
		}
		sq.HasAttachment = &b
	}
	return sq, nil
}

// parseLimit reads ?limit= within [1, max], def when absent.
func parseLimit(q url.Values, def, max int) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, errorf(http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", max))
	}
	return n, nil
}

// parseCursor reads a cursor: the opaque string of a next_cursor or a
// wait answer (today the decimal Seq of a message; "0" is the very start).
func parseCursor(name, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errorf(http.StatusBadRequest, name+" must be a cursor from an earlier answer")
	}
	return n, nil
}

func formatCursor(seq int64) string { return strconv.FormatInt(seq, 10) }

// onlyInbox reports whether q selects one inbox and nothing else.
func onlyInbox(q store.SearchQuery) bool {
	return q.Inbox != "" && q.Login == "" && q.From == "" && q.To == "" && q.Subject == "" && q.Text == "" &&
		q.Tag == "" && q.Since.IsZero() && q.Until.IsZero() && q.HasAttachment == nil
}

// v1Messages serves GET /api/v1/messages: captured mail newest first,
// filtered by the search parameters, a page at a time.
func (s *Server) v1Messages(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	q := r.URL.Query()
	sq, err := parseSearch(q, scope, "limit", "cursor")
	if err != nil {
		return err
	}
	if sq.Limit, err = parseLimit(q, defaultV1Limit, maxV1Limit); err != nil {
		return err
	}
	if v := q.Get("cursor"); v != "" {
		if sq.BeforeSeq, err = parseCursor("cursor", v); err != nil {
			return err
		}
		if sq.BeforeSeq == 0 {
			return errorf(http.StatusBadRequest, "cursor must be a next_cursor from an earlier page")
		}
	}
	out := messageList{Messages: []apiMessage{}}
	if onlyInbox(sq) {
		// One inbox: its clustered index, and the read flags.
		entries, err := s.st.Inbox(r.Context(), store.InboxQuery{Inbox: sq.Inbox, Scope: scope, Limit: sq.Limit, BeforeSeq: sq.BeforeSeq})
		if err != nil {
			return fmt.Errorf("list inbox %s: %w", sq.Inbox, err)
		}
		for _, e := range entries {
			m := newAPIMessage(e.Message)
			read := e.Read
			m.Inbox, m.Read = e.Inbox, &read
			out.Messages = append(out.Messages, m)
		}
	} else {
		msgs, err := s.st.Search(r.Context(), sq)
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		for _, m := range msgs {
			am := newAPIMessage(m)
			am.Inbox = sq.Inbox
			out.Messages = append(out.Messages, am)
		}
	}
	if len(out.Messages) == sq.Limit {
		out.NextCursor = formatCursor(out.Messages[len(out.Messages)-1].Seq)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// load returns the message named by the {id} path parameter, with Raw. It
// may be captured or relayed: listings and inboxes hold captured mail only,
// but a message id in scope opens either (a relayed message's view shows
// its deliveries).
func (s *Server) load(r *http.Request, scope store.Scope) (*store.Message, error) {
	id, err := idParam(r)
	if err != nil {
		return nil, err
	}
	m, err := s.st.Get(r.Context(), id, scope)
	if err != nil {
		return nil, fmt.Errorf("load message %s: %w", id, err)
	}
	return m, nil
}

// loadMeta returns the message named by the {id} path parameter without
// its bodies, for routes that need only its envelope.
func (s *Server) loadMeta(r *http.Request, scope store.Scope) (*store.Message, error) {
	id, err := idParam(r)
	if err != nil {
		return nil, err
	}
	m, err := s.st.GetMeta(r.Context(), id, scope)
	if err != nil {
		return nil, fmt.Errorf("load message %s: %w", id, err)
	}
	return m, nil
}

// captured refuses a change that only captured mail takes (a relayed
// message is in no inbox) with 409.
func captured(m *store.Message) error {
	if m.Route != store.RouteCapture {
		return errorf(http.StatusConflict, fmt.Sprintf("message %s was relayed through %q, not captured: it is in no inbox", m.ID, m.Route))
	}
	return nil
}

// extract decodes raw, or answers an empty content when it cannot be read.
func (s *Server) extract(id string, raw []byte) *summary.Content {
	c, err := summary.Extract(raw)
	if err != nil {
		s.log.Warn("web: cannot decode stored message", zap.String("id", id), zap.Error(err))
		return &summary.Content{Attachments: []summary.Part{}}
	}
	return c
}

// readableText is the text body, or text made from the HTML body.
func readableText(c *summary.Content) string {
	if c.Text == "" && c.HTML != "" {
		return htmlToText(c.HTML)
	}
	return c.Text
}

// v1Message serves GET /api/v1/messages/{id}.
func (s *Server) v1Message(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	m, err := s.load(r, scope)
	if err != nil {
		return err
	}
	c := s.extract(m.ID, m.Raw)
	base := messagePath(m.ID)
	out := apiMessageDetail{
		apiMessage: newAPIMessage(m),
		RemoteIP:   m.RemoteIP, Helo: m.Helo, TLS: m.TLS, ReturnPath: m.ReturnPath,
		Metadata: m.Metadata, Text: readableText(c), HTML: c.HTML, Headers: headerList(c.Headers),
		Links: s.links(m, c), Codes: findCodes(m.Summary.Subject, c),
		Processing: m.Processing, Events: []*store.Event{}, HasOriginal: m.Original != nil,
		URLs: apiURLs{Raw: base + "/raw", Original: base + "/original", HTML: base + "/html", Text: base + "/text",
			Diff: base + "/diff", Codes: base + "/codes", Deliveries: base + "/deliveries"},
	}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	if !m.SendAt.IsZero() {
		t := m.SendAt.UTC()
		out.SendAt = &t
	}
	evs, err := s.st.Events(r.Context(), store.EventQuery{MessageID: m.ID, Scope: scope})
	if err != nil {
		return fmt.Errorf("events of %s: %w", m.ID, err)
	}
	out.Events = nonNil(evs)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func headerList(hs []summary.Header) []headerField {
	out := make([]headerField, 0, len(hs))
	for _, h := range hs {
		out = append(out, headerField{Name: h.Key, Value: h.Value})
	}
	return out
}

// deletedAnswer is the answer of DELETE /api/v1/messages/{id}.
type deletedAnswer struct {
	ID      string   `json:"id"`
	Inboxes []string `json:"inboxes"` // the inboxes it was removed from
}

// v1DeleteMessage serves DELETE /api/v1/messages/{id}: the message leaves
// every inbox.
func (s *Server) v1DeleteMessage(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	m, err := s.loadMeta(r, scope)
	if err != nil {
		return err
	}
	if err := captured(m); err != nil {
		return err
	}
	out := deletedAnswer{ID: m.ID, Inboxes: []string{}}
	for _, inbox := range store.Inboxes(m.Recipients) {
		err := s.st.DeleteInboxMessage(r.Context(), inbox, m.ID, scope)
		switch {
		case err == nil:
			out.Inboxes = append(out.Inboxes, inbox)
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("delete %s from %s: %w", m.ID, inbox, err)
		}
	}
	if len(out.Inboxes) == 0 {
		return errMessageNotFound
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// v1Raw serves GET /api/v1/messages/{id}/raw: the message as stored, after
// the features ran.
func (s *Server) v1Raw(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	m, err := s.load(r, scope)
	if err != nil {
		return err
	}
	writeContent(w, r, "message/rfc822", cspInert, m.ID+".eml", m.Raw)
	return nil
}

// v1Original serves GET /api/v1/messages/{id}/original: the message as the
// client submitted it (the stored message when the features changed
// nothing; the Smtpgate-Original header says which).
func (s *Server) v1Original(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	m, err := s.load(r, scope)
	if err != nil {
		return err
	}
	raw, changed := m.Raw, "unchanged"
	if m.Original != nil {
		raw, changed = m.Original, "changed"
	}
	w.Header().Set("Smtpgate-Original", changed)
	writeContent(w, r, "message/rfc822", cspInert, m.ID+"-original.eml", raw)
	return nil
}

// cspBodyImages is cspBody with remote images allowed: the "load images"
// view.
const cspBodyImages = "default-src 'none'; img-src data: cid: http: https:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

// v1HTML serves GET /api/v1/messages/{id}/html: the HTML body sanitised
// (the text body in a <pre> when there is none). Remote images are removed
// unless ?images=1; ?original=1 shows the message as submitted.
func (s *Server) v1HTML(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	q := r.URL.Query()
	images, err := flag(q, "images")
	if err != nil {
		return err
	}
	original, err := flag(q, "original")
	if err != nil {
		return err
	}
	m, err := s.load(r, scope)
	if err != nil {
		return err
	}
	raw := m.Raw
	if original && m.Original != nil {
		raw = m.Original
	}
	c := s.extract(m.ID, raw)
	src := c.HTML
	if src == "" {
		src = textToHTML(c.Text)
	}
	csp := cspBody
	if images {
		csp = cspBodyImages
	}
	out := sanitizeHTMLImages(src, inlineImages(c.Attachments), images)
	writeContent(w, r, "text/html; charset=utf-8", csp, m.ID+".html", []byte(out))
	return nil
}

// flag reads a boolean query parameter; absent is false.
func flag(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(http.StatusBadRequest, name+" must be 1 or 0 (true or false)")
	}
	return b, nil
}

// v1Text serves GET /api/v1/messages/{id}/text: the text body, or text made
// from the HTML body; ?original=1 for the message as submitted.
func (s *Server) v1Text(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	original, err := flag(r.URL.Query(), "original")
	if err != nil {
		return err
	}
	m, err := s.load(r, scope)
	if err != nil {
		return err
	}
	raw := m.Raw
	if original && m.Original != nil {
		raw = m.Original
	}
	writeContent(w, r, "text/plain; charset=utf-8", cspInert, m.ID+".txt", []byte(readableText(s.extract(m.ID, raw))))
	return nil
}

// v1Headers serves GET /api/v1/messages/{id}/headers: [{name, value}] in
// message order, names as written, values decoded.
func (s *Server) v1Headers(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	m, err := s.load(r, scope)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, headerList(s.extract(m.ID, m.Raw).Headers))
	return nil
}

// v1Attachment serves GET /api/v1/messages/{id}/attachments/{index}: the
// decoded bytes of one attachment, always as a download.
func (s *Server) v1Attachment(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	i, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || i < 0 {
		return errorf(http.StatusNotFound, "attachments are numbered from 0")
	}
	m, err := s.load(r, scope)
	if err != nil {
		return err
	}
	c := s.extract(m.ID, m.Raw)
	if i >= len(c.Attachments) {
		return errorf(http.StatusNotFound, fmt.Sprintf("message %s has %d attachments", m.ID, len(c.Attachments)))
	}
	p := c.Attachments[i]
	name := safeFilename(p.Filename)
	if name == "" {
		name = fmt.Sprintf("%s-%d", m.ID, i)
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Security-Policy", cspInert)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	h.Set("Content-Length", strconv.Itoa(len(p.Data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(p.Data)
	return nil
}

// v1Links serves GET /api/v1/messages/{id}/links: every link with its text.
func (s *Server) v1Links(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	m, err := s.load(r, scope)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Links []apiLink `json:"links"`
	}{s.links(m, s.extract(m.ID, m.Raw))})
	return nil
}

// links returns the links of m, whose content is c, each with its URL in
// the message as submitted when the features changed the message.
func (s *Server) links(m *store.Message, c *summary.Content) []apiLink {
	var orig *summary.Content
	if m.Original != nil {
		orig = s.extract(m.ID, m.Original)
	}
	return linksOf(c, m.Summary.Links, orig)
}

// codesAnswer is the answer of GET /api/v1/messages/{id}/codes.
type codesAnswer struct {
	Code  string    `json:"code"` // the most likely one-time code, "" when none
	Codes []apiCode `json:"codes"`
	Links []apiLink `json:"links"`
}

// v1Codes serves GET /api/v1/messages/{id}/codes: one-time codes and links
// for test automation.
func (s *Server) v1Codes(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	m, err := s.load(r, scope)
	if err != nil {
		return err
	}
	c := s.extract(m.ID, m.Raw)
	out := codesAnswer{Codes: findCodes(m.Summary.Subject, c), Links: s.links(m, c)}
	if len(out.Codes) > 0 {
		out.Code = out.Codes[0].Code
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// v1Events serves GET /api/v1/messages/{id}/events.
func (s *Server) v1Events(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	m, err := s.loadMeta(r, scope)
	if err != nil {
		return err
	}
	evs, err := s.st.Events(r.Context(), store.EventQuery{MessageID: m.ID, Scope: scope})
	if err != nil {
		return fmt.Errorf("events of %s: %w", m.ID, err)
	}
	writeJSON(w, http.StatusOK, struct {
		Events []*store.Event `json:"events"`
	}{nonNil(evs)})
	return nil
}

// v1Diff serves GET /api/v1/messages/{id}/diff: what the features changed.
func (s *Server) v1Diff(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	m, err := s.load(r, scope)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.messageDiff(m))
	return nil
}

// readAnswer is the answer of the read routes.
type readAnswer struct {
	ID      string   `json:"id"`
	Read    bool     `json:"read"`
	Inboxes []string `json:"inboxes"`
}

func (s *Server) v1MarkRead(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	return s.v1SetRead(w, r, scope, true)
}

func (s *Server) v1MarkUnread(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	return s.v1SetRead(w, r, scope, false)
}

// v1SetRead marks a message read or unread in one inbox (?inbox=) or in
// every inbox that holds it.
func (s *Server) v1SetRead(w http.ResponseWriter, r *http.Request, scope store.Scope, read bool) error {
	id, err := idParam(r)
	if err != nil {
		return err
	}
	var inboxes []string
	if v := r.URL.Query().Get("inbox"); v != "" {
		addr, reason := normalizeAddress(v)
		if reason != "" {
			return errorf(http.StatusBadRequest, "invalid inbox address: "+reason)
		}
		inboxes = []string{addr}
	} else {
		m, err := s.loadMeta(r, scope)
		if err != nil {
			return err
		}
		if err := captured(m); err != nil {
			return err
		}
		inboxes = store.Inboxes(m.Recipients)
	}
	out := readAnswer{ID: id, Read: read, Inboxes: []string{}}
	for _, inbox := range inboxes {
		err := s.st.SetRead(r.Context(), inbox, id, scope, read)
		switch {
		case err == nil:
			out.Inboxes = append(out.Inboxes, inbox)
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("mark %s in %s: %w", id, inbox, err)
		}
	}
	if len(out.Inboxes) == 0 {
		return errMessageNotFound
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// v1Inboxes serves GET /api/v1/inboxes: the inboxes holding the scope's
// mail (of ?login= only), most recently used first.
func (s *Server) v1Inboxes(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	q := r.URL.Query()
	for k := range q {
		if k != "login" && k != "limit" && k != "_mailsacKey" {
			return errorf(http.StatusBadRequest, fmt.Sprintf("unknown parameter %q; this route takes login, limit", k))
		}
	}
	limit, err := parseLimit(q, 100, maxV1Limit)
	if err != nil {
		return err
	}
	list, err := s.st.Inboxes(r.Context(), scope, q.Get("login"), limit)
	if err != nil {
		return fmt.Errorf("list inboxes: %w", err)
	}
	writeJSON(w, http.StatusOK, struct {
		Inboxes []store.InboxSummary `json:"inboxes"`
	}{nonNil(list)})
	return nil
}

// v1DeleteInbox serves DELETE /api/v1/inboxes/{email}: every message of
// the inbox that the key may see.
func (s *Server) v1DeleteInbox(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	inbox, err := inboxParam(r)
	if err != nil {
		return err
	}
	n, err := s.st.DeleteInbox(r.Context(), inbox, scope)
	if err != nil {
		return fmt.Errorf("delete inbox %s: %w", inbox, err)
	}
	writeJSON(w, http.StatusOK, struct {
		Inbox   string `json:"inbox"`
		Deleted int    `json:"deleted"`
	}{inbox, n})
	return nil
}

// tagLister is what a store offers when it can count the tags in use
// itself; without it GET /api/v1/tags scans the newest messages.
type tagLister interface {
	Tags(ctx context.Context, scope store.Scope, login string) (map[string]int, error)
}

// maxTagScan is how many of the newest messages GET /api/v1/tags reads
// when the store cannot count tags itself.
const maxTagScan = 5000

// tagCount is one tag in use.
type tagCount struct {
	Tag   string `json:"tag"`
	Count int    `json:"count"`
}

// v1Tags serves GET /api/v1/tags: the tags of the scope's captured mail (of
// ?login= only), most used first. partial is true when only the newest
// maxTagScan messages were read.
func (s *Server) v1Tags(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	q := r.URL.Query()
	for k := range q {
		if k != "login" && k != "_mailsacKey" {
			return errorf(http.StatusBadRequest, fmt.Sprintf("unknown parameter %q; this route takes login", k))
		}
	}
	login := q.Get("login")
	var counts map[string]int
	partial := false
	if tl, ok := s.st.(tagLister); ok {
		var err error
		if counts, err = tl.Tags(r.Context(), scope, login); err != nil {
			return fmt.Errorf("list tags: %w", err)
		}
	} else {
		counts = map[string]int{}
		sq := store.SearchQuery{Scope: scope, Login: login, Limit: maxV1Limit}
		for read := 0; ; {
			msgs, err := s.st.Search(r.Context(), sq)
			if err != nil {
				return fmt.Errorf("list tags: %w", err)
			}
			for _, m := range msgs {
				for _, t := range m.Tags {
					counts[t]++
				}
			}
			read += len(msgs)
			if len(msgs) < sq.Limit {
				break
			}
			if read >= maxTagScan {
				partial = true
				break
			}
			sq.BeforeSeq = msgs[len(msgs)-1].Seq
		}
	}
	out := make([]tagCount, 0, len(counts))
	for t, n := range counts {
		out = append(out, tagCount{t, n})
	}
	slices.SortFunc(out, func(a, b tagCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Tag, b.Tag)
	})
	writeJSON(w, http.StatusOK, struct {
		Tags    []tagCount `json:"tags"`
		Partial bool       `json:"partial"`
	}{out, partial})
	return nil
}
