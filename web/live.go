package web

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
)

// Live updates: the gateway calls Committed for every committed message;
// the hub hands a small notice to every subscriber whose scope and filter
// it may concern. Wait requests then look the message up in the store (so
// the store's search rules decide what matches), event streams send the
// notice as it is. A subscriber too slow to take a notice loses it and
// catches up from the store by its cursor, so Committed never blocks and
// nothing is missed.

// subscriberBuffer is how many notices a subscriber may have pending.
const subscriberBuffer = 64

// notice is what subscribers learn about one committed message.
type notice struct {
	seq     int64
	login   string
	inboxes []string   // normalised recipients
	msg     apiMessage // the listing view
}

// subscriber is one waiting or streaming client.
type subscriber struct {
	scope store.Scope
	login string // "" or the only login it cares about
	inbox string // "" or the only inbox it cares about
	ch    chan *notice
	lost  chan struct{} // signalled (capacity 1) when a notice was dropped
}

// concerns reports whether n may match s. It must never say no to a
// message the store search would return; saying yes too often only costs a
// lookup.
func (s *subscriber) concerns(n *notice) bool {
	if !s.scope.Allows(n.login) || s.login != "" && s.login != n.login {
		return false
	}
	if s.inbox == "" {
		return true
	}
	for _, in := range n.inboxes {
		if in == s.inbox {
			return true
		}
	}
	return false
}

// hub fans committed messages out to subscribers.
type hub struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	done   chan struct{} // closed by close
	closed bool
}

func newHub() *hub {
	return &hub{subs: make(map[*subscriber]struct{}), done: make(chan struct{})}
}

func (h *hub) subscribe(scope store.Scope, login, inbox string) *subscriber {
	s := &subscriber{scope: scope, login: login, inbox: inbox,
		ch: make(chan *notice, subscriberBuffer), lost: make(chan struct{}, 1)}
	h.mu.Lock()
	if !h.closed {
		h.subs[s] = struct{}{}
	}
	h.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

func (h *hub) publish(n *notice) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if !s.concerns(n) {
			continue
		}
		select {
		case s.ch <- n:
		default:
			select {
			case s.lost <- struct{}{}:
			default:
			}
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
		clear(h.subs)
	}
}

// subscribers returns how many clients are waiting or streaming.
func (h *hub) subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

var _ Notifier = (*Server)(nil)

// Committed implements Notifier: it wakes the waits and streams that msg
// may concern. It never blocks and keeps no reference to msg.
func (s *Server) Committed(msg *store.Message) {
	if msg == nil || msg.Route != store.RouteCapture {
		return
	}
	s.hub.publish(&notice{seq: msg.Seq, login: msg.Login, inboxes: store.Inboxes(msg.Recipients), msg: newAPIMessage(msg)})
}

// waitAnswer is the 200 answer of GET /api/v1/wait.
type waitAnswer struct {
	Messages []apiMessage `json:"messages"` // oldest first
	Cursor   string       `json:"cursor"`   // pass as ?since= to wait for the next ones
}

// cursorHeader carries the cursor of every wait answer, including 204.
const cursorHeader = "Smtpgate-Cursor"

// defaultWait is the ?timeout= of a wait that names none.
const defaultWait = 30 * time.Second

// v1Wait serves GET /api/v1/wait: it answers as soon as captured mail
// matching the search parameters has arrived after the ?since= cursor (or
// after the call, without one): 200 with the messages, oldest first, and a
// new cursor; or 204 with the unchanged cursor in the Smtpgate-Cursor
// header when ?timeout= (default 30s) passes first. timeout=0 answers at
// once, which gives the current cursor.
func (s *Server) v1Wait(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	q := r.URL.Query()
	// In this route since is the cursor, not a date.
	filters := maps.Clone(q)
	delete(filters, "since")
	sq, err := parseSearch(filters, scope, "timeout", "limit")
	if err != nil {
		return err
	}
	if len(q["since"]) > 1 {
		return errorf(http.StatusBadRequest, `parameter "since" is given more than once`)
	}
	if sq.Limit, err = parseLimit(q, 10, 100); err != nil {
		return err
	}
	timeout := defaultWait
	if v := q.Get("timeout"); v != "" {
		if timeout, err = parseTimeout(v); err != nil {
			return err
		}
		if timeout > s.cfg.MaxWait {
			return errorf(http.StatusBadRequest, fmt.Sprintf("timeout must be at most %s", s.cfg.MaxWait))
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout+s.cfg.RequestTimeout)
	defer cancel()
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout + s.cfg.RequestTimeout))

	// Subscribe before reading the store, so that nothing committed in
	// between goes unnoticed.
	sub := s.hub.subscribe(scope, sq.Login, sq.Inbox)
	defer s.hub.unsubscribe(sub)

	if v := q.Get("since"); v != "" {
		if sq.AfterSeq, err = parseCursor("since", v); err != nil {
			return err
		}
	} else {
		if sq.AfterSeq, err = s.latestSeq(ctx, scope); err != nil {
			return err
		}
	}
	w.Header().Set(cursorHeader, formatCursor(sq.AfterSeq))

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	poll := s.pollTicker()
	defer poll.Stop()
	for {
		msgs, err := searchAfter(ctx, s.st, sq)
		if err != nil {
			return fmt.Errorf("wait: search: %w", err)
		}
		if len(msgs) > 0 {
			out := waitAnswer{Messages: make([]apiMessage, 0, len(msgs))}
			for _, m := range msgs {
				am := newAPIMessage(m)
				am.Inbox = sq.Inbox
				out.Messages = append(out.Messages, am)
			}
			out.Cursor = formatCursor(msgs[len(msgs)-1].Seq)
			w.Header().Set(cursorHeader, out.Cursor)
			writeJSON(w, http.StatusOK, out)
			return nil
		}
		if timeout <= 0 {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		select {
		case <-sub.ch:
			drain(sub)
		case <-sub.lost:
		case <-poll.C():
		case <-timer.C:
			w.WriteHeader(http.StatusNoContent)
			return nil
		case <-s.hub.done:
			w.WriteHeader(http.StatusNoContent)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// searchAfter runs sq from its AfterSeq cursor, oldest first. The store
// reads AfterSeq 0 as "newest first", so the cursor 0 (before every
// message) pages down to the oldest messages instead.
func searchAfter(ctx context.Context, c store.Capture, sq store.SearchQuery) ([]*store.Message, error) {
	if sq.AfterSeq > 0 {
		return c.Search(ctx, sq)
	}
	q := sq
	q.AfterSeq, q.BeforeSeq, q.Limit = 0, 0, maxV1Limit
	var newer, older []*store.Message
	for {
		page, err := c.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		newer, older = older, page
		if len(page) < q.Limit {
			break
		}
		q.BeforeSeq = page[len(page)-1].Seq
	}
	// older holds the oldest page, newer the one above it, both newest
	// first: the oldest sq.Limit messages are at the end.
	all := append(append([]*store.Message(nil), newer...), older...)
	slices.Reverse(all)
	if len(all) > sq.Limit {
		all = all[:sq.Limit]
	}
	return all, nil
}

// ticker is a time.Ticker that may be off.
type ticker struct{ t *time.Ticker }

// C returns the ticks, or nil (never ready) when off.
func (t ticker) C() <-chan time.Time {
	if t.t == nil {
		return nil
	}
	return t.t.C
}

func (t ticker) Stop() {
	if t.t != nil {
		t.t.Stop()
	}
}

// pollTicker ticks every Config.StorePoll, or never when it is 0.
func (s *Server) pollTicker() ticker {
	if s.cfg.StorePoll <= 0 {
		return ticker{}
	}
	return ticker{time.NewTicker(s.cfg.StorePoll)}
}

// drain empties sub's queue after a wake-up: one search covers them all.
func drain(sub *subscriber) {
	for {
		select {
		case <-sub.ch:
		default:
			return
		}
	}
}

// latestSeq returns the Seq of the newest captured message the scope sees,
// the cursor of "from now".
func (s *Server) latestSeq(ctx context.Context, scope store.Scope) (int64, error) {
	msgs, err := s.st.Search(ctx, store.SearchQuery{Scope: scope, Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("latest message: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	return msgs[0].Seq, nil
}

// parseTimeout reads a Go duration ("30s", "1m30s") or a number of seconds.
func parseTimeout(v string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 && n < 1e6 {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errorf(http.StatusBadRequest, "timeout must be a duration such as 30s or a number of seconds")
	}
	return d, nil
}

// streamEvent is the data of one "message" event on the stream.
type streamEvent struct {
	apiMessage
	Inboxes []string `json:"inboxes"` // the inboxes it was filed in
}

// v1Stream serves GET /api/v1/events/stream: Server-Sent Events, one
// "message" event per captured message the scope sees (of ?login= and
// ?inbox= only, when given), with the message's Seq as event id. A client
// that reconnects with Last-Event-ID first gets what it missed.
func (s *Server) v1Stream(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	q := r.URL.Query()
	for k := range q {
		if k != "login" && k != "inbox" && k != "_mailsacKey" {
			return errorf(http.StatusBadRequest, fmt.Sprintf("unknown parameter %q; this route takes login, inbox", k))
		}
	}
	inbox := ""
	if v := q.Get("inbox"); v != "" {
		addr, reason := normalizeAddress(v)
		if reason != "" {
			return errorf(http.StatusBadRequest, "invalid inbox address: "+reason)
		}
		inbox = addr
	}
	login := q.Get("login")
	var last int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errorf(http.StatusBadRequest, "Last-Event-ID must be an event id from this stream")
		}
		last = n
	}
	rc := http.NewResponseController(w)
	sub := s.hub.subscribe(scope, login, inbox)
	defer s.hub.unsubscribe(sub)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	st := &stream{w: w, rc: rc, writeTimeout: s.cfg.RequestTimeout, sent: newRecentSet(recentSent)}
	if err := st.write([]byte("retry: 3000\n: smtpgate live stream\n\n")); err != nil {
		return nil // the client has gone
	}
	// catchUp sends what the store has after the newest message sent (or
	// the client's Last-Event-ID).
	catchUp := func() error {
		for {
			msgs, err := s.st.Search(ctx, store.SearchQuery{Scope: scope, Inbox: inbox, Login: login, AfterSeq: last, Limit: 100})
			if err != nil {
				return fmt.Errorf("stream: catch up: %w", err)
			}
			for _, m := range msgs {
				if err := st.send(newAPIMessage(m), store.Inboxes(m.Recipients)); err != nil {
					return err
				}
				last = max(last, m.Seq)
			}
			if len(msgs) < 100 {
				return nil
			}
		}
	}
	if last > 0 {
		if err := catchUp(); err != nil {
			return s.streamEnd(err)
		}
	} else {
		// From now on; remember where "now" is, so that a lost notice can
		// be fetched from the store.
		seq, err := s.latestSeq(ctx, scope)
		if err != nil {
			return s.streamEnd(err)
		}
		last = seq
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	poll := s.pollTicker()
	defer poll.Stop()
	for {
		var err error
		select {
		case n := <-sub.ch:
			// Notices may come slightly out of Seq order (concurrent
			// commits): each is sent once, whatever its place.
			err = st.send(n.msg, n.inboxes)
			last = max(last, n.seq)
		case <-sub.lost:
			drain(sub)
			err = catchUp()
		case <-poll.C():
			err = catchUp()
		case <-heartbeat.C:
			err = st.write([]byte(": ping\n\n"))
		case <-s.hub.done:
			return nil
		case <-ctx.Done():
			return nil
		}
		if err != nil {
			return s.streamEnd(err)
		}
	}
}

// recentSent is how many message ids a stream remembers having sent: more
// than a notice queue and a catch-up page hold together.
const recentSent = subscriberBuffer + 2*100

// stream writes Server-Sent Events.
type stream struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	writeTimeout time.Duration
	sent         *recentSet
}

func (st *stream) write(b []byte) error {
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.writeTimeout))
	if _, err := st.w.Write(b); err != nil {
		return err
	}
	return st.rc.Flush()
}

// send writes one "message" event, unless this message was sent already.
func (st *stream) send(m apiMessage, inboxes []string) error {
	if !st.sent.add(m.ID) {
		return nil
	}
	data, err := marshalJSON(streamEvent{apiMessage: m, Inboxes: nonNil(inboxes)})
	if err != nil {
		return err
	}
	return st.write(fmt.Appendf(nil, "event: message\nid: %d\ndata: %s\n", m.Seq, data))
}

// recentSet remembers the last n strings added.
type recentSet struct {
	ring []string
	next int
	in   map[string]bool
}

func newRecentSet(n int) *recentSet {
	return &recentSet{ring: make([]string, n), in: make(map[string]bool)}
}

// add adds s and reports whether it was new.
func (r *recentSet) add(s string) bool {
	if r.in[s] {
		return false
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.in, old)
	}
	r.ring[r.next] = s
	r.next = (r.next + 1) % len(r.ring)
	r.in[s] = true
	return true
}

// streamEnd logs why a stream ended when it is not the client leaving.
func (s *Server) streamEnd(err error) error {
	if !errors.Is(err, context.Canceled) {
		s.log.Debug("web: event stream ended", zap.Error(err))
	}
	return nil
}
