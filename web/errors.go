package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/smtpgate/smtpgate/store"
)

// errorBody is the JSON answer to every failed request. It extends Mailsac's
// ErrorResponseBody ({error, message}) with the HTTP status.
type errorBody struct {
	Status  int    `json:"status"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

// httpError is an error that carries the HTTP status it should be answered
// with and a message safe to show to the client.
type httpError struct {
	status  int
	message string
}

func (e *httpError) Error() string { return e.message }

func errorf(status int, message string) error { return &httpError{status: status, message: message} }

// errMessageNotFound is the one answer for a message that is missing, out of
// scope, or named by a malformed id.
var errMessageNotFound = errorf(http.StatusNotFound, "Message not found")

// writeError writes a JSON error answer.
func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, errorBody{Status: status, Error: http.StatusText(status), Message: message})
}

// writeJSON writes v as a JSON answer with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshalJSON(v)
	if err != nil {
		// Only our own types reach here; none can fail to marshal.
		status, b = http.StatusInternalServerError, []byte(`{"status":500,"error":"Internal Server Error","message":"internal error"}`+"\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Del("Content-Disposition")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// fail answers err: a client error as itself, store.ErrNotFound as 404, a
// cancelled or timed-out request as 503, anything else as a logged 500.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.message)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, errMessageNotFound.(*httpError).status, errMessageNotFound.Error())
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		s.log.Warn("web: request did not finish", zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "the request timed out")
	default:
		s.log.Error("web: request failed", zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.Error(err))
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// marshalJSON encodes v with a trailing newline and without escaping &, <
// and > (answers are served as application/json with nosniff, and Mailsac
// writes URLs as they are).
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode JSON: %w", err)
	}
	return b.Bytes(), nil
}
