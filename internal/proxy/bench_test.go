package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/origin"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/sessioncookie"
)

// Per-request costs of the router, for `make bench`'s micro view
// (BENCHMARKS.md). Run: go test -run '^$' -bench . ./internal/proxy

// BenchmarkMatch finds the longest matching prefix among ten routes.
func BenchmarkMatch(b *testing.B) {
	rt := testRouter(b, "/api", "/api/orders", "/api/web/orders", "/api/billing", "/api/users",
		"/partner/reports", "/internal", "/api/v2/orders", "/api/v2/users", "/static")
	b.ReportAllocs()
	for b.Loop() {
		if r := rt.Match("/api/web/orders/42/items"); r == nil || r.Path != "/api/web/orders" {
			b.Fatal(r)
		}
	}
}

// benchRequest is what a browser sends to a cookie route, plus the headers
// a client must not get through (spoofed X-Forwarded-*, Forwarded).
func benchRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://api.example.com/api/orders/42?expand=items", nil)
	r.RemoteAddr = "203.0.113.7:51234"
	h := r.Header
	h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
	h.Set("Accept", "application/json")
	h.Set("Accept-Language", "en-GB,en;q=0.9")
	h.Set("Accept-Encoding", "gzip, deflate, br")
	h.Set("Origin", "https://www.example.com")
	h.Set("Referer", "https://www.example.com/orders")
	h.Set("Connection", "keep-alive")
	h.Set("Cookie", "example-at=sealed-access-token; example-csrf=sealed-csrf-token")
	h.Set("X-Example-Csrf", "csrf-token")
	h.Set("X-Forwarded-For", "198.51.100.1")
	h.Set("Forwarded", "for=198.51.100.1")
	return r
}

func benchRoute(b *testing.B, opts Options) *route {
	b.Helper()
	up, _ := url.Parse("http://orders.internal:8080/v1")
	rt, err := NewRouter([]Route{{Name: "orders", Path: "/api/orders", StripPrefix: true, Upstream: up,
		Timeout: time.Second, MaxBody: 1 << 20, Entries: []authn.Entry{authn.Anonymous{}}}}, opts)
	if err != nil {
		b.Fatal(err)
	}
	return rt.routes[0]
}

// BenchmarkRewrite is the route's Rewrite hook: prefix strip, upstream URL,
// header scrub, X-Forwarded-* rebuilt, the credential set. The clone
// ReverseProxy makes before calling it is outside the timed part.
func BenchmarkRewrite(b *testing.B) {
	codec := sessioncookie.New(sessioncookie.Config{Prefix: "example", Path: "/"})
	x := benchRoute(b, Options{PublicHost: "api.example.com", Cookies: codec,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	in := benchRequest()
	in = in.WithContext(context.WithValue(in.Context(), credentialKey{}, "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl"))
	const batch = 1024
	prs := make([]httputil.ProxyRequest, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		b.StopTimer()
		n := min(batch, b.N-i)
		for j := range n {
			prs[j] = httputil.ProxyRequest{In: in, Out: in.Clone(in.Context())}
		}
		b.StartTimer()
		for j := range n {
			x.rewrite(&prs[j])
		}
	}
	b.StopTimer()
	out := prs[0].Out
	if out.URL.String() != "http://orders.internal:8080/v1/42?expand=items" || out.Header.Get("Cookie") != "" ||
		out.Header.Get("X-Forwarded-For") != "203.0.113.7" || !strings.HasPrefix(out.Header.Get("Authorization"), "Bearer ") {
		b.Fatalf("rewrite: %s %v", out.URL, out.Header)
	}
}

// BenchmarkForwardedHeaders rebuilds X-Forwarded-For/-Proto/-Host.
func BenchmarkForwardedHeaders(b *testing.B) {
	x := benchRoute(b, Options{PublicHost: "api.example.com",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	in := benchRequest()
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		x.forwardedHeaders(in, h)
	}
}

// cannedTransport answers every request with the same small response.
type cannedTransport struct{ body string }

func (t cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(t.body)),
		ContentLength: int64(len(t.body)), Request: r,
	}, nil
}

// discardWriter is a ResponseWriter that keeps nothing but its headers.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// BenchmarkServeCookieRoute is a whole cookie-route request in process:
// CORS headers, the cookie entry (Origin, -at cookie opened), forward:
// access_token, the ReverseProxy with Rewrite and ModifyResponse, against
// a canned upstream response (no network).
func BenchmarkServeCookieRoute(b *testing.B) {
	key, _ := seal.GenerateKey(nil)
	ring, err := seal.NewRing([]seal.Key{key}, nil)
	if err != nil {
		b.Fatal(err)
	}
	codec := sessioncookie.New(sessioncookie.Config{Prefix: "example", Path: "/", BasePath: "/oauth-agent", Ring: ring})
	origins := origin.New([]string{"https://www.example.com"}, true)
	up, _ := url.Parse("http://orders.internal:8080")
	rt, err := NewRouter([]Route{{Name: "orders", Path: "/api/orders", Upstream: up, Timeout: time.Second, MaxBody: 1 << 20,
		Entries: []authn.Entry{&authn.Cookie{Cookies: codec, Origins: origins}}}},
		Options{PublicHost: "api.example.com", Cookies: codec, Origins: origins})
	if err != nil {
		b.Fatal(err)
	}
	rt.routes[0].rp.Transport = cannedTransport{body: `{"id":42,"status":"shipped"}`}
	at, _ := ring.SealString("eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ1c2VyLTEiLCJzY29wZSI6Im9yZGVyczpyZWFkIn0.c2lnbmF0dXJl")
	csrf, _ := ring.SealString("csrf-token")
	r := benchRequest()
	r.Header.Set("Cookie", "example-at="+at+"; example-csrf="+csrf)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.status = 0
		rt.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}
