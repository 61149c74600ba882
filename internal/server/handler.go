package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/mint"
	"github.com/gatehouse-dev/gatehouse/internal/oauthagent"
	"github.com/gatehouse-dev/gatehouse/internal/telemetry"
)

// compose builds the request pipeline.
func (s *Server) compose(agent *oauthagent.Agent) http.Handler {
	var basePath string
	if s.cfg.OAuthAgent != nil {
		basePath = s.cfg.OAuthAgent.BasePath
	}
	dispatch := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/healthz":
			s.health(w, r)
		case p == "/readyz":
			s.readiness(w, r)
		case p == mint.JWKSPath && s.minter != nil:
			s.minter.ServeJWKS(w, r)
		case agent != nil && config.PathCovers(basePath, p):
			agent.ServeHTTP(w, r)
		case s.serveVault(w, r): // /connections, and /vault without vault.listen
		default:
			for _, res := range config.ReservedPaths {
				if config.PathCovers(res, p) {
					httperr.Write(w, r, telemetry.Logger(r.Context(), s.logger), httperr.ErrNotFound)
					return
				}
			}
			s.router.ServeHTTP(w, r)
		}
	})
	return s.accessLog(s.recoverer(canonicalPath(dispatch, s)))
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeStatus(w, http.StatusOK, `{"status":"ok"}`)
}

func (s *Server) readiness(w http.ResponseWriter, r *http.Request) {
	if !s.Ready() {
		httperr.Write(w, r, nil, errNotReady)
		return
	}
	writeStatus(w, http.StatusOK, `{"status":"ready"}`)
}

func writeStatus(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// canonicalPath refuses paths that could mean something else to an upstream
// than to Gatehouse's prefix match: dot segments (also percent-encoded),
// empty segments, backslashes, encoded slashes and control characters.
func canonicalPath(next http.Handler, s *Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkPath(r.URL.Path, r.URL.EscapedPath()); err != nil {
			httperr.Write(w, r, telemetry.Logger(r.Context(), s.logger), httperr.ErrBadPath.WithCause(err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func checkPath(p, escaped string) error {
	if p == "" || p[0] != '/' {
		return fmt.Errorf("path %q is not absolute", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("path contains a control character or backslash")
		}
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		// A path parameter does not hide a dot segment: servlet containers
		// read /api/..;x/admin as /admin.
		if seg, _, _ = strings.Cut(seg, ";"); seg == "." || seg == ".." {
			return fmt.Errorf("path contains a dot segment")
		}
	}
	if strings.Contains(p, "//") {
		return fmt.Errorf("path contains an empty segment")
	}
	lower := strings.ToLower(escaped)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
		return fmt.Errorf("path contains an encoded slash or backslash")
	}
	return nil
}

// statusWriter records the status and size of a response. Unwrap lets
// http.ResponseController reach Flush and Hijack of the underlying writer
// (streaming responses and WebSocket upgrades).
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog gives each request an id (X-Request-Id on the response) and logs
// one line when it ends: method, path without query, status, size, time.
// Never headers, cookies or query strings: they carry credentials.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.opts.Now()
		id := telemetry.NewRequestID()
		w.Header().Set("X-Request-Id", id)
		ctx := telemetry.WithRequest(r.Context(), s.logger, id)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		// Typed attributes (no value boxed into an any) on the base logger,
		// with the request id first as on the request logger's lines: the
		// same JSON line without building that logger. Above info, no work.
		if s.logger.Enabled(ctx, slog.LevelInfo) {
			s.logger.LogAttrs(ctx, slog.LevelInfo, "request",
				slog.String("request_id", id),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", sw.status),
				slog.Int64("bytes", sw.bytes),
				slog.Float64("duration_ms", float64(s.opts.Now().Sub(start).Microseconds())/1000),
				slog.String("remote", r.RemoteAddr),
			)
		}
	})
}

// recoverer turns a panic into a 500 and a log line with the stack (never the
// panic value, which could hold request data). It runs inside the access log,
// so a request that panicked still gets its access-log line. http.ErrAbortHandler passes
// through: it aborts a response deliberately.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.logger.Error("panic while serving a request", "path", r.URL.Path, "panic_type", fmt.Sprintf("%T", v), "stack", string(debug.Stack()))
			// Once the response has started there is nothing left to answer.
			if sw, ok := w.(*statusWriter); ok && sw.status != 0 {
				return
			}
			httperr.Write(w, r, nil, fmt.Errorf("panic"))
		}()
		next.ServeHTTP(w, r)
	})
}

func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}
