package app

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/features/track"
	"github.com/smtpgate/smtpgate/store"
)

// trackRecorder turns redeemed tracking tokens into store events.
type trackRecorder struct {
	events store.EventStore
	notify func()
}

func (r trackRecorder) Record(ctx context.Context, e track.Event) error {
	err := r.events.AddEvents(ctx, &store.Event{
		MessageID: e.MessageID, Type: e.Kind, Recipient: e.Recipient, Time: e.Time.UTC(),
		IP: e.IP, UserAgent: e.UserAgent, URL: e.URL,
	})
	if err == nil && r.notify != nil {
		r.notify()
	}
	return err
}

// mountTracking serves the click and open endpoints under the path of the
// tracking public URL, on the HTTP listener. The handler checks every
// token's signature itself, so it needs no API key. The handler of the
// policy in force is looked up per request, so a reload with a new secret
// takes effect at once.
func (a *App) mountTracking(mux interface{ Handle(string, http.Handler) }, publicURL string) {
	prefix := ""
	if u, err := url.Parse(publicURL); err == nil {
		prefix = strings.TrimSuffix(u.Path, "/")
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		th := a.cur.Load().track
		if th == nil {
			writeNotFound(w)
			return
		}
		if prefix != "" {
			th = http.StripPrefix(prefix, th)
		}
		th.ServeHTTP(w, r)
	})
	mux.Handle(prefix+"/c/", h)
	mux.Handle(prefix+"/o/", h)
	a.log.Debug("tracking endpoints mounted", zap.String("prefix", prefix+"/"))
}

// trackHandler returns the token-redeeming handler for a codec, or nil.
func (a *App) trackHandler(codec *track.Codec) http.Handler {
	if codec == nil {
		return nil
	}
	return track.NewHandler(codec, trackRecorder{events: a.store, notify: a.notifyEvents}, a.log.Named("track"))
}

func writeNotFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte(`{"error":"not found"}` + "\n")) //nolint:errcheck
}
