package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestRequire pins route authorization (issue #4): scopes (all of, any of),
// roles from a configurable claim, and claims equal to a value. A caller who
// lacks them gets 403 forbidden with an RFC 6750 insufficient_scope
// challenge listing the route's scopes, and the upstream is not called. The
// cookie and bearer entries give the same Principal, so the same user is
// judged the same way through either.
func TestRequire(t *testing.T) {
	t.Parallel()
	api := newUpstream(t)
	route := func(name, require string) string {
		return gwRoute(name, "/"+name, api.URL, "[cookie, bearer]", "token_format: jwt", "audience: "+ordersAudience, "require: "+require)
	}
	g := gateway{routes: []string{
		route("all-scopes", "{scopes: [read, write]}"),
		route("any-scope", "{any_scopes: [admin, write]}"),
		route("roles", "{roles: [orders:read, orders:write]}"),
		route("nested-roles", "{any_roles: [staff, customer], roles_claim: realm_access.roles}"),
		route("tenant", "{claims: {tenant: acme}}"),
		route("other-tenant", "{claims: {tenant: globex}}"),
		route("mixed", "{scopes: [read], roles: [orders:admin]}"),
	}}
	edit := g.edit(t)
	e := newEnv(t, envOptions{idp: withGatewayClients, yaml: func(y string) string {
		// The SPA asks for read, as the mobile app below.
		return strings.Replace(edit(y), `scope: "openid profile offline_access"`, `scope: "openid profile offline_access read"`, 1)
	}})
	e.api = api
	e.login(e.browser)
	cookies := e.cookieHeader(e.browser, "/")
	tokens := map[string]string{
		"job read":         e.clientToken(jobClientID, jobSecret, "read"),
		"job read write":   e.clientToken(jobClientID, jobSecret, "read", "write"),
		"job admin":        e.clientToken(jobClientID, jobSecret, "admin"),
		"alice read":       e.mobileLogin(mobileClientID, "read").access,
		"alice read write": e.mobileLogin(mobileClientID, "read", "write").access,
	}

	tests := []struct {
		route, caller string
		ok            bool
		scopeParam    string // the scope= of the challenge when refused
	}{
		{"all-scopes", "job read write", true, ""},
		{"all-scopes", "job read", false, "read write"},
		{"all-scopes", "alice read", false, "read write"},
		{"all-scopes", "cookie alice read", false, "read write"},
		{"all-scopes", "alice read write", true, ""},
		{"any-scope", "job admin", true, ""},
		{"any-scope", "job read write", true, ""},
		{"any-scope", "job read", false, "admin write"},
		{"roles", "alice read", true, ""},
		{"roles", "cookie alice read", true, ""},
		{"roles", "job read write", false, ""},
		{"nested-roles", "alice read", true, ""},
		{"nested-roles", "cookie alice read", true, ""},
		{"nested-roles", "job admin", false, ""},
		{"tenant", "alice read", true, ""},
		{"tenant", "cookie alice read", true, ""},
		{"tenant", "job admin", false, ""},
		{"other-tenant", "alice read", false, ""},
		{"other-tenant", "cookie alice read", false, ""},
		{"mixed", "alice read write", false, "read"},
	}
	for _, tc := range tests {
		t.Run(tc.route+" "+tc.caller, func(t *testing.T) {
			e := e.sub(t)
			var opts []reqOpt
			if tc.caller == "cookie alice read" {
				opts = []reqOpt{withCookies(cookies)}
			} else {
				opts = []reqOpt{withoutOrigin(), withHeader("Authorization", "Bearer "+tokens[tc.caller])}
			}
			// Twice: the second request finds the token in the verified-token
			// cache, and the requirements are checked again.
			for i := range 2 {
				before := e.api.count()
				r := e.do(e.raw(), "GET", "/"+tc.route+"/x", nil, opts...)
				if tc.ok {
					if r.StatusCode != 200 {
						t.Fatalf("request %d: status %d, want 200; body %s", i, r.StatusCode, r.body)
					}
					continue
				}
				if !expectErr(t, "refused caller", r, http.StatusForbidden, "forbidden") {
					return
				}
				if e.api.count() != before {
					t.Error("the upstream was called for a caller the route refuses")
				}
				h := r.Header.Get("WWW-Authenticate")
				ch, ok := bearerChallenge(h)
				if !ok || ch["realm"] != "gatehouse" || ch["error"] != "insufficient_scope" || ch["scope"] != tc.scopeParam {
					t.Errorf("WWW-Authenticate %q, want Bearer realm=\"gatehouse\", error=\"insufficient_scope\" and scope=%q", h, tc.scopeParam)
				}
			}
		})
	}
	e.assertNoSecretsAnywhere()
}
