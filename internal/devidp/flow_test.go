package devidp_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

func TestCodeFlow(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	tests := []struct {
		name   string
		client auth
	}{
		{"client_secret_basic", basicClient},
		{"client_secret_post", postClient},
		{"private_key_jwt RS256", rsaJWTClient},
		{"private_key_jwt ES256", ecJWTClient},
		{"public client with PKCE", publicClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.client.withKey(t)
			tr, fl := f.tokens(t, c, nil)

			if tr.TokenType != "Bearer" || tr.ExpiresIn != 300 || tr.Scope != defaultUserScopes {
				t.Errorf("token_type=%q expires_in=%d scope=%q", tr.TokenType, tr.ExpiresIn, tr.Scope)
			}
			if tr.RefreshToken == "" {
				t.Error("no refresh token although offline_access was granted")
			}

			// ID token: signed with a JWKS key, user claims by scope, extra claims.
			_, id := f.verify(t, tr.IDToken)
			wantID := map[string]any{
				"iss": f.idp.Issuer(), "sub": alice.ID, "aud": []any{c.id}, "azp": c.id, "nonce": fl.nonce,
				"name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell",
				"preferred_username": "alice", "email": "alice@example.com", "email_verified": true,
				"roles": []any{"admin", "user"}, "amr": []any{"pwd"},
			}
			if diff := cmp.Diff(wantID, pick(id, wantID)); diff != "" {
				t.Errorf("ID token claims (-want +got):\n%s", diff)
			}
			for _, claim := range []string{"exp", "iat", "auth_time", "at_hash", "c_hash"} {
				if _, ok := id[claim]; !ok {
					t.Errorf("ID token has no %s", claim)
				}
			}

			// Access token: RFC 9068 JWT.
			h, at := f.verify(t, tr.AccessToken)
			if h.ExtraHeaders["typ"] != "at+jwt" {
				t.Errorf("access token typ = %v, want at+jwt", h.ExtraHeaders["typ"])
			}
			wantAT := map[string]any{
				"iss": f.idp.Issuer(), "sub": alice.ID, "client_id": c.id, "scope": defaultUserScopes,
				"aud": []any{c.id, "https://api.example.com"}, "roles": []any{"admin", "user"},
			}
			if diff := cmp.Diff(wantAT, pick(at, wantAT)); diff != "" {
				t.Errorf("access token claims (-want +got):\n%s", diff)
			}
			if exp, iat := at["exp"].(float64), at["iat"].(float64); exp-iat != 300 {
				t.Errorf("access token lifetime = %v s, want 300", exp-iat)
			}
			if jti, _ := at["jti"].(string); jti == "" {
				t.Error("access token has no jti")
			}

			// Userinfo.
			r := f.userinfo(t, tr.AccessToken)
			if r.status != http.StatusOK {
				t.Fatalf("userinfo: %d %s", r.status, r.body)
			}
			var info map[string]any
			r.json(t, &info)
			wantInfo := map[string]any{"sub": alice.ID, "email": "alice@example.com", "preferred_username": "alice", "roles": []any{"admin", "user"}}
			if diff := cmp.Diff(wantInfo, pick(info, wantInfo)); diff != "" {
				t.Errorf("userinfo (-want +got):\n%s", diff)
			}

			// Introspection by the resource server.
			in := f.introspect(t, apiClient, tr.AccessToken)
			wantIn := map[string]any{
				"active": true, "sub": alice.ID, "client_id": c.id, "scope": defaultUserScopes,
				"username": "alice", "token_type": "Bearer", "iss": f.idp.Issuer(), "roles": []any{"admin", "user"},
			}
			if diff := cmp.Diff(wantIn, pick(in, wantIn)); diff != "" {
				t.Errorf("introspection (-want +got):\n%s", diff)
			}
		})
	}
}

// pick returns the entries of got whose keys are in want, so tests compare
// only the claims they care about.
func pick(got, want map[string]any) map[string]any {
	out := map[string]any{}
	for k := range want {
		if v, ok := got[k]; ok {
			out[k] = v
		}
	}
	return out
}

func TestIntrospectionRules(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	tr, _ := f.tokens(t, basicClient, nil)

	tests := []struct {
		name   string
		caller auth
		token  string
		active bool
	}{
		{"resource server with CanIntrospect", apiClient, tr.AccessToken, true},
		{"the token's own client", basicClient, tr.AccessToken, true},
		{"another client without CanIntrospect", postClient, tr.AccessToken, false},
		{"refresh token, own client", basicClient, tr.RefreshToken, true},
		{"refresh token, another client", postClient, tr.RefreshToken, false},
		{"garbage", apiClient, "not-a-token", false},
		{"ID token is not an access token", apiClient, tr.IDToken, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := f.introspect(t, tt.caller, tt.token)
			if got["active"] != tt.active {
				t.Errorf("active = %v, want %v (%v)", got["active"], tt.active, got)
			}
			if !tt.active && len(got) != 1 {
				t.Errorf("inactive response carries more than active: %v", got)
			}
		})
	}

	t.Run("unauthenticated caller", func(t *testing.T) {
		r := f.post(t, devidp.PathIntrospect, auth{}, url.Values{"token": {tr.AccessToken}})
		if r.status != http.StatusBadRequest && r.status != http.StatusUnauthorized {
			t.Errorf("status = %d, want 400 or 401: %s", r.status, r.body)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		bad := apiClient
		bad.secret = "wrong"
		r := f.post(t, devidp.PathIntrospect, bad, url.Values{"token": {tr.AccessToken}})
		if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("status = %d, WWW-Authenticate = %q", r.status, r.header.Get("WWW-Authenticate"))
		}
	})
}

func TestRevocation(t *testing.T) {
	t.Parallel()
	f := start(t, nil)

	t.Run("access token", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, nil)
		r := f.post(t, devidp.PathRevoke, basicClient, url.Values{"token": {tr.AccessToken}, "token_type_hint": {"access_token"}})
		if r.status != http.StatusOK {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		if in := f.introspect(t, apiClient, tr.AccessToken); in["active"] != false {
			t.Errorf("revoked access token is active: %v", in)
		}
		r = f.userinfo(t, tr.AccessToken)
		if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("userinfo with revoked token: %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
		}
		// Revoking an access token leaves the grant: the refresh token works.
		if _, status := f.refresh(t, basicClient, tr.RefreshToken); status != http.StatusOK {
			t.Errorf("refresh after access token revocation: %d", status)
		}
	})

	t.Run("refresh token ends the grant", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, nil)
		r := f.post(t, devidp.PathRevoke, basicClient, url.Values{"token": {tr.RefreshToken}})
		if r.status != http.StatusOK {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		if got, status := f.refresh(t, basicClient, tr.RefreshToken); status != http.StatusBadRequest || got.Error != "invalid_grant" {
			t.Errorf("refresh with revoked token: %d %s", status, got.Error)
		}
		if in := f.introspect(t, apiClient, tr.AccessToken); in["active"] != false {
			t.Errorf("access token of a revoked grant is active: %v", in)
		}
	})

	t.Run("unknown token is fine", func(t *testing.T) {
		r := f.post(t, devidp.PathRevoke, basicClient, url.Values{"token": {"unknown"}})
		if r.status != http.StatusOK {
			t.Errorf("status = %d, want 200 (RFC 7009 2.2)", r.status)
		}
	})

	t.Run("token of another client is refused", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, nil)
		r := f.post(t, devidp.PathRevoke, postClient, url.Values{"token": {tr.RefreshToken}})
		if r.status == http.StatusOK {
			t.Error("another client revoked the refresh token")
		}
		if _, status := f.refresh(t, basicClient, tr.RefreshToken); status != http.StatusOK {
			t.Errorf("refresh token stopped working after a foreign revocation attempt: %d", status)
		}
	})
}

func TestOpaqueAccessTokens(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	tr, _ := f.tokens(t, opaqueClient, nil)
	if n := strings.Count(tr.AccessToken, "."); n == 2 {
		t.Fatalf("opaque access token looks like a JWS: %q", tr.AccessToken)
	}
	if _, id := f.verify(t, tr.IDToken); id["sub"] != alice.ID {
		t.Errorf("ID token sub = %v", id["sub"])
	}
	r := f.userinfo(t, tr.AccessToken)
	if r.status != http.StatusOK {
		t.Fatalf("userinfo: %d %s", r.status, r.body)
	}
	in := f.introspect(t, apiClient, tr.AccessToken)
	want := map[string]any{"active": true, "sub": alice.ID, "client_id": opaqueClient.id, "scope": defaultUserScopes}
	if diff := cmp.Diff(want, pick(in, want)); diff != "" {
		t.Errorf("introspection (-want +got):\n%s", diff)
	}
	// Refreshed opaque tokens are opaque too.
	rt, status := f.refresh(t, opaqueClient, tr.RefreshToken)
	if status != http.StatusOK || strings.Count(rt.AccessToken, ".") == 2 {
		t.Errorf("refresh: %d, access token %q", status, rt.AccessToken)
	}
	f.post(t, devidp.PathRevoke, opaqueClient, url.Values{"token": {tr.AccessToken}})
	if in := f.introspect(t, apiClient, tr.AccessToken); in["active"] != false {
		t.Errorf("revoked opaque token is active: %v", in)
	}
}

func TestClientCredentials(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	tests := []struct {
		name      string
		client    auth
		scope     string
		wantCode  int
		wantError string
		wantScope string
	}{
		{"all client scopes by default", serviceClient, "", http.StatusOK, "", "read write"},
		{"requested subset", serviceClient, "read", http.StatusOK, "", "read"},
		{"scope not allowed", serviceClient, "admin", http.StatusBadRequest, "invalid_scope", ""},
		{"client without the grant", basicClient, "read", http.StatusBadRequest, "unauthorized_client", ""},
		{"wrong secret", auth{id: serviceClient.id, secret: "x", method: devidp.AuthMethodPost}, "", http.StatusUnauthorized, "invalid_client", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}}
			if tt.scope != "" {
				form.Set("scope", tt.scope)
			}
			tr, status := f.token(t, tt.client, form)
			if status != tt.wantCode || tr.Error != tt.wantError {
				t.Fatalf("got %d %q (%s), want %d %q", status, tr.Error, tr.Description, tt.wantCode, tt.wantError)
			}
			if tt.wantCode != http.StatusOK {
				return
			}
			if tr.IDToken != "" || tr.RefreshToken != "" || tr.Scope != tt.wantScope {
				t.Errorf("id_token=%t refresh_token=%t scope=%q", tr.IDToken != "", tr.RefreshToken != "", tr.Scope)
			}
			h, claims := f.verify(t, tr.AccessToken)
			want := map[string]any{"sub": serviceClient.id, "client_id": serviceClient.id, "scope": tt.wantScope, "aud": []any{serviceClient.id}}
			if diff := cmp.Diff(want, pick(claims, want)); diff != "" || h.ExtraHeaders["typ"] != "at+jwt" {
				t.Errorf("typ %v, claims (-want +got):\n%s", h.ExtraHeaders["typ"], diff)
			}
			if in := f.introspect(t, apiClient, tr.AccessToken); in["active"] != true || in["username"] != nil {
				t.Errorf("introspection: %v", in)
			}
			if r := f.userinfo(t, tr.AccessToken); r.status != http.StatusUnauthorized {
				t.Errorf("userinfo with a client token: %d", r.status)
			}
		})
	}
}

func TestUserinfo(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	t.Run("scopes decide the claims", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, url.Values{"scope": {"openid"}})
		r := f.userinfo(t, tr.AccessToken)
		var info map[string]any
		r.json(t, &info)
		want := map[string]any{"sub": alice.ID, "roles": []any{"admin", "user"}}
		if diff := cmp.Diff(want, info); diff != "" {
			t.Errorf("userinfo with scope openid (-want +got):\n%s", diff)
		}
	})
	t.Run("without openid", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, url.Values{"scope": {"read"}})
		if tr.IDToken != "" {
			t.Error("ID token issued without the openid scope")
		}
		if r := f.userinfo(t, tr.AccessToken); r.status != http.StatusForbidden {
			t.Errorf("status = %d, want 403", r.status)
		}
	})
	t.Run("no token", func(t *testing.T) {
		if r := f.get(t, f.idp.Issuer()+devidp.PathUserinfo, nil); r.status != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", r.status)
		}
	})
	t.Run("forged JWT", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, nil)
		parts := strings.Split(tr.AccessToken, ".")
		forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
		if r := f.userinfo(t, forged); r.status != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", r.status)
		}
	})
}
