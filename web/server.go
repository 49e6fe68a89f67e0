// Package web serves smtpgate over HTTP: the capture web UI, the native
// capture API (/api/v1), the capture API in the shape of Mailsac's REST API
// (so the official @mailsac/api client works against it with only a
// different baseURL), /healthz, and a Handle hook through which the
// application mounts further routes (tracking endpoints).
//
// Every API route needs an API key (Mailsac-Key header, Authorization:
// Bearer, the _mailsacKey query parameter, or the UI's session cookie) that
// a KeyResolver maps to a store.Scope; clients from Config.OpenNetworks may
// go without one. A message outside the key's scope is answered exactly like
// a message that does not exist (404), so message ids cannot be probed.
// Every error is JSON: {"status": 404, "error": "Not Found", "message": "..."}.
//
// Mailsac-compatible routes (all under /api, as Mailsac's base URL
// https://mailsac.com/api):
//
//	GET    /api/me                                        the key's logins
//	GET    /api/addresses/{email}/messages                ?limit= ?until= ?before=
//	DELETE /api/addresses/{email}/messages                every message of the inbox (204)
//	GET    /api/addresses/{email}/message-count
//	GET    /api/addresses/{email}/messages/{id}           one message object
//	DELETE /api/addresses/{email}/messages/{id}
//	PUT    /api/addresses/{email}/messages/{id}/read/{read}
//	GET    /api/addresses/{email}/messages/{id}/headers   ?messageHeadersFormat=json|json-ordered|plain
//	GET    /api/addresses/{email}/messages/{id}/attachments[/{md5|cid|filename}]
//	GET    /api/raw/{email}/{id}                          ?original=1 for the message as submitted
//	GET    /api/text/{email}/{id}
//	GET    /api/body/{email}/{id}                         sanitised HTML
//	GET    /api/dirty/{email}/{id}                        HTML as sent, sandboxed
//	GET    /api/headers/{email}/{id}                      alias of the headers route
//	GET    /healthz
//
// The content routes take ?download=1 to answer as a file download.
//
// The native API is described by the OpenAPI 3 document it serves at
// /api/v1/openapi.json (see openapi.json in this directory): search with
// cursor paging, one message with its text, HTML, headers, attachments,
// links, processing record, events and the diff between the message as
// submitted and as delivered, one-time codes, inboxes, tags, a long-polling
// wait for the next matching message, and a Server-Sent Events stream of
// committed messages. For relayed mail it has the delivery queue (list with
// each recipient's state, one delivery with its attempts, retry now,
// cancel; 409 when the delivery's state forbids the change) and each
// webhook's delivery history. Listings hold captured mail only; a relayed
// message opens by its id. The UI (Config.UI) is served at / from files
// embedded in the binary.
//
// The Server is also the gateway's notifier: Committed wakes waiting and
// streaming clients without polling the store.
package web

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
)

// KeyResolver maps an API key to the logins whose mail it may read.
type KeyResolver interface {
	// Scope returns the scope of key, and false when the key is unknown.
	Scope(key string) (store.Scope, bool)
}

// Notifier is told about every message the store has committed. The
// gateway calls it after Accept; it must not block. *Server implements it.
type Notifier interface {
	Committed(msg *store.Message)
}

// Config holds the tunables of a Server. The zero value is usable.
type Config struct {
	// MaxBodyBytes caps request bodies (default 64 KiB); larger bodies are
	// refused with 413.
	MaxBodyBytes int64
	// MaxURLBytes caps the length of the request URI (default 4096); longer
	// ones are refused with 414.
	MaxURLBytes int
	// RequestTimeout bounds the store work of one request (default 30 s).
	// It does not apply to the wait and stream routes, which have their own.
	RequestTimeout time.Duration
	// MaxUntilScan bounds how many inbox entries one ?until= listing may
	// skip before it gives up with 400 (default 100,000).
	MaxUntilScan int

	// UI serves the capture web UI at / and /ui/ (policy: http { ui = true }).
	UI bool
	// OpenNetworks returns the client networks that may use the UI and
	// the API without an API key (policy: http { open_networks = [...] });
	// such a client sees the mail of every login. A key sent anyway is
	// still checked and then decides the scope. The client address is the
	// TCP peer (r.RemoteAddr): X-Forwarded-For is never trusted. It is
	// called for every request without a key, so a policy reload applies
	// at once; nil means no open networks.
	OpenNetworks func() []*net.IPNet
	// SecureCookie sets the Secure attribute on the UI's session cookie even
	// for plain-HTTP requests (behind a TLS-terminating proxy); it is always
	// set on requests that came over TLS.
	SecureCookie bool

	// MaxWait caps the ?timeout= of GET /api/v1/wait (default 5 minutes).
	MaxWait time.Duration
	// StorePoll is how often a waiting or streaming client also looks in the
	// store for mail that Committed was not told about: set it when several
	// instances share one store (PostgreSQL). 0, the default, relies on
	// Committed alone.
	StorePoll time.Duration
	// Heartbeat is the interval of keep-alive comments on the event stream
	// (default 25 s).
	Heartbeat time.Duration

	// Retention returns the capture retention rules in force, one per login
	// (policy: per-credential retention). RunRetention calls it before every
	// pass, so a policy reload takes effect; nil means nothing is pruned.
	Retention func() []store.Retention
	// RetentionEvery is the interval between retention passes (default 1
	// minute).
	RetentionEvery time.Duration
	// RetentionBatch is how many messages one Prune call may delete
	// (default 500); a pass pauses between batches so readers go first.
	RetentionBatch int
}

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.MaxURLBytes <= 0 {
		c.MaxURLBytes = 4096
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.MaxUntilScan <= 0 {
		c.MaxUntilScan = 100_000
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 5 * time.Minute
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 25 * time.Second
	}
	if c.RetentionEvery <= 0 {
		c.RetentionEvery = time.Minute
	}
	if c.RetentionBatch <= 0 {
		c.RetentionBatch = 500
	}
	return c
}

// Server is the HTTP front of smtpgate. It implements http.Handler and
// Notifier.
type Server struct {
	cfg    Config
	st     store.Store
	keys   KeyResolver
	log    *zap.Logger
	mux    *http.ServeMux
	hub    *hub
	routes []string // the patterns registered by New, in order

	closeOnce sync.Once
}

// New returns a Server reading captured mail from st and authenticating API
// keys with keys.
func New(cfg Config, st store.Store, keys KeyResolver, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{cfg: cfg.withDefaults(), st: st, keys: keys, log: log, mux: http.NewServeMux(), hub: newHub()}
	s.register()
	return s
}

// Handle mounts h at pattern (net/http ServeMux syntax, e.g. "GET /t/{token}").
// Mounted handlers get the Server's panic recovery and security headers but
// no API-key check: they authenticate on their own terms.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

// Close ends every open event stream and wait request (a wait answers 204
// with its cursor). Register it with http.Server.RegisterOnShutdown, since
// Shutdown does not interrupt active requests. The Server keeps serving
// other routes; new streams and waits end at once.
func (s *Server) Close() {
	s.closeOnce.Do(s.hub.close)
}

// handle registers one route and remembers its pattern for Routes.
func (s *Server) handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
	s.routes = append(s.routes, pattern)
}

// Routes returns the patterns of the routes New registered, in ServeMux
// syntax ("GET /api/v1/messages/{id}"); routes mounted with Handle are not
// included.
func (s *Server) Routes() []string {
	return append([]string(nil), s.routes...)
}

func (s *Server) register() {
	s.handle("GET /healthz", http.HandlerFunc(s.healthz))

	api := func(pattern string, h apiHandler) { s.handle(pattern, s.authed(h)) }
	api("GET /api/me", s.me)
	api("GET /api/addresses/{email}/messages", s.listMessages)
	api("DELETE /api/addresses/{email}/messages", s.purgeInbox)
	api("GET /api/addresses/{email}/message-count", s.countMessages)
	api("GET /api/addresses/{email}/messages/{id}", s.getMessage)
	api("DELETE /api/addresses/{email}/messages/{id}", s.deleteMessage)
	api("PUT /api/addresses/{email}/messages/{id}/read/{read}", s.setReadMailsac)
	api("GET /api/addresses/{email}/messages/{id}/headers", s.headers)
	api("GET /api/addresses/{email}/messages/{id}/attachments", s.listAttachments)
	api("GET /api/addresses/{email}/messages/{id}/attachments/{attachment}", s.downloadAttachment)
	api("GET /api/raw/{email}/{id}", s.raw)
	api("GET /api/text/{email}/{id}", s.text)
	api("GET /api/body/{email}/{id}", s.body)
	api("GET /api/dirty/{email}/{id}", s.dirty)
	// Not in Mailsac's spec: a shorter spelling of the headers route, in the
	// style of /raw, /text, /body and /dirty.
	api("GET /api/headers/{email}/{id}", s.headers)

	// The native API; openapi.json describes every route below.
	s.handle("GET /api/v1/openapi.json", http.HandlerFunc(s.openAPI))
	s.handle("GET /api/v1/session", s.authed(s.session))
	s.handle("POST /api/v1/session", http.HandlerFunc(s.signIn))
	s.handle("DELETE /api/v1/session", http.HandlerFunc(s.signOut))
	api("GET /api/v1/messages", s.v1Messages)
	api("GET /api/v1/messages/{id}", s.v1Message)
	api("DELETE /api/v1/messages/{id}", s.v1DeleteMessage)
	api("GET /api/v1/messages/{id}/raw", s.v1Raw)
	api("GET /api/v1/messages/{id}/original", s.v1Original)
	api("GET /api/v1/messages/{id}/html", s.v1HTML)
	api("GET /api/v1/messages/{id}/text", s.v1Text)
	api("GET /api/v1/messages/{id}/headers", s.v1Headers)
	api("GET /api/v1/messages/{id}/attachments/{index}", s.v1Attachment)
	api("GET /api/v1/messages/{id}/links", s.v1Links)
	api("GET /api/v1/messages/{id}/codes", s.v1Codes)
	api("GET /api/v1/messages/{id}/events", s.v1Events)
	api("GET /api/v1/messages/{id}/diff", s.v1Diff)
	api("PUT /api/v1/messages/{id}/read", s.v1MarkRead)
	api("DELETE /api/v1/messages/{id}/read", s.v1MarkUnread)
	api("GET /api/v1/inboxes", s.v1Inboxes)
	api("DELETE /api/v1/inboxes/{email}", s.v1DeleteInbox)
	api("GET /api/v1/tags", s.v1Tags)
	api("GET /api/v1/messages/{id}/deliveries", s.v1MessageDeliveries)
	api("GET /api/v1/queue", s.v1Queue)
	api("GET /api/v1/queue/{id}", s.v1Delivery)
	api("POST /api/v1/queue/{id}/retry", s.v1Retry)
	api("POST /api/v1/queue/{id}/cancel", s.v1Cancel)
	api("GET /api/v1/webhooks/{name}/deliveries", s.v1WebhookDeliveries)
	s.handle("GET /api/v1/wait", s.streaming(s.v1Wait))
	s.handle("GET /api/v1/events/stream", s.streaming(s.v1Stream))

	if s.cfg.UI {
		s.handle("GET /{$}", http.HandlerFunc(s.uiIndex))
		s.handle("GET /ui/{file...}", s.uiFiles())
		s.handle("GET /favicon.ico", http.HandlerFunc(s.favicon))
	}
}

// ServeHTTP implements http.Handler: size limits, security headers, panic
// recovery, then routing. Unrouted requests get a JSON 404 or 405.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("web: panic in handler", zap.String("method", r.Method),
				zap.String("path", r.URL.Path), zap.Any("panic", v), zap.Stack("stack"))
			writeError(w, http.StatusInternalServerError, "internal error")
		}
	}()
	if len(r.RequestURI) > s.cfg.MaxURLBytes {
		writeError(w, http.StatusRequestURITooLong, fmt.Sprintf("request URI longer than %d bytes", s.cfg.MaxURLBytes))
		return
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.cfg.MaxBodyBytes))
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	}
	if handler, pattern := s.mux.Handler(r); pattern == "" {
		// ServeMux answers unrouted requests (404, 405, and redirects to
		// cleaned paths) in plain text; keep its status and headers but
		// answer API clients in JSON.
		rec := &statusRecorder{header: make(http.Header)}
		handler.ServeHTTP(rec, r)
		if rec.status == http.StatusNotFound || rec.status == http.StatusMethodNotAllowed {
			if allow := rec.header.Get("Allow"); allow != "" {
				h.Set("Allow", allow)
			}
			writeError(w, rec.status, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
			return
		}
	}
	// ServeMux.ServeHTTP, not the handler found above: it also sets the
	// request's path values.
	s.mux.ServeHTTP(w, r)
}

// statusRecorder captures what ServeMux's fallback handlers would answer.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
