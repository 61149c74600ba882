// Package origin enforces the browser-facing Origin rules and writes CORS
// headers for the OAuth Agent and cookie routes.
//
// Origins are compared exactly (scheme, host and port as the browser sends
// them); "null" is never trusted. CORS headers go only to trusted origins,
// with credentials, on successes and errors alike.
package origin

import (
	"errors"
	"net/http"
	"strings"
)

// ErrUntrusted reports a missing, null or untrusted Origin.
var ErrUntrusted = errors.New("origin: missing or untrusted Origin")

// Policy holds the trusted web origins.
type Policy struct {
	trusted map[string]bool
	cors    bool
}

// New returns a Policy. With cors false (same-origin deployments) no CORS
// headers are written and GET/HEAD requests without Origin are accepted.
func New(trusted []string, cors bool) *Policy {
	p := &Policy{trusted: make(map[string]bool, len(trusted)), cors: cors}
	for _, o := range trusted {
		p.trusted[o] = true
	}
	return p
}

// CORSEnabled reports whether CORS is on.
func (p *Policy) CORSEnabled() bool { return p.cors }

// Trusted reports whether o is exactly one of the trusted origins.
func (p *Policy) Trusted(o string) bool { return p.trusted[o] }

// Check applies the Origin rule to r: the Origin header must be present and
// trusted, except that GET and HEAD without Origin pass when CORS is off
// (browsers omit Origin on same-origin GET). A request with several Origin
// headers fails.
func (p *Policy) Check(r *http.Request) error {
	vals := r.Header["Origin"]
	switch len(vals) {
	case 0:
		if !p.cors && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			return nil
		}
		return ErrUntrusted
	case 1:
		if p.trusted[vals[0]] {
			return nil
		}
	}
	return ErrUntrusted
}

// CheckStrict requires a trusted Origin whatever the method and CORS mode
// (WebSocket upgrades: browsers always send Origin there).
func (p *Policy) CheckStrict(r *http.Request) error {
	if vals := r.Header["Origin"]; len(vals) == 1 && p.trusted[vals[0]] {
		return nil
	}
	return ErrUntrusted
}

// AddHeaders adds the CORS response headers for r's Origin when CORS is on
// and the origin is trusted. It always adds Vary: Origin when CORS is on, so
// that caches do not mix answers for different origins.
func (p *Policy) AddHeaders(h http.Header, r *http.Request) {
	if !p.cors {
		return
	}
	h.Add("Vary", "Origin")
	o := r.Header.Get("Origin")
	if o == "" || !p.trusted[o] || len(r.Header["Origin"]) != 1 {
		return
	}
	h.Set("Access-Control-Allow-Origin", o)
	h.Set("Access-Control-Allow-Credentials", "true")
}

// StripUpstream removes CORS headers an upstream set, so that only
// Gatehouse's apply.
func StripUpstream(h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(h, k)
		}
	}
}

// IsPreflight reports whether r is a CORS preflight request.
func IsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
}

// Preflight answers an OPTIONS request with 204. A trusted origin (with CORS
// on) gets the allowed methods, the requested headers echoed back when they
// are well-formed, credentials and a max age; anyone else gets no
// Access-Control-Allow-Origin.
func (p *Policy) Preflight(w http.ResponseWriter, r *http.Request, methods string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if !p.cors {
		h.Set("Allow", methods)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	o := r.Header.Get("Origin")
	if p.trusted[o] && len(r.Header["Origin"]) == 1 {
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Allow-Methods", methods)
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" && headerList(req) {
			h.Set("Access-Control-Allow-Headers", req)
		}
		h.Set("Access-Control-Max-Age", "86400")
	}
	w.WriteHeader(http.StatusNoContent)
}

// headerList reports whether s is a comma-separated list of header names.
func headerList(s string) bool {
	if len(s) > 1024 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_, ", c)) {
			return false
		}
	}
	return true
}
