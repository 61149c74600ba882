package server_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

// wantCleared are the session cookies and the paths they live on.
var wantCleared = map[string]string{"example-auth": "/oauth-agent", "example-at": "/", "example-id": "/oauth-agent/claims", "example-csrf": "/"}

func checkCleared(t *testing.T, what string, r *response, want map[string]string) {
	t.Helper()
	got := clearedCookies(r)
	for name, path := range want {
		if p, ok := got[name]; !ok || p != path {
			t.Errorf("%s: %s not cleared on %s (cleared: %v)", what, name, path, got)
		}
	}
}

// TestLogoutRules pins logout: the CSRF proof is required, every cookie is
// cleared on its own path, and the refresh token is revoked (a revoked
// token then ends the session at /refresh).
func TestLogoutRules(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := e.browser
	csrf := e.login(b)
	s := e.session(b)
	revocations := e.idp.Stats().Revocation

	for _, opts := range [][]reqOpt{nil, {withCSRF("wrong")}} {
		r := e.do(b, "POST", "/oauth-agent/logout", nil, opts...)
		expectErr(t, "logout without CSRF", r, 401, "unauthorized_request")
		if len(r.Header.Values("Set-Cookie")) > 0 {
			t.Errorf("a refused logout touched cookies: %v", r.Header.Values("Set-Cookie"))
		}
	}
	if e.idp.Stats().Revocation != revocations {
		t.Error("a refused logout revoked the refresh token")
	}

	// Every session cookie is presented (also -id, which a browser sends only
	// to /claims): without send_id_token_hint the ID token stays out of the URL.
	r := e.do(e.raw(), "POST", "/oauth-agent/logout", nil, withCSRF(csrf),
		withCookies(cookieLine("example-at", s.at, "example-csrf", s.csrf, "example-auth", s.auth, "example-id", s.id)))
	if r.StatusCode != 200 {
		t.Fatalf("logout: %d %s", r.StatusCode, r.body)
	}
	checkAgentHeaders(t, "logout", r)
	checkCleared(t, "logout", r, wantCleared)
	lu, _ := url.Parse(r.json(t)["url"].(string))
	if lu.Query().Has("id_token_hint") {
		t.Error("id_token_hint sent without send_id_token_hint")
	}
	// The revoked refresh token no longer refreshes (presented by a copy of
	// the old cookies).
	r = e.do(e.raw(), "POST", "/oauth-agent/refresh", nil, withCSRF(csrf),
		withCookies(cookieLine("example-at", s.at, "example-csrf", s.csrf, "example-auth", s.auth)))
	expectErr(t, "refresh after logout", r, 401, "session_expired")
	e.assertNoSecretsAnywhere()
}

// TestLogoutRevocationFailure pins best-effort revocation: a revocation
// endpoint that fails or hangs does not fail the logout, which answers within
// the 2-second revocation bound (the AS client timeout here is 10 s).
func TestLogoutRevocationFailure(t *testing.T) {
	t.Parallel()
	fake := newScriptedServer(t, nil)
	e := newEnv(t, envOptions{yaml: func(y string) string {
		y = strings.Replace(y, `  timeout: "2s"`, `  timeout: "10s"`, 1)
		return insertAfter(t, y, "authorization_server:", "  revocation_endpoint: \""+fake.URL+"/revoke\"\n")
	}})
	for _, mode := range []string{mode500, modeGarbage, modeHang} {
		t.Run(mode, func(t *testing.T) {
			e := e.sub(t)
			fake.set("/revoke", mode)
			b := e.newBrowser()
			csrf := e.login(b)
			calls := fake.count("/revoke")
			start := time.Now()
			r := e.do(b, "POST", "/oauth-agent/logout", nil, withCSRF(csrf))
			elapsed := time.Since(start)
			if r.StatusCode != 200 {
				t.Fatalf("logout with a failing revocation endpoint: %d %s", r.StatusCode, r.body)
			}
			if elapsed > 3500*time.Millisecond {
				t.Errorf("logout took %v; revocation is bounded by 2 s", elapsed)
			}
			if fake.count("/revoke") != calls+1 {
				t.Errorf("logout did not try to revoke")
			}
			checkCleared(t, "logout", r, wantCleared)
			if e.cookie(b, "/", "example-at") != "" {
				t.Error("the browser kept -at")
			}
		})
	}
	if !strings.Contains(e.logs.String(), "revocation at logout failed") {
		t.Error("the failed revocation was not logged")
	}
	e.assertNoSecretsAnywhere()
}

// TestLogoutIDTokenHint pins send_id_token_hint: the -id cookie lives on the
// base path (so /logout receives it) and the end-session URL carries it.
func TestLogoutIDTokenHint(t *testing.T) {
	e := newEnv(t, envOptions{yaml: func(y string) string {
		return insertAfter(t, y, "  scope:", "  logout: { send_id_token_hint: true }\n")
	}})
	b := e.browser
	authURL := e.loginStart(b, nil)
	r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": e.authorize(authURL)})
	csrf, _ := r.json(t)["csrf"].(string)
	id := setCookies(r)["example-id"]
	if id == nil || id.Path != "/oauth-agent" {
		t.Fatalf("-id not set on the base path: %+v", id)
	}
	idToken := e.open(id.Value)
	if r := e.do(b, "GET", "/oauth-agent/claims", nil); r.StatusCode != 200 {
		t.Fatalf("claims with -id on the base path: %d", r.StatusCode)
	}
	r = e.do(b, "POST", "/oauth-agent/logout", nil, withCSRF(csrf))
	if r.StatusCode != 200 {
		t.Fatalf("logout: %d %s", r.StatusCode, r.body)
	}
	lu, _ := url.Parse(r.json(t)["url"].(string))
	if lu.Query().Get("id_token_hint") != idToken || lu.Query().Get("client_id") != "spa-client" || lu.Query().Get("post_logout_redirect_uri") != spaURL {
		t.Errorf("logout URL %s lacks the id_token_hint of the session", lu)
	}
	want := map[string]string{"example-auth": "/oauth-agent", "example-at": "/", "example-id": "/oauth-agent", "example-csrf": "/"}
	checkCleared(t, "logout", r, want)
	// The end-session URL is accepted by the provider.
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(lu.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, spaURL) {
		t.Errorf("end session answered %d to %q", resp.StatusCode, loc)
	}
	// Apart from the opt-in hint, no secret in any body or log.
	for k, v := range e.secrets {
		if v == idToken {
			delete(e.secrets, k)
		}
	}
	e.assertNoSecrets("the logs", e.logs.String())
	if strings.Contains(e.logs.String(), idToken) {
		t.Error("the ID token reached the logs")
	}
}

// TestClientAuthMethods logs in, refreshes and logs out with
// client_secret_post and private_key_jwt: devidp enforces the registered
// method, so a wrong one fails the token call; a failed revocation would
// leave the refresh token usable.
func TestClientAuthMethods(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: "ES256", Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	// Gatehouse's default kid is the RFC 7638 thumbprint.
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)

	for _, c := range []struct {
		name string
		idp  func(*devidp.Client)
		yaml func(string) string
	}{
		{"client_secret_post",
			func(cl *devidp.Client) { cl.AuthMethod = devidp.AuthMethodPost },
			func(y string) string {
				return insertAfter(t, y, "  client_secret:", "  client_auth: { method: client_secret_post }\n")
			}},
		{"private_key_jwt",
			func(cl *devidp.Client) {
				cl.AuthMethod, cl.Secret, cl.PublicKeys = devidp.AuthMethodPrivateKeyJWT, "", []jose.JSONWebKey{pub}
			},
			func(y string) string {
				i := strings.Index(y, "  client_secret:")
				j := i + strings.Index(y[i:], "\n") + 1
				return y[:i] + "  client_auth: { method: private_key_jwt, key_file: \"" + keyFile + "\" }\n" + y[j:]
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{idp: func(cfg *devidp.Config) { c.idp(&cfg.Clients[0]) }, yaml: c.yaml})
			b := e.browser
			csrf := e.login(b)
			if r := e.do(b, "POST", "/oauth-agent/refresh", nil, withCSRF(csrf)); r.StatusCode != 204 {
				t.Fatalf("refresh: %d %s", r.StatusCode, r.body)
			}
			e.collectCookieSecrets(b)
			s := e.session(b)
			if r := e.do(b, "POST", "/oauth-agent/logout", nil, withCSRF(csrf)); r.StatusCode != 200 {
				t.Fatalf("logout: %d %s", r.StatusCode, r.body)
			}
			if strings.Contains(e.logs.String(), "revocation at logout failed") {
				t.Error("revocation failed")
			}
			r := e.do(e.raw(), "POST", "/oauth-agent/refresh", nil, withCSRF(csrf),
				withCookies(cookieLine("example-at", s.at, "example-csrf", s.csrf, "example-auth", s.auth)))
			expectErr(t, "refresh after logout", r, 401, "session_expired")
			if st := e.idp.Stats(); st.TokenAuthorizationCode != 1 || st.TokenRefresh != 2 || st.Revocation != 1 {
				t.Errorf("provider calls %+v", st)
			}
			e.assertNoSecretsAnywhere()
		})
	}
}

// TestCookieLayouts runs a session with the cookie layouts other than the
// default: a __Host- name prefix (every cookie on Path=/, the CSRF header
// named after the prefix) and a custom base path (-auth and -id follow it,
// and are cleared there).
func TestCookieLayouts(t *testing.T) {
	t.Parallel()
	t.Run("__Host- prefix", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{yaml: func(y string) string {
			return strings.Replace(y, `name_prefix: "example"`, `name_prefix: "__Host-example"`, 1)
		}})
		b := e.browser
		authURL := e.loginStart(b, nil)
		r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": e.authorize(authURL)})
		if r.StatusCode != 200 {
			t.Fatalf("login/end: %d %s", r.StatusCode, r.body)
		}
		csrf, _ := r.json(t)["csrf"].(string)
		for _, c := range r.Cookies() {
			if !strings.HasPrefix(c.Name, "__Host-example-") || c.Path != "/" || !c.Secure || c.Domain != "" {
				t.Errorf("cookie %s: path %q secure %v domain %q; __Host- needs Path=/, Secure, no Domain", c.Name, c.Path, c.Secure, c.Domain)
			}
		}
		if r := e.do(b, "GET", "/api/orders", nil); r.StatusCode != 200 || e.api.last(t).Header.Get("Cookie") != "" {
			t.Fatalf("API: %d", r.StatusCode)
		}
		r = e.do(b, "POST", "/oauth-agent/refresh", nil, withCSRF(csrf))
		expectErr(t, "refresh with the default CSRF header name", r, 401, "unauthorized_request")
		hdr := withHeader("x-__Host-example-csrf", csrf)
		if r := e.do(b, "POST", "/oauth-agent/refresh", nil, hdr); r.StatusCode != 204 {
			t.Fatalf("refresh: %d %s", r.StatusCode, r.body)
		}
		if r := e.do(b, "POST", "/api/orders", `{}`, hdr); r.StatusCode != 200 || e.api.last(t).Header.Get("X-__host-example-Csrf") != "" {
			t.Fatalf("API POST: %d", r.StatusCode)
		}
		r = e.do(b, "POST", "/oauth-agent/logout", nil, hdr)
		checkCleared(t, "logout", r, map[string]string{"__Host-example-auth": "/", "__Host-example-at": "/", "__Host-example-id": "/", "__Host-example-csrf": "/"})
	})
	t.Run("custom base path", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{yaml: func(y string) string {
			return insertAfter(t, y, "oauth_agent:", "  base_path: \"/bff\"\n")
		}})
		b := e.browser
		r := e.do(b, "POST", "/bff/login/start", nil)
		if r.StatusCode != 200 {
			t.Fatalf("login/start: %d %s", r.StatusCode, r.body)
		}
		r = e.do(b, "POST", "/bff/login/end", map[string]string{"pageUrl": e.authorize(r.json(t)["authorizationRequestUrl"].(string))})
		if r.StatusCode != 200 {
			t.Fatalf("login/end: %d %s", r.StatusCode, r.body)
		}
		csrf, _ := r.json(t)["csrf"].(string)
		sc := setCookies(r)
		if sc["example-auth"] == nil || sc["example-auth"].Path != "/bff" || sc["example-id"] == nil || sc["example-id"].Path != "/bff/claims" {
			t.Fatalf("cookie paths do not follow the base path: %v", r.Header.Values("Set-Cookie"))
		}
		if r := e.do(b, "GET", "/bff/claims", nil); r.StatusCode != 200 {
			t.Errorf("claims: %d", r.StatusCode)
		}
		if r := e.do(b, "POST", "/bff/refresh", nil, withCSRF(csrf)); r.StatusCode != 204 {
			t.Errorf("refresh: %d %s", r.StatusCode, r.body)
		}
		r = e.do(b, "POST", "/oauth-agent/login/start", nil)
		expectErr(t, "the default base path", r, 404, "not_found")
		r = e.do(b, "POST", "/bff/logout", nil, withCSRF(csrf))
		checkCleared(t, "logout", r, map[string]string{"example-auth": "/bff", "example-at": "/", "example-id": "/bff/claims", "example-csrf": "/"})
		checkAgentHeaders(t, "logout", r)
	})
}
