package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/devidp/devidptest"
	"github.com/gatehouse-dev/gatehouse/internal/keyfile"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// The vault's end-to-end tests run Gatehouse with two real OpenID Providers
// (devidp, zitadel's op) over HTTP: one is Gatehouse's own authorization
// server (the user's session, the jobs' client-credentials tokens), the
// other the "third party" users connect to. The third party's API is a
// resource server that introspects the tokens it receives at that provider.

const (
	vaultKeyHex   = "9a2c0640603bc347e0d5a005f8c363e0c58ad3fa22ce1c5daf270c51a108f097"
	vaultKey2Hex  = "f2fd8847c942b586d50ce90bedd8d26941e1459eeb0308ec694067e1da57f0bd"
	vaultAudience = "gatehouse-vault"
	vtUser        = "octocat"
	vtPassword    = "Octopus-42"
	vtSecret      = "third-party-client-secret"
	vtAPISecret   = "third-party-api-secret"
	vtJobSecret   = "job-client-secret-1234"
	vtBobName     = "bob"
	vtBobPassword = "Builder-99"
	vtBobID       = "bob-0002"
	vtReturnURL   = spaOrigin + "/settings/connections"
	vtPostgresEnv = "GATEHOUSE_TEST_POSTGRES"
	vtLifetime    = 10 * time.Minute
)

// Jobs registered at Gatehouse's authorization server.
const (
	vtJobAll      = "sync-job"       // every user, both providers, needs scope vault.sync
	vtJobAcme     = "acme-job"       // users whose org claim is acme, provider tp
	vtJobOther    = "other-only-job" // provider other only
	vtJobStranger = "stranger-job"   // a client of the AS that is no job
)

// vtAPI is the third-party provider's API: it introspects each bearer token
// at the provider and answers 401 for inactive ones. It sets a cookie and
// CORS headers of its own, which must never reach the browser.
type vtAPI struct {
	*httptest.Server
	tp *devidp.Provider
	mu sync.Mutex
	// reqs holds what the API received.
	reqs []*http.Request
	// tokens seen in Authorization headers.
	tokens []string
	// rejectAll answers 401 to everything; rejected to these tokens.
	rejectAll atomic.Bool
	rejected  map[string]bool
}

func newVTAPI(t *testing.T, tp *devidp.Provider) *vtAPI {
	a := &vtAPI{tp: tp}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func (a *vtAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := r.Clone(context.Background())
	rec.Body = io.NopCloser(bytes.NewReader(body))
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	a.mu.Lock()
	a.reqs = append(a.reqs, rec)
	a.tokens = append(a.tokens, tok)
	a.mu.Unlock()
	w.Header().Set("Set-Cookie", "tp_session=abc; Path=/")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	a.mu.Lock()
	refused := a.rejected[tok]
	a.mu.Unlock()
	if a.rejectAll.Load() || refused {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	form := url.Values{"token": {tok}}
	req, _ := http.NewRequest(http.MethodPost, a.tp.Issuer()+devidp.PathIntrospect, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("tp-api", vtAPISecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	var in struct {
		Active   bool   `json:"active"`
		Subject  string `json:"sub"`
		ClientID string `json:"client_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&in)
	if !in.Active {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"message":"Bad credentials"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"path": r.URL.EscapedPath(), "query": r.URL.RawQuery, "method": r.Method, "sub": in.Subject,
		"client_id": in.ClientID, "body": string(body),
	})
}

// reject makes the API refuse token from now on, as if its user revoked it.
func (a *vtAPI) reject(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rejected == nil {
		a.rejected = map[string]bool{}
	}
	a.rejected[token] = true
}

func (a *vtAPI) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.reqs)
}

func (a *vtAPI) last(t *testing.T) (*http.Request, string) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.reqs) == 0 {
		t.Fatal("the third-party API received no request")
	}
	return a.reqs[len(a.reqs)-1], a.tokens[len(a.tokens)-1]
}

// vtFault stands in front of the third party's token endpoint and, when
// told to, fails refresh requests the way networks and servers do: it loses
// the answer after the provider acted (the connection drops), or answers 500
// without asking the provider.
type vtFault struct {
	*httptest.Server
	mode atomic.Value // "", "lose", "500"
}

func newVTFault(t *testing.T, target string) *vtFault {
	f := &vtFault{}
	f.mode.Store("")
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		mode := f.mode.Load().(string)
		refresh := form.Get("grant_type") == "refresh_token"
		if refresh && mode == "500" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		req, _ := http.NewRequest(r.Method, target+r.URL.Path, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if refresh && mode == "lose" {
			// The provider has acted (and rotated the refresh token); its
			// answer never arrives.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(answer)
	}))
	t.Cleanup(f.Close)
	return f
}

type vaultOptions struct {
	instances int
	store     string // sqlite (default) or postgres
	dsn       string // postgres: the shared schema's DSN
	// tpNoRotation makes the third party keep refresh tokens (no rotation).
	tpNoRotation bool
	// opaqueSession makes the authorization server issue opaque access
	// tokens to the SPA's client; vault.user introspects them.
	opaqueSession bool
	yaml          func(i int, y string) string
}

// vaultEnv is one or more Gatehouse instances (sharing a store) with the
// authorization server, the third party, its API and a fault proxy.
type vaultEnv struct {
	*env
	all   []*env
	tp    *devidp.Provider
	vtAPI *vtAPI
	fault *vtFault
	store string
	dir   string     // holds the SQLite database
	mu    sync.Mutex // guards secrets written by concurrent calls
}

func newVaultEnv(t *testing.T, o vaultOptions) *vaultEnv {
	t.Helper()
	if o.instances == 0 {
		o.instances = 1
	}
	if o.store == "" {
		o.store = "sqlite"
	}
	if o.store == "postgres" && o.dsn == "" {
		o.dsn = vaultPostgresSchema(t)
	}
	asCfg := testIDPConfig()
	asCfg.Clients[0].AccessTokenLifetime = time.Hour
	asCfg.Users[0].Claims = map[string]any{"org": "acme"}
	asCfg.Users = append(asCfg.Users, devidp.User{ID: vtBobID, Username: vtBobName, Password: vtBobPassword, Claims: map[string]any{"org": "umbrella"}})
	for _, id := range []string{vtJobAll, vtJobAcme, vtJobOther, vtJobStranger} {
		asCfg.Clients = append(asCfg.Clients, devidp.Client{
			ID: id, Secret: vtJobSecret, GrantTypes: []string{devidp.GrantClientCredentials},
			Scopes: []string{"vault.sync"}, AccessTokenAudience: []string{vaultAudience}, AccessTokenLifetime: 2 * time.Hour,
		})
	}
	if o.opaqueSession {
		asCfg.Clients[0].AccessTokenFormat = devidp.AccessTokenOpaque
		asCfg.Clients = append(asCfg.Clients, devidp.Client{ID: "gatehouse-introspect", Secret: vtAPISecret, CanIntrospect: true})
	}
	as := devidptest.Start(t, asCfg)

	lns := make([]net.Listener, o.instances)
	var tpRedirects, otherRedirects, pkRedirects []string
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		tpRedirects = append(tpRedirects, "https://"+ln.Addr().String()+"/connections/tp/callback")
		otherRedirects = append(otherRedirects, "https://"+ln.Addr().String()+"/connections/other/callback")
		pkRedirects = append(pkRedirects, "https://"+ln.Addr().String()+"/connections/pk/callback")
	}
	dir := t.TempDir()
	// Gatehouse's key for private_key_jwt at the third party (provider "pk").
	pkKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkPEM, err := keyfile.EncodePEM(pkKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pk.pem"), pkPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tp := devidptest.Start(t, devidp.Config{
		Users: []devidp.User{{ID: "octo-1", Username: vtUser, Password: vtPassword}},
		Clients: []devidp.Client{
			{ID: "gatehouse-tp", Secret: vtSecret, RedirectURIs: tpRedirects, Scopes: []string{"repo"}, AccessTokenLifetime: vtLifetime},
			{ID: "gatehouse-other", Secret: vtSecret, AuthMethod: devidp.AuthMethodPost, RedirectURIs: otherRedirects, Scopes: []string{"repo"}, AccessTokenLifetime: vtLifetime},
			{ID: "gatehouse-pk", AuthMethod: devidp.AuthMethodPrivateKeyJWT, RedirectURIs: pkRedirects, Scopes: []string{"repo"}, AccessTokenLifetime: vtLifetime,
				PublicKeys: []jose.JSONWebKey{{Key: pkKey.Public(), KeyID: "pk-1", Algorithm: "ES256", Use: "sig"}}},
			{ID: "tp-api", Secret: vtAPISecret, CanIntrospect: true},
		},
		RotateRefreshTokens:   !o.tpNoRotation,
		RefreshReuseDetection: !o.tpNoRotation,
	})
	api := newVTAPI(t, tp)
	fault := newVTFault(t, tp.Issuer())
	clk := &clock{}
	ve := &vaultEnv{tp: tp, vtAPI: api, fault: fault, store: o.store, dir: dir}
	for i, ln := range lns {
		base := "https://" + ln.Addr().String()
		up := newUpstream(t)
		y := baseYAML(base, as.Issuer(), up.URL) + vaultYAML(o, dir, tp.Issuer(), fault.URL, api.URL)
		if o.opaqueSession {
			y = strings.Replace(y, "  user: { token_format: jwt, audience: spa-client }",
				"  user:\n    token_format: opaque\n    introspection: { client_id: gatehouse-introspect, client_secret: "+vtAPISecret+" }", 1)
		}
		if o.yaml != nil {
			y = o.yaml(i, y)
		}
		cfg, _, err := config.Parse([]byte(y), dir, config.Options{Env: func(string) (string, bool) { return "", false }})
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		logs := &syncBuffer{}
		srv, err := server.New(cfg, server.Options{
			Logger:    slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Now:       clk.Now,
			ConfigDir: dir,
		})
		if err != nil {
			t.Fatalf("server.New: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		srv.Start(ctx)
		gw := httptest.NewUnstartedServer(srv.Handler())
		gw.Listener.Close()
		gw.Listener = ln
		gw.StartTLS()
		t.Cleanup(func() {
			gw.Close()
			cancel()
			srv.Stop()
		})
		e := &env{t: t, idp: as, api: up, gw: gw, srv: srv, cfg: cfg, base: base, clock: clk, logs: logs,
			secrets: map[string]string{
				"client secret": clientSecret, "cookie key": testCookieKey, "password": userPassword,
				"vault key": vaultKeyHex, "third-party client secret": vtSecret, "third-party password": vtPassword,
				"job secret": vtJobSecret, "bob's password": vtBobPassword,
			},
			bodies: &bodyRecorder{}}
		key, _ := seal.ParseKey(testCookieKey)
		e.ring, _ = seal.NewRing([]seal.Key{key}, nil)
		e.browser = e.newBrowser()
		e.waitReady()
		ve.all = append(ve.all, e)
	}
	ve.env = ve.all[0]
	t.Cleanup(ve.checkNoSecrets)
	return ve
}

func vaultYAML(o vaultOptions, dir, tpIssuer, faultURL, apiURL string) string {
	store := fmt.Sprintf("{ driver: sqlite, path: %q }", filepath.Join(dir, "vault.db"))
	if o.store == "postgres" {
		store = fmt.Sprintf("{ driver: postgres, dsn: %q }", o.dsn)
	}
	return fmt.Sprintf(`
vault:
  user: { token_format: jwt, audience: spa-client }
  keys:
    - { id: "k1", key: %q }
  store: %s
  return_url: %q
  audience: %q
  providers:
    tp:
      issuer: %q
      token_endpoint: %q
      api_base_url: %q
      client_id: gatehouse-tp
      client_secret: %q
      scopes: [offline_access, repo]
    other:
      authorization_endpoint: %q
      token_endpoint: %q
      api_base_url: %q
      client_id: gatehouse-other
      client_secret: %q
      client_auth: { method: client_secret_post }
      scopes: [offline_access, repo]
    pk:
      issuer: %q
      api_base_url: %q
      client_id: gatehouse-pk
      client_auth: { method: private_key_jwt, key_file: pk.pem, key_id: pk-1 }
      scopes: [offline_access, repo]
  jobs:
    - client_id: %s
      scopes: [vault.sync]
      providers: [tp, other]
      users: { all: true }
    - client_id: %s
      providers: [tp]
      users: { claim: org, values: [acme] }
    - client_id: %s
      providers: [other]
      users: { all: true }
`, vaultKeyHex, store, vtReturnURL, vaultAudience,
		tpIssuer, faultURL+devidp.PathToken, apiURL+"/v1", vtSecret,
		tpIssuer+devidp.PathAuthorize, tpIssuer+devidp.PathToken, apiURL+"/v1", vtSecret,
		tpIssuer, apiURL+"/v1",
		vtJobAll, vtJobAcme, vtJobOther)
}

// vaultForEachStore runs f against SQLite, and against PostgreSQL when
// GATEHOUSE_TEST_POSTGRES names a database.
func vaultForEachStore(t *testing.T, f func(t *testing.T, store string)) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			if store == "postgres" {
				vaultSkipWithoutPostgres(t)
			}
			t.Parallel()
			f(t, store)
		})
	}
}

func vaultSkipWithoutPostgres(t *testing.T) {
	if os.Getenv(vtPostgresEnv) == "" {
		t.Skip("PostgreSQL vault tests skipped: set " + vtPostgresEnv +
			"='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' (.ci/run does); each test works in its own schema, dropped afterwards")
	}
}

// vaultPostgresSchema creates a schema for the test, dropped when it ends, and
// returns a DSN whose search_path is that schema.
func vaultPostgresSchema(t *testing.T) string {
	t.Helper()
	vaultSkipWithoutPostgres(t)
	dsn := os.Getenv(vtPostgresEnv)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("%s: %v", vtPostgresEnv, err)
	}
	admin := stdlib.OpenDB(*cfg)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "gatehouse_vault_test_" + hex.EncodeToString(b)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := admin.Exec("CREATE SCHEMA " + ident); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP SCHEMA " + ident + " CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s must be a postgres:// URL: %v", vtPostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// vaultLoginAs runs the OAuth Agent's login for another user and returns the CSRF token.
func (e *env) vaultLoginAs(c *http.Client, username, password string) string {
	e.t.Helper()
	authURL := e.loginStart(c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cb, err := devidp.Login(ctx, &http.Client{}, authURL, username, password)
	if err != nil {
		e.t.Fatalf("login as %s: %v", username, err)
	}
	r := e.do(c, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": cb})
	if r.StatusCode != 200 {
		e.t.Fatalf("login/end: %d %s", r.StatusCode, r.body)
	}
	csrf, _ := r.json(e.t)["csrf"].(string)
	e.secrets[username+" csrf"] = csrf
	return csrf
}

// startConnect calls /connections/{provider}/start and returns the
// provider's authorization URL.
func (v *vaultEnv) startConnect(e *env, c *http.Client, csrf, provider string) string {
	e.t.Helper()
	r := e.do(c, "POST", "/connections/"+provider+"/start", nil, withCSRF(csrf))
	if r.StatusCode != 200 {
		e.t.Fatalf("start: %d %s", r.StatusCode, r.body)
	}
	u, _ := r.json(e.t)["authorizationUrl"].(string)
	if u == "" {
		e.t.Fatalf("start: no authorizationUrl in %s", r.body)
	}
	return u
}

// authorizeTP signs in at the third party and returns the callback URL it
// redirects to (not visited).
func (v *vaultEnv) authorizeTP(e *env, authURL string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cb, err := devidp.Login(ctx, &http.Client{}, authURL, vtUser, vtPassword)
	if err != nil {
		e.t.Fatalf("login at the third party: %v", err)
	}
	u, _ := url.Parse(cb)
	e.secrets["third-party code "+fmt.Sprint(len(e.secrets))] = u.Query().Get("code")
	e.secrets["third-party state "+fmt.Sprint(len(e.secrets))] = u.Query().Get("state")
	return cb
}

// callback visits a callback URL with browser c (a top-level navigation:
// no Origin) and returns the result code of the redirect to the SPA.
func (v *vaultEnv) callback(e *env, c *http.Client, cb string) (string, *response) {
	e.t.Helper()
	r := e.do(c, "GET", strings.TrimPrefix(cb, e.base), nil, withoutOrigin())
	if r.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("callback: %d %s", r.StatusCode, r.body)
	}
	loc, err := url.Parse(r.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), vtReturnURL+"?") {
		e.t.Fatalf("callback redirected to %q, not the configured page", r.Header.Get("Location"))
	}
	return loc.Query().Get("result"), r
}

// connect signs in at Gatehouse (alice) and connects her to provider; it
// returns her browser and CSRF token.
func (v *vaultEnv) connect(e *env, provider string) (*http.Client, string) {
	e.t.Helper()
	c := e.newBrowser()
	csrf := e.login(c)
	result, _ := v.callback(e, c, v.authorizeTP(e, v.startConnect(e, c, csrf, provider)))
	if result != "connected" {
		e.t.Fatalf("connect result %q", result)
	}
	return c, csrf
}

// connections returns GET /connections, by provider.
func (v *vaultEnv) connections(e *env, c *http.Client) map[string]map[string]any {
	e.t.Helper()
	r := e.do(c, "GET", "/connections", nil)
	if r.StatusCode != 200 {
		e.t.Fatalf("GET /connections: %d %s", r.StatusCode, r.body)
	}
	var body struct {
		Connections []map[string]any `json:"connections"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, c := range body.Connections {
		out[c["provider"].(string)] = c
	}
	return out
}

// jobToken gets a client-credentials access token of a job from
// Gatehouse's authorization server.
func (v *vaultEnv) jobToken(t *testing.T, clientID string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest(http.MethodPost, v.idp.Issuer()+devidp.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, vtJobSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("client credentials for %s: %d %v", clientID, resp.StatusCode, err)
	}
	v.secrets[clientID+" token"] = body.AccessToken
	return body.AccessToken
}

// jobCall calls the vault's job API of instance e (not as a browser: its
// answers may hold tokens, and are not recorded among the browser's bodies).
func (v *vaultEnv) jobCall(e *env, method, path, token string, body any, headers map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, val := range headers {
		req.Header.Set(k, val)
	}
	resp, err := e.gw.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// vaultTokenFor is POST /vault/token for alice and provider as vtJobAll.
func (v *vaultEnv) vaultTokenFor(e *env, jobTok, provider string) (int, map[string]any) {
	e.t.Helper()
	resp, b := v.jobCall(e, "POST", "/vault/token", jobTok, map[string]any{
		"user": map[string]string{"issuer": v.idp.Issuer(), "subject": userID}, "provider": provider,
	}, nil)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if tok, _ := m["access_token"].(string); tok != "" {
		v.mu.Lock()
		v.secrets[fmt.Sprintf("vault token %d", len(v.secrets))] = tok
		v.mu.Unlock()
	}
	return resp.StatusCode, m
}

// checkNoSecrets fails when a credential seen in the test appears in a log
// line of any instance or a response body sent to a browser.
func (v *vaultEnv) checkNoSecrets() {
	v.vtAPI.mu.Lock()
	for i, tok := range v.vtAPI.tokens {
		if tok != "" {
			v.secrets[fmt.Sprintf("third-party access token %d", i)] = tok
		}
	}
	v.vtAPI.mu.Unlock()
	for _, e := range v.all {
		for k, s := range v.secrets {
			e.secrets[k] = s
		}
		e.assertNoSecrets("logs", e.logs.String())
		// The browser legitimately receives its CSRF token (login/end) and
		// the state inside authorization URLs; nothing else.
		for k := range e.secrets {
			if strings.Contains(k, "csrf") || strings.Contains(k, "state") {
				delete(e.secrets, k)
			}
		}
		for _, b := range e.bodies.all() {
			e.assertNoSecrets("a response body", string(b))
		}
	}
}

// tpStats returns the third party's request counters.
func (v *vaultEnv) tpStats() devidp.Stats { return v.tp.Stats() }
