package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smtpgate/smtpgate/store"
)

// deliveryStates are the states ?state= accepts, besides "all".
var deliveryStates = []string{store.DeliveryQueued, store.DeliveryDeferred, store.DeliverySent,
	store.DeliveryBounced, store.DeliveryFailed, store.DeliveryCancelled}

// pendingStates is the default of ?state=: what is still to be sent.
var pendingStates = []string{store.DeliveryQueued, store.DeliveryDeferred}

// maxWebhookName bounds the {name} of the webhook history route.
const maxWebhookName = 200

// errDeliveryNotFound is the one answer for a delivery that is missing, out
// of scope, or named by a malformed id.
var errDeliveryNotFound = errorf(http.StatusNotFound, "Delivery not found")

// apiDelivery is one relay delivery in the queue API.
type apiDelivery struct {
	ID         int64                     `json:"id"`
	MessageID  string                    `json:"message_id"`
	Login      string                    `json:"login"`
	Route      string                    `json:"route"`
	Domain     string                    `json:"domain,omitempty"`
	Recipients []store.RecipientDelivery `json:"recipients"`
	State      string                    `json:"state"`
	Attempts   int                       `json:"attempts"`
	// NextAttempt is when the delivery is due; only while it is queued
	// or deferred.
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	Expires     time.Time  `json:"expires"`
	LastReply   string     `json:"last_reply"`
	Created     time.Time  `json:"created"`
	Updated     time.Time  `json:"updated"`
	// CanRetry and CanCancel say whether the state allows the retry and
	// cancel routes (a cancel still waits for an attempt in flight: 409).
	CanRetry  bool            `json:"can_retry"`
	CanCancel bool            `json:"can_cancel"`
	URLs      apiDeliveryURLs `json:"urls"`
	// AttemptLog lists the attempts, oldest first; only in the answers
	// about one delivery or one message (the listing leaves it out).
	AttemptLog *[]apiAttempt `json:"attempt_log,omitempty"`
}

// apiDeliveryURLs are the routes about a delivery.
type apiDeliveryURLs struct {
	Self    string `json:"self"`
	Message string `json:"message"`
	Retry   string `json:"retry"`
	Cancel  string `json:"cancel"`
}

// apiAttempt is one delivery attempt.
type apiAttempt struct {
	Time       time.Time `json:"time"`
	Host       string    `json:"host"`
	Reply      string    `json:"reply"`
	DurationMS float64   `json:"duration_ms"`
}

// deliveryList is the answer of the delivery listings.
type deliveryList struct {
	Deliveries []apiDelivery `json:"deliveries"`
	NextCursor string        `json:"next_cursor,omitempty"` // the next page; absent on the last page
}

// deliveryPath is the API path of delivery id.
func deliveryPath(id int64) string { return "/api/v1/queue/" + strconv.FormatInt(id, 10) }

// pending reports whether a delivery in state is still to be sent: the
// states that retry and cancel accept.
func pending(state string) bool { return slices.Contains(pendingStates, state) }

func newAPIDelivery(d *store.Delivery) apiDelivery {
	self := deliveryPath(d.ID)
	out := apiDelivery{
		ID: d.ID, MessageID: d.MessageID, Login: d.Login, Route: d.Route, Domain: d.Domain,
		Recipients: nonNil(d.Recipients), State: d.State, Attempts: d.Attempts, Expires: d.Expires.UTC(),
		LastReply: d.LastReply, Created: d.Created.UTC(), Updated: d.Updated.UTC(),
		CanRetry: pending(d.State), CanCancel: pending(d.State),
		URLs: apiDeliveryURLs{Self: self, Message: messagePath(d.MessageID), Retry: self + "/retry", Cancel: self + "/cancel"},
	}
	if pending(d.State) {
		t := d.NextAttempt.UTC()
		out.NextAttempt = &t
	}
	return out
}

func newAPIAttempts(as []store.Attempt) *[]apiAttempt {
	out := make([]apiAttempt, 0, len(as))
	for _, a := range as {
		out = append(out, apiAttempt{Time: a.Time.UTC(), Host: a.Host, Reply: a.Reply,
			DurationMS: float64(a.Duration.Microseconds()) / 1000})
	}
	return &out
}

// parseStates reads ?state=: a comma list of delivery states, or "all".
func parseStates(v string) ([]string, error) {
	if v == "" {
		return pendingStates, nil
	}
	if v == "all" {
		return nil, nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(deliveryStates, s) {
			return nil, errorf(http.StatusBadRequest, fmt.Sprintf("unknown state %q; state is all or a comma list of %s",
				s, strings.Join(deliveryStates, ", ")))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// checkParams refuses a parameter outside names, or one given twice.
func checkParams(r *http.Request, names ...string) error {
	for k, v := range r.URL.Query() {
		if k == "_mailsacKey" {
			continue
		}
		if !slices.Contains(names, k) {
			return errorf(http.StatusBadRequest, fmt.Sprintf("unknown parameter %q; this route takes %s", k, strings.Join(names, ", ")))
		}
		if len(v) > 1 {
			return errorf(http.StatusBadRequest, fmt.Sprintf("parameter %q is given %d times", k, len(v)))
		}
	}
	return nil
}

// v1Queue serves GET /api/v1/queue: the deliveries in scope, oldest first,
// queued and deferred ones unless ?state= says otherwise.
func (s *Server) v1Queue(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	if err := checkParams(r, "state", "message_id", "cursor", "limit"); err != nil {
		return err
	}
	q := r.URL.Query()
	dq := store.DeliveryQuery{Scope: scope}
	var err error
	if dq.States, err = parseStates(q.Get("state")); err != nil {
		return err
	}
	if v := q.Get("message_id"); v != "" {
		if !store.ValidID(v) {
			return errorf(http.StatusBadRequest, "message_id must be a message id")
		}
		dq.MessageID = v
	}
	if dq.Limit, err = parseLimit(q, defaultV1Limit, maxV1Limit); err != nil {
		return err
	}
	if v := q.Get("cursor"); v != "" {
		if dq.AfterID, err = parseCursor("cursor", v); err != nil {
			return err
		}
	}
	ds, err := s.st.Deliveries(r.Context(), dq)
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}
	out := deliveryList{Deliveries: make([]apiDelivery, 0, len(ds))}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, newAPIDelivery(d))
	}
	if len(ds) == dq.Limit {
		out.NextCursor = formatCursor(ds[len(ds)-1].ID)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deliveryParam returns the {id} path parameter of r as a delivery id, or
// the not-found error when it cannot be one.
func deliveryParam(r *http.Request) (int64, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != v {
		return 0, errDeliveryNotFound
	}
	return id, nil
}

// delivery reads delivery id with its attempts, or errDeliveryNotFound
// when it is not in scope.
func (s *Server) delivery(r *http.Request, id int64, scope store.Scope) (apiDelivery, error) {
	// The queue has no lookup by id: the first delivery after id-1 in
	// scope is it, if it exists.
	ds, err := s.st.Deliveries(r.Context(), store.DeliveryQuery{Scope: scope, AfterID: id - 1, Limit: 1})
	if err != nil {
		return apiDelivery{}, fmt.Errorf("read delivery %d: %w", id, err)
	}
	if len(ds) == 0 || ds[0].ID != id {
		return apiDelivery{}, errDeliveryNotFound
	}
	out := newAPIDelivery(ds[0])
	as, err := s.st.Attempts(r.Context(), id, scope)
	if errors.Is(err, store.ErrNotFound) {
		return apiDelivery{}, errDeliveryNotFound
	}
	if err != nil {
		return apiDelivery{}, fmt.Errorf("attempts of delivery %d: %w", id, err)
	}
	out.AttemptLog = newAPIAttempts(as)
	return out, nil
}

// v1Delivery serves GET /api/v1/queue/{id}: one delivery with its attempts.
func (s *Server) v1Delivery(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	id, err := deliveryParam(r)
	if err != nil {
		return err
	}
	d, err := s.delivery(r, id, scope)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// v1Retry serves POST /api/v1/queue/{id}/retry: a queued or deferred
// delivery becomes due now.
func (s *Server) v1Retry(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	return s.changeDelivery(w, r, scope, "retried", s.st.RetryNow)
}

// v1Cancel serves POST /api/v1/queue/{id}/cancel: a queued or deferred
// delivery is cancelled; its pending recipients fail.
func (s *Server) v1Cancel(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	return s.changeDelivery(w, r, scope, "cancelled", s.st.CancelDelivery)
}

// deliveryChange is store.Queue's RetryNow or CancelDelivery.
type deliveryChange func(ctx context.Context, id int64, scope store.Scope, now time.Time) error

// changeDelivery applies change to the {id} delivery and answers the
// delivery as it is then; 409 when its state does not allow the change.
// done names the change in messages ("retried", "cancelled").
func (s *Server) changeDelivery(w http.ResponseWriter, r *http.Request, scope store.Scope, done string, change deliveryChange) error {
	id, err := deliveryParam(r)
	if err != nil {
		return err
	}
	err = change(r.Context(), id, scope, time.Now().UTC())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errDeliveryNotFound
	case errors.Is(err, store.ErrState):
		msg := fmt.Sprintf("delivery %d cannot be %s: it is neither queued nor deferred", id, done)
		if d, rerr := s.delivery(r, id, scope); rerr == nil {
			if pending(d.State) {
				msg = fmt.Sprintf("delivery %d cannot be %s now: an attempt is in flight; try again when it ends", id, done)
			} else {
				msg = fmt.Sprintf("delivery %d is %s: only a queued or deferred delivery can be %s", id, d.State, done)
			}
		}
		return errorf(http.StatusConflict, msg)
	case err != nil:
		return fmt.Errorf("delivery %d not %s: %w", id, done, err)
	}
	d, err := s.delivery(r, id, scope)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// maxMessageDeliveries bounds the deliveries listed for one message (one
// per destination domain at most).
const maxMessageDeliveries = 1000

// v1MessageDeliveries serves GET /api/v1/messages/{id}/deliveries: the
// deliveries of one message, with their attempts (none for captured mail).
func (s *Server) v1MessageDeliveries(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	id, err := idParam(r)
	if err != nil {
		return err
	}
	m, err := s.st.GetMeta(r.Context(), id, scope)
	if err != nil {
		return fmt.Errorf("load message %s: %w", id, err)
	}
	ds, err := s.st.Deliveries(r.Context(), store.DeliveryQuery{Scope: scope, MessageID: m.ID, Limit: maxMessageDeliveries})
	if err != nil {
		return fmt.Errorf("deliveries of %s: %w", m.ID, err)
	}
	out := deliveryList{Deliveries: make([]apiDelivery, 0, len(ds))}
	for _, d := range ds {
		ad := newAPIDelivery(d)
		as, err := s.st.Attempts(r.Context(), d.ID, scope)
		if err != nil {
			return fmt.Errorf("attempts of delivery %d: %w", d.ID, err)
		}
		ad.AttemptLog = newAPIAttempts(as)
		out.Deliveries = append(out.Deliveries, ad)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// apiWebhookDelivery is one event's delivery to a webhook endpoint.
type apiWebhookDelivery struct {
	ID       int64  `json:"id"`
	Webhook  string `json:"webhook"`
	EventSeq int64  `json:"event_seq"`
	Login    string `json:"login"`
	State    string `json:"state"` // queued, deferred, sent, failed
	Attempts int    `json:"attempts"`
	// NextAttempt is when it is due; only while queued or deferred.
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	LastStatus  int        `json:"last_status"` // HTTP status of the last attempt, 0 if none answered
	LastError   string     `json:"last_error"`
	Created     time.Time  `json:"created"`
	Updated     time.Time  `json:"updated"`
}

// webhookHistory is the answer of GET /api/v1/webhooks/{name}/deliveries.
type webhookHistory struct {
	Webhook    string               `json:"webhook"`
	Deliveries []apiWebhookDelivery `json:"deliveries"`
}

// v1WebhookDeliveries serves GET /api/v1/webhooks/{name}/deliveries: the
// delivery history of one webhook, newest first, for the events of the
// scope's logins. The names come from the policy, which the web server does
// not read: an unknown name has no history.
func (s *Server) v1WebhookDeliveries(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	name := r.PathValue("name")
	if name == "" || len(name) > maxWebhookName || !utf8.ValidString(name) {
		return errorf(http.StatusBadRequest, fmt.Sprintf("the webhook name must be 1 to %d bytes of UTF-8", maxWebhookName))
	}
	if err := checkParams(r, "limit"); err != nil {
		return err
	}
	limit, err := parseLimit(r.URL.Query(), defaultV1Limit, maxV1Limit)
	if err != nil {
		return err
	}
	jobs, err := s.st.WebhookJobs(r.Context(), name, scope, limit)
	if err != nil {
		return fmt.Errorf("history of webhook %q: %w", name, err)
	}
	out := webhookHistory{Webhook: name, Deliveries: make([]apiWebhookDelivery, 0, len(jobs))}
	for _, j := range jobs {
		d := apiWebhookDelivery{ID: j.ID, Webhook: j.Webhook, EventSeq: j.EventSeq, Login: j.Login, State: j.State,
			Attempts: j.Attempts, LastStatus: j.LastStatus, LastError: j.LastError,
			Created: j.Created.UTC(), Updated: j.Updated.UTC()}
		if pending(j.State) { // webhook jobs have the same pending states
			t := j.NextAttempt.UTC()
			d.NextAttempt = &t
		}
		out.Deliveries = append(out.Deliveries, d)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
