// Package devidptest serves a devidp.Provider on a loopback port for the
// length of a test.
//
// A test that needs a real authorization server starts one, builds an
// authorization request, and logs in through the provider's login page:
//
//	func TestLogin(t *testing.T) {
//		idp := devidptest.Start(t, devidp.Config{
//			Users: []devidp.User{{ID: "u1", Username: "demouser", Password: "Password1"}},
//			Clients: []devidp.Client{{
//				ID:           "gatehouse",
//				Secret:       "s3cret",
//				RedirectURIs: []string{"http://localhost:8080/callback"},
//			}},
//		})
//		authURL := idp.Issuer() + "/authorize?" + url.Values{
//			"client_id":             {"gatehouse"},
//			"response_type":         {"code"},
//			"redirect_uri":          {"http://localhost:8080/callback"},
//			"scope":                 {"openid profile offline_access"},
//			"state":                 {state},
//			"code_challenge":        {challenge},
//			"code_challenge_method": {"S256"},
//		}.Encode()
//		callback, err := devidp.Login(t.Context(), nil, authURL, "demouser", "Password1")
//		if err != nil {
//			t.Fatal(err)
//		}
//		// callback is http://localhost:8080/callback?code=...&state=...
//	}
package devidptest

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

// Start serves a new Provider for cfg until the test ends.
//
// It listens on 127.0.0.1 only. With an empty cfg.Issuer it picks a free
// port and sets the issuer to http://127.0.0.1:<port>; with a set issuer
// (host localhost or 127.0.0.1, explicit port) it listens on 127.0.0.1 at
// that port. Any problem fails the test.
func Start(t testing.TB, cfg devidp.Config) *devidp.Provider {
	t.Helper()
	addr := "127.0.0.1:0"
	if cfg.Issuer != "" {
		u, err := url.Parse(cfg.Issuer)
		if err != nil {
			t.Fatalf("devidptest: issuer: %v", err)
		}
		if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" {
			t.Fatalf("devidptest: issuer host must be 127.0.0.1 or localhost, not %q", h)
		}
		if u.Port() == "" {
			t.Fatalf("devidptest: issuer %q needs an explicit port", cfg.Issuer)
		}
		addr = net.JoinHostPort("127.0.0.1", u.Port())
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("devidptest: listen: %v", err)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "http://" + ln.Addr().String()
	}
	p, err := devidp.New(cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("devidptest: %v", err)
	}

	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("devidptest: serve: %v", err)
		}
	})
	return p
}
