package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
)

// Invariant 12 also holds for cookies an upstream sets: the response is not
// cacheable and carries nosniff and no-referrer (replacing the upstream's
// own Referrer-Policy).
func TestUpstreamSetCookieGetsSecurityHeaders(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/cookie" {
			w.Header().Set("Set-Cookie", "theme=dark; Path=/")
			w.Header().Set("Cache-Control", "public, max-age=3600")
		}
		w.Header().Set("Referrer-Policy", "strict-origin")
		w.WriteHeader(200)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	rt, err := NewRouter([]Route{{Name: "api", Path: "/api", Upstream: u, Timeout: time.Second, MaxBody: 1024, Entries: []authn.Entry{authn.Anonymous{}}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, httptest.NewRequest("GET", "/api/cookie", nil))
	h := rec.Result().Header
	if h.Get("Set-Cookie") == "" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("headers of a cookie-setting upstream response: %v", h)
	}
	rec = httptest.NewRecorder()
	rt.ServeHTTP(rec, httptest.NewRequest("GET", "/api/plain", nil))
	if got := rec.Result().Header.Get("Cache-Control"); got != "" {
		t.Fatalf("a response without cookies got Cache-Control %q", got)
	}
}
