package devidp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/devidp/devidptest"
)

const (
	redirectURI       = "http://localhost:8080/callback"
	postLogoutURI     = "http://localhost:8080/"
	alicePassword     = "Password1"
	bobPassword       = "Hunter2!"
	defaultUserScopes = "openid profile email offline_access read"
)

// Client keys are generated once per test binary: RSA generation is slow.
var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
)

func clientKeys(_ testing.TB) (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return rsaKey, ecKey
}

var (
	alice = devidp.User{
		ID: "u-alice", Username: "alice", Password: alicePassword,
		GivenName: "Alice", FamilyName: "Liddell", Email: "alice@example.com",
		Claims: map[string]any{"roles": []string{"admin", "user"}},
	}
	bob = devidp.User{ID: "u-bob", Username: "bob", Password: bobPassword, GivenName: "Bob"}
)

// auth is how a test client authenticates at the provider.
type auth struct {
	id, secret, method string
	key                any // *rsa.PrivateKey or *ecdsa.PrivateKey for private_key_jwt
	kid                string
}

var (
	basicClient   = auth{id: "web-basic", secret: "basic-secret", method: devidp.AuthMethodBasic}
	postClient    = auth{id: "web-post", secret: "post-secret", method: devidp.AuthMethodPost}
	rsaJWTClient  = auth{id: "web-jwt-rsa", method: devidp.AuthMethodPrivateKeyJWT, kid: "rsa-1"}
	ecJWTClient   = auth{id: "web-jwt-ec", method: devidp.AuthMethodPrivateKeyJWT, kid: "ec-1"}
	publicClient  = auth{id: "spa", method: devidp.AuthMethodNone}
	opaqueClient  = auth{id: "web-opaque", secret: "opaque-secret", method: devidp.AuthMethodBasic}
	apiClient     = auth{id: "api", secret: "api-secret", method: devidp.AuthMethodBasic}
	serviceClient = auth{id: "svc", secret: "svc-secret", method: devidp.AuthMethodPost}
)

func (a auth) withKey(t testing.TB) auth {
	r, e := clientKeys(t)
	switch a.id {
	case rsaJWTClient.id:
		a.key = r
	case ecJWTClient.id:
		a.key = e
	}
	return a
}

// testConfig has one client of each kind and two users.
func testConfig(t testing.TB) devidp.Config {
	r, e := clientKeys(t)
	web := func(a auth) devidp.Client {
		return devidp.Client{
			ID: a.id, Secret: a.secret, AuthMethod: a.method,
			RedirectURIs:           []string{redirectURI},
			PostLogoutRedirectURIs: []string{postLogoutURI},
			Scopes:                 []string{"read", "write"},
			AccessTokenAudience:    []string{"https://api.example.com"},
		}
	}
	rsaC := web(rsaJWTClient)
	rsaC.PublicKeys = []jose.JSONWebKey{{Key: &r.PublicKey, KeyID: rsaJWTClient.kid, Algorithm: string(jose.RS256), Use: "sig"}}
	ecC := web(ecJWTClient)
	ecC.PublicKeys = []jose.JSONWebKey{{Key: &e.PublicKey, KeyID: ecJWTClient.kid, Algorithm: string(jose.ES256), Use: "sig"}}
	opaque := web(opaqueClient)
	opaque.AccessTokenFormat = devidp.AccessTokenOpaque
	return devidp.Config{
		Users: []devidp.User{alice, bob},
		Clients: []devidp.Client{
			web(basicClient), web(postClient), rsaC, ecC, web(publicClient), opaque,
			{ID: apiClient.id, Secret: apiClient.secret, CanIntrospect: true},
			{
				ID: serviceClient.id, Secret: serviceClient.secret, AuthMethod: serviceClient.method,
				Scopes: []string{"read", "write"}, GrantTypes: []string{devidp.GrantClientCredentials},
			},
		},
	}
}

// fixture is a running provider and an HTTP client for it.
type fixture struct {
	idp *devidp.Provider
	hc  *http.Client
}

func start(t testing.TB, mutate func(*devidp.Config)) *fixture {
	t.Helper()
	cfg := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	return &fixture{
		idp: devidptest.Start(t, cfg),
		hc: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// flow is one authorization request in progress.
type flow struct {
	authURL, state, nonce, verifier string
}

// newFlow builds an authorization request with PKCE S256; extra parameters
// override or add to the defaults (an empty value removes one).
func (f *fixture) newFlow(clientID string, extra url.Values) flow {
	fl := flow{state: randomString(), nonce: randomString(), verifier: randomString() + randomString()}
	sum := sha256.Sum256([]byte(fl.verifier))
	q := url.Values{
		"client_id":             {clientID},
		"response_type":         {"code"},
		"redirect_uri":          {redirectURI},
		"scope":                 {defaultUserScopes},
		"state":                 {fl.state},
		"nonce":                 {fl.nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		if len(v) == 1 && v[0] == "" {
			q.Del(k)
			continue
		}
		q[k] = v
	}
	fl.authURL = f.idp.Issuer() + devidp.PathAuthorize + "?" + q.Encode()
	return fl
}

// login runs the login page and returns the callback URL's query (or
// fragment) parameters.
func (f *fixture) login(t testing.TB, fl flow, username, password string) url.Values {
	t.Helper()
	cb, err := devidp.Login(context.Background(), f.hc, fl.authURL, username, password)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	u, err := url.Parse(cb)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != redirectURI {
		t.Fatalf("callback went to %q, want %q", got, redirectURI)
	}
	if u.Fragment != "" {
		q, err := url.ParseQuery(u.Fragment)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	return u.Query()
}

// code runs a whole authorization request for alice and returns the code.
func (f *fixture) code(t testing.TB, clientID string, extra url.Values) (string, flow) {
	t.Helper()
	fl := f.newFlow(clientID, extra)
	q := f.login(t, fl, alice.Username, alicePassword)
	if q.Get("error") != "" {
		t.Fatalf("authorization error %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != fl.state {
		t.Fatalf("state = %q, want %q", q.Get("state"), fl.state)
	}
	if q.Get("code") == "" {
		t.Fatal("no code in callback")
	}
	return q.Get("code"), fl
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	IDToken      string `json:"id_token"`
	Scope        string `json:"scope"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

// response is an HTTP response with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %d response %q: %v", r.status, r.body, err)
	}
}

// post sends a form to the provider, authenticating as a (unless a.id is
// empty).
func (f *fixture) post(t testing.TB, path string, a auth, form url.Values) response {
	t.Helper()
	form = cloneValues(form)
	req, err := http.NewRequest(http.MethodPost, f.idp.Issuer()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	switch a.method {
	case devidp.AuthMethodBasic:
		req.SetBasicAuth(url.QueryEscape(a.id), url.QueryEscape(a.secret))
	case devidp.AuthMethodPost:
		form.Set("client_id", a.id)
		form.Set("client_secret", a.secret)
	case devidp.AuthMethodPrivateKeyJWT:
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", clientAssertion(t, a, f.idp.Issuer(), randomString()))
	case devidp.AuthMethodNone:
		form.Set("client_id", a.id)
	}
	req.Body = io.NopCloser(strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return f.do(t, req)
}

func (f *fixture) get(t testing.TB, rawURL string, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return f.do(t, req)
}

func (f *fixture) do(t testing.TB, req *http.Request) response {
	t.Helper()
	resp, err := f.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// token posts to the token endpoint and decodes the answer, success or error.
func (f *fixture) token(t testing.TB, a auth, form url.Values) (tokenResponse, int) {
	t.Helper()
	r := f.post(t, devidp.PathToken, a, form)
	var tr tokenResponse
	r.json(t, &tr)
	return tr, r.status
}

// exchange redeems a code and fails the test unless tokens come back.
func (f *fixture) exchange(t testing.TB, a auth, code string, fl flow) tokenResponse {
	t.Helper()
	tr, status := f.token(t, a, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {fl.verifier},
	})
	if status != http.StatusOK {
		t.Fatalf("code exchange: %d %s: %s", status, tr.Error, tr.Description)
	}
	return tr
}

// tokens runs the whole flow for alice at client a.
func (f *fixture) tokens(t testing.TB, a auth, extra url.Values) (tokenResponse, flow) {
	t.Helper()
	code, fl := f.code(t, a.id, extra)
	return f.exchange(t, a, code, fl), fl
}

func (f *fixture) refresh(t testing.TB, a auth, refreshToken string) (tokenResponse, int) {
	t.Helper()
	return f.token(t, a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
}

// introspect asks as a and returns the decoded response.
func (f *fixture) introspect(t testing.TB, a auth, token string) map[string]any {
	t.Helper()
	r := f.post(t, devidp.PathIntrospect, a, url.Values{"token": {token}})
	if r.status != http.StatusOK {
		t.Fatalf("introspect: %d %s", r.status, r.body)
	}
	var m map[string]any
	r.json(t, &m)
	return m
}

func (f *fixture) userinfo(t testing.TB, accessToken string) response {
	t.Helper()
	return f.get(t, f.idp.Issuer()+devidp.PathUserinfo, http.Header{"Authorization": {"Bearer " + accessToken}})
}

func (f *fixture) jwks(t testing.TB) jose.JSONWebKeySet {
	t.Helper()
	r := f.get(t, f.idp.Issuer()+devidp.PathKeys, nil)
	if r.status != http.StatusOK {
		t.Fatalf("jwks: %d", r.status)
	}
	var set jose.JSONWebKeySet
	r.json(t, &set)
	return set
}

// verify checks a JWT's signature against the provider's JWKS and returns
// its header and claims.
func (f *fixture) verify(t testing.TB, token string) (jose.Header, map[string]any) {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse JWT: %v", err)
	}
	h := jws.Signatures[0].Header
	set := f.jwks(t)
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys with kid %q", len(keys), h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("verify JWT: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return h, claims
}

// clientAssertion signs an RFC 7523 client assertion: iss = sub = client
// id, aud = issuer, exp in 60 s, the given jti.
func clientAssertion(t testing.TB, a auth, aud, jti string) string {
	t.Helper()
	alg := jose.RS256
	if _, ok := a.key.(*ecdsa.PrivateKey); ok {
		alg = jose.ES256
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: a.key, KeyID: a.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	payload, err := json.Marshal(map[string]any{
		"iss": a.id, "sub": a.id, "aud": aud, "jti": jti,
		"iat": now.Unix(), "exp": now.Add(60 * time.Second).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomString() string { return rand.Text() }

func cloneValues(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// unverifiedClaims decodes a JWT payload without checking the signature.
func unverifiedClaims(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
