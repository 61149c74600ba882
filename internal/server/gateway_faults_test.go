package server_test

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp/devidptest"
)

// TestGatewayProviderDownAtStart: with the authorization server unreachable
// at start, routes that check tokens answer 502 authorization_server_error
// (the token could not be checked; it is not called invalid), routes that
// need no token keep working, and once the provider appears the same tokens
// are checked without a restart.
func TestGatewayProviderDownAtStart(t *testing.T) {
	t.Parallel()
	issuer := "http://" + closedPort(t)
	api := newUpstream(t)
	g := gateway{
		introspection: "json",
		keyFile:       filepath.Join(t.TempDir(), "internal-jwt.pem"),
		routes: []string{
			gwRoute("jwt", "/jwt", api.URL, "[bearer]", "token_format: jwt", "audience: "+ordersAudience),
			gwRoute("minted", "/minted", api.URL, "[bearer]", "token_format: jwt", "audience: "+ordersAudience, "forward: internal_jwt"),
			gwRoute("opaque", "/opaque", api.URL, "[bearer]", "token_format: opaque", "forward: phantom", "audience: "+ordersAudience),
			gwRoute("public", "/public", api.URL, "[anonymous]"),
		},
	}
	e := newEnv(t, envOptions{issuer: issuer, yaml: g.edit(t)})
	e.api = api
	// Tokens of the right shape; nobody can check them yet.
	someJWT := signJWS(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": "k1"},
		accessClaims(issuer, ordersAudience, time.Now()), newAttacker(t).key)
	for _, c := range []struct{ path, token string }{{"/jwt/1", someJWT}, {"/minted/1", someJWT}, {"/opaque/1", "opaque-token-0123456789"}} {
		r := e.bearer("GET", c.path, c.token)
		expectErr(t, c.path+" while the provider is down", r, http.StatusBadGateway, "authorization_server_error")
		if ch, _ := bearerChallenge(r.Header.Get("WWW-Authenticate")); ch["error"] == "invalid_token" {
			t.Errorf("%s: the client is told its token is invalid", c.path)
		}
	}
	if r := e.do(e.raw(), "GET", "/public/1", nil, withoutOrigin()); r.StatusCode != 200 {
		t.Errorf("anonymous route while the provider is down: %d %s", r.StatusCode, r.body)
	}
	if api.count() != 1 {
		t.Fatalf("the upstream received %d requests, want only the anonymous one", api.count())
	}

	cfg := e.idpConfig()
	cfg.Issuer = issuer
	e.idp = devidptest.Start(t, cfg)
	deadline := time.Now().Add(15 * time.Second)
	for !e.srv.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not discover the provider that appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	jwt := e.clientToken(jobClientID, jobSecret, "read")
	opaque := e.clientToken(opaqueJobID, opaqueJobSecret, "read")
	for _, c := range []struct{ path, token string }{{"/jwt/1", jwt}, {"/minted/1", jwt}, {"/opaque/1", opaque}} {
		if r := e.bearer("GET", c.path, c.token); r.StatusCode != 200 {
			t.Errorf("%s once the provider is up: %d %s", c.path, r.StatusCode, r.body)
		}
	}
	expectInvalidToken(t, "the unverifiable token once the provider is up", e.bearer("GET", "/jwt/1", someJWT))
	e.assertNoSecretsAnywhere()
}
