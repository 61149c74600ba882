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
)

type ctxKey struct{}

type requestInfo struct {
	id     string
	logger *slog.Logger
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
	return context.WithValue(ctx, ctxKey{}, &requestInfo{id: id, logger: base.With("request_id", id)})
}

// Logger returns the request's logger, or fallback when ctx carries none.
func Logger(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if ri, ok := ctx.Value(ctxKey{}).(*requestInfo); ok {
		return ri.logger
	}
	return fallback
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	if ri, ok := ctx.Value(ctxKey{}).(*requestInfo); ok {
		return ri.id
	}
	return ""
}
