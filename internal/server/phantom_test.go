package server_test

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

// Phantom token (token_format: opaque, forward: phantom): opaque access
// tokens are introspected and the upstream receives a JWT (DESIGN
// "Introspection rules").

// phantomEnv is a Gatehouse whose introspection endpoint is a scriptedServer
// passing through to the provider (for faults), with the phantom routes of
// seed 003 in front of an example API that validates what it receives
// through Gatehouse's JWKS.
type phantomEnv struct {
	*env
	orders *exampleAPI
	intro  *scriptedServer
}

func newPhantomEnv(t *testing.T, extra ...string) *phantomEnv {
	t.Helper()
	orders := newExampleAPI(t)
	var target atomic.Pointer[httputil.ReverseProxy]
	intro := newScriptedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { target.Load().ServeHTTP(w, r) }))
	e := newGateway(t, gateway{
		introspection:         "json",
		introspectionEndpoint: intro.URL + devidp.PathIntrospect,
		keyFile:               filepath.Join(t.TempDir(), "internal-jwt.pem"),
		routes: append([]string{
			// Seed 003's orders API: a mobile and a web entry point, one
			// upstream URL.
			gwRoute("orders", "/api/orders", orders.URL+"/orders", "[bearer]", "strip_prefix: true",
				"token_format: opaque", "forward: phantom", "audience: "+ordersAudience),
			gwRoute("web-orders", "/api/web/orders", orders.URL+"/orders", "[cookie]", "strip_prefix: true",
				"token_format: opaque", "forward: phantom", "audience: "+ordersAudience, "forward_claims: [roles, tenant]"),
		}, extra...),
	}, func(c *devidp.Config) {
		c.Clients[0].AccessTokenFormat = devidp.AccessTokenOpaque // the SPA's tokens are opaque, as in seed 003
		c.Clients[0].AccessTokenLifetime = time.Hour              // longer than the introspection cache
		for i := range c.Clients {
			if c.Clients[i].ID == mobileOpaqueID {
				c.Clients[i].AccessTokenLifetime = 2 * time.Minute
			}
		}
	})
	idpURL, _ := url.Parse(e.idp.Issuer())
	target.Store(httputil.NewSingleHostReverseProxy(idpURL))
	orders.trustGatehouse(e, ordersAudience)
	return &phantomEnv{env: e, orders: orders, intro: intro}
}

// introspections is the provider's count of introspection requests.
func (p *phantomEnv) introspections() int { return p.idp.Stats().Introspection }

// checkMinted checks the JWT the example API validated last: Gatehouse's
// token about the caller of the opaque token, never the opaque token itself.
func (p *phantomEnv) checkMinted(t *testing.T, opaque, sub, clientID, scope string) seenToken {
	t.Helper()
	st := p.orders.last(t)
	if st.err != nil {
		t.Fatalf("the example API refused what Gatehouse forwarded: %v", st.err)
	}
	if st.raw == opaque {
		t.Fatal("the opaque token was forwarded")
	}
	c := st.claims
	if c.Issuer != p.base || !slices.Equal(c.Audience, []string{ordersAudience}) || c.Subject != sub || c.ClientID != clientID || c.Scope != scope {
		t.Errorf("minted claims iss=%q aud=%v sub=%q client_id=%q scope=%q; want %q, [%s], %q, %q, %q",
			c.Issuer, c.Audience, c.Subject, c.ClientID, c.Scope, p.base, ordersAudience, sub, clientID, scope)
	}
	if h := jwtHeader(t, st.raw); h["typ"] != "at+jwt" || h["kid"] == nil {
		t.Errorf("minted header %v, want typ at+jwt and a kid", h)
	}
	p.secrets[fmt.Sprintf("minted %d", len(p.secrets))] = st.raw
	return st
}

// TestPhantomToken runs the phantom token pattern with plain JSON
// introspection against the provider: Gatehouse mints the upstream JWT, the
// result is cached (one introspection per token, also for 100 concurrent
// first uses), inactive tokens are refused with a short negative cache,
// tokens of impossible shape never reach the provider, and the cache never
// outlives the token.
func TestPhantomToken(t *testing.T) {
	t.Parallel()
	p := newPhantomEnv(t, gwRoute("admin", "/api/admin", "http://127.0.0.1:1", "[bearer]", "token_format: opaque",
		"forward: phantom", "audience: "+ordersAudience, "require: {scopes: [admin]}"))
	e := p.env

	tok := e.clientToken(opaqueJobID, opaqueJobSecret, "read", "write")
	if strings.Count(tok, ".") == 2 {
		t.Fatalf("the provider issued a JWT, want an opaque token")
	}
	n := p.introspections()
	r := e.bearer("GET", "/api/orders/1", tok)
	if r.StatusCode != 200 {
		t.Fatalf("opaque token: %d %s", r.StatusCode, r.body)
	}
	first := p.checkMinted(t, tok, opaqueJobID, opaqueJobID, "read write")
	if exp := first.claims.Expiry; exp.After(e.clock.Now().Add(5*time.Minute+time.Second)) || exp.Before(e.clock.Now()) {
		t.Errorf("minted exp %v, want at most the 5 minute TTL from now", exp)
	}
	for i := range 3 {
		if r := e.bearer("GET", "/api/orders/2", tok); r.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, r.StatusCode, r.body)
		}
		if again := p.orders.last(t); again.raw != first.raw {
			t.Error("a cached phantom token was minted again")
		}
	}
	// The route's requirements are checked on cached results too.
	for range 2 {
		expectErr(t, "opaque token without the route's scope", e.bearer("GET", "/api/admin/1", tok), http.StatusForbidden, "forbidden")
	}
	if got := p.introspections() - n; got != 1 {
		t.Errorf("6 requests with one token made %d introspections, want 1", got)
	}

	t.Run("100 concurrent first uses make one introspection", func(t *testing.T) {
		e := e.sub(t)
		tok := e.clientToken(opaqueJobID, opaqueJobSecret, "read")
		n, calls := p.introspections(), p.orders.count()
		// The provider answers after half a second: every request arrives
		// while the first introspection is under way.
		p.intro.set(devidp.PathIntrospect, modeSlow)
		defer p.intro.set(devidp.PathIntrospect, modePass)
		statuses := e.concurrently(100, func(int) *http.Request { return e.bearerRequest("/api/orders/1", tok) })
		if got := countStatus(statuses, 200); got != 100 {
			t.Errorf("%d of 100 succeeded: %v", got, statuses)
		}
		if got := p.introspections() - n; got != 1 {
			t.Errorf("100 concurrent first uses made %d introspections, want exactly 1", got)
		}
		if got := p.orders.count() - calls; got != 100 {
			t.Errorf("the API received %d requests, want 100", got)
		}
	})

	t.Run("inactive token", func(t *testing.T) {
		e := e.sub(t)
		revoked := e.clientToken(opaqueJobID, opaqueJobSecret, "read")
		e.revoke(opaqueJobID, opaqueJobSecret, revoked)
		n, calls := p.introspections(), p.orders.count()
		for range 3 {
			expectInvalidToken(t, "revoked token", e.bearer("GET", "/api/orders/1", revoked))
		}
		if got := p.introspections() - n; got != 1 {
			t.Errorf("3 requests with an inactive token made %d introspections, want 1 (negative cache)", got)
		}
		e.clock.Advance(11 * time.Second) // inactive results are cached at most 10 s
		expectInvalidToken(t, "revoked token after the negative cache", e.bearer("GET", "/api/orders/1", revoked))
		if got := p.introspections() - n; got != 2 {
			t.Errorf("after 11 s: %d introspections, want 2", got)
		}
		if p.orders.count() != calls {
			t.Error("the API was called with an inactive token")
		}
	})

	t.Run("impossible tokens never reach the provider", func(t *testing.T) {
		e := e.sub(t)
		n := p.introspections()
		for name, tok := range map[string]string{
			"not a b64token":  "abc$def%ghi",
			"padding inside":  "abc=def",
			"too large":       strings.Repeat("a", 9<<10),
			"quote":           `abc"def`,
			"unicode":         "tökén",
			"only padding":    "====",
			"comma separated": "abc,def",
			"JSON":            `{"active":true}`,
			"semicolon":       "abc;def",
			"backslash":       `abc\def`,
			"leading padding": "=abc",
		} {
			r := e.do(e.raw(), "GET", "/api/orders/1", nil, withoutOrigin(), withHeader("Authorization", "Bearer "+tok))
			if r.StatusCode != 401 {
				t.Errorf("%s: status %d, want 401", name, r.StatusCode)
			}
		}
		if got := p.introspections() - n; got != 0 {
			t.Errorf("impossible tokens made %d introspections, want 0", got)
		}
	})

	t.Run("the cache lasts at most max_cache_ttl", func(t *testing.T) {
		e := e.sub(t)
		defer e.clock.set(0)
		tok := e.clientToken(opaqueJobID, opaqueJobSecret, "read") // lives an hour
		if r := e.bearer("GET", "/api/orders/1", tok); r.StatusCode != 200 {
			t.Fatalf("opaque token: %d %s", r.StatusCode, r.body)
		}
		n := p.introspections()
		e.revoke(opaqueJobID, opaqueJobSecret, tok)
		// The provider now says inactive, but the cached result stands
		// until max_cache_ttl (5m by default) ...
		e.clock.Advance(4 * time.Minute)
		if r := e.bearer("GET", "/api/orders/1", tok); r.StatusCode != 200 {
			t.Fatalf("within max_cache_ttl: %d %s", r.StatusCode, r.body)
		}
		if got := p.introspections() - n; got != 0 {
			t.Errorf("within max_cache_ttl: %d introspections, want 0", got)
		}
		// ... and not a moment longer.
		e.clock.Advance(61 * time.Second)
		expectInvalidToken(t, "after max_cache_ttl", e.bearer("GET", "/api/orders/1", tok))
		if got := p.introspections() - n; got != 1 {
			t.Errorf("after max_cache_ttl: %d introspections, want 1", got)
		}
	})

	t.Run("the cache and the minted JWT end with the token", func(t *testing.T) {
		e := e.sub(t)
		defer e.clock.set(0)
		before := time.Now()
		tok := e.mobileLogin(mobileOpaqueID, "read").access // lives two minutes
		after := time.Now()
		if r := e.bearer("GET", "/api/orders/1", tok); r.StatusCode != 200 {
			t.Fatalf("mobile opaque token: %d %s", r.StatusCode, r.body)
		}
		st := p.checkMinted(t, tok, userID, mobileOpaqueID, "openid profile read")
		if exp := st.claims.Expiry; exp.Before(before.Add(2*time.Minute-time.Second)) || exp.After(after.Add(2*time.Minute+time.Second)) {
			t.Errorf("minted exp %v: want the opaque token's (issued between %v and %v, lives 2m), not now + 5m", exp, before, after)
		}
		n, calls := p.introspections(), p.orders.count()
		e.clock.Advance(2*time.Minute + 2*time.Second)
		for range 2 {
			expectInvalidToken(t, "after the token's exp", e.bearer("GET", "/api/orders/1", tok))
		}
		if got := p.introspections() - n; got != 0 {
			t.Errorf("an expired cached token made %d introspections, want 0 (Gatehouse knows exp)", got)
		}
		if p.orders.count() != calls {
			t.Error("the API was called with an expired token")
		}
	})
	e.assertNoSecretsAnywhere()
}

// revoke revokes token at the provider (RFC 7009) as its client.
func (e *env) revoke(clientID, secret, token string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.idp.Issuer()+devidp.PathRevoke, strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("revocation: %d", resp.StatusCode)
	}
}

// TestPhantomIntrospectionFaults: when the introspection endpoint fails
// (5xx, garbage, no answer within the authorization server timeout, or it
// refuses Gatehouse's own client) the token could not
// be checked: 502 authorization_server_error, the upstream is not called,
// nothing is cached, and the next request after recovery succeeds.
func TestPhantomIntrospectionFaults(t *testing.T) {
	t.Parallel()
	const wrongSecret = "not-the-introspection-secret"
	p := newPhantomEnv(t, gwRoute("wrong-client", "/api/wrong-client", "http://127.0.0.1:1", "[bearer]",
		"token_format: opaque", "forward: phantom", "audience: "+ordersAudience,
		"introspection: {client_id: "+introClientID+", client_secret: "+wrongSecret+"}"))
	e := p.env
	e.secrets["wrong introspection secret"] = wrongSecret
	tok := e.clientToken(opaqueJobID, opaqueJobSecret, "read")

	for _, f := range []struct {
		mode     string
		requests int
	}{{mode500, 2}, {modeGarbage, 2}, {modeHang, 1}} {
		mode := f.mode
		p.intro.set(devidp.PathIntrospect, mode)
		for range f.requests {
			r := e.bearer("GET", "/api/orders/1", tok)
			expectErr(t, "introspection "+mode, r, http.StatusBadGateway, "authorization_server_error")
			if ch, _ := bearerChallenge(r.Header.Get("WWW-Authenticate")); ch["error"] == "invalid_token" {
				t.Errorf("introspection %s: the client is told its token is invalid", mode)
			}
		}
	}
	if got := p.intro.count(devidp.PathIntrospect); got != 5 {
		t.Errorf("5 requests while the endpoint failed made %d introspection calls, want 5 (failures are not cached)", got)
	}
	if p.orders.count() != 0 {
		t.Fatal("the upstream was called while the token could not be checked")
	}
	p.intro.set(devidp.PathIntrospect, modePass)
	if r := e.bearer("GET", "/api/orders/1", tok); r.StatusCode != 200 {
		t.Fatalf("first request after recovery: %d %s", r.StatusCode, r.body)
	}
	p.checkMinted(t, tok, opaqueJobID, opaqueJobID, "read")

	r := e.bearer("GET", "/api/wrong-client/1", tok)
	expectErr(t, "introspection client refused by the provider", r, http.StatusBadGateway, "authorization_server_error")
	e.assertNoSecretsAnywhere()
	if strings.Contains(string(r.body), "127.0.0.1") {
		t.Errorf("an internal address reached the client: %s", r.body)
	}
}

// TestPhantomCookieRoute: the same phantom step behind the cookie entry
// (seed 003's orders API, published at a web and a mobile entry point): the
// SPA's cookie holds an opaque access token, Gatehouse introspects it and
// the API receives, at the same URL, the same kind of JWT about the same user
// as through the mobile entry point, with the claims the route forwards.
func TestPhantomCookieRoute(t *testing.T) {
	t.Parallel()
	p := newPhantomEnv(t)
	e := p.env
	csrf := e.login(e.browser)
	at := e.open(e.cookie(e.browser, "/", "example-at"))
	if strings.Count(at, ".") == 2 {
		t.Fatal("the SPA's access token is a JWT, want opaque")
	}
	n := p.introspections()
	for _, m := range []struct {
		method string
		opts   []reqOpt
	}{{"GET", nil}, {"POST", []reqOpt{withCSRF(csrf)}}} {
		if r := e.do(e.browser, m.method, "/api/web/orders/1", `{}`, m.opts...); r.StatusCode != 200 {
			t.Fatalf("%s through the cookie: %d %s", m.method, r.StatusCode, r.body)
		}
	}
	if got := p.introspections() - n; got != 1 {
		t.Errorf("2 cookie requests made %d introspections, want 1", got)
	}
	web := p.checkMinted(t, at, userID, "spa-client", "offline_access openid profile")
	if web.path != "/orders/1" {
		t.Errorf("the web entry point reached the API at %s, want /orders/1", web.path)
	}
	if web.claims.Raw["tenant"] != "acme" || web.claims.Raw["roles"] == nil {
		t.Errorf("forward_claims roles and tenant missing from the minted token: %v", web.claims.Raw)
	}
	for _, c := range []string{"given_name", "email", "username", "active", "token_type", "nonce"} {
		if _, ok := web.claims.Raw[c]; ok {
			t.Errorf("the minted token carries %s, which the route does not forward", c)
		}
	}

	// The mobile entry point: the API sees the same user, the same issuer
	// and audience, the same kind of token.
	mobile := e.mobileLogin(mobileOpaqueID, "read").access
	if r := e.bearer("GET", "/api/orders/1", mobile); r.StatusCode != 200 {
		t.Fatalf("mobile: %d %s", r.StatusCode, r.body)
	}
	m := p.checkMinted(t, mobile, userID, mobileOpaqueID, "openid profile read")
	if m.path != web.path {
		t.Errorf("the mobile entry point reached the API at %s, the web one at %s", m.path, web.path)
	}
	if jwtHeader(t, m.raw)["kid"] != jwtHeader(t, web.raw)["kid"] {
		t.Error("the two entry points forward tokens signed with different keys")
	}

	// Signed out at the provider: once the cached result ends (max_cache_ttl
	// 5m; the token itself lives an hour) Gatehouse asks again and refuses
	// the cookie with the proxy's 401 (the SPA then refreshes or logs in).
	e.idp.RevokeUserSessions(userID)
	e.clock.Advance(5*time.Minute + time.Second)
	defer e.clock.set(0)
	calls, n := p.orders.count(), p.introspections()
	r := e.do(e.browser, "GET", "/api/web/orders/1", nil)
	expectErr(t, "revoked session", r, http.StatusUnauthorized, "unauthorized")
	checkCORS(t, "revoked session", r)
	if p.orders.count() != calls {
		t.Error("the API was called for a revoked session")
	}
	if got := p.introspections() - n; got != 1 {
		t.Errorf("after the cache ended: %d introspections, want 1", got)
	}
	e.assertNoSecretsAnywhere()
}
