package web

import (
	"context"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
)

// apiHandler serves one authenticated API request. An error it returns is
// answered by Server.fail.
type apiHandler func(w http.ResponseWriter, r *http.Request, scope store.Scope) error

// authed wraps h with the API-key check and the per-request timeout.
func (s *Server) authed(h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		var scope store.Scope
		key, err := apiKey(r)
		if err == nil {
			var ok bool
			if scope, ok = s.keys.Scope(key); !ok {
				s.log.Info("web: unknown API key", zap.String("remote", r.RemoteAddr), zap.String("path", r.URL.Path))
				err = errorf(http.StatusUnauthorized, "unknown API key")
			}
		}
		if err != nil {
			if he, ok := err.(*httpError); ok && he.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="smtpgate"`)
			}
			s.fail(w, r, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		if err := h(w, r.WithContext(ctx), scope); err != nil {
			s.fail(w, r, err)
		}
	})
}

// apiKey returns the key of r from, in Mailsac's order of preference, the
// Mailsac-Key header, an Authorization: Bearer header, or the _mailsacKey
// query parameter. Two different keys in one request are refused.
func apiKey(r *http.Request) (string, error) {
	var keys []string
	if v := strings.TrimSpace(r.Header.Get("Mailsac-Key")); v != "" {
		keys = append(keys, v)
	}
	if v := r.Header.Get("Authorization"); v != "" {
		scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(cred) == "" {
			return "", &httpError{status: http.StatusUnauthorized, message: "Authorization header must be \"Bearer <key>\""}
		}
		keys = append(keys, strings.TrimSpace(cred))
	}
	if v := r.URL.Query().Get("_mailsacKey"); v != "" {
		keys = append(keys, v)
	}
	if len(keys) == 0 {
		return "", &httpError{status: http.StatusUnauthorized, message: "missing API key: send it in the Mailsac-Key header"}
	}
	for _, k := range keys[1:] {
		if k != keys[0] {
			return "", &httpError{status: http.StatusBadRequest, message: "the request carries two different API keys"}
		}
	}
	return keys[0], nil
}
