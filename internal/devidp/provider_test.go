package devidp_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

func TestDiscovery(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	iss := f.idp.Issuer()
	var doc map[string]any
	r := f.get(t, iss+devidp.PathDiscovery, nil)
	r.json(t, &doc)

	want := map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                iss + devidp.PathAuthorize,
		"token_endpoint":                        iss + devidp.PathToken,
		"introspection_endpoint":                iss + devidp.PathIntrospect,
		"userinfo_endpoint":                     iss + devidp.PathUserinfo,
		"revocation_endpoint":                   iss + devidp.PathRevoke,
		"end_session_endpoint":                  iss + devidp.PathEndSession,
		"jwks_uri":                              iss + devidp.PathKeys,
		"response_types_supported":              []any{"code"},
		"response_modes_supported":              []any{"query", "fragment", "form_post"},
		"grant_types_supported":                 []any{"authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"},
		"code_challenge_methods_supported":      []any{"S256"},
		"id_token_signing_alg_values_supported": []any{"RS256"},
		"subject_types_supported":               []any{"public"},
		"scopes_supported":                      []any{"openid", "profile", "email", "offline_access", "read", "write"},
		"token_endpoint_auth_methods_supported": []any{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"request_uri_parameter_supported":       false,
	}
	if diff := cmp.Diff(want, pick(doc, want)); diff != "" {
		t.Errorf("discovery (-want +got):\n%s", diff)
	}
	for _, absent := range []string{
		"device_authorization_endpoint", "check_session_iframe", "request_parameter_supported",
		"request_object_signing_alg_values_supported", "authorization_response_iss_parameter_supported",
	} {
		if v, ok := doc[absent]; ok {
			t.Errorf("discovery advertises %s = %v", absent, v)
		}
	}
	claims, _ := doc["claims_supported"].([]any)
	for _, c := range []string{"sub", "email", "preferred_username", "roles"} {
		if !slices.Contains(claims, any(c)) {
			t.Errorf("claims_supported lacks %q: %v", c, claims)
		}
	}
}

func TestRotateSigningKey(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	before := f.jwks(t)
	if len(before.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1", len(before.Keys))
	}
	oldKid := before.Keys[0].KeyID
	old, _ := f.tokens(t, basicClient, nil)

	if err := f.idp.RotateSigningKey(); err != nil {
		t.Fatal(err)
	}
	after := f.jwks(t)
	kids := []string{after.Keys[0].KeyID, after.Keys[1].KeyID}
	if len(after.Keys) != 2 || !slices.Contains(kids, oldKid) {
		t.Fatalf("JWKS after rotation: %v, want the new and the old key %s", kids, oldKid)
	}
	for _, k := range after.Keys {
		if k.Use != "sig" || k.Algorithm != "RS256" || !k.IsPublic() {
			t.Errorf("JWKS key %s: use %q alg %q public %t", k.KeyID, k.Use, k.Algorithm, k.IsPublic())
		}
	}

	fresh, _ := f.tokens(t, basicClient, nil)
	for name, tok := range map[string]string{"ID token": fresh.IDToken, "access token": fresh.AccessToken} {
		if h, _ := f.verify(t, tok); h.KeyID == oldKid {
			t.Errorf("new %s still signed with the old key", name)
		}
	}
	// Tokens signed before the rotation still verify and still work.
	f.verify(t, old.IDToken)
	if r := f.userinfo(t, old.AccessToken); r.status != http.StatusOK {
		t.Errorf("userinfo with a token of the previous key: %d", r.status)
	}

	// A second rotation drops the oldest key.
	if err := f.idp.RotateSigningKey(); err != nil {
		t.Fatal(err)
	}
	for _, k := range f.jwks(t).Keys {
		if k.KeyID == oldKid {
			t.Error("key from two rotations ago is still published")
		}
	}
}

func TestRevokeUserSessions(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	a1, _ := f.tokens(t, basicClient, nil)
	a2, _ := f.tokens(t, opaqueClient, nil)
	pendingCode, pendingFlow := f.code(t, postClient.id, nil)
	fl := f.newFlow(postClient.id, nil)
	q := f.login(t, fl, bob.Username, bobPassword)
	b := f.exchange(t, postClient, q.Get("code"), fl)

	f.idp.RevokeUserSessions(alice.ID)

	for name, c := range map[string]struct {
		client auth
		tr     tokenResponse
	}{"jwt client": {basicClient, a1}, "opaque client": {opaqueClient, a2}} {
		tr := c.tr
		if got, status := f.refresh(t, c.client, tr.RefreshToken); status != http.StatusBadRequest || got.Error != "invalid_grant" {
			t.Errorf("%s: refresh after revocation: %d %q", name, status, got.Error)
		}
		if in := f.introspect(t, apiClient, tr.AccessToken); in["active"] != false {
			t.Errorf("%s: access token active after revocation", name)
		}
		if r := f.userinfo(t, tr.AccessToken); r.status != http.StatusUnauthorized {
			t.Errorf("%s: userinfo after revocation: %d", name, r.status)
		}
	}
	got, status := f.token(t, postClient, url.Values{
		"grant_type": {"authorization_code"}, "code": {pendingCode},
		"redirect_uri": {redirectURI}, "code_verifier": {pendingFlow.verifier},
	})
	if status != http.StatusBadRequest || got.Error != "invalid_grant" {
		t.Errorf("pending code after revocation: %d %q", status, got.Error)
	}

	// Bob is untouched, and alice can sign in again.
	if _, status := f.refresh(t, postClient, b.RefreshToken); status != http.StatusOK {
		t.Errorf("bob's refresh: %d", status)
	}
	f.tokens(t, basicClient, nil)
}

func TestEndSession(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	endSession := func(q url.Values) response {
		return f.get(t, f.idp.Issuer()+devidp.PathEndSession+"?"+q.Encode(), nil)
	}

	t.Run("registered post_logout_redirect_uri", func(t *testing.T) {
		r := endSession(url.Values{"client_id": {basicClient.id}, "post_logout_redirect_uri": {postLogoutURI}, "state": {"s1"}})
		if r.status != http.StatusFound || r.header.Get("Location") != postLogoutURI+"?state=s1" {
			t.Errorf("%d %q", r.status, r.header.Get("Location"))
		}
	})

	// Regression: end session must not redirect to an unregistered URI (open
	// redirector).
	t.Run("unregistered post_logout_redirect_uri", func(t *testing.T) {
		for _, q := range []url.Values{
			{"client_id": {basicClient.id}, "post_logout_redirect_uri": {"https://attacker.example/"}},
			{"client_id": {basicClient.id}, "post_logout_redirect_uri": {redirectURI}},
			{"client_id": {serviceClient.id}, "post_logout_redirect_uri": {postLogoutURI}},
		} {
			r := endSession(q)
			if loc := r.header.Get("Location"); r.status != http.StatusBadRequest || loc != "" {
				t.Errorf("%v: %d %q, want 400 without redirect", q, r.status, loc)
			}
		}
	})

	t.Run("without client_id the provider's page is shown", func(t *testing.T) {
		r := endSession(url.Values{"post_logout_redirect_uri": {"https://attacker.example/"}})
		loc := r.header.Get("Location")
		if r.status != http.StatusFound || loc != f.idp.Issuer()+devidp.PathLoggedOut {
			t.Fatalf("%d %q, want a redirect to the provider's signed-out page", r.status, loc)
		}
		page := f.get(t, loc, nil)
		if page.status != http.StatusOK || !strings.Contains(string(page.body), devidp.Banner) {
			t.Errorf("signed-out page: %d", page.status)
		}
	})

	t.Run("id_token_hint ends the user's grants at the client", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, nil)
		other, _ := f.tokens(t, postClient, nil)
		r := endSession(url.Values{"id_token_hint": {tr.IDToken}, "post_logout_redirect_uri": {postLogoutURI}})
		if r.status != http.StatusFound || r.header.Get("Location") != postLogoutURI {
			t.Fatalf("%d %q", r.status, r.header.Get("Location"))
		}
		if _, status := f.refresh(t, basicClient, tr.RefreshToken); status != http.StatusBadRequest {
			t.Errorf("refresh after end session: %d, want 400", status)
		}
		if _, status := f.refresh(t, postClient, other.RefreshToken); status != http.StatusOK {
			t.Errorf("grant at another client after end session: %d, want 200", status)
		}
	})

	t.Run("id_token_hint of another client", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, nil)
		r := endSession(url.Values{"id_token_hint": {tr.IDToken}, "client_id": {postClient.id}, "post_logout_redirect_uri": {postLogoutURI}})
		if r.status != http.StatusBadRequest {
			t.Errorf("%d %q", r.status, r.header.Get("Location"))
		}
	})
}

func TestStats(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	if diff := cmp.Diff(devidp.Stats{}, f.idp.Stats()); diff != "" {
		t.Fatalf("fresh provider (-want +got):\n%s", diff)
	}
	iss := f.idp.Issuer()
	f.get(t, iss+devidp.PathDiscovery, nil)
	f.jwks(t)
	tr, _ := f.tokens(t, basicClient, nil)                                      // authorize, login, code
	f.refresh(t, basicClient, tr.RefreshToken)                                  // refresh
	f.token(t, serviceClient, url.Values{"grant_type": {"client_credentials"}}) // client credentials
	f.token(t, basicClient, url.Values{"grant_type": {"password"}})             // other
	f.token(t, basicClient, url.Values{})                                       // other (missing)
	f.introspect(t, apiClient, tr.AccessToken)
	f.userinfo(t, tr.AccessToken)
	f.post(t, devidp.PathRevoke, basicClient, url.Values{"token": {tr.RefreshToken}})
	f.get(t, iss+devidp.PathEndSession+"?client_id="+basicClient.id, nil)
	_, _ = devidpLoginFails(t, f)

	want := devidp.Stats{
		Authorize: 2, TokenAuthorizationCode: 1, TokenRefresh: 1, TokenClientCredentials: 1, TokenOther: 2,
		Introspection: 1, Revocation: 1, Userinfo: 1, JWKS: 1, Discovery: 1, EndSession: 1,
		Login: 1, LoginFailed: 1,
	}
	if diff := cmp.Diff(want, f.idp.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func devidpLoginFails(t *testing.T, f *fixture) (string, error) {
	t.Helper()
	return devidp.Login(t.Context(), nil, f.newFlow(basicClient.id, nil).authURL, "alice", "wrong")
}

// TestLogsCarryNoCredentials pins that the provider's own log never holds a
// password, code or token, including a password typed into the username
// field.
func TestLogsCarryNoCredentials(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	f := start(t, func(c *devidp.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.RotateRefreshTokens, c.RefreshReuseDetection = true, true
	})
	if _, err := devidp.Login(t.Context(), nil, f.newFlow(basicClient.id, nil).authURL, alicePassword, alicePassword); err == nil {
		t.Fatal("login with the password as username succeeded")
	}
	code, fl := f.code(t, basicClient.id, nil)
	tr := f.exchange(t, basicClient, code, fl)
	second, _ := f.refresh(t, basicClient, tr.RefreshToken)
	f.refresh(t, basicClient, tr.RefreshToken) // reuse: revokes the grant
	f.introspect(t, apiClient, second.AccessToken)
	f.post(t, devidp.PathRevoke, basicClient, url.Values{"token": {second.RefreshToken}})
	f.idp.RevokeUserSessions(alice.ID)
	if err := f.idp.RotateSigningKey(); err != nil {
		t.Fatal(err)
	}

	logs := buf.String()
	if !strings.Contains(logs, "tokens issued") {
		t.Fatalf("expected log lines missing:\n%s", logs)
	}
	secrets := map[string]string{
		"password": alicePassword, "code": code, "access token": tr.AccessToken, "ID token": tr.IDToken,
		"refresh token": tr.RefreshToken, "rotated refresh token": second.RefreshToken,
		"client secret": basicClient.secret, "state": fl.state, "code_verifier": fl.verifier,
	}
	for name, v := range secrets {
		if v != "" && strings.Contains(logs, v) {
			t.Errorf("log contains the %s", name)
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
