// Package web serves smtpgate over HTTP: the capture API in the shape of
// Mailsac's REST API (so the official @mailsac/api client works against it
// with only a different baseURL), /healthz, and a Handle hook through which
// the application mounts further routes (tracking endpoints, the web UI).
//
// Every API route needs an API key (Mailsac-Key header, Authorization:
// Bearer, or the _mailsacKey query parameter) that a KeyResolver maps to a
// store.Scope. A message outside the key's scope is answered exactly like a
// message that does not exist (404), so message ids cannot be probed.
// Every error is JSON: {"status": 404, "error": "Not Found", "message": "..."}.
//
// Routes (all under /api, as Mailsac's base URL https://mailsac.com/api):
//
//	GET    /api/me                                        the key's logins
//	GET    /api/addresses/{email}/messages                ?limit= ?until= ?before=
//	GET    /api/addresses/{email}/messages/{id}           one message object
//	DELETE /api/addresses/{email}/messages/{id}
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
package web

import (
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
)

// KeyResolver maps an API key to the logins whose mail it may read.
type KeyResolver interface {
	// Scope returns the scope of key, and false when the key is unknown.
	Scope(key string) (store.Scope, bool)
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
	RequestTimeout time.Duration
	// MaxUntilScan bounds how many inbox entries one ?until= listing may
	// skip before it gives up with 400 (default 100,000).
	MaxUntilScan int
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
	return c
}

// Server is the HTTP front of smtpgate. It implements http.Handler.
type Server struct {
	cfg  Config
	st   store.Store
	keys KeyResolver
	log  *zap.Logger
	mux  *http.ServeMux
}

// New returns a Server reading captured mail from st and authenticating API
// keys with keys.
func New(cfg Config, st store.Store, keys KeyResolver, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{cfg: cfg.withDefaults(), st: st, keys: keys, log: log, mux: http.NewServeMux()}
	s.routes()
	return s
}

// Handle mounts h at pattern (net/http ServeMux syntax, e.g. "GET /t/{token}").
// Mounted handlers get the Server's panic recovery and security headers but
// no API-key check: they authenticate on their own terms.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", s.healthz)

	api := func(pattern string, h apiHandler) { s.mux.Handle(pattern, s.authed(h)) }
	api("GET /api/me", s.me)
	api("GET /api/addresses/{email}/messages", s.listMessages)
	api("GET /api/addresses/{email}/messages/{id}", s.getMessage)
	api("DELETE /api/addresses/{email}/messages/{id}", s.deleteMessage)
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
