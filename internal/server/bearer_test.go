package server_test

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/devidp/devidptest"
)

// Bearer entry with token_format jwt: JWT access tokens from apps and
// services, verified against the provider's JWKS (DESIGN "Bearer JWT rules").

// expectInvalidToken checks Gatehouse's own 401 for a refused bearer token:
// code unauthorized and an RFC 6750 challenge with error="invalid_token".
func expectInvalidToken(t *testing.T, what string, r *response) {
	t.Helper()
	if !expectErr(t, what, r, http.StatusUnauthorized, "unauthorized") {
		return
	}
	ch, ok := bearerChallenge(r.Header.Get("WWW-Authenticate"))
	if !ok || ch["realm"] != "gatehouse" || ch["error"] != "invalid_token" {
		t.Errorf("%s: WWW-Authenticate %q, want Bearer realm=\"gatehouse\", error=\"invalid_token\"", what, r.Header.Get("WWW-Authenticate"))
	}
}

// set sets Gatehouse's clock to wall time + d.
func (c *clock) set(d time.Duration) {
	c.mu.Lock()
	c.offset = d
	c.mu.Unlock()
}

// bearerRoutes are the JWT routes most bearer tests use, all to e.api.
func bearerRoutes(upstream string) []string {
	return []string{
		gwRoute("orders", "/orders", upstream, "[bearer]", "token_format: jwt", "audience: "+ordersAudience),
		gwRoute("billing", "/billing", upstream, "[bearer]", "token_format: jwt", "audience: "+billingAudience),
		gwRoute("es256-only", "/es256", upstream, "[bearer]", "token_format: jwt", "audience: "+ordersAudience, "algorithms: [ES256]"),
		gwRoute("untyped", "/untyped", upstream, "[bearer]", "token_format: jwt", "audience: "+mobileClientID, "accept_untyped_jwt: true"),
		gwRoute("typed-mobile", "/typed-mobile", upstream, "[bearer]", "token_format: jwt", "audience: "+mobileClientID),
		gwRoute("lenient", "/lenient", upstream, "[bearer]", "token_format: jwt", "audience: "+ordersAudience, "leeway: 60s"),
		gwRoute("admin", "/admin", upstream, "[bearer]", "token_format: jwt", "audience: "+ordersAudience, "require: {scopes: [admin]}"),
	}
}

// newBearerEnv is a Gatehouse with bearerRoutes in front of e.api. The
// upstream URL is only known inside newEnv, so the routes are added there.
func newBearerEnv(t *testing.T, g gateway, idp ...func(*devidp.Config)) *env {
	t.Helper()
	api := newUpstream(t)
	g.routes = append(bearerRoutes(api.URL), g.routes...)
	e := newGateway(t, g, idp...)
	e.api = api
	return e
}

// TestBearerJWT drives the bearer entry with real tokens of the provider:
// which are accepted and forwarded as they are, and which Gatehouse refuses
// itself with 401 and an RFC 6750 invalid_token challenge, never calling the
// upstream.
func TestBearerJWT(t *testing.T) {
	t.Parallel()
	e := newBearerEnv(t, gateway{})
	job := e.clientToken(jobClientID, jobSecret, "read")
	mobile := e.mobileLogin(mobileClientID, "read")
	other := devidptest.Start(t, e.idpConfig())
	foreign := (&env{t: t, idp: other, secrets: e.secrets}).clientToken(jobClientID, jobSecret, "read")
	parts := strings.Split(job, ".")
	tampered := parts[0] + "." + b64([]byte(strings.Replace(string(mustB64(t, parts[1])), `"read"`, `"read admin"`, 1))) + "." + parts[2]
	if tampered == job {
		t.Fatal("the tampered token equals the original")
	}

	tests := []struct {
		name, path, auth string
		ok               bool
	}{
		{"service token", "/orders/1", "Bearer " + job, true},
		{"user token of a mobile app", "/orders/1", "Bearer " + mobile.access, true},
		{"scheme is case-insensitive", "/orders/1", "bearer " + job, true},
		{"audience of another route", "/billing/1", "Bearer " + job, false},
		{"algorithm not allowed on the route", "/es256/1", "Bearer " + job, false},
		{"ID token as access token", "/typed-mobile/1", "Bearer " + mobile.id, false},
		{"ID token on an accept_untyped_jwt route (nonce)", "/untyped/1", "Bearer " + mobile.id, false},
		{"token of another provider", "/orders/1", "Bearer " + foreign, false},
		{"payload changed after signing", "/orders/1", "Bearer " + tampered, false},
		{"signature cut off", "/orders/1", "Bearer " + parts[0] + "." + parts[1] + ".", false},
		{"not a JWT", "/orders/1", "Bearer " + strings.Repeat("a", 40), false},
		{"segments respelled with padding", "/orders/1", "Bearer " + parts[0] + "=." + parts[1] + "." + parts[2], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			before := e.api.count()
			r := e.do(e.raw(), "GET", tc.path, nil, withoutOrigin(), withHeader("Authorization", tc.auth),
				withHeader("Cookie", "session=browser-cookie"))
			if !tc.ok {
				expectInvalidToken(t, tc.name, r)
				if e.api.count() != before {
					t.Error("the upstream was called for a refused token")
				}
				return
			}
			if r.StatusCode != 200 {
				t.Fatalf("status %d, want 200; body %s", r.StatusCode, r.body)
			}
			up := e.api.last(t)
			_, token, _ := strings.Cut(tc.auth, " ")
			if got := up.Header.Get("Authorization"); got != "Bearer "+token {
				t.Errorf("upstream Authorization %q, want the caller's token (forward: access_token)", got)
			}
			if c := up.Header.Get("Cookie"); c != "" {
				t.Errorf("upstream received cookies on a bearer route: %q", c)
			}
		})
	}
	e.assertNoSecretsAnywhere()
}

// idpConfig is the provider configuration of e (for a second provider with
// the same clients).
func (e *env) idpConfig() devidp.Config {
	c := testIDPConfig()
	withGatewayClients(&c)
	return c
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBearerJWTWrongIssuer stops tokens of another issuer whose signature
// verifies: Gatehouse takes its keys from a second provider (jwks_uri), so
// only the iss check stands between that provider's tokens and the API.
func TestBearerJWTWrongIssuer(t *testing.T) {
	t.Parallel()
	other := devidptest.Start(t, func() devidp.Config { c := testIDPConfig(); withGatewayClients(&c); return c }())
	e := newBearerEnv(t, gateway{jwksURI: other.Issuer() + devidp.PathKeys})
	foreign := (&env{t: t, idp: other, secrets: e.secrets}).clientToken(jobClientID, jobSecret, "read")
	if iss := jwtClaims(t, foreign)["iss"]; iss == e.idp.Issuer() {
		t.Fatalf("both providers have issuer %v", iss)
	}
	expectInvalidToken(t, "token of the provider whose keys are trusted but whose issuer is not", e.bearer("GET", "/orders/1", foreign))
	if e.api.count() != 0 {
		t.Error("the upstream was called")
	}
	e.assertNoSecretsAnywhere()
}

// TestBearerJWTForgeries pins the attacks of the bearer JWT rules: alg none,
// HMAC signed with the provider's public key, keys offered in jku, x5u, jwk
// and x5c headers, and forged signatures under the provider's kid. Each is
// 401 invalid_token; the attacker's server receives no request, and a token
// naming a kid the provider publishes never makes Gatehouse fetch the JWKS.
func TestBearerJWTForgeries(t *testing.T) {
	t.Parallel()
	e := newBearerEnv(t, gateway{})
	// A good token first: the JWKS is fetched once.
	if r := e.bearer("GET", "/orders/1", e.clientToken(jobClientID, jobSecret, "read")); r.StatusCode != 200 {
		t.Fatalf("good token: %d %s", r.StatusCode, r.body)
	}
	keys := e.providerKeys()
	kid := keys[0].kid
	evil := newAttacker(t)
	claims := func() map[string]any { return accessClaims(e.idp.Issuer(), ordersAudience, time.Now()) }
	x5c := []string{base64.StdEncoding.EncodeToString(evil.certDER)}

	tests := []struct {
		name     string
		token    string
		knownKid bool // the token names the provider's kid: no JWKS fetch allowed
	}{
		{"alg none", signJWS(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, claims(), nil), true},
		{"alg none without kid", signJWS(t, map[string]any{"alg": "none", "typ": "at+jwt"}, claims(), nil), true},
		{"HS256 keyed with the provider's public key (PEM)", signJWS(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}, claims(), rsaPublicPEM(t, keys[0].public)), true},
		{"HS256 keyed with the provider's modulus", signJWS(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}, claims(), keys[0].public.N.Bytes()), true},
		{"forged signature under the provider's kid", signJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": kid}, claims(), evil.key), true},
		{"jku to the attacker's JWKS", signJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": evil.kid, "jku": evil.URL + "/jwks.json"}, claims(), evil.key), false},
		{"jku with the provider's kid", signJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": kid, "jku": evil.URL + "/jwks.json"}, claims(), evil.key), true},
		{"x5u to the attacker's certificate", signJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": evil.kid, "x5u": evil.URL + "/cert.pem"}, claims(), evil.key), false},
		{"embedded jwk", signJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "jwk": evil.publicJWK(t)}, claims(), evil.key), false},
		{"embedded jwk with the provider's kid", signJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": kid, "jwk": evil.publicJWK(t)}, claims(), evil.key), true},
		{"x5c with the attacker's certificate", signJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": kid, "x5c": x5c}, claims(), evil.key), true},
		{"ES256 under the provider's RSA kid", signJWS(t, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": kid}, claims(), ecKey(t)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			before, fetches := e.api.count(), e.idp.Stats().JWKS
			expectInvalidToken(t, tc.name, e.bearer("GET", "/orders/1", tc.token))
			if e.api.count() != before {
				t.Error("the upstream was called for a forged token")
			}
			if n := e.idp.Stats().JWKS - fetches; tc.knownKid && n != 0 {
				t.Errorf("%d JWKS fetches for a token naming a known kid, want 0", n)
			}
		})
	}
	if n := evil.requests.Load(); n != 0 {
		t.Errorf("Gatehouse sent %d requests to the attacker's server", n)
	}
	e.assertNoSecretsAnywhere()
}

// TestBearerJWKSFetches counts JWKS fetches at the provider: 100 concurrent
// forged tokens naming its kid make none, 100 concurrent tokens naming
// random unknown kids make at most one, and a key rotation at the provider
// is picked up by the one refetch an unknown kid allows, while tokens of the
// previous key keep working.
func TestBearerJWKSFetches(t *testing.T) {
	t.Parallel()
	e := newBearerEnv(t, gateway{})
	before := e.clientToken(jobClientID, jobSecret, "read")
	if r := e.bearer("GET", "/orders/1", before); r.StatusCode != 200 {
		t.Fatalf("good token: %d %s", r.StatusCode, r.body)
	}
	kid := e.providerKeys()[0].kid
	evil := newAttacker(t)

	fetches := e.idp.Stats().JWKS
	statuses := e.concurrently(100, func(int) *http.Request {
		return e.bearerRequest("/orders/1", signJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": kid},
			accessClaims(e.idp.Issuer(), ordersAudience, time.Now()), evil.key))
	})
	if n := countStatus(statuses, 401); n != 100 {
		t.Errorf("forged tokens with a known kid: %d of 100 refused with 401 (%v)", n, statuses)
	}
	if n := e.idp.Stats().JWKS - fetches; n != 0 {
		t.Errorf("100 forged tokens with a known kid made %d JWKS fetches, want 0", n)
	}

	fetches = e.idp.Stats().JWKS
	statuses = e.concurrently(100, func(int) *http.Request {
		return e.bearerRequest("/orders/1", signJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": rand.Text()},
			accessClaims(e.idp.Issuer(), ordersAudience, time.Now()), evil.key))
	})
	if n := countStatus(statuses, 401); n != 100 {
		t.Errorf("tokens with unknown kids: %d of 100 refused with 401 (%v)", n, statuses)
	}
	if n := e.idp.Stats().JWKS - fetches; n > 1 {
		t.Errorf("100 tokens with random unknown kids made %d JWKS fetches, want at most 1", n)
	}
	if e.api.count() != 1 {
		t.Errorf("the upstream received %d requests, want only the good token's", e.api.count())
	}

	// The provider rotates its key. Past the refetch interval, the first
	// token of the new key makes one fetch; the old key's tokens still work.
	e.clock.Advance(31 * time.Second)
	if err := e.idp.RotateSigningKey(); err != nil {
		t.Fatal(err)
	}
	after := e.clientToken(jobClientID, jobSecret, "read")
	if jwtHeader(t, after)["kid"] == kid {
		t.Fatal("the rotated key has the old kid")
	}
	fetches = e.idp.Stats().JWKS
	for i := range 3 {
		if r := e.bearer("GET", "/orders/1", after); r.StatusCode != 200 {
			t.Fatalf("token of the rotated key, request %d: %d %s", i, r.StatusCode, r.body)
		}
	}
	if n := e.idp.Stats().JWKS - fetches; n != 1 {
		t.Errorf("the rotated key cost %d JWKS fetches, want 1", n)
	}
	if r := e.bearer("GET", "/orders/1", e.clientToken(jobClientID, jobSecret, "read")); r.StatusCode != 200 {
		t.Errorf("another token of the rotated key: %d %s", r.StatusCode, r.body)
	}
	// /lenient has its own verified-token cache: the previous key's token is
	// verified again there, against the key set fetched after the rotation.
	if r := e.bearer("GET", "/lenient/1", before); r.StatusCode != 200 {
		t.Errorf("token of the previous key after the rotation: %d %s", r.StatusCode, r.body)
	}
	e.assertNoSecretsAnywhere()
}

// TestBearerJWKSUnavailable: when the provider's JWKS cannot be fetched at
// first use the token cannot be checked (502 authorization_server_error, not
// 401), and the next request after recovery succeeds; once a key set was
// fetched, a failing JWKS endpoint does not lose it.
func TestBearerJWKSUnavailable(t *testing.T) {
	t.Parallel()
	var target atomic.Pointer[httputil.ReverseProxy]
	jwks := newScriptedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { target.Load().ServeHTTP(w, r) }))
	e := newBearerEnv(t, gateway{jwksURI: jwks.URL + devidp.PathKeys})
	idpURL, _ := url.Parse(e.idp.Issuer())
	target.Store(httputil.NewSingleHostReverseProxy(idpURL))
	first, second := e.clientToken(jobClientID, jobSecret, "read"), e.clientToken(jobClientID, jobSecret, "read")

	for _, mode := range []string{mode500, modeGarbage} {
		jwks.set(devidp.PathKeys, mode)
		r := e.bearer("GET", "/orders/1", first)
		expectErr(t, "JWKS "+mode+" at first use", r, http.StatusBadGateway, "authorization_server_error")
		if ch, _ := bearerChallenge(r.Header.Get("WWW-Authenticate")); ch["error"] == "invalid_token" {
			t.Errorf("JWKS %s: the client is told its token is invalid: %q", mode, r.Header.Get("WWW-Authenticate"))
		}
		e.clock.Advance(2 * time.Second) // past the retry interval of a key set never fetched
	}
	if e.api.count() != 0 {
		t.Fatal("the upstream was called while the token could not be checked")
	}
	jwks.set(devidp.PathKeys, modePass)
	if r := e.bearer("GET", "/orders/1", first); r.StatusCode != 200 {
		t.Fatalf("after the JWKS recovered: %d %s", r.StatusCode, r.body)
	}

	// The JWKS endpoint fails again: the last good key set is kept.
	jwks.set(devidp.PathKeys, mode500)
	e.clock.Advance(31 * time.Second) // a refetch would be allowed
	if r := e.bearer("GET", "/orders/1", second); r.StatusCode != 200 {
		t.Errorf("a token of the known key while the JWKS fails: %d %s", r.StatusCode, r.body)
	}
	if err := e.idp.RotateSigningKey(); err != nil {
		t.Fatal(err)
	}
	rotated := e.clientToken(jobClientID, jobSecret, "read")
	before := e.api.count()
	if r := e.bearer("GET", "/orders/1", rotated); r.StatusCode == 200 || e.api.count() != before {
		t.Errorf("a token of a key Gatehouse could not fetch was forwarded: %d", r.StatusCode)
	}
	if r := e.bearer("GET", "/lenient/1", first); r.StatusCode != 200 {
		t.Errorf("the old key's token after a failed refetch: %d %s", r.StatusCode, r.body)
	}
	jwks.set(devidp.PathKeys, modePass)
	e.clock.Advance(31 * time.Second)
	if r := e.bearer("GET", "/orders/1", rotated); r.StatusCode != 200 {
		t.Errorf("the rotated key's token once the JWKS answers again: %d %s", r.StatusCode, r.body)
	}
	e.assertNoSecretsAnywhere()
}

// TestBearerJWTExpiry: Gatehouse itself refuses expired and not-yet-valid
// tokens (401, upstream not called) by its own clock, with the route's
// leeway: 30 s by default, up to 60 s when configured.
func TestBearerJWTExpiry(t *testing.T) {
	t.Parallel()
	e := newBearerEnv(t, gateway{})
	tests := []struct {
		name string
		path string
		// at is Gatehouse's time relative to the token's exp (or, with
		// beforeIssue, to its iat).
		at          time.Duration
		beforeIssue bool
		ok          bool
	}{
		{"before exp", "/orders/1", -time.Minute, false, true},
		{"within the default 30s leeway", "/orders/1", 20 * time.Second, false, true},
		{"beyond the default leeway", "/orders/1", 40 * time.Second, false, false},
		{"long expired", "/orders/1", time.Hour, false, false},
		{"within a 60s leeway", "/lenient/1", 50 * time.Second, false, true},
		{"beyond a 60s leeway", "/lenient/1", 70 * time.Second, false, false},
		{"not yet valid (clock behind)", "/orders/1", -2 * time.Minute, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			tok := e.clientToken(jobClientID, jobSecret, "read")
			c := jwtClaims(t, tok)
			ref := time.Unix(int64(c["exp"].(float64)), 0)
			if tc.beforeIssue {
				ref = time.Unix(int64(c["iat"].(float64)), 0)
			}
			e.clock.set(time.Until(ref.Add(tc.at)))
			defer e.clock.set(0)
			before := e.api.count()
			r := e.bearer("GET", tc.path, tok)
			if tc.ok {
				if r.StatusCode != 200 {
					t.Fatalf("status %d, want 200; body %s", r.StatusCode, r.body)
				}
				return
			}
			expectInvalidToken(t, tc.name, r)
			if e.api.count() != before {
				t.Error("the upstream was called with an expired token")
			}
		})
	}

	// A token verified and cached while valid is refused once it expires:
	// the cache never outlives exp.
	tok := e.clientToken(jobClientID, jobSecret, "read")
	for range 2 {
		if r := e.bearer("GET", "/orders/1", tok); r.StatusCode != 200 {
			t.Fatalf("fresh token: %d %s", r.StatusCode, r.body)
		}
	}
	exp := time.Unix(int64(jwtClaims(t, tok)["exp"].(float64)), 0)
	e.clock.set(time.Until(exp.Add(31 * time.Second)))
	before := e.api.count()
	expectInvalidToken(t, "cached token after exp", e.bearer("GET", "/orders/1", tok))
	if e.api.count() != before {
		t.Error("the upstream was called with an expired cached token")
	}
	e.assertNoSecretsAnywhere()
}

// TestBearerJWTCacheAndRouteChecks: a token verified (and cached) on one
// route is not accepted by a route of another audience, and a route's
// requirements are checked on every request, cached token or not.
func TestBearerJWTCacheAndRouteChecks(t *testing.T) {
	t.Parallel()
	e := newBearerEnv(t, gateway{})
	tok := e.clientToken(jobClientID, jobSecret, "read")
	steps := []struct {
		path   string
		status int
	}{
		{"/orders/1", 200},
		{"/orders/2", 200},       // cached
		{"/billing/1", 401},      // another audience: its own verification fails
		{"/billing/1", 401},      // and is not cached as a success
		{"/admin/1", 403},        // same audience, missing scope
		{"/admin/1", 403},        // again, from the cache
		{"/orders/3", 200},       // still fine where it belongs
		{"/es256/1", 401},        // algorithm list of that route
		{"/typed-mobile/1", 401}, // audience of that route
	}
	for i, s := range steps {
		r := e.bearer("GET", s.path, tok)
		if r.StatusCode != s.status {
			t.Errorf("step %d %s: status %d, want %d; body %s", i, s.path, r.StatusCode, s.status, r.body)
		}
	}
	if n := e.api.count(); n != 3 {
		t.Errorf("the upstream received %d requests, want 3", n)
	}
	e.assertNoSecretsAnywhere()
}
