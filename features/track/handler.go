package track

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Event kinds recorded by the handler.
const (
	EventClicked = "clicked"
	EventOpened  = "opened"
)

// Event is one redeemed tracking token.
type Event struct {
	Kind      string // EventClicked or EventOpened
	MessageID string
	Recipient string
	URL       string // the original URL of a click, as a browser reads it (see RewriteHTML); empty for an open
	IP        string // client address, without port
	UserAgent string
	Time      time.Time
}

// Recorder stores tracking events. Record is called synchronously with the
// request's context; an implementation that wants to answer faster queues
// the event itself. The handler logs a failed Record and answers anyway.
type Recorder interface {
	Record(ctx context.Context, e Event) error
}

// HandlerOption configures NewHandler.
type HandlerOption func(*handler)

// TrustProxy makes the handler take the client IP from the last
// (right-most) valid address in X-Forwarded-For, the one the trusted reverse
// proxy in front of smtpgate appended. Without it the header is ignored and
// RemoteAddr is used, because any client can send X-Forwarded-For.
func TrustProxy() HandlerOption { return func(h *handler) { h.trustProxy = true } }

// WithClock sets the clock that stamps Event.Time (default time.Now).
func WithClock(now func() time.Time) HandlerOption { return func(h *handler) { h.now = now } }

type handler struct {
	codec      *Codec
	rec        Recorder
	log        *zap.Logger
	trustProxy bool
	now        func() time.Time
}

// NewHandler returns the HTTP handler that redeems tracking tokens:
//
//	GET /c/{token}  302 to the click token's original URL, records a click
//	GET /o/{token}  a 43-byte transparent GIF, not cacheable, records an open
//
// HEAD answers like GET (same status and headers, no body) but records
// nothing, so link scanners and preview fetchers that probe with HEAD do not
// count as clicks. A malformed, tampered or wrong-kind token, a click URL
// that is not http(s), any other path, and any other method (405) get a
// JSON error such as {"error":"not found"} and never a redirect. A query
// string is ignored.
//
// The paths are matched from the start of r.URL.Path: mount the handler at
// "/" of the tracking host, or, when PublicURL has a path
// ("https://example.com/t"), behind http.StripPrefix("/t", h).
func NewHandler(c *Codec, rec Recorder, log *zap.Logger, opts ...HandlerOption) http.Handler {
	if log == nil {
		log = zap.NewNop()
	}
	h := &handler{codec: c, rec: rec, log: log, now: time.Now}
	for _, o := range opts {
		o(h)
	}
	return h
}

// pixelGIF is a 1×1 transparent GIF89a (43 bytes): header, logical screen
// 1×1 with a 2-colour global table (black, white), a graphic control
// extension making index 0 transparent, a 1×1 image descriptor, LZW data
// (minimum code size 2, one 2-byte block) and the trailer.
const pixelGIF = "GIF89a" +
	"\x01\x00\x01\x00\x80\x00\x00" +
	"\x00\x00\x00\xff\xff\xff" +
	"\x21\xf9\x04\x01\x00\x00\x00\x00" +
	"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00" +
	"\x02\x02\x44\x01\x00" +
	"\x3b"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	p := r.URL.Path
	if len(p) < 4 || p[0] != '/' || p[2] != '/' || (p[1] != 'c' && p[1] != 'o') {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	tok := p[3:]
	if p[1] == 'c' {
		h.click(w, r, tok)
		return
	}
	h.open(w, r, tok)
}

func (h *handler) click(w http.ResponseWriter, r *http.Request, tok string) {
	t, err := h.codec.Open(KindClick, tok)
	if err != nil {
		h.log.Debug("bad click token", zap.String("path", r.URL.Path), zap.String("ip", h.clientIP(r)))
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	// The rewriter seals cleaned URLs; cleaning again covers tokens sealed
	// before it did, so the event names the URL the browser is sent to.
	u := cleanURL(t.URL)
	loc, ok := location(u)
	if !ok {
		h.log.Warn("click token with an unredirectable URL", zap.String("message_id", t.MessageID))
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if r.Method == http.MethodGet {
		h.record(r, Event{Kind: EventClicked, MessageID: t.MessageID, Recipient: t.Recipient, URL: u})
	}
	hd := w.Header()
	hd.Set("Location", loc)
	hd.Set("Cache-Control", "no-store, private")
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusFound)
}

func (h *handler) open(w http.ResponseWriter, r *http.Request, tok string) {
	t, err := h.codec.Open(KindOpen, tok)
	if err != nil {
		h.log.Debug("bad open token", zap.String("path", r.URL.Path), zap.String("ip", h.clientIP(r)))
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if r.Method == http.MethodGet {
		h.record(r, Event{Kind: EventOpened, MessageID: t.MessageID, Recipient: t.Recipient})
	}
	hd := w.Header()
	hd.Set("Content-Type", "image/gif")
	hd.Set("Content-Length", strconv.Itoa(len(pixelGIF)))
	hd.Set("Cache-Control", "no-cache, no-store, must-revalidate, private")
	hd.Set("Pragma", "no-cache")
	hd.Set("Expires", "0")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		if _, err := io.WriteString(w, pixelGIF); err != nil {
			h.log.Debug("write pixel", zap.Error(err))
		}
	}
}

// record completes e from the request and hands it to the Recorder.
func (h *handler) record(r *http.Request, e Event) {
	if h.rec == nil {
		return
	}
	e.IP = h.clientIP(r)
	e.UserAgent = r.UserAgent()
	e.Time = h.now()
	if err := h.rec.Record(r.Context(), e); err != nil {
		h.log.Error("record tracking event",
			zap.String("kind", e.Kind), zap.String("message_id", e.MessageID), zap.Error(err))
	}
}

// clientIP returns the address of the client without port.
func (h *handler) clientIP(r *http.Request) string {
	if h.trustProxy {
		// The last header line and its last entry are the nearest proxy's.
		vals := r.Header.Values("X-Forwarded-For")
		for j := len(vals) - 1; j >= 0; j-- {
			parts := strings.Split(vals[j], ",")
			for i := len(parts) - 1; i >= 0; i-- {
				if a, err := netip.ParseAddr(strings.TrimSpace(parts[i])); err == nil {
					return a.Unmap().String()
				}
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return host
}

// writeError answers with a small JSON error body.
func writeError(w http.ResponseWriter, code int, msg string) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`{"error":"` + msg + `"}`))
}
