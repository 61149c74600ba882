// Package telemetry carries the request-scoped logger and request id, and
// builds the process logger.
//
// Log lines never carry credential values: request logs name the method, the
// path without its query string, the route, the status, sizes and timing.
package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
)

type ctxKey struct{}

type requestInfo struct {
	id   string
	base *slog.Logger
	// logger is base with the request id, built when a line is first
	// logged for the request: most requests log only their access line,
	// which adds the id itself, and slog's With costs several allocations.
	logger atomic.Pointer[slog.Logger]
}

// NewLogger returns a JSON logger writing to w at the given level
// ("debug", "info", "warn", "error").
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("telemetry: log level %q: %w", level, err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// NewRequestID returns a random 16-byte id as 32 hex characters.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// WithRequest returns a context carrying the request id and a logger that
// adds it to every line.
func WithRequest(ctx context.Context, base *slog.Logger, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, &requestInfo{id: id, base: base})
}

// Logger returns the request's logger, or fallback when ctx carries none.
func Logger(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	ri, ok := ctx.Value(ctxKey{}).(*requestInfo)
	if !ok {
		return fallback
	}
	if l := ri.logger.Load(); l != nil {
		return l
	}
	// Goroutines of one request racing here build equal loggers.
	l := ri.base.With("request_id", ri.id)
	ri.logger.Store(l)
	return l
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	if ri, ok := ctx.Value(ctxKey{}).(*requestInfo); ok {
		return ri.id
	}
	return ""
}
