package web

import (
	"context"
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
)

// sessionCookie is the name of the UI's cookie. It holds the API key
// itself, HttpOnly (page scripts never see it) and SameSite=Strict, so a
// key revoked by a policy reload stops working at once and no server-side
// session state exists.
const sessionCookie = "smtpgate_key"

// rememberFor is how long a "remember me" session cookie lives.
const rememberFor = 30 * 24 * time.Hour

// apiHandler serves one authenticated API request. An error it returns is
// answered by Server.fail.
type apiHandler func(w http.ResponseWriter, r *http.Request, scope store.Scope) error

// credential says how a request was authenticated.
type credential int

const (
	viaKey    credential = iota // a key in a header or the query: sent on purpose
	viaCookie                   // the UI's session cookie: sent by the browser on its own
	viaOpen                     // no key, from an open network
)

func (c credential) String() string {
	return [...]string{"key", "cookie", "open"}[c]
}

type credentialKey struct{}

// credentialOf returns how the request in ctx was authenticated.
func credentialOf(ctx context.Context) credential {
	c, _ := ctx.Value(credentialKey{}).(credential)
	return c
}

// authed wraps h with authentication and the per-request timeout.
func (s *Server) authed(h apiHandler) http.Handler {
	return s.withAuth(h, s.cfg.RequestTimeout)
}

// streaming wraps h with authentication but no timeout: the handler bounds
// its own time (wait, event stream).
func (s *Server) streaming(h apiHandler) http.Handler {
	return s.withAuth(h, 0)
}

func (s *Server) withAuth(h apiHandler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		scope, via, err := s.authenticate(r)
		if err == nil && via != viaKey && !safeMethod(r.Method) && !sameOrigin(r) {
			// The browser attaches the cookie (and an open network admits
			// the request) whatever page asked: refuse changes that another
			// site may have triggered.
			err = errorf(http.StatusForbidden, "cross-site request refused: send the API key in a header")
		}
		if err != nil {
			if he, ok := err.(*httpError); ok && he.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="smtpgate"`)
			}
			s.fail(w, r, err)
			return
		}
		ctx := context.WithValue(r.Context(), credentialKey{}, via)
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		if err := h(w, r.WithContext(ctx), scope); err != nil {
			s.fail(w, r, err)
		}
	})
}

// authenticate finds the scope of r: from an explicit key, else the session
// cookie, else an open network.
func (s *Server) authenticate(r *http.Request) (store.Scope, credential, error) {
	key, err := apiKey(r)
	via := viaKey
	if he, ok := err.(*httpError); ok && he == errNoKey {
		if c, cerr := r.Cookie(sessionCookie); cerr == nil && c.Value != "" {
			key, via, err = c.Value, viaCookie, nil
		} else if s.open(r) {
			return store.Scope{All: true}, viaOpen, nil
		}
	}
	if err != nil {
		return store.Scope{}, via, err
	}
	scope, ok := s.keys.Scope(key)
	if !ok {
		s.log.Info("web: unknown API key", zap.String("remote", r.RemoteAddr), zap.String("path", r.URL.Path),
			zap.Stringer("via", via))
		if via == viaCookie {
			return store.Scope{}, via, errorf(http.StatusUnauthorized, "the signed-in API key is no longer valid: sign in again")
		}
		return store.Scope{}, via, errorf(http.StatusUnauthorized, "unknown API key")
	}
	return scope, via, nil
}

// open reports whether r comes from one of Config.OpenNetworks.
func (s *Server) open(r *http.Request) bool {
	if s.cfg.OpenNetworks == nil {
		return false
	}
	nets := s.cfg.OpenNetworks()
	if len(nets) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.IP(ap.Addr().Unmap().AsSlice())
	return slices.ContainsFunc(nets, func(n *net.IPNet) bool { return n.Contains(ip) })
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin reports whether a browser says r comes from a page of this
// server: Sec-Fetch-Site: same-origin, or else an Origin naming our host.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// errNoKey is apiKey's answer to a request without any key.
var errNoKey = &httpError{status: http.StatusUnauthorized, message: "missing API key: send it in the Mailsac-Key header"}

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
		return "", errNoKey
	}
	for _, k := range keys[1:] {
		if k != keys[0] {
			return "", &httpError{status: http.StatusBadRequest, message: "the request carries two different API keys"}
		}
	}
	return keys[0], nil
}

// sessionInfo answers GET /api/v1/session.
type sessionInfo struct {
	Via       string   `json:"via"` // key, cookie or open
	AllLogins bool     `json:"all_logins"`
	Logins    []string `json:"logins"`
	UI        bool     `json:"ui"`
}

// session serves GET /api/v1/session: how the caller is signed in and what
// it may read.
func (s *Server) session(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	logins := slices.Clone(scope.Logins)
	slices.Sort(logins)
	writeJSON(w, http.StatusOK, sessionInfo{Via: credentialOf(r.Context()).String(), AllLogins: scope.All,
		Logins: nonNil(logins), UI: s.cfg.UI})
	return nil
}

// signInRequest is the body of POST /api/v1/session.
type signInRequest struct {
	Key      string `json:"key"`
	Remember bool   `json:"remember"`
}

// signIn serves POST /api/v1/session: it checks the key and sets the
// session cookie. The body is JSON {"key": "...", "remember": false} or a
// form with the same fields.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !sameOrigin(r) && (r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != "") {
		writeError(w, http.StatusForbidden, "cross-site sign-in refused")
		return
	}
	var req signInRequest
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.fail(w, r, errorf(http.StatusBadRequest, "body must be JSON {\"key\": \"...\", \"remember\": false}"))
			return
		}
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseForm(); err != nil {
			s.fail(w, r, errorf(http.StatusBadRequest, "unreadable form"))
			return
		}
		req.Key = r.PostForm.Get("key")
		req.Remember = r.PostForm.Get("remember") == "on" || r.PostForm.Get("remember") == "true"
	default:
		writeError(w, http.StatusUnsupportedMediaType, "send the key as JSON or as a form")
		return
	}
	req.Key = strings.TrimSpace(req.Key)
	scope, ok := s.keys.Scope(req.Key)
	if req.Key == "" || !ok {
		s.log.Info("web: sign-in with an unknown API key", zap.String("remote", r.RemoteAddr))
		w.Header().Set("WWW-Authenticate", `Bearer realm="smtpgate"`)
		writeError(w, http.StatusUnauthorized, "unknown API key")
		return
	}
	c := &http.Cookie{Name: sessionCookie, Value: req.Key, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || s.cfg.SecureCookie}
	if req.Remember {
		c.MaxAge = int(rememberFor / time.Second)
	}
	if err := c.Valid(); err != nil {
		writeError(w, http.StatusBadRequest, "the key cannot be kept in a cookie: use it in a header")
		return
	}
	http.SetCookie(w, c)
	logins := slices.Clone(scope.Logins)
	slices.Sort(logins)
	writeJSON(w, http.StatusOK, sessionInfo{Via: viaCookie.String(), AllLogins: scope.All, Logins: nonNil(logins), UI: s.cfg.UI})
}

// signOut serves DELETE /api/v1/session: it clears the session cookie.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || s.cfg.SecureCookie})
	w.WriteHeader(http.StatusNoContent)
}
