package jwtverify

import (
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

// introspectionClaims are the claims of a valid RFC 9701 response at now,
// addressed to testAudience (the introspecting client).
func introspectionClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer,
		"aud": testAudience,
		"iat": now.Unix(),
		"token_introspection": map[string]any{
			"active":    true,
			"iss":       testIssuer,
			"sub":       "user-1",
			"client_id": "spa",
			"scope":     "read",
			"exp":       now.Add(5 * time.Minute).Unix(),
		},
	}
}

// introspectionResponse is an RS256 token-introspection+jwt signed with
// rsa1, valid at now.
func introspectionResponse(tb testing.TB, now time.Time, edit func(*tokenSpec)) string {
	tb.Helper()
	s := tokenSpec{key: testKeys(tb).rsa1, alg: jose.RS256, kid: "rsa1", typ: "token-introspection+jwt", claims: introspectionClaims(now)}
	if edit != nil {
		edit(&s)
	}
	return sign(tb, s)
}

func TestVerifyIntrospectionResponse(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	now := f.clock.Now()
	v := f.verifier(Config{Purpose: IntrospectionResponse})

	set := func(name string, val any) func(*tokenSpec) {
		return func(s *tokenSpec) { s.claims[name] = val }
	}
	del := func(name string) func(*tokenSpec) {
		return func(s *tokenSpec) { delete(s.claims, name) }
	}
	typ := func(typ string) func(*tokenSpec) {
		return func(s *tokenSpec) { s.typ = typ }
	}
	tests := []struct {
		name string
		edit func(*tokenSpec)
		want error // nil: valid
	}{
		{"valid", nil, nil},
		{"typ with application/ prefix", typ("application/token-introspection+jwt"), nil},
		{"typ is case-insensitive", typ("Token-Introspection+JWT"), nil},
		{"exp is optional", nil, nil},
		{"exp in the future", set("exp", now.Add(time.Minute).Unix()), nil},
		{"inactive result", set("token_introspection", map[string]any{"active": false}), nil},
		{"audience array containing the client", set("aud", []string{"other", testAudience}), nil},

		// typ is required (RFC 9701 section 5): other JWTs signed by the
		// same keys must not pass as introspection responses.
		{"typ missing", typ(""), ErrType},
		{"typ JWT", typ("JWT"), ErrType},
		// An access token from the same issuer is not an introspection
		// response, even when it carries a token_introspection claim.
		{"typ at+jwt", typ("at+jwt"), ErrType},
		{"typ token-introspection+jwt with a suffix", typ("token-introspection+jwt2"), ErrType},
		{"typ is a number", func(s *tokenSpec) { s.typ = ""; s.headers = map[jose.HeaderKey]any{"typ": 1} }, ErrType},

		{"issuer wrong", set("iss", "https://evil.example.com"), ErrIssuer},
		{"issuer missing", del("iss"), ErrIssuer},
		// A response meant for another client of the AS is refused.
		{"audience is another client", set("aud", "other-client"), ErrAudience},
		{"audience missing", del("aud"), ErrAudience},

		{"iat missing", del("iat"), ErrClaims},
		{"iat in the future", set("iat", now.Add(2*time.Minute).Unix()), ErrNotYetValid},
		{"iat is a string", set("iat", "now"), ErrClaims},
		{"expired", set("exp", now.Add(-time.Minute).Unix()), ErrExpired},
		{"nbf in the future", set("nbf", now.Add(time.Minute).Unix()), ErrNotYetValid},

		{"token_introspection missing", del("token_introspection"), ErrClaims},
		{"token_introspection is a string", set("token_introspection", `{"active":true}`), ErrClaims},
		{"token_introspection is an array", set("token_introspection", []any{true}), ErrClaims},
		{"token_introspection is null", set("token_introspection", nil), ErrClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := introspectionResponse(t, now, tt.edit)
			c, err := v.Verify(t.Context(), raw)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if _, ok := c.Raw["token_introspection"].(map[string]any); !ok {
					t.Errorf("token_introspection not returned: %v", c.Raw)
				}
				return
			}
			checkErr(t, err, tt.want, raw)
		})
	}
}

// The introspection purpose must not weaken the others: an introspection
// response is neither an access token nor an ID token. Its aud is Gatehouse's
// client id, so on a route with AcceptUntyped whose audience is that id a
// leaked response would otherwise pass as a bearer token.
func TestIntrospectionResponseIsNoToken(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	now := f.clock.Now()
	raw := introspectionResponse(t, now, func(s *tokenSpec) {
		// Give it everything an access token needs except the typ.
		s.claims["exp"] = now.Add(time.Minute).Unix()
		s.claims["sub"] = "user-1"
	})
	for _, cfg := range []Config{
		{Purpose: AccessToken},
		{Purpose: AccessToken, AcceptUntyped: true},
		{Purpose: IDToken},
	} {
		t.Run(cfg.Purpose.String(), func(t *testing.T) {
			_, err := f.verifier(cfg).Verify(t.Context(), raw)
			checkErr(t, err, ErrType, raw)
		})
	}
	// And the other way round: tokens are still refused as introspection
	// responses, and exp stays required for them.
	v := f.verifier(Config{Purpose: IntrospectionResponse})
	at := accessToken(t, now, nil)
	_, err := v.Verify(t.Context(), at)
	checkErr(t, err, ErrType, at)
	noExp := accessToken(t, now, func(s *tokenSpec) { delete(s.claims, "exp") })
	_, err = f.verifier(Config{Purpose: AccessToken}).Verify(t.Context(), noExp)
	checkErr(t, err, ErrClaims, noExp)
}

func TestIntrospectionResponseConfig(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	if _, err := New(f.keys, Config{Purpose: IntrospectionResponse, Issuer: testIssuer, Audience: testAudience}); err != nil {
		t.Fatalf("New: %v", err)
	}
	_, err := New(f.keys, Config{Purpose: IntrospectionResponse, Issuer: testIssuer, Audience: testAudience, AcceptUntyped: true})
	if err == nil {
		t.Fatal("AcceptUntyped accepted for introspection responses")
	}
	if diff := cmp.Diff("introspection_response", IntrospectionResponse.String()); diff != "" {
		t.Error(diff)
	}
}
