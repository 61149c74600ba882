package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/vault"
	"github.com/gatehouse-dev/gatehouse/internal/vault/sqlstore"
)

// The whole connect flow: session at Gatehouse, start, consent at the
// third party, callback, the connection listed without its tokens.
func TestVaultConnect(t *testing.T) {
	vaultForEachStore(t, func(t *testing.T, store string) {
		v := newVaultEnv(t, vaultOptions{store: store})
		e := v.env
		c := e.newBrowser()
		csrf := e.login(c)

		r := e.do(c, "POST", "/connections/tp/start", nil, withCSRF(csrf))
		if r.StatusCode != 200 {
			t.Fatalf("start: %d %s", r.StatusCode, r.body)
		}
		for k, want := range map[string]string{"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Access-Control-Allow-Origin": spaOrigin} {
			if got := r.Header.Get(k); got != want {
				t.Errorf("start: %s = %q, want %q", k, got, want)
			}
		}
		binding := bindingCookie(t, r.Response, "/connections/tp/callback")
		authURL, _ := url.Parse(r.json(t)["authorizationUrl"].(string))
		q := authURL.Query()
		if !strings.HasPrefix(authURL.String(), v.tp.Issuer()+"/authorize?") || q.Get("redirect_uri") != e.base+"/connections/tp/callback" ||
			q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || len(q.Get("state")) < 43 ||
			q.Get("client_id") != "gatehouse-tp" || q.Get("scope") != "offline_access repo" {
			t.Errorf("authorization URL %s", authURL)
		}
		e.secrets["binding cookie"] = binding.Value

		cb := v.authorizeTP(e, authURL.String())
		result, resp := v.callback(e, c, cb)
		if result != "connected" {
			t.Fatalf("result %q", result)
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if want := (url.Values{"connection": {"tp"}, "result": {"connected"}}); loc.RawQuery != want.Encode() {
			t.Errorf("redirect query %q, want only the provider and the result", loc.RawQuery)
		}
		if cleared := bindingCookie(t, resp.Response, "/connections/tp/callback"); cleared.MaxAge >= 0 || cleared.Value != "" {
			t.Errorf("the callback did not clear the binding cookie: %+v", cleared)
		}
		if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("callback headers %v", resp.Header)
		}

		conns := v.connections(e, c)
		tp := conns["tp"]
		if tp == nil || len(conns) != 1 {
			t.Fatalf("connections %v", conns)
		}
		if tp["status"] != "connected" || fmt.Sprint(tp["scopes"]) != "[offline_access repo]" {
			t.Errorf("connection %v", tp)
		}
		exp, err := time.Parse(time.RFC3339, tp["expiresAt"].(string))
		if err != nil || exp.Before(e.clock.Now().Add(vtLifetime-time.Minute)) || exp.After(e.clock.Now().Add(vtLifetime+time.Minute)) {
			t.Errorf("expiresAt %v", tp["expiresAt"])
		}
		if s := v.tpStats(); s.TokenAuthorizationCode != 1 {
			t.Errorf("%d code exchanges at the third party, want 1", s.TokenAuthorizationCode)
		}

		// Another user sees none of it.
		bob := e.newBrowser()
		e.vaultLoginAs(bob, vtBobName, vtBobPassword)
		if got := v.connections(e, bob); len(got) != 0 {
			t.Errorf("bob sees %v", got)
		}
	})
}

// bindingCookie returns the Set-Cookie of the <prefix>-vault cookie and
// checks its attributes: HttpOnly, Secure, SameSite=Lax, on the callback path.
func bindingCookie(t *testing.T, resp *http.Response, path string) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name != "example-vault" {
			continue
		}
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != path || c.Domain != "" {
			t.Errorf("binding cookie attributes %+v", c)
		}
		if c.Value != "" && c.MaxAge != 600 {
			t.Errorf("binding cookie Max-Age %d, want 600", c.MaxAge)
		}
		return c
	}
	t.Fatalf("no example-vault cookie in %v", resp.Header["Set-Cookie"])
	return nil
}

// Regression tests for attacks on the callback: each would store someone
// else's tokens, or tokens for the wrong provider, in a user's vault.
func TestVaultCallbackForgeries(t *testing.T) {
	vaultForEachStore(t, func(t *testing.T, store string) {
		v := newVaultEnv(t, vaultOptions{store: store})
		e := v.env
		alice := e.newBrowser()
		aliceCSRF := e.login(alice)
		bob := e.newBrowser()
		bobCSRF := e.vaultLoginAs(bob, vtBobName, vtBobPassword)

		expect := func(t *testing.T, c *http.Client, cb, want string) {
			t.Helper()
			if got, _ := v.callback(e, c, cb); got != want {
				t.Errorf("result %q, want %q", got, want)
			}
		}

		t.Run("another user's state (login CSRF into a victim's vault)", func(t *testing.T) {
			// Alice's callback URL, with her code and state, visited by
			// Bob's browser, which holds a binding cookie of its own flow.
			cb := v.authorizeTP(e, v.startConnect(e, alice, aliceCSRF, "tp"))
			v.startConnect(e, bob, bobCSRF, "tp")
			expect(t, bob, cb, "failed")
			// The state was spent: Alice's own browser cannot use it now.
			expect(t, alice, cb, "failed")
		})
		t.Run("missing binding cookie", func(t *testing.T) {
			cb := v.authorizeTP(e, v.startConnect(e, alice, aliceCSRF, "tp"))
			expect(t, e.newBrowser(), cb, "failed")
		})
		t.Run("wrong binding cookie", func(t *testing.T) {
			cb := v.authorizeTP(e, v.startConnect(e, alice, aliceCSRF, "tp"))
			forged := e.newBrowser()
			u, _ := url.Parse(e.base + "/connections/tp/callback")
			forged.Jar.SetCookies(u, []*http.Cookie{{Name: "example-vault", Value: "forged-binding-value-0123456789abcdefghijklmn", Path: "/connections/tp/callback"}})
			expect(t, forged, cb, "failed")
		})
		t.Run("another provider's callback (mix-up)", func(t *testing.T) {
			cb := v.authorizeTP(e, v.startConnect(e, alice, aliceCSRF, "tp"))
			// The browser sends the binding cookie only to tp's callback;
			// copy it to other's callback path, as an attacker would need to.
			tpCB, _ := url.Parse(e.base + "/connections/tp/callback")
			otherCB, _ := url.Parse(e.base + "/connections/other/callback")
			for _, ck := range alice.Jar.Cookies(tpCB) {
				if ck.Name == "example-vault" {
					alice.Jar.SetCookies(otherCB, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/connections/other/callback"}})
				}
			}
			expect(t, alice, strings.Replace(cb, "/connections/tp/callback", "/connections/other/callback", 1), "failed")
		})
		t.Run("denied", func(t *testing.T) {
			authURL, _ := url.Parse(v.startConnect(e, alice, aliceCSRF, "tp"))
			state := authURL.Query().Get("state")
			expect(t, alice, e.base+"/connections/tp/callback?"+url.Values{
				"error": {"access_denied"}, "error_description": {"<script>the user said no</script>"}, "state": {state},
			}.Encode(), "denied")
		})
		t.Run("no state", func(t *testing.T) {
			expect(t, alice, e.base+"/connections/tp/callback?code=abc", "failed")
		})
		if got := v.connections(e, alice); len(got) != 0 {
			t.Fatalf("after forged callbacks alice has %v", got)
		}
		if got := v.connections(e, bob); len(got) != 0 {
			t.Fatalf("after forged callbacks bob has %v", got)
		}
		t.Run("replay", func(t *testing.T) {
			cb := v.authorizeTP(e, v.startConnect(e, alice, aliceCSRF, "tp"))
			expect(t, alice, cb, "connected")
			before := v.tpStats().TokenAuthorizationCode
			// The binding cookie was cleared; put it back, as a replaying
			// attacker with the whole browser state would.
			expect(t, alice, cb, "failed")
			if n := v.tpStats().TokenAuthorizationCode; n != before {
				t.Errorf("the replayed callback redeemed the code again (%d exchanges, want %d)", n, before)
			}
		})
		if s := e.logs.String(); strings.Contains(s, "the user said no") {
			t.Error("the provider's error text reached the logs")
		}
		for _, b := range e.bodies.all() {
			if strings.Contains(string(b), "the user said no") {
				t.Error("the provider's error text reached a response")
			}
		}
	})
}

// The start endpoint is a data-changing call of the cookie session: Origin,
// CSRF and a valid session are required.
func TestVaultStartNeedsSession(t *testing.T) {
	v := newVaultEnv(t, vaultOptions{})
	e := v.env
	c := e.newBrowser()
	csrf := e.login(c)
	for _, tc := range []struct {
		name string
		c    *http.Client
		opts []reqOpt
		code int
	}{
		{"no CSRF header", c, nil, 401},
		{"wrong CSRF header", c, []reqOpt{withCSRF("nope")}, 401},
		{"untrusted origin", c, []reqOpt{withCSRF(csrf), withOrigin("https://evil.example")}, 401},
		{"no session", e.newBrowser(), []reqOpt{withCSRF(csrf)}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.c, "POST", "/connections/tp/start", nil, tc.opts...)
			if r.StatusCode != tc.code {
				t.Errorf("status %d, want %d: %s", r.StatusCode, tc.code, r.body)
			}
			if len(r.Header["Set-Cookie"]) > 0 {
				t.Error("a refused start set a cookie")
			}
		})
	}
	if r := e.do(c, "POST", "/connections/nope/start", nil, withCSRF(csrf)); r.StatusCode != 404 {
		t.Errorf("unknown provider: %d", r.StatusCode)
	}
	if r := e.do(c, "GET", "/connections/tp/start", nil); r.StatusCode != 405 {
		t.Errorf("GET start: %d", r.StatusCode)
	}
	// The session expires (Gatehouse checks the JWT's exp with its clock).
	e.clock.Advance(2 * time.Hour)
	if r := e.do(c, "POST", "/connections/tp/start", nil, withCSRF(csrf)); r.StatusCode != 401 {
		t.Errorf("expired session: %d", r.StatusCode)
	}
}

// Calls on the user's behalf: the browser's credentials stay at Gatehouse,
// the provider's cookies and CORS headers never reach the browser.
func TestVaultUserProxy(t *testing.T) {
	vaultForEachStore(t, func(t *testing.T, store string) {
		v := newVaultEnv(t, vaultOptions{store: store})
		e := v.env
		c, csrf := v.connect(e, "tp")

		r := e.do(c, "GET", "/connections/tp/proxy/user/repos?per_page=5&sort=a%20b", nil, withHeader("Authorization", "Bearer from-the-browser"))
		if r.StatusCode != 200 {
			t.Fatalf("proxy GET: %d %s", r.StatusCode, r.body)
		}
		got := r.json(t)
		if got["path"] != "/v1/user/repos" || got["query"] != "per_page=5&sort=a%20b" || got["sub"] != "octo-1" || got["client_id"] != "gatehouse-tp" {
			t.Errorf("the API saw %v", got)
		}
		req, tok := v.vtAPI.last(t)
		if tok == "" || tok == "from-the-browser" {
			t.Errorf("the API got Authorization %q", req.Header.Get("Authorization"))
		}
		for _, h := range []string{"Cookie", "X-Example-Csrf", "Origin", "X-Forwarded-For", "Forwarded"} {
			if req.Header.Get(h) != "" {
				t.Errorf("the API received %s", h)
			}
		}
		if len(r.Header["Set-Cookie"]) > 0 {
			t.Errorf("the provider's Set-Cookie reached the browser: %v", r.Header["Set-Cookie"])
		}
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != spaOrigin {
			t.Errorf("Access-Control-Allow-Origin %q, want Gatehouse's %q", got, spaOrigin)
		}
		// Third-party content never runs as a page of Gatehouse's origin.
		if csp := r.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox") || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("proxied answer without sandbox CSP and nosniff: %v", r.Header)
		}

		// Data-changing methods need the CSRF proof.
		if r := e.do(c, "POST", "/connections/tp/proxy/user/repos", `{"name":"x"}`); r.StatusCode != 401 {
			t.Errorf("POST without CSRF: %d", r.StatusCode)
		}
		if v.vtAPI.count() != 1 {
			t.Errorf("a refused request reached the API")
		}
		r = e.do(c, "POST", "/connections/tp/proxy/user/repos", `{"name":"x"}`, withCSRF(csrf))
		if r.StatusCode != 200 || r.json(t)["body"] != `{"name":"x"}` || r.json(t)["method"] != "POST" {
			t.Errorf("POST with CSRF: %d %s", r.StatusCode, r.body)
		}
		if req, _ := v.vtAPI.last(t); req.Header.Get("X-Example-Csrf") != "" {
			t.Error("the CSRF header reached the API")
		}
		// Without a session, or without a connection.
		if r := e.do(e.newBrowser(), "GET", "/connections/tp/proxy/user", nil); r.StatusCode != 401 {
			t.Errorf("no session: %d", r.StatusCode)
		}
		e.expectError(e.do(c, "GET", "/connections/other/proxy/user", nil), 404, "not_connected")
		// Preflight from the SPA.
		r = e.do(c, "OPTIONS", "/connections/tp/proxy/user", nil, withHeader("Access-Control-Request-Method", "PATCH"))
		if r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != spaOrigin {
			t.Errorf("preflight: %d %v", r.StatusCode, r.Header)
		}
	})
}

// Regression tests for path escapes: the proxied path must stay under the
// provider's API base path, whatever encoding the browser uses.
func TestVaultProxyPathEscapes(t *testing.T) {
	v := newVaultEnv(t, vaultOptions{})
	e := v.env
	c, _ := v.connect(e, "tp")
	for _, p := range []string{
		"/connections/tp/proxy/../../admin",
		"/connections/tp/proxy/..",
		"/connections/tp/proxy/%2e%2e/admin",
		"/connections/tp/proxy/%2E%2E%2Fadmin",
		"/connections/tp/proxy/x%2f..%2f..%2fadmin",
		"/connections/tp/proxy/x%5c..%5cadmin",
		"/connections/tp/proxy//evil.example/x",
		"/connections/tp/proxy/a/./b",
		"/connections/tp/proxy/a%00b",
	} {
		t.Run(p, func(t *testing.T) {
			before := v.vtAPI.count()
			req, _ := http.NewRequest("GET", e.base+p, nil)
			req.URL.RawPath = "" // send the path exactly as written
			req.URL.Opaque = "//" + req.URL.Host + p
			req.Header.Set("Origin", spaOrigin)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
			if v.vtAPI.count() != before {
				t.Errorf("the API received %s", p)
			}
		})
	}
	// The base itself and a trailing slash are fine.
	for _, p := range []string{"/connections/tp/proxy", "/connections/tp/proxy/", "/connections/tp/proxy/a/"} {
		r := e.do(c, "GET", p, nil)
		if r.StatusCode != 200 {
			t.Errorf("%s: %d %s", p, r.StatusCode, r.body)
		}
	}
	if req, _ := v.vtAPI.last(t); req.URL.Path != "/v1/a/" {
		t.Errorf("the API saw %q", req.URL.Path)
	}
}

// Tokens are refreshed ahead of expiry, and once after a 401 from the API,
// with the request sent again.
func TestVaultRefresh(t *testing.T) {
	vaultForEachStore(t, func(t *testing.T, store string) {
		v := newVaultEnv(t, vaultOptions{store: store})
		e := v.env
		c, csrf := v.connect(e, "tp")
		get := func() *response { return e.do(c, "GET", "/connections/tp/proxy/user", nil) }
		if r := get(); r.StatusCode != 200 {
			t.Fatalf("%d %s", r.StatusCode, r.body)
		}
		_, first := v.vtAPI.last(t)

		t.Run("ahead of expiry", func(t *testing.T) {
			e.clock.Advance(vtLifetime - 30*time.Second) // inside the 60 s window
			if r := get(); r.StatusCode != 200 {
				t.Fatalf("%d %s", r.StatusCode, r.body)
			}
			if n := v.tpStats().TokenRefresh; n != 1 {
				t.Errorf("%d refreshes, want 1", n)
			}
			if _, tok := v.vtAPI.last(t); tok == first {
				t.Error("the API got the old token")
			}
			if r := get(); r.StatusCode != 200 || v.tpStats().TokenRefresh != 1 {
				t.Errorf("a fresh token was refreshed again (%d)", v.tpStats().TokenRefresh)
			}
		})
		t.Run("once after a 401, with the request sent again", func(t *testing.T) {
			_, current := v.vtAPI.last(t)
			revokeAtTP(t, v, current)
			before, calls := v.tpStats().TokenRefresh, v.vtAPI.count()
			r := e.do(c, "PUT", "/connections/tp/proxy/user/settings", `{"theme":"dark"}`, withCSRF(csrf))
			if r.StatusCode != 200 || r.json(t)["body"] != `{"theme":"dark"}` {
				t.Fatalf("%d %s", r.StatusCode, r.body)
			}
			if n := v.tpStats().TokenRefresh - before; n != 1 {
				t.Errorf("%d refreshes, want 1", n)
			}
			if n := v.vtAPI.count() - calls; n != 2 {
				t.Errorf("the API got %d requests, want 2 (the refused one and the retry)", n)
			}
		})
		t.Run("a body too large to replay is sent once", func(t *testing.T) {
			_, current := v.vtAPI.last(t)
			revokeAtTP(t, v, current)
			before, calls := v.tpStats().TokenRefresh, v.vtAPI.count()
			big := strings.Repeat("x", 1<<20+1)
			r := e.do(c, "POST", "/connections/tp/proxy/upload", big, withCSRF(csrf))
			if r.StatusCode != 401 {
				t.Errorf("status %d, want the API's 401", r.StatusCode)
			}
			if n := v.vtAPI.count() - calls; n != 1 {
				t.Errorf("the API got %d requests, want 1", n)
			}
			if v.tpStats().TokenRefresh != before {
				t.Error("refreshed for a request that cannot be sent again")
			}
			// The next small request refreshes and succeeds.
			if r := get(); r.StatusCode != 200 || v.tpStats().TokenRefresh != before+1 {
				t.Errorf("next request: %d, %d refreshes", r.StatusCode, v.tpStats().TokenRefresh-before)
			}
		})
		t.Run("one retry only", func(t *testing.T) {
			v.vtAPI.rejectAll.Store(true)
			defer v.vtAPI.rejectAll.Store(false)
			before, calls := v.tpStats().TokenRefresh, v.vtAPI.count()
			r := get()
			if r.StatusCode != 401 {
				t.Errorf("status %d, want the API's 401", r.StatusCode)
			}
			if n := v.tpStats().TokenRefresh - before; n != 1 {
				t.Errorf("%d refreshes, want 1", n)
			}
			if n := v.vtAPI.count() - calls; n != 2 {
				t.Errorf("the API got %d requests, want 2", n)
			}
			if len(r.Header["Set-Cookie"]) > 0 {
				t.Error("the API's cookie reached the browser on a 401")
			}
		})
		if conns := v.connections(e, c); conns["tp"]["status"] != "connected" {
			t.Errorf("status %v", conns["tp"])
		}
	})
}

// revokeAtTP revokes an access token at the third party, as its user might.
func revokeAtTP(t *testing.T, v *vaultEnv, token string) {
	t.Helper()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, _ := http.NewRequest("POST", v.tp.Issuer()+"/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("gatehouse-tp", vtSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke at the third party: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}

// 50 concurrent calls with an expired token make exactly one refresh,
// counted at the provider, and all succeed with the new token.
func TestVaultConcurrentRefreshAtExpiry(t *testing.T) {
	vaultForEachStore(t, func(t *testing.T, store string) {
		v := newVaultEnv(t, vaultOptions{store: store})
		e := v.env
		c, _ := v.connect(e, "tp")
		e.clock.Advance(vtLifetime + time.Minute)
		const n = 50
		var wg sync.WaitGroup
		statuses := make([]int, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", e.base+"/connections/tp/proxy/user", nil)
				req.Header.Set("Origin", spaOrigin)
				resp, err := c.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}()
		}
		wg.Wait()
		for i, s := range statuses {
			if s != 200 {
				t.Errorf("call %d: status %d", i, s)
			}
		}
		if got := v.tpStats().TokenRefresh; got != 1 {
			t.Errorf("%d refreshes at the provider, want exactly 1", got)
		}
		v.vtAPI.mu.Lock()
		tokens := map[string]bool{}
		for _, tok := range v.vtAPI.tokens[len(v.vtAPI.tokens)-n:] {
			tokens[tok] = true
		}
		v.vtAPI.mu.Unlock()
		if len(tokens) != 1 {
			t.Errorf("the 50 calls used %d different tokens, want 1", len(tokens))
		}
	})
}

// The refresh failure modes: a lost answer, a following invalid_grant,
// backoff, a server error; the refresh token is never lost.
func TestVaultRefreshFailures(t *testing.T) {
	vaultForEachStore(t, func(t *testing.T, store string) {
		t.Run("lost answer then invalid_grant", func(t *testing.T) {
			// The provider rotates refresh tokens and revokes the grant when
			// a rotated-out one is used again.
			v := newVaultEnv(t, vaultOptions{store: store})
			e := v.env
			c, _ := v.connect(e, "tp")
			jobTok := v.jobToken(t, vtJobAll)
			e.clock.Advance(vtLifetime + time.Minute)

			v.fault.mode.Store("lose")
			status, body := v.vaultTokenFor(e, jobTok, "tp")
			if status != 502 || body["code"] != "provider_error" {
				t.Fatalf("lost answer: %d %v", status, body)
			}
			v.fault.mode.Store("")
			if got := v.connections(e, c)["tp"]["status"]; got != "refresh_unknown" {
				t.Fatalf("status %v, want refresh_unknown", got)
			}
			// Backoff: no new attempt at the provider for a while.
			before := v.tpStats().TokenRefresh
			resp, _ := v.jobCall(e, "POST", "/vault/token", jobTok, map[string]any{"user": map[string]string{"subject": userID}, "provider": "tp"}, nil)
			if resp.StatusCode != 502 || resp.Header.Get("Retry-After") == "" {
				t.Errorf("during backoff: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			if v.tpStats().TokenRefresh != before {
				t.Error("a refresh was attempted during the backoff")
			}
			// After the backoff the old refresh token is tried: the provider
			// had rotated it, so it answers invalid_grant.
			e.clock.Advance(10 * time.Second)
			status, body = v.vaultTokenFor(e, jobTok, "tp")
			if status != 409 || body["code"] != "reauth_required" {
				t.Fatalf("after invalid_grant: %d %v", status, body)
			}
			if got := v.connections(e, c)["tp"]["status"]; got != "needs_reauth" {
				t.Errorf("status %v, want needs_reauth", got)
			}
			e.expectError(e.do(c, "GET", "/connections/tp/proxy/user", nil), 409, "reauth_required")
			if n := v.tpStats().TokenRefresh - before; n != 1 {
				t.Errorf("%d refreshes after needs_reauth, want 1", n)
			}
			// Connecting again heals it.
			csrf := e.login(c)
			if got, _ := v.callback(e, c, v.authorizeTP(e, v.startConnect(e, c, csrf, "tp"))); got != "connected" {
				t.Fatalf("reconnect: %s", got)
			}
			if r := e.do(c, "GET", "/connections/tp/proxy/user", nil); r.StatusCode != 200 {
				t.Errorf("after reconnecting: %d", r.StatusCode)
			}
		})
		t.Run("lost answer, provider without rotation", func(t *testing.T) {
			v := newVaultEnv(t, vaultOptions{store: store, tpNoRotation: true})
			e := v.env
			c, _ := v.connect(e, "tp")
			e.clock.Advance(vtLifetime + time.Minute)
			v.fault.mode.Store("lose")
			e.expectError(e.do(c, "GET", "/connections/tp/proxy/user", nil), 502, "provider_error")
			v.fault.mode.Store("")
			if got := v.connections(e, c)["tp"]["status"]; got != "refresh_unknown" {
				t.Fatalf("status %v", got)
			}
			e.clock.Advance(10 * time.Second)
			// The kept refresh token still works.
			if r := e.do(c, "GET", "/connections/tp/proxy/user", nil); r.StatusCode != 200 {
				t.Fatalf("%d %s", r.StatusCode, r.body)
			}
			if got := v.connections(e, c)["tp"]["status"]; got != "connected" {
				t.Errorf("status %v", got)
			}
		})
		t.Run("server errors back off and keep the refresh token", func(t *testing.T) {
			v := newVaultEnv(t, vaultOptions{store: store})
			e := v.env
			c, _ := v.connect(e, "tp")
			e.clock.Advance(vtLifetime + time.Minute)
			v.fault.mode.Store("500")
			for i, wait := range []time.Duration{0, 6 * time.Second, 11 * time.Second} {
				e.clock.Advance(wait)
				e.expectError(e.do(c, "GET", "/connections/tp/proxy/user", nil), 502, "provider_error")
				if got := v.connections(e, c)["tp"]["status"]; got != "connected" {
					t.Fatalf("attempt %d: status %v", i, got)
				}
			}
			// Third failure: the pause is now 20 s; 11 s later nothing is sent.
			e.clock.Advance(11 * time.Second)
			r := e.do(c, "GET", "/connections/tp/proxy/user", nil)
			e.expectError(r, 502, "provider_error")
			if r.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After during backoff")
			}
			v.fault.mode.Store("")
			e.clock.Advance(10 * time.Second)
			if r := e.do(c, "GET", "/connections/tp/proxy/user", nil); r.StatusCode != 200 {
				t.Fatalf("after the provider recovered: %d %s", r.StatusCode, r.body)
			}
			if n := v.tpStats().TokenRefresh; n != 1 {
				t.Errorf("%d refreshes reached the provider, want 1 (the 500s came from the fault proxy)", n)
			}
		})
	})
}

// Disconnecting revokes the grant at the provider, then forgets it.
func TestVaultDisconnect(t *testing.T) {
	vaultForEachStore(t, func(t *testing.T, store string) {
		v := newVaultEnv(t, vaultOptions{store: store})
		e := v.env
		c, csrf := v.connect(e, "tp")
		if r := e.do(c, "GET", "/connections/tp/proxy/user", nil); r.StatusCode != 200 {
			t.Fatal(r.StatusCode)
		}
		_, tok := v.vtAPI.last(t)
		if r := e.do(c, "DELETE", "/connections/tp", nil); r.StatusCode != 401 {
			t.Errorf("DELETE without CSRF: %d", r.StatusCode)
		}
		r := e.do(c, "DELETE", "/connections/tp", nil, withCSRF(csrf))
		if r.StatusCode != 204 {
			t.Fatalf("DELETE: %d %s", r.StatusCode, r.body)
		}
		if n := v.tpStats().Revocation; n != 1 {
			t.Errorf("%d revocations at the provider, want 1", n)
		}
		if got := v.connections(e, c); len(got) != 0 {
			t.Errorf("connections after disconnect: %v", got)
		}
		// Revoking the refresh token ended the grant, access token included.
		if active := introspectAtTP(t, v, tok); active {
			t.Error("the access token is still active at the provider")
		}
		e.expectError(e.do(c, "GET", "/connections/tp/proxy/user", nil), 404, "not_connected")
		// Disconnecting what is not connected is fine; "other" has no
		// revocation endpoint.
		if r := e.do(c, "DELETE", "/connections/other", nil, withCSRF(csrf)); r.StatusCode != 204 {
			t.Errorf("DELETE of nothing: %d", r.StatusCode)
		}
	})
}

func introspectAtTP(t *testing.T, v *vaultEnv, token string) bool {
	t.Helper()
	req, _ := http.NewRequest("POST", v.tp.Issuer()+"/oauth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("tp-api", vtAPISecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var in struct {
		Active bool `json:"active"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&in)
	return in.Active
}

// Backend jobs use connections offline, within their entitlements; every
// call is audited without token values.
func TestVaultJobs(t *testing.T) {
	vaultForEachStore(t, func(t *testing.T, store string) {
		v := newVaultEnv(t, vaultOptions{store: store})
		e := v.env
		v.connect(e, "tp")
		bob := e.newBrowser()
		bobCSRF := e.vaultLoginAs(bob, vtBobName, vtBobPassword)
		if got, _ := v.callback(e, bob, v.authorizeTP(e, v.startConnect(e, bob, bobCSRF, "tp"))); got != "connected" {
			t.Fatal(got)
		}
		all, acme, other, stranger := v.jobToken(t, vtJobAll), v.jobToken(t, vtJobAcme), v.jobToken(t, vtJobOther), v.jobToken(t, vtJobStranger)

		token := func(t *testing.T, tok, subject, provider string) (int, map[string]any, http.Header) {
			t.Helper()
			resp, b := v.jobCall(e, "POST", "/vault/token", tok, map[string]any{
				"user": map[string]string{"issuer": v.idp.Issuer(), "subject": subject}, "provider": provider,
			}, nil)
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			if s, _ := m["access_token"].(string); s != "" {
				v.secrets["job-fetched token "+subject+fmt.Sprint(len(v.secrets))] = s
			}
			return resp.StatusCode, m, resp.Header
		}
		t.Run("token for an entitled job", func(t *testing.T) {
			status, m, h := token(t, all, userID, "tp")
			if status != 200 || m["token_type"] != "Bearer" || h.Get("Cache-Control") != "no-store" {
				t.Fatalf("%d %v", status, m)
			}
			if exp, _ := m["expires_in"].(float64); exp < 500 || exp > 600 {
				t.Errorf("expires_in %v", m["expires_in"])
			}
			if !introspectAtTP(t, v, m["access_token"].(string)) {
				t.Error("the token is not active at the provider")
			}
		})
		t.Run("proxy for an entitled job", func(t *testing.T) {
			resp, b := v.jobCall(e, "GET", "/vault/proxy/tp/user/repos?page=2", all, nil, map[string]string{"Gatehouse-User-Subject": userID})
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			if m["path"] != "/v1/user/repos" || m["query"] != "page=2" {
				t.Errorf("the API saw %v", m)
			}
			req, tok := v.vtAPI.last(t)
			if tok == all || req.Header.Get("Gatehouse-User-Subject") != "" || len(resp.Header["Set-Cookie"]) > 0 {
				t.Errorf("the job's token or headers reached the API, or its cookie the job")
			}
		})
		t.Run("entitlement by claim", func(t *testing.T) {
			if status, m, _ := token(t, acme, userID, "tp"); status != 200 {
				t.Errorf("alice (org acme): %d %v", status, m)
			}
			if status, m, _ := token(t, acme, vtBobID, "tp"); status != 403 || m["code"] != "forbidden" {
				t.Errorf("bob (org umbrella): %d %v", status, m)
			}
		})
		for _, tc := range []struct {
			name, tok, subject, provider string
			status                       int
			code                         string
		}{
			{"a client that is no job", stranger, userID, "tp", 403, "forbidden"},
			{"a provider outside the job's", other, userID, "tp", 403, "forbidden"},
			{"claim job on another provider", acme, userID, "other", 403, "forbidden"},
			{"claim job for a user without a connection", acme, "nobody", "tp", 403, "forbidden"},
			{"no connection", all, userID, "other", 404, "not_connected"},
			{"the session token of a user (audience spa-client)", e.sessionToken(t), userID, "tp", 401, "unauthorized"},
			{"no token", "", userID, "tp", 401, "unauthorized"},
			{"a forged token", strings.Repeat("x", 20) + "." + strings.Repeat("y", 20) + ".zz", userID, "tp", 401, "unauthorized"},
			{"unknown provider", all, userID, "nope", 400, "invalid_request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, m, h := token(t, tc.tok, tc.subject, tc.provider)
				if status != tc.status || m["code"] != tc.code {
					t.Errorf("%d %v, want %d %s", status, m, tc.status, tc.code)
				}
				if status == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without a Bearer challenge")
				}
			})
		}
		t.Run("proxy denied", func(t *testing.T) {
			before := v.vtAPI.count()
			for _, hdr := range []map[string]string{{"Gatehouse-User-Subject": vtBobID}, {}} {
				resp, _ := v.jobCall(e, "GET", "/vault/proxy/tp/user", acme, nil, hdr)
				if resp.StatusCode != 403 && resp.StatusCode != 400 {
					t.Errorf("%v: %d", hdr, resp.StatusCode)
				}
			}
			if v.vtAPI.count() != before {
				t.Error("a denied job call reached the API")
			}
		})
		// Every job call is audited; no token value appears (checked for all
		// logs when the test ends).
		audits := 0
		for _, line := range strings.Split(e.logs.String(), "\n") {
			if strings.Contains(line, `"audit":"vault_job"`) {
				audits++
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"client_id", "provider", "user_subject", "decision", "status", "request_id"} {
					if _, ok := rec[k]; !ok {
						t.Errorf("audit line without %s: %s", k, line)
					}
				}
			}
		}
		if audits != 15 {
			t.Errorf("%d audit lines, want one per job call (15)", audits)
		}
	})
}

// sessionToken returns an access token of alice's session (the AS issued it
// for spa-client, not for the vault).
func (e *env) sessionToken(t *testing.T) string {
	t.Helper()
	c := e.newBrowser()
	e.login(c)
	tok := e.open(e.cookie(c, "/", "example-at"))
	e.secrets["session token"] = tok
	return tok
}

// vault.listen moves /vault/* to a listener of its own, started and stopped
// with the server.
func TestVaultSeparateListener(t *testing.T) {
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := free.Addr().String()
	free.Close()
	v := newVaultEnv(t, vaultOptions{yaml: func(_ int, y string) string {
		return strings.Replace(y, "\nvault:\n", "\nvault:\n  listen: \""+addr+"\"\n", 1)
	}})
	e := v.env
	v.connect(e, "tp")
	jobTok := v.jobToken(t, vtJobAll)
	if resp, _ := v.jobCall(e, "POST", "/vault/token", jobTok, map[string]any{"user": map[string]string{"subject": userID}, "provider": "tp"}, nil); resp.StatusCode != 404 {
		t.Errorf("the main listener serves /vault/token: %d", resp.StatusCode)
	}

	// Serve starts both listeners and stops both.
	mainLn, _ := net.Listen("tcp", "127.0.0.1:0")
	srv, err := server.New(e.cfg, server.Options{Now: e.clock.Now, ConfigDir: v.dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, mainLn) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Error("the vault listener is still open after shutdown")
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); !srv.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the server did not discover the authorization server")
		}
	}
	var resp *http.Response
	for deadline := time.Now().Add(5 * time.Second); ; {
		body := strings.NewReader(fmt.Sprintf(`{"user":{"subject":%q},"provider":"tp"}`, userID))
		req, _ := http.NewRequest("POST", "http://"+addr+"/vault/token", body)
		req.Header.Set("Authorization", "Bearer "+jobTok)
		resp, err = http.DefaultClient.Do(req)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the vault listener does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != 200 || m["access_token"] == nil {
		t.Errorf("vault listener /vault/token: %d %v", resp.StatusCode, m)
	}
	v.secrets["listener token"], _ = m["access_token"].(string)
	r2, err := http.Get("http://" + addr + "/connections")
	if err == nil {
		r2.Body.Close()
		if r2.StatusCode != 404 {
			t.Errorf("the vault listener serves /connections: %d", r2.StatusCode)
		}
	}
}

// Two Gatehouse instances sharing one PostgreSQL database refresh one
// connection once, whichever instance the calls reach.
func TestVaultTwoInstancesOnePostgres(t *testing.T) {
	vaultSkipWithoutPostgres(t)
	v := newVaultEnv(t, vaultOptions{store: "postgres", instances: 2})
	v.connect(v.all[0], "tp")
	jobTok := v.jobToken(t, vtJobAll)
	v.clock.Advance(vtLifetime + time.Minute)
	const perInstance = 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	tokens := map[string]int{}
	for _, e := range v.all {
		for range perInstance {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, m := v.vaultTokenFor(e, jobTok, "tp")
				mu.Lock()
				defer mu.Unlock()
				if status != 200 {
					t.Errorf("status %d %v", status, m)
					return
				}
				tokens[m["access_token"].(string)]++
			}()
		}
	}
	wg.Wait()
	if n := v.tpStats().TokenRefresh; n != 1 {
		t.Errorf("%d refreshes at the provider, want exactly 1", n)
	}
	if len(tokens) != 1 {
		t.Errorf("the instances handed out %d different tokens, want 1", len(tokens))
	}
}

// A new sealing key seals from now on; rows sealed with the old key open
// and are re-sealed with the new one when read.
func TestVaultKeyRotation(t *testing.T) {
	// Instance 1 has the new key k2 first; both share the SQLite file.
	v := newVaultEnv(t, vaultOptions{instances: 2, yaml: func(i int, y string) string {
		if i == 0 {
			return y
		}
		return strings.Replace(y, `- { id: "k1", key: "`+vaultKeyHex+`" }`,
			`- { id: "k2", key: "`+vaultKey2Hex+`" }
    - { id: "k1", key: "`+vaultKeyHex+`" }`, 1)
	}})
	e := v.env
	v.connect(e, "tp")
	st, err := sqlstore.Open(context.Background(), sqlstore.DriverSQLite, v.dir+"/vault.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u := vault.User{Issuer: v.idp.Issuer(), Subject: userID}
	conn, err := st.GetConnection(context.Background(), u, "tp")
	if err != nil || conn.AccessToken.KeyID != "k1" || conn.RefreshToken.KeyID != "k1" {
		t.Fatalf("sealed with %+v (%v), want k1", conn, err)
	}

	if len(conn.AccessToken.Data) < 29 {
		t.Error("the access token is not sealed at rest")
	}
	status, m := v.vaultTokenFor(v.all[1], v.jobToken(t, vtJobAll), "tp")
	if status != 200 {
		t.Fatalf("rotated instance: %d %v", status, m)
	}
	conn, err = st.GetConnection(context.Background(), u, "tp")
	if err != nil || conn.AccessToken.KeyID != "k2" || conn.RefreshToken.KeyID != "k2" {
		t.Fatalf("after a read the row is sealed with %q/%q (%v), want k2", conn.AccessToken.KeyID, conn.RefreshToken.KeyID, err)
	}
	// The instance without k2 can no longer open the row: the rotation is real.
	status, _ = v.vaultTokenFor(v.all[0], v.jobToken(t, vtJobAll), "tp")
	if status != 500 {
		t.Errorf("an instance without the new key: %d, want 500", status)
	}
}

// The session's access token may be opaque: vault.user introspects it, and
// the user is the introspection result's (iss, sub).
func TestVaultOpaqueSession(t *testing.T) {
	v := newVaultEnv(t, vaultOptions{opaqueSession: true})
	e := v.env
	c, _ := v.connect(e, "tp")
	if r := e.do(c, "GET", "/connections/tp/proxy/user", nil); r.StatusCode != 200 {
		t.Fatalf("proxy: %d %s", r.StatusCode, r.body)
	}
	if status, m := v.vaultTokenFor(e, v.jobToken(t, vtJobAll), "tp"); status != 200 {
		t.Errorf("a job finds the connection under (issuer, subject): %d %v", status, m)
	}
	if s := v.idp.Stats(); s.Introspection == 0 {
		t.Error("the session token was not introspected")
	}
}

// A provider where Gatehouse authenticates with private_key_jwt, through
// discovery; the code exchange and the refresh both use a fresh assertion.
func TestVaultPrivateKeyJWTProvider(t *testing.T) {
	v := newVaultEnv(t, vaultOptions{})
	e := v.env
	c, _ := v.connect(e, "pk")
	if r := e.do(c, "GET", "/connections/pk/proxy/user", nil); r.StatusCode != 200 || r.json(t)["client_id"] != "gatehouse-pk" {
		t.Fatalf("proxy: %d %s", r.StatusCode, r.body)
	}
	// Refresh after a 401 (not by moving the clock: the assertion's iat is
	// Gatehouse's time, which the provider checks against its own).
	_, tok := v.vtAPI.last(t)
	v.vtAPI.reject(tok)
	if r := e.do(c, "GET", "/connections/pk/proxy/user", nil); r.StatusCode != 200 {
		t.Fatalf("after refresh: %d %s", r.StatusCode, r.body)
	}
	if n := v.tpStats().TokenRefresh; n != 1 {
		t.Errorf("%d refreshes", n)
	}
}
