package web

import (
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/net/html"

	"github.com/smtpgate/smtpgate/store"
	"github.com/smtpgate/smtpgate/summary"
)

// Content-Security-Policy of each kind of content answer.
const (
	// cspBody: the sanitised body may show inline styles and data: or cid:
	// images, nothing else, and only be framed by our own pages.
	cspBody = "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
	// cspDirty: the body as sent renders like a mail client with remote
	// content on, in a sandbox: no scripts, no forms, an opaque origin.
	cspDirty = "sandbox; default-src 'none'; img-src data: cid: http: https:; style-src 'unsafe-inline' http: https:; font-src data: http: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
	// cspInert: text, raw messages and downloads are never to be rendered.
	cspInert = "default-src 'none'; sandbox; frame-ancestors 'none'"
)

// content loads the entry named by r and decodes its message.
func (s *Server) content(r *http.Request, scope store.Scope) (*store.InboxEntry, *summary.Content, error) {
	e, err := s.entry(r, scope)
	if err != nil {
		return nil, nil, err
	}
	c, err := summary.Extract(e.Message.Raw)
	if err != nil {
		// Accepted mail always had a header; if it cannot be read now, show
		// an empty body rather than fail the whole request.
		s.log.Warn("web: cannot decode stored message", zap.String("id", e.Message.ID), zap.Error(err))
		c = &summary.Content{}
	}
	return e, c, nil
}

// writeContent writes a body with its type and policy, as a download when
// the request asks with ?download=1.
func writeContent(w http.ResponseWriter, r *http.Request, contentType, csp, filename string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Security-Policy", csp)
	if d := r.URL.Query().Get("download"); d == "1" || d == "true" {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// raw serves GET /api/raw/{email}/{id}: the message as stored (after
// smtpgate's features ran). With ?original=1 it is the message as the client
// submitted it.
func (s *Server) raw(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	e, err := s.entry(r, scope)
	if err != nil {
		return err
	}
	raw := e.Message.Raw
	if o := r.URL.Query().Get("original"); (o == "1" || o == "true") && e.Message.Original != nil {
		raw = e.Message.Original
	}
	writeContent(w, r, "text/plain; charset=utf-8", cspInert, e.Message.ID+".eml", raw)
	return nil
}

// text serves GET /api/text/{email}/{id}: the text body, or text made from
// the HTML body when there is none.
func (s *Server) text(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	e, c, err := s.content(r, scope)
	if err != nil {
		return err
	}
	text := c.Text
	if text == "" && c.HTML != "" {
		text = htmlToText(c.HTML)
	}
	writeContent(w, r, "text/plain; charset=utf-8", cspInert, e.Message.ID+".txt", []byte(text))
	return nil
}

// body serves GET /api/body/{email}/{id}: the HTML body sanitised, or the
// text body in a <pre> when there is no HTML.
func (s *Server) body(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	e, c, err := s.content(r, scope)
	if err != nil {
		return err
	}
	src := c.HTML
	if src == "" {
		src = textToHTML(c.Text)
	}
	out := sanitizeHTML(src, inlineImages(c.Attachments))
	writeContent(w, r, "text/html; charset=utf-8", cspBody, e.Message.ID+".html", []byte(out))
	return nil
}

// dirty serves GET /api/dirty/{email}/{id}: the HTML body as sent, with
// cid: images replaced by data: URLs as Mailsac does.
func (s *Server) dirty(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	e, c, err := s.content(r, scope)
	if err != nil {
		return err
	}
	out := textToHTML(c.Text)
	if c.HTML != "" {
		out = inlineCIDs(c.HTML, inlineImages(c.Attachments))
	}
	writeContent(w, r, "text/html; charset=utf-8", cspDirty, e.Message.ID+".html", []byte(out))
	return nil
}

// inlineImages returns a resolver from Content-ID to a data: URL over the
// message's inline images.
func inlineImages(parts []summary.Part) cidResolver {
	return func(cid string) (string, bool) {
		cid = strings.Trim(cid, "<>")
		for i := range parts {
			p := &parts[i]
			if p.ContentID == "" || !strings.EqualFold(p.ContentID, cid) {
				continue
			}
			d := "data:" + strings.ToLower(p.ContentType) + ";base64," + base64.StdEncoding.EncodeToString(p.Data)
			if !dataImage.MatchString(d) {
				return "", false
			}
			return d, true
		}
		return "", false
	}
}

// inlineCIDs replaces cid: image sources in src by data: URLs, leaving every
// other byte as it is.
func inlineCIDs(src string, resolve cidResolver) string {
	if !strings.Contains(strings.ToLower(src), "cid:") {
		return src
	}
	z := html.NewTokenizer(strings.NewReader(src))
	var b strings.Builder
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return b.String()
		}
		raw := string(z.Raw())
		if tt == html.StartTagToken || tt == html.SelfClosingTagToken {
			tok := z.Token()
			changed := false
			for i, a := range tok.Attr {
				if (a.Key == "src" || a.Key == "background") && len(a.Val) > 4 && strings.EqualFold(a.Val[:4], "cid:") {
					if d, ok := resolve(a.Val[4:]); ok {
						tok.Attr[i].Val, changed = d, true
					}
				}
			}
			if changed {
				b.WriteString(tok.String())
				continue
			}
		}
		b.WriteString(raw)
	}
}

// headerField is one header in Mailsac's ordered-JSON format.
type headerField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// headers serves GET /api/addresses/{email}/messages/{id}/headers in
// Mailsac's three formats, chosen by ?messageHeadersFormat= (or the older
// ?format=): json (default; lower-cased names, each with the list of its
// values), json-ordered (also spelt ordered-json; [{name, value}] in
// message order), and plain (Name: value lines).
func (s *Server) headers(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	q := r.URL.Query()
	format := q.Get("messageHeadersFormat")
	if format == "" {
		format = q.Get("format")
	}
	switch format {
	case "", "json", "json-ordered", "ordered-json", "plain":
	default:
		return errorf(http.StatusBadRequest, "messageHeadersFormat must be json, json-ordered or plain")
	}
	e, c, err := s.content(r, scope)
	if err != nil {
		return err
	}
	var body []byte
	contentType, name := "application/json; charset=utf-8", e.Message.ID+"-headers.json"
	switch format {
	case "", "json":
		m := make(map[string][]string, len(c.Headers))
		for _, f := range c.Headers {
			k := strings.ToLower(f.Key)
			m[k] = append(m[k], f.Value)
		}
		body, err = marshalJSON(m)
	case "json-ordered", "ordered-json":
		fs := make([]headerField, 0, len(c.Headers))
		for _, f := range c.Headers {
			fs = append(fs, headerField{Name: strings.ToLower(f.Key), Value: f.Value})
		}
		body, err = marshalJSON(fs)
	case "plain":
		var b strings.Builder
		for _, f := range c.Headers {
			b.WriteString(f.Key + ": " + f.Value + "\n")
		}
		body, contentType, name = []byte(b.String()), "text/plain; charset=utf-8", e.Message.ID+"-headers.txt"
	}
	if err != nil {
		return err
	}
	writeContent(w, r, contentType, cspInert, name, body)
	return nil
}

// attachmentMeta is Mailsac's AttachmentMeta object.
type attachmentMeta struct {
	Checksum           string `json:"checksum"`
	ContentDisposition string `json:"contentDisposition"`
	ContentID          string `json:"contentId"`
	ContentType        string `json:"contentType"`
	FileName           string `json:"fileName"`
	Length             int64  `json:"length"`
}

// listAttachments serves GET
// /api/addresses/{email}/messages/{id}/attachments: the metadata of every
// attachment and inline file, in message order.
func (s *Server) listAttachments(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	e, err := s.entry(r, scope)
	if err != nil {
		return err
	}
	out := make([]attachmentMeta, 0, len(e.Message.Summary.Attachments))
	for _, a := range e.Message.Summary.Attachments {
		disp := "attachment"
		if a.Inline {
			disp = "inline"
		}
		out = append(out, attachmentMeta{Checksum: a.MD5, ContentDisposition: disp, ContentID: a.ContentID,
			ContentType: a.ContentType, FileName: a.Filename, Length: a.Size})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// downloadAttachment serves GET
// /api/addresses/{email}/messages/{id}/attachments/{attachment}, where the
// attachment is named, as in Mailsac, by its MD5 sum, its Content-ID or its
// file name (first match in message order). The bytes are always sent as
// application/octet-stream, as a download.
func (s *Server) downloadAttachment(w http.ResponseWriter, r *http.Request, scope store.Scope) error {
	ident := r.PathValue("attachment")
	e, c, err := s.content(r, scope)
	if err != nil {
		return err
	}
	for _, p := range c.Attachments {
		if !strings.EqualFold(p.MD5, ident) && (p.ContentID == "" || p.ContentID != strings.Trim(ident, "<>")) &&
			(p.Filename == "" || p.Filename != ident) {
			continue
		}
		name := safeFilename(p.Filename)
		if name == "" {
			name = p.MD5
		}
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Security-Policy", cspInert)
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(p.Data)
		return nil
	}
	return errorf(http.StatusNotFound, fmt.Sprintf("message %s has no attachment %q", e.Message.ID, ident))
}

// safeFilename keeps the last path element of name without control
// characters.
func safeFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, name)
	if name == "." || name == ".." {
		return ""
	}
	return strings.TrimSpace(name)
}
