package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/telemetry"
)

// BenchmarkHandlerCookieRoute is one cookie-route request through the whole
// pipeline in process (recover, request id and access log, canonical path,
// routing, the cookie entry, the proxy) to a loopback upstream, with the
// JSON access log on (to io.Discard) and with logging discarded: the
// difference is what the access log line costs. `make bench` measures the
// same path over the network, against a bare reverse proxy.
func BenchmarkHandlerCookieRoute(b *testing.B) {
	body := []byte(`{"id":42,"status":"shipped"}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		w.Header()["Content-Length"] = []string{strconv.Itoa(len(body))}
		_, _ = w.Write(body)
	}))
	defer up.Close()
	key, err := seal.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	ring, err := seal.NewRing([]seal.Key{key}, nil)
	if err != nil {
		b.Fatal(err)
	}
	// The provider is never contacted: the route forwards the cookie's token.
	y := fmt.Sprintf(`
public_url: "https://api.example.com"
authorization_server:
  issuer: "http://127.0.0.1:1"
oauth_agent:
  client_id: "spa"
  client_secret: "spa-secret-0123456789"
  redirect_uri: "https://www.example.com/"
  trusted_web_origins: ["https://www.example.com"]
  cookie:
    name_prefix: "example"
    encryption_keys: [%q]
routes:
  - name: "orders"
    path: "/api/orders"
    upstream: %q
    entry: ["cookie"]
`, key.String(), up.URL)
	cfg, _, err := config.Parse([]byte(y), ".", config.Options{Env: func(string) (string, bool) { return "", false }})
	if err != nil {
		b.Fatal(err)
	}
	at, _ := ring.SealString("eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ1c2VyLTEiLCJzY29wZSI6Im9yZGVycyJ9.c2lnbmF0dXJl")
	csrf, _ := ring.SealString("csrf-token-0123456789")
	jsonLog, err := telemetry.NewLogger(io.Discard, "info")
	if err != nil {
		b.Fatal(err)
	}
	for _, lc := range []struct {
		name   string
		logger *slog.Logger
	}{{"log=json", jsonLog}, {"log=discard", slog.New(slog.DiscardHandler)}} {
		b.Run(lc.name, func(b *testing.B) {
			s, err := New(cfg, Options{Logger: lc.logger})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Stop()
			h := s.Handler()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest(http.MethodGet, "https://api.example.com/api/orders/42", nil)
				r.RemoteAddr = "203.0.113.7:51234"
				r.Header.Set("Origin", "https://www.example.com")
				r.Header.Set("Cookie", "example-at="+at+"; example-csrf="+csrf)
				w := &benchWriter{h: http.Header{}}
				for pb.Next() {
					clear(w.h)
					w.status = 0
					h.ServeHTTP(w, r)
					if w.status != http.StatusOK {
						b.Errorf("status %d", w.status)
						return
					}
				}
			})
		})
	}
}

type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}
func (w *benchWriter) WriteHeader(s int) { w.status = s }

type nopChecker struct{ p authn.Principal }

func (c *nopChecker) Check(context.Context, string) (*authn.Principal, error) { return &c.p, nil }

// BenchmarkLazyChecker is the wrapper every request of a token_format route
// passes through once its checker is built.
func BenchmarkLazyChecker(b *testing.B) {
	l := &lazyChecker{build: func() (authn.Checker, error) { return &nopChecker{}, nil }}
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Check(ctx, "token"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
