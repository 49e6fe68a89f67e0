package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// uiAssets holds the web UI: plain ES modules, CSS and an SVG icon, with no
// build step and nothing loaded from elsewhere.
//
//go:embed ui/static
var uiAssets embed.FS

// openAPIDoc is the OpenAPI 3 description of /api/v1.
//
//go:embed openapi.json
var openAPIDoc []byte

// cspUI is the policy of the UI's own pages. Message bodies are framed from
// /api/v1/messages/{id}/html, which carries a policy of its own.
const cspUI = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// uiIndex serves the UI's single page at /.
func (s *Server) uiIndex(w http.ResponseWriter, r *http.Request) {
	s.serveUIFile(w, r, "index.html")
}

// uiFiles serves the UI's files under /ui/.
func (s *Server) uiFiles() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		if name == "" || name != path.Clean(name) || strings.HasPrefix(name, ".") {
			writeError(w, http.StatusNotFound, "no such file")
			return
		}
		s.serveUIFile(w, r, name)
	})
}

// favicon serves the icon at the place browsers look first.
func (s *Server) favicon(w http.ResponseWriter, r *http.Request) {
	s.serveUIFile(w, r, "favicon.svg")
}

// serveUIFile serves one embedded file, revalidated by its content hash.
func (s *Server) serveUIFile(w http.ResponseWriter, r *http.Request, name string) {
	b, err := fs.ReadFile(uiAssets, "ui/static/"+name)
	if err != nil {
		writeError(w, http.StatusNotFound, "no such file")
		return
	}
	sum := sha256.Sum256(b)
	h := w.Header()
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Security-Policy", cspUI)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", `"`+hex.EncodeToString(sum[:12])+`"`)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// openAPI serves GET /api/v1/openapi.json.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Access-Control-Allow-Origin", "*") // a public description, for API tools
	_, _ = w.Write(openAPIDoc)
}
