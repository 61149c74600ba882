package server_test

import (
	"net/http"
	"testing"
	"time"
)

// TestEntries pins how a route's entries combine (DESIGN component 4,
// issue #4): a request must satisfy one of the route's entries; a request
// carrying two different credentials is refused; anonymous admits only
// requests without a credential, and an invalid credential never falls back
// to it; a cookie route with token_format checks the token inside the sealed
// cookie too.
func TestEntries(t *testing.T) {
	t.Parallel()
	api := newUpstream(t)
	e := newGateway(t, gateway{routes: []string{
		gwRoute("public", "/public", api.URL, "[anonymous]"),
		gwRoute("maybe", "/maybe", api.URL, "[bearer, anonymous]", "token_format: jwt", "audience: "+ordersAudience),
		gwRoute("both", "/both", api.URL, "[cookie, bearer]", "token_format: jwt", "audience: "+ordersAudience),
		gwRoute("web", "/web", api.URL, "[cookie]", "token_format: jwt", "audience: "+ordersAudience),
	}})
	e.api = api
	browser := e.browser
	csrf := e.login(browser)
	cookieAT := e.open(e.cookie(browser, "/", "example-at"))
	job := e.clientToken(jobClientID, jobSecret, "read")
	cookies := e.cookieHeader(browser, "/")
	// A sealed cookie Gatehouse could have written, holding a token the
	// provider never issued.
	forged := signJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": e.providerKeys()[0].kid},
		accessClaims(e.idp.Issuer(), ordersAudience, e.clock.Now()), newAttacker(t).key)
	forgedCookie := "example-at=" + e.seal(forged) + "; example-csrf=" + e.cookie(browser, "/", "example-csrf")

	type want struct {
		status int
		code   string
		// upstreamAuth is the Authorization the upstream must receive ("" none).
		upstreamAuth string
		// challenge: the 401 must carry a Bearer challenge with this error
		// ("-" for a challenge without error, "" for no check).
		challenge string
	}
	tests := []struct {
		name   string
		method string
		path   string
		opts   []reqOpt
		want   want
	}{
		{"anonymous route without credential", "GET", "/public/x", []reqOpt{withoutOrigin()}, want{status: 200}},
		{"anonymous route: a client's Authorization is not forwarded", "GET", "/public/x",
			[]reqOpt{withoutOrigin(), withHeader("Authorization", "Bearer "+job)}, want{status: 200}},
		{"bearer or anonymous, no credential", "GET", "/maybe/x", []reqOpt{withoutOrigin()}, want{status: 200}},
		{"bearer or anonymous, browser cookies only", "GET", "/maybe/x", []reqOpt{withCookies(cookies)}, want{status: 200}},
		{"bearer or anonymous, valid token", "GET", "/maybe/x",
			[]reqOpt{withoutOrigin(), withHeader("Authorization", "Bearer "+job)}, want{status: 200, upstreamAuth: "Bearer " + job}},
		{"bearer or anonymous, invalid token is not anonymous", "GET", "/maybe/x",
			[]reqOpt{withoutOrigin(), withHeader("Authorization", "Bearer "+forged)}, want{status: 401, code: "unauthorized", challenge: "invalid_token"}},
		{"bearer or anonymous, another scheme is not anonymous", "GET", "/maybe/x",
			[]reqOpt{withoutOrigin(), withHeader("Authorization", "Basic YWxpY2U6V29uZGVybGFuZDE=")}, want{status: 401, code: "unauthorized", challenge: "invalid_request"}},
		{"cookie or bearer, cookie", "POST", "/both/x", []reqOpt{withCookies(cookies), withCSRF(csrf)}, want{status: 200, upstreamAuth: "Bearer " + cookieAT}},
		{"cookie or bearer, bearer from an app (no Origin)", "POST", "/both/x",
			[]reqOpt{withoutOrigin(), withHeader("Authorization", "Bearer "+job)}, want{status: 200, upstreamAuth: "Bearer " + job}},
		{"cookie or bearer, both credentials", "GET", "/both/x",
			[]reqOpt{withCookies(cookies), withHeader("Authorization", "Bearer "+job)}, want{status: 401, code: "unauthorized", challenge: "invalid_request"}},
		{"cookie or bearer, both credentials, the same token", "GET", "/both/x",
			[]reqOpt{withCookies(cookies), withHeader("Authorization", "Bearer "+cookieAT)}, want{status: 401, code: "unauthorized", challenge: "invalid_request"}},
		{"cookie or bearer, no credential", "GET", "/both/x", []reqOpt{withoutOrigin()}, want{status: 401, code: "unauthorized", challenge: "-"}},
		{"cookie or bearer, sealed cookie with a forged token", "GET", "/both/x", []reqOpt{withCookies(forgedCookie)}, want{status: 401, code: "unauthorized", challenge: "-"}},
		{"cookie or bearer, cookie from an untrusted origin", "GET", "/both/x",
			[]reqOpt{withCookies(cookies), withOrigin("https://evil.example")}, want{status: 401, code: "unauthorized", challenge: "-"}},
		{"cookie route checks the token in the cookie", "GET", "/web/x", []reqOpt{withCookies(forgedCookie)}, want{status: 401, code: "unauthorized"}},
		{"cookie route with a good cookie", "GET", "/web/x", []reqOpt{withCookies(cookies)}, want{status: 200, upstreamAuth: "Bearer " + cookieAT}},
		{"cookie route ignores a bearer token it does not accept", "GET", "/web/x",
			[]reqOpt{withCookies(cookies), withHeader("Authorization", "Bearer "+job)}, want{status: 200, upstreamAuth: "Bearer " + cookieAT}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			before := e.api.count()
			r := e.do(e.raw(), tc.method, tc.path, nil, tc.opts...)
			if tc.want.status != 200 {
				expectErr(t, tc.name, r, tc.want.status, tc.want.code)
				if e.api.count() != before {
					t.Error("the upstream was called")
				}
				h := r.Header.Get("WWW-Authenticate")
				ch, ok := bearerChallenge(h)
				switch {
				case tc.want.challenge == "":
				case !ok || ch["realm"] != "gatehouse":
					t.Errorf("WWW-Authenticate %q, want a Bearer challenge (the route accepts bearer tokens)", h)
				case tc.want.challenge == "-" && ch["error"] != "":
					t.Errorf("WWW-Authenticate %q: no error code expected", h)
				case tc.want.challenge != "-" && ch["error"] != tc.want.challenge:
					t.Errorf("WWW-Authenticate %q, want error=%q", h, tc.want.challenge)
				}
				return
			}
			if r.StatusCode != 200 {
				t.Fatalf("status %d, want 200; body %s", r.StatusCode, r.body)
			}
			up := e.api.last(t)
			if got := up.Header.Get("Authorization"); got != tc.want.upstreamAuth {
				t.Errorf("upstream Authorization %q, want %q", got, tc.want.upstreamAuth)
			}
			if c := up.Header.Get("Cookie"); c != "" {
				t.Errorf("upstream received cookies %q", c)
			}
		})
	}
	e.assertNoSecretsAnywhere()
}

// TestCookieRouteExpiredJWT: on a cookie route with token_format jwt,
// Gatehouse itself answers 401 (with the SPA's CORS grant, so the SPA can
// refresh) once the access token in the cookie has expired; the upstream is
// not called.
func TestCookieRouteExpiredJWT(t *testing.T) {
	t.Parallel()
	api := newUpstream(t)
	e := newGateway(t, gateway{routes: []string{
		gwRoute("web", "/web", api.URL, "[cookie]", "token_format: jwt", "audience: "+ordersAudience),
	}})
	e.api = api
	e.login(e.browser)
	if r := e.do(e.browser, "GET", "/web/x", nil); r.StatusCode != 200 {
		t.Fatalf("fresh session: %d %s", r.StatusCode, r.body)
	}
	at := e.open(e.cookie(e.browser, "/", "example-at"))
	exp := time.Unix(int64(jwtClaims(t, at)["exp"].(float64)), 0)
	e.clock.set(time.Until(exp.Add(31 * time.Second)))
	r := e.do(e.browser, "GET", "/web/x", nil)
	expectErr(t, "expired access token in the cookie", r, http.StatusUnauthorized, "unauthorized")
	checkCORS(t, "expired access token in the cookie", r)
	if api.count() != 1 {
		t.Errorf("the upstream received %d requests, want 1", api.count())
	}
	e.assertNoSecretsAnywhere()
}
