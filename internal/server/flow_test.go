package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// setCookies parses the response's Set-Cookie headers by name.
func setCookies(r *response) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range r.Cookies() {
		out[c.Name] = c
	}
	return out
}

// TestFullFlow drives what an SPA does, over real HTTP against a real
// OpenID Provider: login, user info, claims, API calls through the proxy,
// refresh, logout.
func TestFullFlow(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := e.browser

	// A first page load: not logged in.
	r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL})
	if r.StatusCode != 200 || string(r.body) != `{"handled":false,"isLoggedIn":false}` {
		t.Fatalf("page load before login: %d %s", r.StatusCode, r.body)
	}

	// login/start
	r = e.do(b, "POST", "/oauth-agent/login/start", nil)
	if r.StatusCode != 200 {
		t.Fatalf("login/start: %d %s", r.StatusCode, r.body)
	}
	authURL, _ := url.Parse(r.json(t)["authorizationRequestUrl"].(string))
	q := authURL.Query()
	for k, want := range map[string]string{
		"client_id": "spa-client", "redirect_uri": spaURL, "response_type": "code",
		"code_challenge_method": "S256", "scope": "openid profile offline_access",
	} {
		if q.Get(k) != want {
			t.Errorf("authorization request %s = %q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 43 {
			t.Errorf("authorization request %s = %q, want ≥ 43 random characters", k, q.Get(k))
		}
	}
	login := setCookies(r)["example-login"]
	if login == nil || !login.HttpOnly || !login.Secure || login.SameSite != http.SameSiteStrictMode || login.MaxAge != 600 || login.Path != "/" {
		t.Fatalf("-login cookie attributes wrong: %+v", login)
	}
	var tx map[string]any
	if err := json.Unmarshal([]byte(e.open(login.Value)), &tx); err != nil {
		t.Fatal(err)
	}
	if tx["state"] != q.Get("state") || tx["nonce"] != q.Get("nonce") || tx["codeVerifier"] == "" || tx["iat"] == nil {
		t.Fatalf("-login holds %v", tx)
	}
	e.secrets["code verifier"] = tx["codeVerifier"].(string)
	e.secrets["nonce"] = tx["nonce"].(string)

	// The provider's login page, then the SPA's callback page posts its URL.
	cb := e.authorize(authURL.String())
	r = e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": cb})
	if r.StatusCode != 200 {
		t.Fatalf("login/end: %d %s", r.StatusCode, r.body)
	}
	m := r.json(t)
	csrf, _ := m["csrf"].(string)
	if m["handled"] != true || m["isLoggedIn"] != true || len(csrf) < 43 {
		t.Fatalf("login/end: %s", r.body)
	}
	e.secrets["csrf"] = csrf
	sc := setCookies(r)
	wantPaths := map[string]string{"example-at": "/", "example-csrf": "/", "example-auth": "/oauth-agent", "example-id": "/oauth-agent/claims"}
	for name, path := range wantPaths {
		c := sc[name]
		if c == nil {
			t.Fatalf("login/end did not set %s", name)
		}
		if c.Path != path || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Domain != "" || c.MaxAge != 0 {
			t.Errorf("%s attributes wrong: %+v", name, c)
		}
	}
	if c := sc["example-login"]; c == nil || c.MaxAge != -1 || c.Path != "/" {
		t.Errorf("-login not cleared on its path: %+v", c)
	}
	var order []string
	for _, c := range r.Cookies() {
		order = append(order, c.Name)
	}
	if !slices.Equal(order, []string{"example-at", "example-csrf", "example-login", "example-auth", "example-id"}) {
		t.Errorf("Set-Cookie order %v", order)
	}
	e.collectCookieSecrets(b)
	at := e.open(e.cookie(b, "/", "example-at"))

	// A later page load answers the login state and the same CSRF token.
	r = e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL + "orders"})
	if m := r.json(t); m["handled"] != false || m["isLoggedIn"] != true || m["csrf"] != csrf {
		t.Fatalf("page load after login: %s", r.body)
	}

	// userInfo and claims
	r = e.do(b, "GET", "/oauth-agent/userInfo", nil)
	if r.StatusCode != 200 || r.json(t)["sub"] != userID {
		t.Fatalf("userInfo: %d %s", r.StatusCode, r.body)
	}
	r = e.do(b, "GET", "/oauth-agent/claims", nil)
	if m := r.json(t); r.StatusCode != 200 || m["sub"] != userID || m["iss"] != e.idp.Issuer() {
		t.Fatalf("claims: %d %s", r.StatusCode, r.body)
	}

	// API GET through the proxy: the upstream gets the access token, nothing of the browser's.
	r = e.do(b, "GET", "/api/orders?x=1", nil, withHeader("Authorization", "Bearer attacker"))
	if r.StatusCode != 200 {
		t.Fatalf("API GET: %d %s", r.StatusCode, r.body)
	}
	up := e.api.last(t)
	if got := up.Header.Get("Authorization"); got != "Bearer "+at {
		t.Errorf("upstream Authorization = %q", got)
	}
	if up.URL.Path != "/api/orders" || up.URL.RawQuery != "x=1" {
		t.Errorf("upstream URL %s", up.URL)
	}
	if up.Header.Get("Cookie") != "" {
		t.Error("the upstream received the browser's cookies")
	}
	if r.Header.Get("Access-Control-Allow-Origin") != spaOrigin || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("API response CORS headers: %v", r.Header)
	}

	// API POST needs the CSRF header; it is not forwarded.
	r = e.do(b, "POST", "/api/orders", `{"item":1}`)
	e.expectError(r, 401, "unauthorized")
	r = e.do(b, "POST", "/api/orders", `{"item":1}`, withCSRF(csrf))
	if r.StatusCode != 200 {
		t.Fatalf("API POST: %d %s", r.StatusCode, r.body)
	}
	if up := e.api.last(t); up.Header.Get("X-Example-Csrf") != "" || up.Method != "POST" {
		t.Errorf("upstream got the CSRF header or wrong method: %v", up.Header)
	}

	// Strip-prefix route.
	r = e.do(b, "GET", "/svc/orders/42", nil)
	if r.StatusCode != 200 || e.api.last(t).URL.Path != "/base/42" {
		t.Fatalf("stripped route: %d, upstream path %s", r.StatusCode, e.api.last(t).URL.Path)
	}

	// Refresh: new access token (and a rotated refresh token), CSRF unchanged.
	oldAuth := e.cookie(b, "/oauth-agent", "example-auth")
	r = e.do(b, "POST", "/oauth-agent/refresh", nil, withCSRF(csrf))
	if r.StatusCode != 204 {
		t.Fatalf("refresh: %d %s", r.StatusCode, r.body)
	}
	sc = setCookies(r)
	if sc["example-at"] == nil || sc["example-auth"] == nil || sc["example-id"] == nil || sc["example-csrf"] != nil {
		t.Fatalf("refresh set cookies %v", sc)
	}
	if sc["example-auth"].Path != "/oauth-agent" || sc["example-id"].Path != "/oauth-agent/claims" {
		t.Errorf("refresh cookie paths: auth %s id %s", sc["example-auth"].Path, sc["example-id"].Path)
	}
	e.collectCookieSecrets(b)
	newAT := e.open(e.cookie(b, "/", "example-at"))
	if newAT == at || e.cookie(b, "/oauth-agent", "example-auth") == oldAuth {
		t.Fatal("refresh did not renew the tokens")
	}
	r = e.do(b, "GET", "/api/orders", nil)
	if r.StatusCode != 200 || e.api.last(t).Header.Get("Authorization") != "Bearer "+newAT {
		t.Fatalf("API after refresh: %d", r.StatusCode)
	}

	// Logout: end-session URL, revocation, every cookie cleared on its path.
	revocations := e.idp.Stats().Revocation
	r = e.do(b, "POST", "/oauth-agent/logout", nil, withCSRF(csrf))
	if r.StatusCode != 200 {
		t.Fatalf("logout: %d %s", r.StatusCode, r.body)
	}
	lu, err := url.Parse(r.json(t)["url"].(string))
	if err != nil || !strings.HasPrefix(lu.String(), e.idp.Issuer()) || lu.Query().Get("client_id") != "spa-client" ||
		lu.Query().Get("post_logout_redirect_uri") != spaURL || lu.Query().Has("id_token_hint") {
		t.Fatalf("logout url %v", lu)
	}
	if e.idp.Stats().Revocation != revocations+1 {
		t.Errorf("logout did not revoke the refresh token")
	}
	sc = setCookies(r)
	for name, path := range wantPaths {
		if c := sc[name]; c == nil || c.MaxAge != -1 || c.Path != path || c.Value != "" {
			t.Errorf("logout did not clear %s on %s: %+v", name, path, c)
		}
	}
	r = e.do(b, "GET", "/api/orders", nil)
	e.expectError(r, 401, "unauthorized")
	r = e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL})
	if r.json(t)["isLoggedIn"] != false {
		t.Fatalf("page load after logout: %s", r.body)
	}

	// Invariant 1: no credential in any log line.
	e.assertNoSecrets("the logs", e.logs.String())
	if strings.Contains(e.logs.String(), "code=") {
		t.Error("a query string reached the logs")
	}
}

func b64json(t *testing.T, seg string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
