package introspect_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/devidp/devidptest"
	"github.com/gatehouse-dev/gatehouse/internal/introspect"
	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	// The wall clock's second: the provider's own signature checks use it.
	return &fakeClock{now: time.Now().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logBuffer collects log lines for checks that no credential is logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// --- the real provider ---

const (
	gatehouseID     = "gatehouse"
	gatehouseSecret = "gatehouse-secret"
	serviceID       = "svc"
	serviceSecret   = "svc-secret"
	webID           = "web"
	webSecret       = "web-secret"
	redirectURI     = "http://localhost:8080/callback"
)

// idpFixture is a devidp provider issuing opaque access tokens, with the
// provider's clock shared with the test.
type idpFixture struct {
	idp   *devidp.Provider
	clock *fakeClock
	hc    *http.Client
}

// startIDP starts a provider with: svc (client credentials, opaque tokens),
// web (authorization code, opaque tokens, refresh tokens), and Gatehouse's
// introspection clients: gatehouse (client_secret_basic), gatehouse-post
// (client_secret_post) and gatehouse-jwt (private_key_jwt with key).
func startIDP(t testing.TB, key *ecdsa.PrivateKey, edit func(*devidp.Config)) *idpFixture {
	t.Helper()
	clock := newFakeClock()
	cfg := devidp.Config{
		Users: []devidp.User{{ID: "u-alice", Username: "alice", Password: "Password1", Claims: map[string]any{"roles": []string{"admin"}}}},
		Clients: []devidp.Client{
			{
				ID: serviceID, Secret: serviceSecret, Scopes: []string{"read", "write"},
				GrantTypes: []string{devidp.GrantClientCredentials}, AccessTokenFormat: devidp.AccessTokenOpaque,
				AccessTokenAudience: []string{"business-api"},
			},
			{
				ID: webID, Secret: webSecret, RedirectURIs: []string{redirectURI}, Scopes: []string{"read"},
				AccessTokenFormat: devidp.AccessTokenOpaque,
			},
			{ID: gatehouseID, Secret: gatehouseSecret, CanIntrospect: true},
			{ID: gatehouseID + "-post", Secret: gatehouseSecret, AuthMethod: devidp.AuthMethodPost, CanIntrospect: true},
			{
				ID: gatehouseID + "-jwt", AuthMethod: devidp.AuthMethodPrivateKeyJWT, CanIntrospect: true,
				PublicKeys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "gh-1", Algorithm: string(jose.ES256), Use: "sig"}},
			},
		},
		Now: clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	return &idpFixture{
		idp:   devidptest.Start(t, cfg),
		clock: clock,
		hc: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (f *idpFixture) endpoint() (string, error) {
	return f.idp.Issuer() + devidp.PathIntrospect, nil
}

// introspector returns an Introspector for the provider authenticating as
// gatehouse with client_secret_basic; edit may change the config.
func (f *idpFixture) introspector(t testing.TB, edit func(*introspect.Config)) *introspect.Introspector {
	t.Helper()
	cfg := introspect.Config{
		Endpoint: f.endpoint,
		Issuer:   f.idp.Issuer(),
		ClientID: gatehouseID,
		Auth:     oauthclient.SecretBasic{ClientID: gatehouseID, Secret: secret.New(gatehouseSecret)},
		HTTP:     oauthclient.NewHTTPClient(10 * time.Second),
		Clock:    f.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	i, err := introspect.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// tokenResponse is the part of a token response the tests read.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	Error        string `json:"error"`
}

func (f *idpFixture) token(t testing.TB, clientID, clientSecret string, form url.Values) tokenResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.idp.Issuer()+devidp.PathToken, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))
	resp, err := f.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("token endpoint: %d %q", resp.StatusCode, tr.Error)
	}
	return tr
}

// serviceToken is a new opaque access token of svc (client credentials).
func (f *idpFixture) serviceToken(t testing.TB) string {
	t.Helper()
	return f.token(t, serviceID, serviceSecret, url.Values{"grant_type": {"client_credentials"}}).AccessToken
}

// userTokens logs alice in at web and returns her opaque access token and
// refresh token.
func (f *idpFixture) userTokens(t testing.TB) tokenResponse {
	t.Helper()
	verifier := strings.Repeat("v", 50)
	sum := sha256.Sum256([]byte(verifier))
	authURL := f.idp.Issuer() + devidp.PathAuthorize + "?" + url.Values{
		"client_id":             {webID},
		"response_type":         {"code"},
		"redirect_uri":          {redirectURI},
		"scope":                 {"openid offline_access read"},
		"state":                 {"state-1"},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}.Encode()
	cb, err := devidp.Login(t.Context(), f.hc, authURL, "alice", "Password1")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cb)
	if err != nil {
		t.Fatal(err)
	}
	code := u.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in the callback (error %q)", u.Query().Get("error"))
	}
	return f.token(t, webID, webSecret, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {verifier},
	})
}

// --- the scriptable server, for faults and the JWT formats ---

const (
	fakeIssuer = "https://as.example.com"
	fakeClient = "gatehouse"
)

// asServer is a small authorization server whose introspection answers the
// test scripts. It records each request, can hold requests at a gate, and
// serves a JWKS at /jwks for RFC 9701 responses it signs with its key.
type asServer struct {
	*httptest.Server
	key     *ecdsa.PrivateKey
	release chan struct{} // closed at cleanup: held handlers return

	requests atomic.Int64 // introspection requests

	mu      sync.Mutex
	answer  func(w http.ResponseWriter, r *http.Request)
	reqs    []recorded
	gate    chan struct{} // when set, requests wait until it is closed
	arrived chan struct{} // when set, gets a value per request
}

type recorded struct {
	method string
	path   string
	header http.Header
	form   url.Values
}

var (
	serverKeyOnce sync.Once
	serverKey     *ecdsa.PrivateKey
	attackerKey   *ecdsa.PrivateKey
)

func keys() (server, attacker *ecdsa.PrivateKey) {
	serverKeyOnce.Do(func() {
		var err error
		if serverKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if attackerKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return serverKey, attackerKey
}

func newASServer(t testing.TB) *asServer {
	t.Helper()
	key, _ := keys()
	s := &asServer{key: key, release: make(chan struct{})}
	s.answer = s.jsonAnswer(http.StatusOK, map[string]any{"active": false}, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/introspect", s.serveIntrospect)
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		jwk := jose.JSONWebKey{Key: &s.key.PublicKey, KeyID: "as-1", Algorithm: string(jose.ES256), Use: "sig"}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a redirect was followed to %s", r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"active":true}`)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(s.release) }) // runs first
	return s
}

func (s *asServer) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	_ = r.ParseForm()
	s.mu.Lock()
	s.reqs = append(s.reqs, recorded{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), form: r.PostForm})
	answer, gate, arrived := s.answer, s.gate, s.arrived
	s.mu.Unlock()
	if arrived != nil {
		arrived <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-s.release:
			return
		}
	}
	answer(w, r)
}

func (s *asServer) endpoint() (string, error) { return s.URL + "/introspect", nil }

// respond sets the answer to every following introspection request.
func (s *asServer) respond(answer func(w http.ResponseWriter, r *http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = answer
}

func (s *asServer) last(t testing.TB) recorded {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("no introspection request")
	}
	return s.reqs[len(s.reqs)-1]
}

// jsonAnswer answers status with body as JSON and the given extra headers.
func (s *asServer) jsonAnswer(status int, body any, header map[string]string) func(http.ResponseWriter, *http.Request) {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return s.rawAnswer(status, "application/json", string(b), header)
}

func (s *asServer) rawAnswer(status int, contentType, body string, header map[string]string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// hang answers only when the client gives up (or the test ends).
func (s *asServer) hang(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.release:
	}
}

// sign returns a compact JWS of claims signed by key (ES256) with typ and kid.
func sign(t testing.TB, key *ecdsa.PrivateKey, typ, kid string, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithHeader("kid", kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// rfc9701 is a signed introspection response about a token, from the fake
// server to Gatehouse, issued at now.
func (s *asServer) rfc9701(t testing.TB, now time.Time, inner map[string]any, edit func(map[string]any)) string {
	t.Helper()
	claims := map[string]any{
		"iss":                 fakeIssuer,
		"aud":                 fakeClient,
		"iat":                 now.Unix(),
		"token_introspection": inner,
	}
	if edit != nil {
		edit(claims)
	}
	return sign(t, s.key, "token-introspection+jwt", "as-1", claims)
}

// fakeFixture is a scriptable server, a fake clock and a log buffer.
type fakeFixture struct {
	srv   *asServer
	clock *fakeClock
	logs  *logBuffer
}

func newFakeFixture(t testing.TB) *fakeFixture {
	t.Helper()
	return &fakeFixture{srv: newASServer(t), clock: newFakeClock(), logs: &logBuffer{}}
}

// introspector returns an Introspector on the fake server (JSON format,
// client_secret_basic, 2 s timeout) after edit.
func (f *fakeFixture) introspector(t testing.TB, edit func(*introspect.Config)) *introspect.Introspector {
	t.Helper()
	cfg := introspect.Config{
		Endpoint: f.srv.endpoint,
		Issuer:   fakeIssuer,
		ClientID: fakeClient,
		Auth:     oauthclient.SecretBasic{ClientID: fakeClient, Secret: secret.New("gh-secret")},
		HTTP:     &http.Client{Timeout: 2 * time.Second},
		Clock:    f.clock.Now,
		Logger:   f.logs.logger(),
	}
	if edit != nil {
		edit(&cfg)
	}
	if cfg.Format == introspect.FormatRFC9701 && cfg.Keys == nil {
		ks, err := jwtverify.NewKeySet(jwtverify.KeySetConfig{URL: f.srv.URL + "/jwks", Client: f.srv.Client(), Clock: f.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Keys = ks
	}
	i, err := introspect.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// activeBody is an RFC 7662 response for an active token expiring at exp.
func activeBody(exp time.Time) map[string]any {
	return map[string]any{
		"active":     true,
		"iss":        fakeIssuer,
		"sub":        "user-1",
		"client_id":  "spa",
		"scope":      "read write",
		"aud":        []string{"business-api"},
		"exp":        exp.Unix(),
		"token_type": "Bearer",
	}
}

// opaque returns a distinct opaque token for n.
func opaque(n int) string {
	sum := sha256.Sum256([]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// introspectOK fails the test unless Introspect succeeds.
func introspectOK(t testing.TB, i *introspect.Introspector, token string) *introspect.Result {
	t.Helper()
	res, err := i.Introspect(t.Context(), token)
	if err != nil {
		t.Fatalf("Introspect: %v", err)
	}
	return res
}
