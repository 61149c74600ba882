package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/devidp/devidptest"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

const (
	testCookieKey = "3f7a9c1e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a"
	clientSecret  = "gatehouse-test-client-secret"
	spaOrigin     = "https://127.0.0.1:5173"
	spaURL        = spaOrigin + "/"
	userName      = "alice"
	userPassword  = "Wonderland1"
	userID        = "alice-0001"
)

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// clock is Gatehouse's injected clock: real time plus an offset the test moves.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// upstream is an API behind Gatehouse that records what it receives.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	// handler, when set, answers instead of the default echo.
	handler http.HandlerFunc
}

func (u *upstream) last(t *testing.T) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream received no request")
	}
	return u.reqs[len(u.reqs)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := r.Clone(context.Background())
		rec.Body = io.NopCloser(bytes.NewReader(body))
		u.mu.Lock()
		u.reqs = append(u.reqs, rec)
		h := u.handler
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "method": r.Method, "bodyBytes": len(body)})
	}))
	t.Cleanup(u.Close)
	return u
}

// env is one Gatehouse with its provider, upstream and a browser-like client.
type env struct {
	t       *testing.T
	idp     *devidp.Provider
	api     *upstream
	gw      *httptest.Server
	srv     *server.Server
	cfg     *config.Config
	base    string // https://127.0.0.1:port
	browser *http.Client
	clock   *clock
	logs    *syncBuffer
	ring    *seal.Ring
	// secrets seen during the test; none may appear in logs or bodies.
	secrets map[string]string

	// bodies records every response body do received.
	bodies *bodyRecorder
}

type bodyRecorder struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (b *bodyRecorder) add(body []byte) {
	b.mu.Lock()
	b.bodies = append(b.bodies, body)
	b.mu.Unlock()
}

func (b *bodyRecorder) all() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]byte(nil), b.bodies...)
}

// sub returns e for use inside subtest t: the helpers fail t, not the parent.
func (e *env) sub(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

type envOptions struct {
	idp      func(*devidp.Config)
	yaml     func(string) string // edits the generated config
	issuer   string              // overrides the provider's issuer in the config
	asClient *http.Client
	// gatehouseTLS serves the gateway with Gatehouse's own listener TLS
	// configuration (tls section) instead of httptest's.
	gatehouseTLS bool
}

func baseYAML(publicURL, issuer, upstreamURL string) string {
	return fmt.Sprintf(`
listen: "127.0.0.1:0"
public_url: %q
authorization_server:
  issuer: %q
  # Generous: make test runs every package with the race detector on a
  # small machine; tests of provider faults set their own, shorter timeout.
  timeout: "5s"
oauth_agent:
  client_id: "spa-client"
  client_secret: %q
  redirect_uri: %q
  post_logout_redirect_uri: %q
  scope: "openid profile offline_access"
  trusted_web_origins: [%q]
  allowed_extra_params: ["prompt", "login_hint", "ui_locales", "claims"]
  cookie:
    name_prefix: "example"
    encryption_keys: [%q]
routes:
  - name: "api"
    path: "/api"
    upstream: %q
    timeout: "2s"
    max_body_bytes: 1024
    entry: ["cookie"]
  - name: "stripped"
    path: "/svc/orders"
    strip_prefix: true
    methods: ["GET", "POST"]
    upstream: %q
    entry: ["cookie"]
`, publicURL, issuer, clientSecret, spaURL, spaURL, spaOrigin, testCookieKey, upstreamURL, upstreamURL+"/base")
}

// testIDPConfig is the provider every env starts with: alice and the SPA's
// client, refresh tokens rotated with reuse detection.
func testIDPConfig() devidp.Config {
	return devidp.Config{
		Users: []devidp.User{{ID: userID, Username: userName, Password: userPassword, GivenName: "Alice", FamilyName: "Liddell", Email: "alice@example.com"}},
		Clients: []devidp.Client{{
			ID: "spa-client", Secret: clientSecret, AuthMethod: "client_secret_basic",
			RedirectURIs: []string{spaURL}, PostLogoutRedirectURIs: []string{spaURL},
			Scopes: []string{"read"},
		}},
		RotateRefreshTokens:   true,
		RefreshReuseDetection: true,
	}
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	idpCfg := testIDPConfig()
	if o.idp != nil {
		o.idp(&idpCfg)
	}
	idp := devidptest.Start(t, idpCfg)
	api := newUpstream(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + ln.Addr().String()
	issuer := idp.Issuer()
	if o.issuer != "" {
		issuer = o.issuer
	}
	y := baseYAML(base, issuer, api.URL)
	if o.yaml != nil {
		y = o.yaml(y)
	}
	cfg, _, err := config.Parse([]byte(y), t.TempDir(), config.Options{Env: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuffer{}
	clk := &clock{}
	srv, err := server.New(cfg, server.Options{
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:      clk.Now,
		ASClient: o.asClient,
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(ctx)
	gw := httptest.NewUnstartedServer(srv.Handler())
	gw.Listener.Close()
	gw.Listener = ln
	if o.gatehouseTLS {
		if gw.TLS, err = srv.TLSConfig(); err != nil || gw.TLS == nil {
			t.Fatalf("gatehouse TLS: %v", err)
		}
	}
	gw.StartTLS()
	t.Cleanup(func() {
		gw.Close()
		cancel()
		srv.Stop()
	})
	key, _ := seal.ParseKey(testCookieKey)
	ring, _ := seal.NewRing([]seal.Key{key}, nil)
	e := &env{t: t, idp: idp, api: api, gw: gw, srv: srv, cfg: cfg, base: base, clock: clk, logs: logs, ring: ring,
		secrets: map[string]string{"client secret": clientSecret, "cookie key": testCookieKey, "password": userPassword},
		bodies:  &bodyRecorder{}}
	e.browser = e.newBrowser()
	if o.issuer == "" {
		e.waitReady()
	}
	return e
}

// newBrowser returns a client with its own cookie jar that trusts the
// gateway's certificate and does not follow redirects.
func (e *env) newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	// A copy: httptest.Server.Client returns one shared *http.Client, and
	// setting its Jar would give every browser the same cookies.
	cc := *e.gw.Client()
	c := &cc
	c.Jar = jar
	c.Timeout = 30 * time.Second // a hanging gateway fails the test instead of stalling it
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

func (e *env) waitReady() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !e.srv.Ready() {
		if time.Now().After(deadline) {
			e.t.Fatal("gatehouse did not discover the provider")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type reqOpt func(*http.Request)

func withOrigin(o string) reqOpt { return func(r *http.Request) { r.Header.Set("Origin", o) } }
func withoutOrigin() reqOpt      { return func(r *http.Request) { r.Header.Del("Origin") } }
func withCSRF(v string) reqOpt   { return func(r *http.Request) { r.Header.Set("x-example-csrf", v) } }
func withHeader(k, v string) reqOpt {
	return func(r *http.Request) { r.Header.Set(k, v) }
}

type response struct {
	*http.Response
	body []byte
}

func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body is not JSON (%d): %q", r.StatusCode, r.body)
	}
	return m
}

// do sends a browser request from the SPA's origin with the client's jar.
func (e *env) do(c *http.Client, method, path string, body any, opts ...reqOpt) *response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Origin", spaOrigin)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	e.bodies.add(b)
	return &response{Response: resp, body: b}
}

func (e *env) expectError(r *response, status int, code string) {
	e.t.Helper()
	if r.StatusCode != status {
		e.t.Fatalf("status %d, want %d; body %s", r.StatusCode, status, r.body)
	}
	if got := r.json(e.t)["code"]; got != code {
		e.t.Fatalf("code %v, want %s; body %s", got, code, r.body)
	}
}

// loginStart returns the authorization request URL.
func (e *env) loginStart(c *http.Client, body any) string {
	e.t.Helper()
	r := e.do(c, "POST", "/oauth-agent/login/start", body)
	if r.StatusCode != 200 {
		e.t.Fatalf("login/start: %d %s", r.StatusCode, r.body)
	}
	u, _ := r.json(e.t)["authorizationRequestUrl"].(string)
	if u == "" {
		e.t.Fatalf("login/start: no authorizationRequestUrl in %s", r.body)
	}
	return u
}

// authorize logs the user in at the provider and returns the callback URL.
func (e *env) authorize(authURL string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cb, err := devidp.Login(ctx, &http.Client{}, authURL, userName, userPassword)
	if err != nil {
		e.t.Fatalf("login at the provider: %v", err)
	}
	if !strings.HasPrefix(cb, spaURL) {
		e.t.Fatalf("the provider redirected to %q, not the SPA", cb)
	}
	u, _ := url.Parse(cb)
	e.secrets["authorization code"] = u.Query().Get("code")
	e.secrets["state"] = u.Query().Get("state")
	return cb
}

// login runs the whole login and returns the CSRF token.
func (e *env) login(c *http.Client) string {
	e.t.Helper()
	cb := e.authorize(e.loginStart(c, nil))
	r := e.do(c, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": cb})
	if r.StatusCode != 200 {
		e.t.Fatalf("login/end: %d %s", r.StatusCode, r.body)
	}
	m := r.json(e.t)
	if m["handled"] != true || m["isLoggedIn"] != true {
		e.t.Fatalf("login/end: %s", r.body)
	}
	csrf, _ := m["csrf"].(string)
	e.secrets["csrf"] = csrf
	e.collectCookieSecrets(c)
	return csrf
}

// cookie returns the browser's cookie named name for path, or "".
func (e *env) cookie(c *http.Client, path, name string) string {
	u, _ := url.Parse(e.base + path)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// open decrypts a sealed cookie value with the test key.
func (e *env) open(v string) string {
	e.t.Helper()
	p, err := e.ring.OpenString(v)
	if err != nil {
		e.t.Fatalf("cannot open cookie: %v", err)
	}
	return p
}

// collectCookieSecrets records the browser's cookie values and the tokens
// inside them as secrets.
func (e *env) collectCookieSecrets(c *http.Client) {
	for _, p := range []struct{ path, name string }{
		{"/", "example-at"}, {"/", "example-csrf"}, {"/oauth-agent", "example-auth"}, {"/oauth-agent/claims", "example-id"},
	} {
		v := e.cookie(c, p.path, p.name)
		if v == "" {
			continue
		}
		e.secrets[p.name+" cookie"] = v
		plain := e.open(v)
		if p.name == "example-auth" {
			var rc struct {
				RefreshToken string `json:"refreshToken"`
			}
			_ = json.Unmarshal([]byte(plain), &rc)
			plain = rc.RefreshToken
		}
		e.secrets[p.name+" plaintext "+fmt.Sprint(len(e.secrets))] = plain
	}
}

// assertNoSecrets fails if any recorded secret appears in s.
func (e *env) assertNoSecrets(what, s string) {
	e.t.Helper()
	for name, v := range e.secrets {
		if len(v) >= 8 && strings.Contains(s, v) {
			e.t.Errorf("%s contains the %s", what, name)
		}
	}
}
