// Package httperr is Gatehouse's one error type for HTTP handlers and the one
// function that writes it.
//
// Handlers return an *Error (or any error, which becomes a 500 server_error).
// The Code and Message go to the client as {"code":..,"message":..}; the wrapped
// cause stays on the server and is logged. Messages are fixed texts chosen by
// Gatehouse: they never carry credentials, upstream bodies or internal addresses.
package httperr

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

// Error is an HTTP error with a stable code for the client and a cause for the log.
type Error struct {
	Status  int    // HTTP status
	Code    string // stable machine-readable code, e.g. "unauthorized_request"
	Message string // short human-readable text, safe to show to a client
	// WWWAuthenticate, when set, is sent as the WWW-Authenticate header (RFC 6750).
	WWWAuthenticate string
	// Err is the cause, logged but never sent to the client.
	Err error
}

// New returns an *Error without a cause.
func New(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// Wrap returns an *Error whose cause is err.
func Wrap(err error, status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message, Err: err}
}

// WithCause returns a copy of e with the given cause.
func (e *Error) WithCause(err error) *Error {
	c := *e
	c.Err = err
	return &c
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Code, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Codes shared by more than one component. Component-specific codes live with
// the component (for example the OAuth Agent's).
const (
	CodeServerError      = "server_error"
	CodeInvalidRequest   = "invalid_request"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeRequestTooLarge  = "request_too_large"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeBadGateway       = "bad_gateway"
	CodeGatewayTimeout   = "gateway_timeout"
	CodeASError          = "authorization_server_error"
)

// Common errors.
var (
	ErrNotFound         = New(http.StatusNotFound, CodeNotFound, "The requested resource was not found")
	ErrMethodNotAllowed = New(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method not allowed")
	ErrRequestTooLarge  = New(http.StatusRequestEntityTooLarge, CodeRequestTooLarge, "The request is too large")
	ErrBadPath          = New(http.StatusBadRequest, CodeInvalidRequest, "The request path is not in canonical form")
)

// As returns err as an *Error, turning any other error into a 500 server_error
// that keeps err as its cause.
func As(err error) *Error {
	var he *Error
	if errors.As(err, &he) {
		return he
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return ErrRequestTooLarge.WithCause(err)
	}
	return Wrap(err, http.StatusInternalServerError, CodeServerError, "A technical problem occurred in Gatehouse")
}

// Write sends err as a JSON error response and logs its cause. Server errors
// (5xx) are logged at error level, client errors at info level. A HEAD request
// gets the status and headers only.
func Write(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	he := As(err)
	if logger != nil {
		level := slog.LevelInfo
		if he.Status >= 500 {
			level = slog.LevelError
		}
		attrs := []slog.Attr{slog.Int("status", he.Status), slog.String("code", he.Code)}
		if he.Err != nil {
			attrs = append(attrs, slog.String("cause", he.Err.Error()))
		}
		logger.LogAttrs(r.Context(), level, "request failed", attrs...)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// Invariant 12: errors under the agent's base path can be written before
	// the agent runs (canonical-path check); every error carries all three.
	h.Set("Referrer-Policy", "no-referrer")
	h.Del("Content-Length")
	if he.WWWAuthenticate != "" {
		h.Set("WWW-Authenticate", he.WWWAuthenticate)
	}
	w.WriteHeader(he.Status)
	if r.Method == http.MethodHead {
		return
	}
	body, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{he.Code, he.Message})
	_, _ = w.Write(body)
}

// HandlerFunc is an HTTP handler that returns an error instead of writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handler adapts f to http.Handler, writing any error it returns with Write.
func Handler(logger func(*http.Request) *slog.Logger, f HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			Write(w, r, logger(r), err)
		}
	})
}
