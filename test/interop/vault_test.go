package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/devidp/devidptest"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// The token vault against panva's oidc-provider as the third party: a
// provider Gatehouse was not written with, with PKCE required, RFC 9207 iss
// in authorization responses, opaque access tokens and refresh tokens rotated
// on every use with reuse detection. Gatehouse's own authorization server
// (the user's session) is devidp.
func TestVaultAgainstOIDCProvider(t *testing.T) {
	requireNode(t)
	const spaOrigin = "https://127.0.0.1:5173"
	as := devidptest.Start(t, devidp.Config{
		Users:   []devidp.User{{ID: "alice-1", Username: "alice", Password: "Wonderland1"}},
		Clients: []devidp.Client{{ID: "spa", Secret: "spa-secret", RedirectURIs: []string{spaOrigin + "/"}, AccessTokenLifetime: time.Hour}},
	})

	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + gwLn.Addr().String()
	clientSecret := randomHex(t, 24)
	op := startProvider(t, "gatehouse-vault", clientSecret, base+"/connections/op/callback")
	var md struct {
		Introspection string `json:"introspection_endpoint"`
	}
	getJSON(t, op.issuer+"/.well-known/openid-configuration", &md)

	// The provider's API: it introspects the opaque tokens it receives.
	var apiMu sync.Mutex
	var apiTokens []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		apiMu.Lock()
		apiTokens = append(apiTokens, tok)
		apiMu.Unlock()
		active, sub := introspect(t, md.Introspection, op, tok)
		if !active {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"sub": sub, "path": r.URL.Path})
	}))
	t.Cleanup(api.Close)

	y := fmt.Sprintf(`
public_url: %q
authorization_server: { issuer: %q }
oauth_agent:
  client_id: spa
  client_secret: spa-secret
  redirect_uri: %q
  scope: "openid"
  trusted_web_origins: [%q]
  cookie: { name_prefix: interop, encryption_keys: [%q] }
vault:
  user: { token_format: jwt, audience: spa }
  keys: [{ id: k1, key: %q }]
  store: { path: vault.db }
  return_url: %q
  providers:
    op:
      issuer: %q
      api_base_url: %q
      client_id: gatehouse-vault
      client_secret: %q
      scopes: [openid, offline_access]
`, base, as.Issuer(), spaOrigin+"/", spaOrigin, randomHex(t, 32), randomHex(t, 32), spaOrigin+"/connections",
		op.issuer, api.URL+"/api", clientSecret)
	dir := t.TempDir()
	cfg, _, err := config.Parse([]byte(y), dir, config.Options{Env: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	var clockMu sync.Mutex
	offset := time.Duration(0)
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return time.Now().Add(offset) }
	var logs syncBuf
	srv, err := server.New(cfg, server.Options{Now: now, ConfigDir: dir, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(ctx)
	gw := httptest.NewUnstartedServer(srv.Handler())
	gw.Listener.Close()
	gw.Listener = gwLn
	gw.StartTLS()
	t.Cleanup(func() { gw.Close(); cancel(); srv.Stop() })
	for deadline := time.Now().Add(10 * time.Second); !srv.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("gatehouse did not discover its authorization server")
		}
	}

	jar, _ := cookiejar.New(nil)
	browser := *gw.Client()
	browser.Jar = jar
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	do := func(method, path string, body io.Reader, csrf string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, body)
		req.Header.Set("Origin", spaOrigin)
		if csrf != "" {
			req.Header.Set("x-interop-csrf", csrf)
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	// Sign in at Gatehouse (devidp).
	_, b := do("POST", "/oauth-agent/login/start", nil, "")
	var start struct{ AuthorizationRequestURL string }
	_ = json.Unmarshal(b, &start)
	cb, err := devidp.Login(t.Context(), nil, start.AuthorizationRequestURL, "alice", "Wonderland1")
	if err != nil {
		t.Fatal(err)
	}
	_, b = do("POST", "/oauth-agent/login/end", strings.NewReader(fmt.Sprintf(`{"pageUrl":%q}`, cb)), "")
	var end struct{ CSRF string }
	_ = json.Unmarshal(b, &end)

	// Connect at oidc-provider: its login and consent pages, then the callback.
	resp, b := do("POST", "/connections/op/start", nil, end.CSRF)
	var st struct{ AuthorizationURL string }
	if err := json.Unmarshal(b, &st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("start: %d %s", resp.StatusCode, b)
	}
	callback := opLogin(t, st.AuthorizationURL, base)
	if q, _ := url.Parse(callback); q.Query().Get("iss") != op.issuer {
		t.Errorf("oidc-provider's callback lacks iss (RFC 9207): %s", callback)
	}
	resp, _ = do("GET", strings.TrimPrefix(callback, base), nil, "")
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || !strings.HasSuffix(loc, "?connection=op&result=connected") {
		t.Fatalf("callback: %d %s\n%s", resp.StatusCode, loc, logs.String())
	}

	call := func() (int, string) {
		resp, b := do("GET", "/connections/op/proxy/me", nil, "")
		var m map[string]string
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m["sub"]
	}
	if status, sub := call(); status != 200 || sub != "demouser" {
		t.Fatalf("proxy: %d %q", status, sub)
	}
	// Past the access token's lifetime (300 s): Gatehouse refreshes with the
	// rotating refresh token, twice in a row (a reused one would revoke the grant).
	for i := range 2 {
		clockMu.Lock()
		offset += 6 * time.Minute
		clockMu.Unlock()
		if status, sub := call(); status != 200 || sub != "demouser" {
			t.Fatalf("after refresh %d: %d %q\n%s", i+1, status, sub, logs.String())
		}
	}
	apiMu.Lock()
	seen := map[string]bool{}
	for _, tok := range apiTokens {
		seen[tok] = true
	}
	last := apiTokens[len(apiTokens)-1]
	apiMu.Unlock()
	if len(seen) != 3 {
		t.Errorf("the API saw %d different tokens, want 3 (connect and two refreshes)", len(seen))
	}

	// Disconnect revokes at oidc-provider: the grant ends.
	if resp, b := do("DELETE", "/connections/op", nil, end.CSRF); resp.StatusCode != 204 {
		t.Fatalf("disconnect: %d %s", resp.StatusCode, b)
	}
	if active, _ := introspect(t, md.Introspection, op, last); active {
		t.Error("the access token is still active after disconnecting")
	}
	for tok := range seen {
		if strings.Contains(logs.String(), tok) {
			t.Error("a third-party token is in Gatehouse's logs")
		}
	}
}

// opLogin completes oidc-provider's devInteractions (login, then consent)
// and returns the URL it finally redirects to on Gatehouse.
func opLogin(t *testing.T, authURL, gatehouse string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := regexp.MustCompile(`<form[^>]*action="([^"]+)"[^>]*method="post">\s*<input type="hidden" name="prompt" value="([a-z]+)"`)
	next, method, body := authURL, "GET", url.Values(nil)
	for range 12 {
		var resp *http.Response
		var err error
		if method == "GET" {
			resp, err = c.Get(next)
		} else {
			resp, err = c.PostForm(next, body)
		}
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 {
			u, _ := resp.Request.URL.Parse(loc)
			if strings.HasPrefix(u.String(), gatehouse) {
				return u.String()
			}
			next, method = u.String(), "GET"
			continue
		}
		m := form.FindSubmatch(page)
		if resp.StatusCode != 200 || m == nil {
			t.Fatalf("oidc-provider answered %d without a form: %.300s", resp.StatusCode, page)
		}
		action, _ := resp.Request.URL.Parse(html.UnescapeString(string(m[1])))
		next, method = action.String(), "POST"
		body = url.Values{"prompt": {string(m[2])}}
		if string(m[2]) == "login" {
			body.Set("login", "demouser")
			body.Set("password", "any-password")
		}
	}
	t.Fatal("oidc-provider's interaction did not end")
	return ""
}

func introspect(t *testing.T, endpoint string, op *provider, token string) (bool, string) {
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(op.apiClient, op.apiSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return false, ""
	}
	defer resp.Body.Close()
	var in struct {
		Active bool   `json:"active"`
		Sub    string `json:"sub"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&in)
	return in.Active, in.Sub
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
