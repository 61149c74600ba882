package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

// badOrigins are Origin headers that must never be trusted: the trusted
// origin is exactly https://127.0.0.1:5173.
var badOrigins = []struct {
	name string
	opt  reqOpt
}{
	{"missing", withoutOrigin()},
	{"null", withOrigin("null")},
	{"untrusted", withOrigin("https://evil.example")},
	{"suffix look-alike", withOrigin("https://127.0.0.1:5173.evil.io")},
	{"other port", withOrigin("https://127.0.0.1:5174")},
	{"other scheme", withOrigin("http://127.0.0.1:5173")},
	{"trailing slash", withOrigin("https://127.0.0.1:5173/")},
	{"upper case", withOrigin("HTTPS://127.0.0.1:5173")},
	{"two Origin headers", func(r *http.Request) { r.Header["Origin"] = []string{spaOrigin, spaOrigin} }},
}

// TestOriginRules pins the Origin rule (invariant 3): every agent endpoint
// and every cookie-route request with a missing, null, untrusted or
// look-alike Origin is refused with 401 and gets no CORS grant, and nothing
// reaches the authorization server or the upstream.
func TestOriginRules(t *testing.T) {
	e := newEnv(t, envOptions{})
	csrf := e.login(e.browser)
	stats := e.idp.Stats()
	upstreamCalls := e.api.count()

	for _, o := range badOrigins {
		t.Run(o.name, func(t *testing.T) {
			e := e.sub(t)
			for _, ep := range agentEndpoints {
				var body any
				if ep.path == "/oauth-agent/login/end" {
					body = map[string]string{"pageUrl": spaURL}
				}
				r := e.do(e.browser, ep.method, ep.path, body, withCSRF(csrf), o.opt)
				what := ep.method + " " + ep.path
				expectErr(t, what, r, 401, "unauthorized_request")
				checkNoCORS(t, what, r)
				checkAgentHeaders(t, what, r)
				if sc := r.Header.Values("Set-Cookie"); len(sc) > 0 {
					t.Errorf("%s: a refused request set cookies %v", what, sc)
				}
			}
			for _, m := range []string{"GET", "POST", "DELETE"} {
				var body any
				if m == "POST" {
					body = `{"a":1}`
				}
				r := e.do(e.browser, m, "/api/orders", body, withCSRF(csrf), o.opt)
				expectErr(t, m+" /api/orders", r, 401, "unauthorized")
				checkNoCORS(t, m+" /api/orders", r)
			}
		})
	}
	if got := e.idp.Stats(); got != stats {
		t.Errorf("refused requests reached the provider: %+v → %+v", stats, got)
	}
	if n := e.api.count(); n != upstreamCalls {
		t.Errorf("refused requests reached the upstream (%d → %d)", upstreamCalls, n)
	}

	// The trusted origin gets its CORS grant on errors too.
	r := e.do(e.browser, "POST", "/oauth-agent/refresh", nil)
	expectErr(t, "refresh without CSRF", r, 401, "unauthorized_request")
	checkCORS(t, "refresh without CSRF", r)
	r = e.do(e.browser, "GET", "/oauth-agent/nope", nil)
	expectErr(t, "unknown agent path", r, 404, "not_found")
	checkCORS(t, "unknown agent path", r)
	r = e.do(e.browser, "POST", "/api/orders", `{}`)
	expectErr(t, "API POST without CSRF", r, 401, "unauthorized")
	checkCORS(t, "API POST without CSRF", r)

	// And the session still works.
	if r := e.do(e.browser, "GET", "/api/orders", nil); r.StatusCode != 200 {
		t.Fatalf("API GET from the trusted origin: %d %s", r.StatusCode, r.body)
	}
	e.assertNoSecretsAnywhere()
}

// TestPreflight pins the CORS preflight answers: a trusted origin gets 204
// with its origin, credentials, the methods and its requested headers echoed;
// an untrusted one gets 204 and no grant at all. Preflights never reach the
// upstream.
func TestPreflight(t *testing.T) {
	e := newEnv(t, envOptions{})
	paths := []struct{ path, methods string }{
		{"/oauth-agent/login/start", "POST"},
		{"/oauth-agent/refresh", "POST"},
		{"/oauth-agent/userInfo", "GET"},
		{"/api/orders", "DELETE"},
		{"/svc/orders/1", "POST"},
	}
	preflight := func(path, method, org string) *response {
		return e.do(e.raw(), "OPTIONS", path, nil, withOrigin(org),
			withHeader("Access-Control-Request-Method", method),
			withHeader("Access-Control-Request-Headers", "content-type,x-example-csrf"))
	}
	for _, p := range paths {
		t.Run("trusted "+p.path, func(t *testing.T) {
			r := preflight(p.path, p.methods, spaOrigin)
			if r.StatusCode != 204 {
				t.Fatalf("status %d, want 204", r.StatusCode)
			}
			checkCORS(t, p.path, r)
			if m := r.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, p.methods) {
				t.Errorf("Access-Control-Allow-Methods %q does not offer %s", m, p.methods)
			}
			if h := r.Header.Get("Access-Control-Allow-Headers"); h != "content-type,x-example-csrf" {
				t.Errorf("Access-Control-Allow-Headers %q, want the requested headers echoed", h)
			}
			if strings.HasPrefix(p.path, "/oauth-agent") {
				checkAgentHeaders(t, p.path, r)
			}
		})
		t.Run("untrusted "+p.path, func(t *testing.T) {
			for _, org := range []string{"https://evil.example", "null", "https://127.0.0.1:5173.evil.io"} {
				r := preflight(p.path, p.methods, org)
				if r.StatusCode != 204 {
					t.Errorf("%s: status %d, want 204", org, r.StatusCode)
				}
				checkNoCORS(t, org, r)
			}
		})
	}
	if r := preflight("/svc/orders/1", "GET", spaOrigin); r.Header.Get("Access-Control-Allow-Methods") != "GET, POST" {
		t.Errorf("route with methods [GET, POST] offers %q", r.Header.Get("Access-Control-Allow-Methods"))
	}
	if n := e.api.count(); n != 0 {
		t.Errorf("preflights reached the upstream %d times", n)
	}
}

// TestCORSDisabled pins the same-origin mode (cors.enabled false): no CORS
// headers anywhere; GET and HEAD without Origin are allowed on userInfo,
// claims and API GETs, but a POST without Origin, or any request with an
// untrusted Origin, is refused.
func TestCORSDisabled(t *testing.T) {
	e := newEnv(t, envOptions{yaml: func(y string) string {
		return insertAfter(t, y, "  scope:", "  cors: { enabled: false }\n")
	}})
	csrf := e.login(e.browser)
	b := e.browser

	for _, c := range []struct {
		method, path string
		opts         []reqOpt
		status       int
		code         string
	}{
		{"GET", "/oauth-agent/userInfo", []reqOpt{withoutOrigin()}, 200, ""},
		{"HEAD", "/oauth-agent/userInfo", []reqOpt{withoutOrigin()}, 200, ""},
		{"GET", "/oauth-agent/claims", []reqOpt{withoutOrigin()}, 200, ""},
		{"GET", "/api/orders", []reqOpt{withoutOrigin()}, 200, ""},
		{"HEAD", "/api/orders", []reqOpt{withoutOrigin()}, 200, ""},
		{"GET", "/oauth-agent/userInfo", nil, 200, ""},
		{"GET", "/api/orders", nil, 200, ""},
		{"GET", "/oauth-agent/userInfo", []reqOpt{withOrigin("https://evil.example")}, 401, "unauthorized_request"},
		{"GET", "/api/orders", []reqOpt{withOrigin("null")}, 401, "unauthorized"},
		{"POST", "/oauth-agent/login/start", []reqOpt{withoutOrigin()}, 401, "unauthorized_request"},
		{"POST", "/oauth-agent/login/end", []reqOpt{withoutOrigin()}, 401, "unauthorized_request"},
		{"POST", "/oauth-agent/refresh", []reqOpt{withoutOrigin(), withCSRF(csrf)}, 401, "unauthorized_request"},
		{"POST", "/oauth-agent/logout", []reqOpt{withoutOrigin(), withCSRF(csrf)}, 401, "unauthorized_request"},
		{"POST", "/api/orders", []reqOpt{withoutOrigin(), withCSRF(csrf)}, 401, "unauthorized"},
		{"DELETE", "/api/orders/1", []reqOpt{withoutOrigin(), withCSRF(csrf)}, 401, "unauthorized"},
		{"POST", "/oauth-agent/refresh", []reqOpt{withCSRF(csrf)}, 204, ""},
	} {
		what := c.method + " " + c.path
		r := e.do(b, c.method, c.path, nil, c.opts...)
		if c.code != "" {
			expectErr(t, what, r, c.status, c.code)
		} else if r.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d; %s", what, r.StatusCode, c.status, r.body)
		}
		checkNoCORS(t, what, r)
		if v := r.Header.Values("Vary"); slices.Contains(v, "Origin") {
			t.Errorf("%s: Vary: Origin without CORS", what)
		}
	}
	r := e.do(e.raw(), "OPTIONS", "/oauth-agent/login/start", nil,
		withHeader("Access-Control-Request-Method", "POST"), withHeader("Access-Control-Request-Headers", "x-example-csrf"))
	checkNoCORS(t, "preflight", r)
	e.collectCookieSecrets(b)
	e.assertNoSecretsAnywhere()
}

// TestCSRF pins invariant 4: /refresh, /logout and every cookie-route method
// but GET, HEAD and OPTIONS need the x-example-csrf header equal to the
// -csrf cookie; nothing is forwarded or called otherwise.
func TestCSRF(t *testing.T) {
	e := newEnv(t, envOptions{})
	csrf := e.login(e.browser)
	b := e.browser
	sealedCSRF := e.cookie(b, "/", "example-csrf")
	stats := e.idp.Stats()
	calls := e.api.count()

	bad := []struct {
		name string
		opts []reqOpt
	}{
		{"missing", nil},
		{"empty", []reqOpt{withCSRF("")}},
		{"wrong", []reqOpt{withCSRF(csrf[:len(csrf)-1] + "x")}},
		{"prefix", []reqOpt{withCSRF(csrf[:20])}},
		{"the sealed cookie value", []reqOpt{withCSRF(sealedCSRF)}},
		{"twice", []reqOpt{func(r *http.Request) { r.Header["X-Example-Csrf"] = []string{csrf, csrf} }}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			e := e.sub(t)
			for _, p := range []string{"/oauth-agent/refresh", "/oauth-agent/logout"} {
				r := e.do(b, "POST", p, nil, c.opts...)
				expectErr(t, p, r, 401, "unauthorized_request")
				checkCORS(t, p, r)
				checkAgentHeaders(t, p, r)
				if sc := r.Header.Values("Set-Cookie"); len(sc) > 0 {
					t.Errorf("%s: refused request set cookies %v", p, sc)
				}
			}
			for _, m := range []string{"POST", "PUT", "PATCH", "DELETE", "PROPFIND"} {
				r := e.do(b, m, "/api/orders/1", `{"x":1}`, c.opts...)
				expectErr(t, m, r, 401, "unauthorized")
				checkCORS(t, m, r)
			}
		})
	}
	if got := e.idp.Stats(); got != stats {
		t.Errorf("requests without CSRF proof reached the provider: %+v → %+v", stats, got)
	}
	if n := e.api.count(); n != calls {
		t.Errorf("requests without CSRF proof reached the upstream (%d → %d)", calls, n)
	}

	// The CSRF header without a -csrf cookie proves nothing.
	noCSRFCookie := cookieLine("example-at", e.cookie(b, "/", "example-at"), "example-auth", e.cookie(b, "/oauth-agent", "example-auth"))
	r := e.do(e.raw(), "POST", "/oauth-agent/refresh", nil, withCSRF(csrf), withCookies(noCSRFCookie))
	expectErr(t, "refresh without -csrf cookie", r, 401, "unauthorized_request")
	r = e.do(e.raw(), "POST", "/api/orders", `{}`, withCSRF(csrf), withCookies(noCSRFCookie))
	expectErr(t, "API POST without -csrf cookie", r, 401, "unauthorized")

	// With the proof every method passes, and GET/HEAD need none.
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE", "PROPFIND"} {
		r := e.do(b, m, "/api/orders/1", `{"x":1}`, withCSRF(csrf))
		if r.StatusCode != 200 || e.api.last(t).Method != m {
			t.Errorf("%s with CSRF: %d %s", m, r.StatusCode, r.body)
		}
	}
	for _, m := range []string{"GET", "HEAD"} {
		if r := e.do(b, m, "/api/orders/1", nil); r.StatusCode != 200 {
			t.Errorf("%s without CSRF: %d %s", m, r.StatusCode, r.body)
		}
	}
	if r := e.do(b, "POST", "/oauth-agent/refresh", nil, withCSRF(csrf)); r.StatusCode != 204 {
		t.Fatalf("refresh with CSRF: %d %s", r.StatusCode, r.body)
	}
	e.collectCookieSecrets(b)
	e.assertNoSecretsAnywhere()
}

// TestCookieTampering pins the cookie rules: a tampered, truncated,
// foreign-key or cross-name cookie, or a Gatehouse cookie name sent twice
// (cookie tossing), is refused with 401 on API routes and agent endpoints;
// a page load treats undecryptable cookies as absent and never fails.
func TestCookieTampering(t *testing.T) {
	e := newEnv(t, envOptions{})
	csrf := e.login(e.browser)
	s := e.session(e.browser)
	stats := e.idp.Stats()
	calls := e.api.count()

	variants := func(v string) []struct{ name, value string } {
		return []struct{ name, value string }{
			{"version byte", flipBit(t, v, 0)},
			{"IV bit flip", flipBit(t, v, 4)},
			{"ciphertext bit flip", flipBit(t, v, 20)},
			{"tag bit flip", flipBit(t, v, -1)},
			{"truncated", v[:len(v)-6]},
			{"too short", "x"},
			{"not base64url", v[:10] + "%%" + v[12:]},
			{"sealed with another key", sealOther(t, e.open(v))},
		}
	}
	cookiesFor := func(name, value string) string {
		m := map[string]string{"example-at": s.at, "example-csrf": s.csrf, "example-auth": s.auth, "example-id": s.id}
		m[name] = value
		return cookieLine("example-at", m["example-at"], "example-csrf", m["example-csrf"],
			"example-auth", m["example-auth"], "example-id", m["example-id"])
	}

	type target struct {
		method, path string
		code         string
	}
	targets := map[string][]target{
		"example-at": {
			{"GET", "/api/orders", "unauthorized"},
			{"POST", "/api/orders", "unauthorized"},
			{"GET", "/oauth-agent/userInfo", "unauthorized_request"},
			{"POST", "/oauth-agent/logout", "unauthorized_request"},
		},
		"example-csrf": {
			{"POST", "/api/orders", "unauthorized"},
			{"POST", "/oauth-agent/refresh", "unauthorized_request"},
			{"POST", "/oauth-agent/logout", "unauthorized_request"},
		},
		"example-auth": {{"POST", "/oauth-agent/refresh", "unauthorized_request"}},
		"example-id":   {{"GET", "/oauth-agent/claims", "unauthorized_request"}},
	}
	original := map[string]string{"example-at": s.at, "example-csrf": s.csrf, "example-auth": s.auth, "example-id": s.id}
	for _, name := range []string{"example-at", "example-csrf", "example-auth", "example-id"} {
		for _, v := range variants(original[name]) {
			t.Run(name+" "+v.name, func(t *testing.T) {
				e := e.sub(t)
				for _, tg := range targets[name] {
					r := e.do(e.raw(), tg.method, tg.path, nil, withCSRF(csrf), withCookies(cookiesFor(name, v.value)))
					expectErr(t, tg.method+" "+tg.path, r, 401, tg.code)
					if strings.HasPrefix(tg.path, "/oauth-agent") {
						checkAgentHeaders(t, tg.path, r)
					}
				}
				// A page load with the bad cookie answers "not logged in"
				// (for -at and -csrf) or the normal state, never an error.
				r := e.do(e.raw(), "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL}, withCookies(cookiesFor(name, v.value)))
				want := `{"handled":false,"isLoggedIn":true,"csrf":"` + csrf + `"}`
				if name == "example-at" || name == "example-csrf" {
					want = `{"handled":false,"isLoggedIn":false}`
				}
				if r.StatusCode != 200 || string(r.body) != want {
					t.Errorf("page load: %d %s, want 200 %s", r.StatusCode, r.body, want)
				}
			})
		}
	}

	// Two cookies with one Gatehouse name: cookie tossing from a sibling
	// subdomain, or a stale cookie on another path. Refused everywhere, even
	// when both copies are valid.
	dups := map[string]string{
		"two valid -at":             "example-at=" + s.at + "; example-at=" + s.at + "; example-csrf=" + s.csrf + "; example-auth=" + s.auth + "; example-id=" + s.id,
		"-at and an attacker's -at": "example-at=" + e.seal("attacker-token") + "; example-at=" + s.at + "; example-csrf=" + s.csrf + "; example-auth=" + s.auth + "; example-id=" + s.id,
		"two -csrf":                 "example-at=" + s.at + "; example-csrf=" + s.csrf + "; example-csrf=" + s.csrf + "; example-auth=" + s.auth + "; example-id=" + s.id,
		"two -auth":                 "example-at=" + s.at + "; example-csrf=" + s.csrf + "; example-auth=" + s.auth + "; example-auth=" + s.auth + "; example-id=" + s.id,
		"-at in two Cookie headers": "",
	}
	for name, line := range dups {
		t.Run("duplicate "+name, func(t *testing.T) {
			e := e.sub(t)
			opt := withCookies(line)
			if line == "" {
				opt = func(r *http.Request) {
					r.Header["Cookie"] = []string{"example-at=" + s.at + "; example-csrf=" + s.csrf + "; example-auth=" + s.auth + "; example-id=" + s.id, "example-at=" + s.at}
				}
			}
			for _, m := range []string{"GET", "POST"} {
				r := e.do(e.raw(), m, "/api/orders", nil, withCSRF(csrf), opt)
				expectErr(t, m+" API", r, 401, "unauthorized")
			}
			for _, ep := range agentEndpoints {
				var body any
				if ep.path == "/oauth-agent/login/end" {
					body = map[string]string{"pageUrl": spaURL}
				}
				r := e.do(e.raw(), ep.method, ep.path, body, withCSRF(csrf), opt)
				expectErr(t, ep.path, r, 401, "unauthorized_request")
				checkAgentHeaders(t, ep.path, r)
			}
		})
	}

	// A Gatehouse cookie presented under another Gatehouse name: the
	// envelope has no associated data (Curity's format), so the value opens;
	// the copy is recognised because the original travels in the same request.
	t.Run("cross-name", func(t *testing.T) {
		e := e.sub(t)
		login := e.seal(`{"codeVerifier":"v","state":"s","nonce":"n","iat":1}`)
		for _, c := range []struct {
			what, method, path, cookies string
			csrfHeader                  string
			code                        string
		}{
			{"-csrf value as -at at the API", "GET", "/api/orders", cookieLine("example-at", s.csrf, "example-csrf", s.csrf), csrf, "unauthorized"},
			{"-csrf value as -at at the API (POST)", "POST", "/api/orders", cookieLine("example-at", s.csrf, "example-csrf", s.csrf), csrf, "unauthorized"},
			{"-login value as -at at the API", "GET", "/api/orders", cookieLine("example-at", login, "example-csrf", s.csrf, "example-login", login), csrf, "unauthorized"},
			{"-at value as -csrf", "POST", "/api/orders", cookieLine("example-at", s.at, "example-csrf", s.at), e.open(s.at), "unauthorized"},
			{"-csrf value as -at at userInfo", "GET", "/oauth-agent/userInfo", cookieLine("example-at", s.csrf, "example-csrf", s.csrf), csrf, "unauthorized_request"},
			{"-at value as -id at claims", "GET", "/oauth-agent/claims", cookieLine("example-at", s.at, "example-csrf", s.csrf, "example-id", s.at), csrf, "unauthorized_request"},
			{"-at value as -auth at refresh", "POST", "/oauth-agent/refresh", cookieLine("example-at", s.at, "example-csrf", s.csrf, "example-auth", s.at), csrf, "unauthorized_request"},
			{"-csrf value as -auth at refresh", "POST", "/oauth-agent/refresh", cookieLine("example-at", s.at, "example-csrf", s.csrf, "example-auth", s.csrf), csrf, "unauthorized_request"},
			{"-csrf value as -at at logout", "POST", "/oauth-agent/logout", cookieLine("example-at", s.csrf, "example-csrf", s.csrf, "example-auth", s.auth), csrf, "unauthorized_request"},
		} {
			r := e.do(e.raw(), c.method, c.path, nil, withCookies(c.cookies), withCSRF(c.csrfHeader))
			expectErr(t, c.what, r, 401, c.code)
		}
		r := e.do(e.raw(), "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL}, withCookies(cookieLine("example-at", s.csrf, "example-csrf", s.csrf)))
		if string(r.body) != `{"handled":false,"isLoggedIn":false}` {
			t.Errorf("page load with the -csrf value as -at: %s", r.body)
		}
	})

	if n := e.api.count(); n != calls {
		t.Errorf("requests with bad cookies reached the upstream (%d → %d)", calls, n)
	}
	if got := e.idp.Stats(); got.TokenRefresh != stats.TokenRefresh || got.Revocation != stats.Revocation || got.Userinfo != stats.Userinfo {
		t.Errorf("requests with bad cookies refreshed or revoked at the provider: %+v → %+v", stats, got)
	}
	// The real session is untouched.
	if r := e.do(e.browser, "GET", "/api/orders", nil); r.StatusCode != 200 {
		t.Fatalf("API with the real cookies: %d %s", r.StatusCode, r.body)
	}
	e.assertNoSecretsAnywhere()
}

// TestLoginCookieRules pins the -login rules at /login/end: undecryptable
// with code+state → 401 unauthorized_request; missing → 400 invalid_request;
// a login that fails leaves no session behind.
func TestLoginCookieRules(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	authURL := e.loginStart(b, nil)
	login := e.cookie(b, "/", "example-login")
	e.secrets["-login cookie"] = login
	cb := e.authorize(authURL)
	body := map[string]string{"pageUrl": cb}

	for _, c := range []struct {
		name, cookie string
		status       int
		code         string
	}{
		{"missing", "", 400, "invalid_request"},
		{"bit flip", "example-login=" + flipBit(t, login, 30), 401, "unauthorized_request"},
		{"truncated", "example-login=" + login[:40], 401, "unauthorized_request"},
		{"another key", "example-login=" + sealOther(t, e.open(login)), 401, "unauthorized_request"},
		{"not a login transaction", "example-login=" + e.seal("just-a-token"), 401, "unauthorized_request"},
		{"twice", "example-login=" + login + "; example-login=" + login, 401, "unauthorized_request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := e.sub(t)
			var opts []reqOpt
			if c.cookie != "" {
				opts = append(opts, withCookies(c.cookie))
			}
			r := e.do(e.raw(), "POST", "/oauth-agent/login/end", body, opts...)
			expectErr(t, "login/end", r, c.status, c.code)
			checkAgentHeaders(t, "login/end", r)
			if n := setCookieNames(r); len(n) > 0 {
				t.Errorf("a failed login set cookies %v", n)
			}
		})
	}
	if n := e.idp.Stats().TokenAuthorizationCode; n != 0 {
		t.Errorf("failed logins redeemed the code at the provider (%d calls)", n)
	}
	// The real -login cookie still completes the login.
	if r := e.do(b, "POST", "/oauth-agent/login/end", body); r.StatusCode != 200 {
		t.Fatalf("login/end with the real cookie: %d %s", r.StatusCode, r.body)
	}
	e.collectCookieSecrets(b)
	e.assertNoSecretsAnywhere()
}

// TestCookieTooLarge pins the size rule: an ID token (and JWT access token)
// that would make a cookie over 4000 bytes is a 500 cookie_too_large, logged
// with the endpoint and the size, and the login does not half-succeed.
func TestCookieTooLarge(t *testing.T) {
	e := newEnv(t, envOptions{idp: func(c *devidp.Config) {
		c.Users[0].Claims = map[string]any{"biography": strings.Repeat("Curiouser and curiouser! ", 200)}
	}})
	b := e.browser
	cb := e.authorize(e.loginStart(b, nil))
	r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": cb})
	expectErr(t, "login/end", r, 500, "cookie_too_large")
	checkAgentHeaders(t, "login/end", r)
	checkCORS(t, "login/end", r)
	if n := setCookieNames(r); len(n) > 0 {
		t.Errorf("the failed login set cookies %v", n)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "cookie_too_large") || !strings.Contains(logs, "/oauth-agent/login/end") || !strings.Contains(logs, "bytes") {
		t.Errorf("cookie_too_large not logged with the endpoint and size:\n%s", logs)
	}
	r = e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL})
	if string(r.body) != `{"handled":false,"isLoggedIn":false}` {
		t.Errorf("page load after the failed login: %s", r.body)
	}
	if r := e.do(b, "GET", "/api/orders", nil); r.StatusCode != 401 {
		t.Errorf("API after the failed login: %d", r.StatusCode)
	}
	e.assertNoSecretsAnywhere()
}

// startLogin runs login/start and the provider's login page in a new
// browser and returns the browser, the callback URL and the -login cookie.
func (e *env) startLogin(extra any) (*http.Client, string, string) {
	e.t.Helper()
	b := e.newBrowser()
	authURL := e.loginStart(b, extra)
	login := e.cookie(b, "/", "example-login")
	e.secrets["-login cookie "+login[:8]] = login
	return b, e.authorize(authURL), login
}

func withQuery(t *testing.T, raw string, edit func(url.Values)) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	edit(q)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestLoginResponseChecks pins invariant 5 at /login/end: state must match
// and is single use, the nonce is checked, and a login older than
// login_window is refused — each before or instead of a session.
func TestLoginResponseChecks(t *testing.T) {
	e := newEnv(t, envOptions{})
	end := func(b *http.Client, pageURL string, opts ...reqOpt) *response {
		return e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": pageURL}, opts...)
	}

	t.Run("state mismatch", func(t *testing.T) {
		e := e.sub(t)
		b, cb, _ := e.startLogin(nil)
		codes := e.idp.Stats().TokenAuthorizationCode
		for _, bad := range []string{"forged-state", "", strings.Repeat("A", 43)} {
			page := withQuery(t, cb, func(q url.Values) { q.Set("state", bad) })
			r := end(b, page)
			if bad == "" {
				// Without state the URL is an ordinary page load.
				if r.StatusCode != 200 || r.json(t)["handled"] != false {
					t.Errorf("code without state: %d %s", r.StatusCode, r.body)
				}
				continue
			}
			expectErr(t, "state "+bad, r, 400, "invalid_request")
			checkAgentHeaders(t, "state mismatch", r)
			if n := setCookieNames(r); len(n) > 0 {
				t.Errorf("state mismatch set cookies %v", n)
			}
		}
		if e.idp.Stats().TokenAuthorizationCode != codes {
			t.Error("a state mismatch redeemed the code")
		}
		// Repeated state or code parameters are refused too.
		r := end(b, cb+"&state=other")
		expectErr(t, "two states", r, 400, "invalid_request")
		if r := end(b, cb); r.StatusCode != 200 {
			t.Fatalf("the real callback after the mismatches: %d %s", r.StatusCode, r.body)
		}
	})

	t.Run("replayed callback", func(t *testing.T) {
		e := e.sub(t)
		b, cb, login := e.startLogin(nil)
		if r := end(b, cb); r.StatusCode != 200 {
			t.Fatalf("first login/end: %d %s", r.StatusCode, r.body)
		}
		codes := e.idp.Stats().TokenAuthorizationCode
		// The same callback URL with the same -login cookie re-presented.
		r := end(e.raw(), cb, withCookies("example-login="+login))
		expectErr(t, "replay", r, 400, "invalid_request")
		if got := e.idp.Stats().TokenAuthorizationCode; got != codes {
			t.Errorf("the replayed state reached the token endpoint (%d → %d): state is not single use", codes, got)
		}
		if n := setCookieNames(r); len(n) > 0 {
			t.Errorf("the replay set cookies %v", n)
		}
		// In a browser without the -login cookie: missing code verifier.
		r = end(e.raw(), cb)
		expectErr(t, "replay without -login", r, 400, "invalid_request")
	})

	t.Run("wrong nonce", func(t *testing.T) {
		e := e.sub(t)
		b := e.newBrowser()
		authURL := e.loginStart(b, nil)
		var tx map[string]any
		if err := json.Unmarshal([]byte(e.open(e.cookie(b, "/", "example-login"))), &tx); err != nil {
			t.Fatal(err)
		}
		tx["nonce"] = "forged-nonce-0123456789012345678901234567890"
		js, _ := json.Marshal(tx)
		e.setJarCookie(b, "/", "example-login", e.seal(string(js)))
		cb := e.authorize(authURL)
		r := end(b, cb)
		expectErr(t, "wrong nonce", r, 400, "invalid_request")
		if n := setCookieNames(r); len(n) > 0 {
			t.Errorf("a wrong nonce set cookies %v", n)
		}
	})

	t.Run("login window passed", func(t *testing.T) {
		e := e.sub(t)
		b, cb, _ := e.startLogin(nil)
		codes := e.idp.Stats().TokenAuthorizationCode
		e.clock.Advance(10*time.Minute + 2*time.Second)
		r := end(b, cb)
		expectErr(t, "expired login", r, 400, "invalid_request")
		if e.idp.Stats().TokenAuthorizationCode != codes {
			t.Error("an expired login redeemed the code")
		}
	})
	e.assertNoSecretsAnywhere()
}

// TestLoginIssParameter pins RFC 9207 (invariant 5): with a provider that
// advertises authorization_response_iss_parameter_supported, a callback
// without iss or with another iss is refused; without the advertisement a
// present iss must still be the issuer.
func TestLoginIssParameter(t *testing.T) {
	t.Parallel()
	t.Run("advertised", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{idp: func(c *devidp.Config) { c.IssParameter = true }})
		b, cb, _ := e.startLogin(nil)
		u, _ := url.Parse(cb)
		if u.Query().Get("iss") != e.idp.Issuer() {
			t.Fatalf("the provider sent no iss: %s", cb)
		}
		for name, page := range map[string]string{
			"stripped": withQuery(t, cb, func(q url.Values) { q.Del("iss") }),
			"changed":  withQuery(t, cb, func(q url.Values) { q.Set("iss", "https://evil.example") }),
			"slash":    withQuery(t, cb, func(q url.Values) { q.Set("iss", e.idp.Issuer()+"/") }),
			"empty":    withQuery(t, cb, func(q url.Values) { q.Set("iss", "") }),
			"twice":    cb + "&iss=" + url.QueryEscape(e.idp.Issuer()),
		} {
			r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": page})
			expectErr(t, "iss "+name, r, 400, "invalid_request")
		}
		if n := e.idp.Stats().TokenAuthorizationCode; n != 0 {
			t.Errorf("bad iss values reached the token endpoint %d times", n)
		}
		r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": cb})
		if r.StatusCode != 200 || r.json(t)["isLoggedIn"] != true {
			t.Fatalf("correct iss: %d %s", r.StatusCode, r.body)
		}
		// The error path checks iss too when a -login cookie exists.
		b2 := e.newBrowser()
		authURL, _ := url.Parse(e.loginStart(b2, nil))
		state := authURL.Query().Get("state")
		page := spaURL + "?" + url.Values{"error": {"access_denied"}, "state": {state}, "iss": {"https://evil.example"}}.Encode()
		r = e.do(b2, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": page})
		expectErr(t, "error path with a wrong iss", r, 400, "invalid_request")
		page = spaURL + "?" + url.Values{"error": {"access_denied"}, "state": {state}}.Encode()
		r = e.do(b2, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": page})
		expectErr(t, "error path without iss", r, 400, "invalid_request")
		e.assertNoSecretsAnywhere()
	})
	t.Run("not advertised", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{})
		b, cb, _ := e.startLogin(nil)
		if strings.Contains(cb, "iss=") {
			t.Fatalf("the provider sent iss without IssParameter: %s", cb)
		}
		r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": cb + "&iss=" + url.QueryEscape("https://evil.example")})
		expectErr(t, "wrong iss", r, 400, "invalid_request")
		r = e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": cb + "&iss=" + url.QueryEscape(e.idp.Issuer())})
		if r.StatusCode != 200 {
			t.Fatalf("right iss: %d %s", r.StatusCode, r.body)
		}
		e.assertNoSecretsAnywhere()
	})
}

// TestLoginErrorPath pins the OAuth error path of /login/end: registered
// codes are passed on (login_required as 401), others become
// authorization_error; the description only when it is short RFC 6749
// text; state is checked when a -login cookie exists; -login is cleared.
func TestLoginErrorPath(t *testing.T) {
	e := newEnv(t, envOptions{})
	const fixed = "Login failed at the Authorization Server"
	long := strings.Repeat("d", 257)
	ok256 := strings.Repeat("d", 256)
	for _, c := range []struct {
		name, code, desc string
		status           int
		wantCode         string
		wantMsg          string
	}{
		{"access_denied with description", "access_denied", "The user said no", 400, "access_denied", "The user said no"},
		{"no description", "access_denied", "", 400, "access_denied", fixed},
		{"unregistered code", "evil_code<script>", "x", 400, "authorization_error", "x"},
		{"unregistered invalid_grant", "invalid_grant", "", 400, "authorization_error", fixed},
		{"description of 256", "invalid_scope", ok256, 400, "invalid_scope", ok256},
		{"description over 256", "invalid_scope", long, 400, "invalid_scope", fixed},
		{"description with quote", "access_denied", `say "hi"`, 400, "access_denied", fixed},
		{"description with backslash", "access_denied", `a\b`, 400, "access_denied", fixed},
		{"description with newline", "access_denied", "line\nInjected: yes", 400, "access_denied", fixed},
		{"description with NUL", "access_denied", "a\x00b", 400, "access_denied", fixed},
		{"description not ASCII", "access_denied", "déjà vu", 400, "access_denied", fixed},
		{"login_required", "login_required", "", 401, "login_required", fixed},
		{"consent_required", "consent_required", "", 400, "consent_required", fixed},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := e.sub(t)
			b := e.newBrowser()
			authURL, _ := url.Parse(e.loginStart(b, nil))
			q := url.Values{"error": {c.code}, "state": {authURL.Query().Get("state")}}
			if c.desc != "" {
				q.Set("error_description", c.desc)
			}
			r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL + "?" + q.Encode()})
			if !expectErr(t, "error path", r, c.status, c.wantCode) {
				return
			}
			if msg := r.json(t)["message"]; msg != c.wantMsg {
				t.Errorf("message %q, want %q", msg, c.wantMsg)
			}
			checkAgentHeaders(t, "error path", r)
			checkCORS(t, "error path", r)
			if p, ok := clearedCookies(r)["example-login"]; !ok || p != "/" {
				t.Errorf("-login not cleared on its path: %v", r.Header.Values("Set-Cookie"))
			}
			if e.cookie(b, "/", "example-login") != "" {
				t.Error("the browser still holds -login")
			}
		})
	}

	t.Run("state differs from the -login cookie", func(t *testing.T) {
		e := e.sub(t)
		b := e.newBrowser()
		e.loginStart(b, nil)
		page := spaURL + "?" + url.Values{"error": {"access_denied"}, "state": {"attacker-state"}}.Encode()
		r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": page})
		expectErr(t, "error with another state", r, 400, "invalid_request")
		if e.cookie(b, "/", "example-login") == "" {
			t.Error("a forged error response cancelled the user's login in progress")
		}
	})
	t.Run("without a -login cookie", func(t *testing.T) {
		e := e.sub(t)
		page := spaURL + "?" + url.Values{"error": {"access_denied"}, "state": {"whatever"}}.Encode()
		r := e.do(e.raw(), "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": page})
		expectErr(t, "error without -login", r, 400, "access_denied")
	})
	t.Run("error without state is a page load", func(t *testing.T) {
		e := e.sub(t)
		r := e.do(e.raw(), "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL + "?error=access_denied"})
		if r.StatusCode != 200 || string(r.body) != `{"handled":false,"isLoggedIn":false}` {
			t.Errorf("error without state: %d %s", r.StatusCode, r.body)
		}
	})
	t.Run("login_required from the provider", func(t *testing.T) {
		e := e.sub(t)
		// devidp keeps no login session, so prompt=none always fails there.
		b := e.newBrowser()
		authURL := e.loginStart(b, map[string]any{"extraParams": []map[string]string{{"key": "prompt", "value": "none"}}})
		cb, err := devidp.Login(t.Context(), nil, authURL, userName, userPassword)
		if err != nil {
			t.Fatal(err)
		}
		r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": cb})
		expectErr(t, "prompt=none", r, 401, "login_required")
		if _, ok := clearedCookies(r)["example-login"]; !ok {
			t.Error("-login not cleared")
		}
	})
	e.assertNoSecretsAnywhere()
}

// TestAgentRequestBodies pins body handling: malformed JSON or the wrong
// shape is 400 invalid_request, more than 32 KiB is 413.
func TestAgentRequestBodies(t *testing.T) {
	e := newEnv(t, envOptions{})
	big := `{"pageUrl":"` + spaURL + "?x=" + strings.Repeat("a", 33<<10) + `"}`
	for _, p := range []string{"/oauth-agent/login/start", "/oauth-agent/login/end"} {
		for _, c := range []struct {
			name, body string
			status     int
			code       string
		}{
			{"truncated JSON", `{"pageUrl":`, 400, "invalid_request"},
			{"not JSON", `pageUrl=https://x`, 400, "invalid_request"},
			{"array", `[1,2]`, 400, "invalid_request"},
			{"wrong types", `{"pageUrl":5,"extraParams":"prompt"}`, 400, "invalid_request"},
			{"over 32 KiB", big, 413, "request_too_large"},
		} {
			r := e.do(e.browser, "POST", p, c.body)
			expectErr(t, p+" "+c.name, r, c.status, c.code)
			checkAgentHeaders(t, p+" "+c.name, r)
			checkCORS(t, p+" "+c.name, r)
			if n := setCookieNames(r); len(n) > 0 {
				t.Errorf("%s %s set cookies %v", p, c.name, n)
			}
		}
	}
	r := e.do(e.browser, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": "http://[::1"})
	expectErr(t, "unparsable pageUrl", r, 400, "invalid_request")
	// An empty body is fine on both.
	if r := e.do(e.browser, "POST", "/oauth-agent/login/end", nil); r.StatusCode != 200 {
		t.Errorf("login/end without body: %d %s", r.StatusCode, r.body)
	}
	if r := e.do(e.browser, "POST", "/oauth-agent/login/start", nil); r.StatusCode != 200 {
		t.Errorf("login/start without body: %d %s", r.StatusCode, r.body)
	}
}

// TestExtraParams pins the extraParams rules: only allowed keys, encoded
// with %20 for spaces, never a parameter Gatehouse sets itself, no
// duplicates, at most 2 KB.
func TestExtraParams(t *testing.T) {
	e := newEnv(t, envOptions{})
	params := func(kv ...string) map[string]any {
		var list []map[string]string
		for i := 0; i+1 < len(kv); i += 2 {
			list = append(list, map[string]string{"key": kv[i], "value": kv[i+1]})
		}
		return map[string]any{"extraParams": list}
	}

	t.Run("allowed", func(t *testing.T) {
		e := e.sub(t)
		claims := `{"id_token":{"acr":{"essential":true}}}`
		raw := e.loginStart(e.newBrowser(), params("prompt", "login", "ui_locales", "fr en", "claims", claims, "login_hint", "a&scope=evil x"))
		if !strings.Contains(raw, "ui_locales=fr%20en") || strings.Contains(raw, "fr+en") {
			t.Errorf("space not encoded as %%20: %s", raw)
		}
		u, _ := url.Parse(raw)
		q := u.Query()
		if q.Get("prompt") != "login" || q.Get("ui_locales") != "fr en" || q.Get("claims") != claims || q.Get("login_hint") != "a&scope=evil x" {
			t.Errorf("extra parameters not carried: %v", q)
		}
		if len(q["scope"]) != 1 || q.Get("scope") != "openid profile offline_access" {
			t.Errorf("a value smuggled a scope: %v", q["scope"])
		}
	})
	t.Run("empty value dropped", func(t *testing.T) {
		e := e.sub(t)
		raw := e.loginStart(e.newBrowser(), params("prompt", ""))
		if strings.Contains(raw, "prompt") {
			t.Errorf("empty value sent: %s", raw)
		}
	})
	t.Run("2 KB exactly", func(t *testing.T) {
		e := e.sub(t)
		e.loginStart(e.newBrowser(), params("login_hint", strings.Repeat("h", 2048-len("login_hint"))))
	})
	for _, c := range []struct {
		name string
		body any
	}{
		{"not allowed", params("foo", "bar")},
		{"redirect_uri", params("redirect_uri", "https://evil.example/")},
		{"scope", params("scope", "openid admin")},
		{"state", params("state", "fixed")},
		{"nonce", params("nonce", "fixed")},
		{"code_challenge", params("code_challenge", "abc")},
		{"code_challenge_method", params("code_challenge_method", "plain")},
		{"response_type", params("response_type", "token")},
		{"response_mode", params("response_mode", "form_post")},
		{"client_id", params("client_id", "other")},
		{"request_uri", params("request_uri", "urn:x")},
		{"key with &", params("prompt&scope", "x")},
		{"key with =", params("prompt=login&x", "y")},
		{"case variant", params("Prompt", "login")},
		{"duplicate", params("prompt", "login", "prompt", "consent")},
		{"duplicate with empty value", params("prompt", "", "prompt", "consent")},
		{"over 2 KB", params("login_hint", strings.Repeat("h", 2049-len("login_hint")))},
		{"over 2 KB in total", params("login_hint", strings.Repeat("h", 1500), "ui_locales", strings.Repeat("u", 600))},
		{"not a list", map[string]any{"extraParams": map[string]string{"key": "prompt", "value": "login"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := e.sub(t)
			r := e.do(e.newBrowser(), "POST", "/oauth-agent/login/start", c.body)
			expectErr(t, c.name, r, 400, "invalid_request")
			checkAgentHeaders(t, c.name, r)
			if n := setCookieNames(r); len(n) > 0 {
				t.Errorf("refused login/start set cookies %v", n)
			}
		})
	}
}

// TestRefreshRules pins the refresh contract: concurrent calls with one
// refresh token share one provider call; a late duplicate inside
// refresh_reuse_window gets the same cookies without a call; outside it the
// rotated-out token is invalid_grant → 401 session_expired with every cookie
// cleared on its own path.
func TestRefreshRules(t *testing.T) {
	e, as := newEnvWithFaultyAS(t, "2s")
	b := e.browser
	csrf := e.login(b)
	old := e.cookieHeader(b, "/oauth-agent/refresh")
	before := e.idp.Stats().TokenRefresh
	// The provider answers the refresh after half a second, so that all
	// concurrent calls are in flight while the first one is at the provider.
	as.set(devidp.PathToken, modeSlow)

	const n = 10
	type result struct {
		status  int
		cookies []*http.Cookie
		err     error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			req, _ := http.NewRequest("POST", e.base+"/oauth-agent/refresh", nil)
			req.Header.Set("Origin", spaOrigin)
			req.Header.Set("X-Example-Csrf", csrf)
			req.Header.Set("Cookie", old)
			resp, err := e.raw().Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			resp.Body.Close()
			results <- result{status: resp.StatusCode, cookies: resp.Cookies()}
		}()
	}
	close(start)
	var first []*http.Cookie
	newAT := ""
	for range n {
		r := <-results
		if r.err != nil || r.status != 204 {
			t.Fatalf("concurrent refresh: %d %v", r.status, r.err)
		}
		for _, c := range r.cookies {
			if c.Name == "example-at" {
				if newAT == "" {
					newAT, first = c.Value, r.cookies
				} else if c.Value != newAT {
					t.Error("concurrent refreshes answered different access-token cookies")
				}
			}
		}
	}
	if got := e.idp.Stats().TokenRefresh - before; got != 1 {
		t.Fatalf("%d concurrent /refresh calls made %d refreshes at the provider, want 1", n, got)
	}

	// A late duplicate inside the reuse window: same cookies, no provider call.
	e.clock.Advance(20 * time.Second)
	r := e.do(e.raw(), "POST", "/oauth-agent/refresh", nil, withCSRF(csrf), withCookies(old))
	if r.StatusCode != 204 {
		t.Fatalf("late duplicate: %d %s", r.StatusCode, r.body)
	}
	if setCookies(r)["example-at"] == nil || setCookies(r)["example-at"].Value != newAT {
		t.Error("the late duplicate got other cookies than the first refresh")
	}
	if got := e.idp.Stats().TokenRefresh - before; got != 1 {
		t.Errorf("the late duplicate called the provider (%d refreshes)", got)
	}

	// The browser takes the new cookies; they work.
	u, _ := url.Parse(e.base + "/oauth-agent/refresh")
	b.Jar.SetCookies(u, first)
	e.collectCookieSecrets(b)
	if r := e.do(b, "GET", "/api/orders", nil); r.StatusCode != 200 || e.api.last(t).Header.Get("Authorization") != "Bearer "+e.open(newAT) {
		t.Fatalf("API with the refreshed cookie: %d", r.StatusCode)
	}

	// Outside the window the old refresh token goes to the provider, which
	// sees a rotated-out token (reuse detection): the session is over.
	e.clock.Advance(11 * time.Second)
	r = e.do(e.raw(), "POST", "/oauth-agent/refresh", nil, withCSRF(csrf), withCookies(old))
	expectErr(t, "refresh outside the window", r, 401, "session_expired")
	checkAgentHeaders(t, "session_expired", r)
	checkCORS(t, "session_expired", r)
	want := map[string]string{"example-auth": "/oauth-agent", "example-at": "/", "example-id": "/oauth-agent/claims", "example-csrf": "/"}
	cleared := clearedCookies(r)
	for name, path := range want {
		if cleared[name] != path {
			t.Errorf("session_expired did not clear %s on %s (cleared: %v)", name, path, cleared)
		}
	}
	if got := e.idp.Stats().TokenRefresh - before; got != 2 {
		t.Errorf("refresh outside the window made %d provider calls in total, want 2", got)
	}
	e.assertNoSecretsAnywhere()
}

// TestSessionEnds pins the answers once the provider has ended the session,
// and the missing-cookie cases of refresh, claims and logout.
func TestSessionEnds(t *testing.T) {
	t.Parallel()
	t.Run("revoked", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{})
		b := e.browser
		csrf := e.login(b)
		s := e.session(b)

		r := e.do(e.raw(), "POST", "/oauth-agent/refresh", nil, withCSRF(csrf), withCookies(cookieLine("example-at", s.at, "example-csrf", s.csrf)))
		expectErr(t, "refresh without -auth", r, 401, "unauthorized_request")
		r = e.do(e.raw(), "GET", "/oauth-agent/claims", nil, withCookies(cookieLine("example-at", s.at, "example-csrf", s.csrf)))
		expectErr(t, "claims without -id", r, 401, "unauthorized_request")
		r = e.do(e.raw(), "POST", "/oauth-agent/logout", nil, withCSRF(csrf), withCookies(cookieLine("example-csrf", s.csrf, "example-auth", s.auth)))
		expectErr(t, "logout without -at", r, 401, "unauthorized_request")
		r = e.do(e.raw(), "GET", "/oauth-agent/userInfo", nil, withCookies(cookieLine("example-csrf", s.csrf)))
		expectErr(t, "userInfo without -at", r, 401, "unauthorized_request")

		e.idp.RevokeUserSessions(userID)
		r = e.do(b, "GET", "/oauth-agent/userInfo", nil)
		expectErr(t, "userInfo with a revoked token", r, 401, "token_expired")
		checkAgentHeaders(t, "token_expired", r)
		r = e.do(b, "POST", "/oauth-agent/refresh", nil, withCSRF(csrf))
		expectErr(t, "refresh of a revoked session", r, 401, "session_expired")
		if len(clearedCookies(r)) < 4 {
			t.Errorf("session_expired cleared only %v", clearedCookies(r))
		}
		if e.cookie(b, "/", "example-at") != "" || e.cookie(b, "/oauth-agent", "example-auth") != "" {
			t.Error("the browser kept session cookies after session_expired")
		}
		e.assertNoSecretsAnywhere()
	})
	t.Run("expired access token", func(t *testing.T) {
		t.Parallel()
		idpClock := &clock{}
		e := newEnv(t, envOptions{idp: func(c *devidp.Config) { c.Now = idpClock.Now }})
		e.login(e.browser)
		if r := e.do(e.browser, "GET", "/oauth-agent/userInfo", nil); r.StatusCode != 200 {
			t.Fatalf("userInfo: %d %s", r.StatusCode, r.body)
		}
		idpClock.Advance(devidp.DefaultAccessTokenLifetime + time.Minute)
		r := e.do(e.browser, "GET", "/oauth-agent/userInfo", nil)
		expectErr(t, "userInfo with an expired token", r, 401, "token_expired")
		e.assertNoSecretsAnywhere()
	})
}

// TestAgentResponseHeaders pins invariant 12 on every agent endpoint, on
// successes and errors alike, and the CORS grant for the trusted origin on
// every one of them.
func TestAgentResponseHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := e.browser
	var seen []*response
	do := func(method, path string, body any, opts ...reqOpt) *response {
		r := e.do(b, method, path, body, opts...)
		seen = append(seen, r)
		return r
	}
	do("POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL})
	r := do("POST", "/oauth-agent/login/start", nil)
	cb := e.authorize(r.json(t)["authorizationRequestUrl"].(string))
	r = do("POST", "/oauth-agent/login/end", map[string]string{"pageUrl": cb})
	csrf, _ := r.json(t)["csrf"].(string)
	e.collectCookieSecrets(b)
	do("POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL})
	do("GET", "/oauth-agent/userInfo", nil)
	do("HEAD", "/oauth-agent/userInfo", nil)
	do("GET", "/oauth-agent/claims", nil)
	do("POST", "/oauth-agent/refresh", nil, withCSRF(csrf))
	e.collectCookieSecrets(b)
	do("OPTIONS", "/oauth-agent/refresh", nil, withHeader("Access-Control-Request-Method", "POST"))
	do("GET", "/oauth-agent/login/start", nil)
	do("GET", "/oauth-agent/unknown", nil)
	do("POST", "/oauth-agent/login/start", `{`)
	do("POST", "/oauth-agent/refresh", nil)
	do("GET", "/oauth-agent/userInfo", nil, withoutOrigin())
	do("POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL + "?code=x&state=y"})
	do("POST", "/oauth-agent/logout", nil, withCSRF(csrf))
	do("POST", "/oauth-agent/logout", nil, withCSRF(csrf))
	do("POST", "/oauth-agent/refresh", nil, withCSRF(csrf))
	do("GET", "/oauth-agent/claims", nil)
	statuses := map[int]bool{}
	for i, r := range seen {
		statuses[r.StatusCode] = true
		what := fmt.Sprintf("#%d %s %s (%d)", i, r.Request.Method, r.Request.URL.Path, r.StatusCode)
		checkAgentHeaders(t, what, r)
		// CORS grant for the trusted origin on successes and errors alike.
		if r.Request.Header.Get("Origin") == spaOrigin {
			checkCORS(t, what, r)
		} else {
			checkNoCORS(t, what, r)
		}
	}
	for _, s := range []int{200, 204, 400, 401, 404, 405} {
		if !statuses[s] {
			t.Errorf("no agent response with status %d was checked", s)
		}
	}
	// Paths under the base path refused by the canonical-path check are
	// agent responses too.
	for _, target := range []string{"/oauth-agent/../oauth-agent/userInfo", "/oauth-agent//userInfo", "/oauth-agent/%2e%2e/x"} {
		r := e.rawRequest("GET", target, map[string]string{"Origin": spaOrigin})
		expectErr(t, target, r, 400, "invalid_request")
		checkAgentHeaders(t, target, r)
	}
	e.assertNoSecretsAnywhere()
}
