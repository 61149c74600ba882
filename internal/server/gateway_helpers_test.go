package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// Helpers of the gateway tests: bearer, phantom token and internal JWT
// routes, against the in-process provider.

const (
	// Gatehouse's own client at the introspection endpoint.
	introClientID = "gatehouse"
	introSecret   = "gatehouse-introspection-secret-7f3a"
	// A backend job: client credentials, JWT access tokens.
	jobClientID = "orders-job"
	jobSecret   = "orders-job-secret-91c2e0"
	// The same job with opaque access tokens.
	opaqueJobID     = "orders-job-opaque"
	opaqueJobSecret = "orders-job-opaque-secret-5d8e"
	// A mobile app: public client, code flow with PKCE.
	mobileClientID  = "mobile-app"
	mobileOpaqueID  = "mobile-app-opaque"
	mobileRedirect  = "http://127.0.0.1/mobile/callback"
	ordersAudience  = "orders-api"
	billingAudience = "billing-api"
)

// withGatewayClients adds to the test provider what the gateway tests use:
// roles and a tenant on alice, the orders-api audience and the read/write
// scopes on the SPA's client, a backend job (JWT and opaque), a mobile app
// (JWT and opaque) and Gatehouse's introspection client.
func withGatewayClients(c *devidp.Config) {
	c.Users[0].Claims = map[string]any{
		"roles":        []any{"orders:read", "orders:write"},
		"realm_access": map[string]any{"roles": []any{"customer"}},
		"tenant":       "acme",
	}
	c.Clients[0].Scopes = []string{"read", "write"}
	c.Clients[0].AccessTokenAudience = []string{ordersAudience}
	job := func(id, secret, format string) devidp.Client {
		return devidp.Client{
			ID: id, Secret: secret, GrantTypes: []string{devidp.GrantClientCredentials},
			Scopes: []string{"read", "write", "admin"}, AccessTokenFormat: format,
			AccessTokenAudience: []string{ordersAudience}, AccessTokenLifetime: time.Hour,
		}
	}
	mobile := func(id, format string) devidp.Client {
		return devidp.Client{
			ID: id, AuthMethod: devidp.AuthMethodNone, RedirectURIs: []string{mobileRedirect},
			Scopes: []string{"read", "write"}, AccessTokenFormat: format,
			AccessTokenAudience: []string{ordersAudience}, AccessTokenLifetime: time.Hour,
		}
	}
	c.Clients = append(c.Clients,
		job(jobClientID, jobSecret, devidp.AccessTokenJWT),
		job(opaqueJobID, opaqueJobSecret, devidp.AccessTokenOpaque),
		mobile(mobileClientID, devidp.AccessTokenJWT),
		mobile(mobileOpaqueID, devidp.AccessTokenOpaque),
		devidp.Client{ID: introClientID, Secret: introSecret, CanIntrospect: true},
	)
}

// gateway is the part of the configuration the gateway tests add to baseYAML.
type gateway struct {
	// introspection is the format of authorization_server.introspection
	// (json, jwt, rfc9701); "" leaves the client out.
	introspection string
	// introspectionEndpoint and jwksURI override discovery when set.
	introspectionEndpoint, jwksURI string
	// keyFile is internal_jwt.key_file; "" leaves internal_jwt out.
	keyFile string
	// internalJWT holds more internal_jwt lines ("ttl: 1m").
	internalJWT []string
	routes      []string
}

// edit returns the envOptions.yaml function that adds g.
func (g gateway) edit(t *testing.T) func(string) string {
	return func(y string) string {
		var as []string
		if g.introspectionEndpoint != "" {
			as = append(as, fmt.Sprintf("  introspection_endpoint: %q", g.introspectionEndpoint))
		}
		if g.jwksURI != "" {
			as = append(as, fmt.Sprintf("  jwks_uri: %q", g.jwksURI))
		}
		if g.introspection != "" {
			as = append(as, "  introspection:", "    client_id: "+introClientID, "    client_secret: "+introSecret,
				"    format: "+g.introspection)
		}
		if len(as) > 0 {
			y = insertAfter(t, y, "authorization_server:", strings.Join(as, "\n")+"\n")
		}
		if g.keyFile != "" {
			lines := append([]string{"internal_jwt:", fmt.Sprintf("  key_file: %q", g.keyFile)}, indent("  ", g.internalJWT)...)
			y = strings.Replace(y, "\nroutes:\n", "\n"+strings.Join(lines, "\n")+"\nroutes:\n", 1)
		}
		return y + strings.Join(g.routes, "")
	}
}

func indent(prefix string, lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = prefix + l
	}
	return out
}

// gwRoute is one route for gateway.routes: entries like "[bearer]" and
// more keys, one per line ("token_format: jwt").
func gwRoute(name, path, upstream, entries string, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %q\n    path: %q\n    upstream: %q\n    entry: %s\n", name, path, upstream, entries)
	for _, l := range lines {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// newGateway starts an env with the gateway clients at the provider and g
// in the configuration.
func newGateway(t *testing.T, g gateway, idp ...func(*devidp.Config)) *env {
	t.Helper()
	e := newEnv(t, envOptions{
		idp: func(c *devidp.Config) {
			withGatewayClients(c)
			for _, f := range idp {
				f(c)
			}
		},
		yaml: g.edit(t),
	})
	e.secrets["introspection client secret"] = introSecret
	return e
}

// tokenEndpoint posts form to the provider's token endpoint and returns the
// JSON answer; it fails the test unless the status is 200.
func (e *env) tokenEndpoint(form url.Values, user, pass string) map[string]any {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.idp.Issuer()+devidp.PathToken, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		e.t.Fatalf("token endpoint: %d %s", resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// clientToken returns a new access token of a confidential client
// (client_credentials grant), recorded as a secret.
func (e *env) clientToken(id, secret string, scopes ...string) string {
	e.t.Helper()
	form := url.Values{"grant_type": {devidp.GrantClientCredentials}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	at, _ := e.tokenEndpoint(form, id, secret)["access_token"].(string)
	if at == "" {
		e.t.Fatal("token endpoint: no access_token")
	}
	e.secrets[fmt.Sprintf("access token %d", len(e.secrets))] = at
	e.secrets["client secret of "+id] = secret
	return at
}

// mobileTokens are what a mobile app holds after logging alice in.
type mobileTokens struct{ access, id, refresh string }

// mobileLogin logs alice in with the code flow and PKCE for a public client
// (a mobile app), as AppAuth would, and returns its tokens.
func (e *env) mobileLogin(clientID string, scopes ...string) mobileTokens {
	e.t.Helper()
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	authURL := e.idp.Issuer() + devidp.PathAuthorize + "?" + url.Values{
		"client_id":             {clientID},
		"response_type":         {"code"},
		"redirect_uri":          {mobileRedirect},
		"scope":                 {strings.Join(append([]string{"openid", "profile"}, scopes...), " ")},
		"state":                 {state},
		"nonce":                 {rand.Text()},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cb, err := devidp.Login(ctx, nil, authURL, userName, userPassword)
	if err != nil {
		e.t.Fatalf("mobile login: %v", err)
	}
	u, _ := url.Parse(cb)
	if u.Query().Get("state") != state || u.Query().Get("code") == "" {
		e.t.Fatalf("mobile login: callback %s", cb)
	}
	m := e.tokenEndpoint(url.Values{
		"grant_type": {devidp.GrantAuthorizationCode}, "code": {u.Query().Get("code")},
		"redirect_uri": {mobileRedirect}, "client_id": {clientID}, "code_verifier": {verifier},
	}, "", "")
	var t mobileTokens
	t.access, _ = m["access_token"].(string)
	t.id, _ = m["id_token"].(string)
	t.refresh, _ = m["refresh_token"].(string)
	if t.access == "" {
		e.t.Fatal("mobile login: no access token")
	}
	for k, v := range map[string]string{"mobile access token": t.access, "mobile ID token": t.id, "mobile refresh token": t.refresh, "mobile code": u.Query().Get("code")} {
		if v != "" {
			e.secrets[k+" "+fmt.Sprint(len(e.secrets))] = v
		}
	}
	return t
}

// bearer sends a request as an app would: no Origin, no cookies, the token
// in the Authorization header.
func (e *env) bearer(method, path, token string, opts ...reqOpt) *response {
	e.t.Helper()
	return e.do(e.raw(), method, path, nil, append([]reqOpt{withoutOrigin(), withHeader("Authorization", "Bearer "+token)}, opts...)...)
}

// concurrently sends n requests built by mk at the same time (without
// failing from other goroutines) and returns their statuses.
func (e *env) concurrently(n int, mk func(i int) *http.Request) []int {
	e.t.Helper()
	c := e.raw()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		req := mk(i)
		wg.Go(func() {
			<-start
			resp, err := c.Do(req)
			if err != nil {
				statuses[i] = -1
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			e.bodies.add(b)
			statuses[i] = resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	return statuses
}

// bearerRequest builds a bearer request for concurrently.
func (e *env) bearerRequest(path, token string) *http.Request {
	req, err := http.NewRequest("GET", e.base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// countStatus counts the statuses equal to want.
func countStatus(statuses []int, want int) int {
	n := 0
	for _, s := range statuses {
		if s == want {
			n++
		}
	}
	return n
}

// bearerChallenge parses a WWW-Authenticate Bearer challenge into its
// parameters; ok is false when the header is not a Bearer challenge.
func bearerChallenge(h string) (params map[string]string, ok bool) {
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return nil, false
	}
	params = map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		name, after, found := strings.Cut(rest, "=")
		if !found {
			return nil, false
		}
		name = strings.TrimSpace(name)
		after = strings.TrimSpace(after)
		var val string
		if strings.HasPrefix(after, `"`) {
			end := 1
			for end < len(after) && after[end] != '"' {
				if after[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(after) {
				return nil, false
			}
			val = strings.ReplaceAll(after[1:end], `\"`, `"`)
			after = after[end+1:]
		} else {
			val, after, _ = strings.Cut(after, ",")
			after = "," + after
		}
		params[name] = val
		after = strings.TrimSpace(after)
		after = strings.TrimPrefix(after, ",")
		rest = strings.TrimSpace(after)
	}
	return params, true
}

// --- JWTs made by the test ---

// b64 is base64url without padding.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signJWS builds a compact JWS with exactly the given header (alg included)
// and claims, signed with key for alg: *rsa.PrivateKey (RS256),
// *ecdsa.PrivateKey (ES256), []byte (HS256) or nil (none: no signature).
func signJWS(t *testing.T, header, claims map[string]any, key any) string {
	t.Helper()
	tok, err := makeJWS(header, claims, key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// makeJWS is signJWS for goroutines other than the test's.
func makeJWS(header, claims map[string]any, key any) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := b64(h) + "." + b64(c)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case nil:
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
	case *ecdsa.PrivateKey:
		var r, s *big.Int
		if r, s, err = ecdsa.Sign(rand.Reader, k, digest[:]); err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	case []byte:
		m := hmac.New(sha256.New, k)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	default:
		return "", fmt.Errorf("makeJWS: key type %T", key)
	}
	if err != nil {
		return "", err
	}
	return input + "." + b64(sig), nil
}

// accessClaims are the claims of a plausible access token from iss for aud.
func accessClaims(iss, aud string, now time.Time) map[string]any {
	return map[string]any{
		"iss": iss, "sub": "mallory", "aud": []string{aud}, "client_id": jobClientID, "scope": "read write admin",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": rand.Text(),
	}
}

// providerKey is the provider's current signing key as its JWKS publishes it.
type providerKey struct {
	kid    string
	public *rsa.PublicKey
}

// providerKeys fetches the provider's JWKS (counted in its Stats).
func (e *env) providerKeys() []providerKey {
	e.t.Helper()
	resp, err := http.Get(e.idp.Issuer() + devidp.PathKeys)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		e.t.Fatal(err)
	}
	var out []providerKey
	for _, k := range set.Keys {
		if pub, ok := k.Key.(*rsa.PublicKey); ok {
			out = append(out, providerKey{kid: k.KeyID, public: pub})
		}
	}
	if len(out) == 0 {
		e.t.Fatal("the provider publishes no RSA key")
	}
	return out
}

// jwtHeader decodes the header of a compact JWS.
func jwtHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	return b64json(t, seg)
}

// jwtClaims decodes the payload of a compact JWS (without verifying it).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d segments", len(parts))
	}
	return b64json(t, parts[1])
}

// attacker is a server an attacker controls, holding keys of its own. It
// counts every request: Gatehouse must never fetch anything from it.
type attacker struct {
	*httptest.Server
	key      *rsa.PrivateKey
	kid      string
	certDER  []byte
	requests atomic.Int64
}

var (
	attackerKeyOnce sync.Once
	attackerKey     *rsa.PrivateKey
)

func newAttacker(t *testing.T) *attacker {
	t.Helper()
	attackerKeyOnce.Do(func() {
		var err error
		if attackerKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	a := &attacker{key: attackerKey, kid: "attacker-" + rand.Text()[:8]}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "attacker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &a.key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	a.certDER = der
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &a.key.PublicKey, KeyID: a.kid, Algorithm: "RS256", Use: "sig"}}})
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(a.Close)
	return a
}

// publicJWK is the attacker's public key as a JWK header value.
func (a *attacker) publicJWK(t *testing.T) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: &a.key.PublicKey, KeyID: a.kid, Algorithm: "RS256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// rsaPublicPEM is the PEM encoding of pub, the bytes an HMAC key-confusion
// attack uses as the secret.
func rsaPublicPEM(t *testing.T, pub *rsa.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// --- an API behind Gatehouse that validates JWTs ---

// seenToken is what exampleAPI made of one request.
type seenToken struct {
	path   string
	raw    string
	claims *jwtverify.Claims
	err    error
}

// exampleAPI is an upstream that validates the bearer JWT of every request
// the way a real API would: with jwtverify, against a JWKS (Gatehouse's own
// for minted tokens). It answers 200 with the token's claims, or 401.
type exampleAPI struct {
	*httptest.Server
	verifier atomic.Pointer[jwtverify.Verifier]
	mu       sync.Mutex
	seen     []seenToken
}

func newExampleAPI(t *testing.T) *exampleAPI {
	a := &exampleAPI{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		v := a.verifier.Load()
		st := seenToken{path: r.URL.Path}
		switch {
		case !ok:
			st.err = fmt.Errorf("no bearer token")
		case v == nil:
			st.err = fmt.Errorf("the example API trusts no keys yet")
		default:
			st.raw = raw
			st.claims, st.err = v.Verify(r.Context(), raw)
		}
		a.mu.Lock()
		a.seen = append(a.seen, st)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if st.err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_token"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": st.claims.Subject, "path": r.URL.Path})
	}))
	t.Cleanup(a.Close)
	return a
}

// trust makes the API accept JWTs of issuer for audience, with the keys at
// jwksURL fetched by hc; clock is the API's clock.
func (a *exampleAPI) trust(t *testing.T, jwksURL, issuer, audience string, hc *http.Client, clock func() time.Time) *jwtverify.KeySet {
	t.Helper()
	ks, v := newTokenVerifier(t, jwksURL, issuer, audience, hc, clock)
	a.verifier.Store(v)
	return ks
}

// trustGatehouse makes the API accept the JWTs e's Gatehouse mints for audience.
func (a *exampleAPI) trustGatehouse(e *env, audience string) *jwtverify.KeySet {
	return a.trust(e.t, e.base+"/.well-known/jwks.json", e.base, audience, e.gw.Client(), e.clock.Now)
}

// newTokenVerifier is an access-token verifier for issuer and audience with
// its own key set.
func newTokenVerifier(t *testing.T, jwksURL, issuer, audience string, hc *http.Client, clock func() time.Time) (*jwtverify.KeySet, *jwtverify.Verifier) {
	t.Helper()
	ks, err := jwtverify.NewKeySet(jwtverify.KeySetConfig{URL: jwksURL, Client: hc, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwtverify.New(ks, jwtverify.Config{Purpose: jwtverify.AccessToken, Issuer: issuer, Audience: audience, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return ks, v
}

// last returns what the API made of the last request; it fails the test if
// the API received none.
func (a *exampleAPI) last(t *testing.T) seenToken {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen) == 0 {
		t.Fatal("the example API received no request")
	}
	return a.seen[len(a.seen)-1]
}

func (a *exampleAPI) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seen)
}

// --- restarting Gatehouse ---

// restart replaces e's Gatehouse with one built from a new configuration
// (baseYAML edited by edit) on the same address, so that public_url and the
// iss of minted tokens stay the same; the provider, upstream and clock stay.
func (e *env) restart(edit func(string) string) {
	e.t.Helper()
	addr := e.gw.Listener.Addr().String()
	e.gw.Close()
	e.srv.Stop()
	y := edit(baseYAML(e.base, e.idp.Issuer(), e.api.URL))
	cfg, _, err := config.Parse([]byte(y), e.t.TempDir(), config.Options{Env: func(string) (string, bool) { return "", false }})
	if err != nil {
		e.t.Fatalf("config: %v", err)
	}
	srv, err := server.New(cfg, server.Options{
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    e.clock.Now,
	})
	if err != nil {
		e.t.Fatalf("server.New: %v", err)
	}
	var ln net.Listener
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("listen on %s again: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(ctx)
	gw := httptest.NewUnstartedServer(srv.Handler())
	gw.Listener.Close()
	gw.Listener = ln
	gw.StartTLS()
	e.t.Cleanup(func() {
		gw.Close()
		cancel()
		srv.Stop()
	})
	e.srv, e.gw, e.cfg = srv, gw, cfg
	e.browser = e.newBrowser()
	e.waitReady()
}

// ecKey returns a new P-256 key.
func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
