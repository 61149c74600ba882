package demo

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
)

// NewAPI is the example API behind Gatehouse. It accepts only requests with
// a valid JWT access token (verified against the provider's JWKS) and
// answers with the claims it received, so the demo shows what an upstream
// gets from Gatehouse. It never sees a cookie.
func NewAPI(v *jwtverify.Verifier, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &API{}
	a.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		auth := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || token == "" {
			writeAPIError(w, `Bearer`, "unauthorized", "A bearer access token is required")
			return
		}
		claims, err := v.Verify(r.Context(), token)
		if err != nil {
			logger.Info("example API refused a token", "error", err.Error())
			writeAPIError(w, `Bearer error="invalid_token"`, "unauthorized", "The access token is missing, invalid or expired")
			return
		}
		resp := map[string]any{
			"message":         "Hello from the example API",
			"method":          r.Method,
			"path":            r.URL.Path,
			"claims":          claims.Raw,
			"cookiesReceived": r.Header.Get("Cookie") != "",
		}
		if r.Body != nil {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
			var posted any
			if len(body) > 0 && json.Unmarshal(body, &posted) == nil {
				resp["received"] = posted
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(resp)
	})
	return a
}

// API is the example API handler.
type API struct {
	h        http.Handler
	requests atomic.Int64
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.h.ServeHTTP(w, r) }

// Requests returns how many requests reached the API.
func (a *API) Requests() int64 { return a.requests.Load() }

func writeAPIError(w http.ResponseWriter, challenge, code, msg string) {
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}
