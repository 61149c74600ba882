package jwtverify

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// FuzzVerify feeds arbitrary strings to access-token, ID-token and
// introspection-response verifiers. Nothing may panic, every error must carry a sentinel, and only
// tokens the test itself signed with the published keys may verify.
func FuzzVerify(f *testing.F) {
	k := testKeys(f)
	fx := newFixture(f, defaultJWKS(f))
	now := fx.clock.Now()
	verifiers := []*Verifier{
		fx.verifier(Config{Purpose: AccessToken}),
		fx.verifier(Config{Purpose: AccessToken, AcceptUntyped: true}),
		fx.verifier(Config{Purpose: IDToken}),
		fx.verifier(Config{Purpose: IntrospectionResponse}),
	}
	signed := map[string]bool{} // tokens signed by a published key
	add := func(raw string, bySetKey bool) {
		if bySetKey {
			signed[raw] = true
		}
		f.Add(raw)
	}
	for _, s := range []tokenSpec{
		{key: k.rsa1, alg: jose.RS256, kid: "rsa1", typ: "at+jwt"},
		{key: k.rsa1, alg: jose.PS256, kid: "", typ: "at+jwt"},
		{key: k.ec256, alg: jose.ES256, kid: "ec1", typ: "at+jwt"},
		{key: k.ed, alg: jose.EdDSA, kid: "ed1", typ: "at+jwt"},
		{key: k.ed, alg: jose.EdDSA, kid: "ed1", typ: "JWT"},
	} {
		s.claims = claims(now)
		add(sign(f, s), true)
	}
	add(sign(f, tokenSpec{key: k.rsa1, alg: jose.RS256, kid: "rsa1", claims: idClaims(now)}), true)
	add(introspectionResponse(f, now, nil), true)
	expired := claims(now)
	expired["exp"] = now.Add(-time.Hour).Unix()
	add(sign(f, tokenSpec{key: k.rsa1, alg: jose.RS256, kid: "rsa1", typ: "at+jwt", claims: expired}), true)
	// Tokens not signed by a published key.
	add(sign(f, tokenSpec{key: k.attackerRSA, alg: jose.RS256, kid: "rsa1", typ: "at+jwt", claims: claims(now)}), false)
	add(sign(f, tokenSpec{key: k.attackerEC, alg: jose.ES256, typ: "at+jwt", claims: claims(now), embedJWK: true}), false)
	add(sign(f, tokenSpec{key: []byte(strings.Repeat("k", 32)), alg: jose.HS256, kid: "rsa1", typ: "at+jwt", claims: claims(now)}), false)
	add(craft(f, map[string]any{"alg": "none", "typ": "at+jwt"}, claims(now), nil), false)
	add(craft(f, map[string]any{"alg": "RS256", "kid": "rsa1", "crit": []string{"x"}}, claims(now), []byte("sig")), false)
	valid := accessToken(f, now, nil)
	parts := strings.Split(valid, ".")
	add(parts[0]+"."+parts[1]+".", false)
	add(parts[0]+".."+parts[2], false)
	add(valid+".", false)
	for _, s := range []string{"", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA", `{"payload":"e30","signatures":[]}`} {
		add(s, false)
	}
	sentinels := []error{ErrMalformed, ErrAlgorithm, ErrSignature, ErrUnknownKey, ErrKeysUnavailable,
		ErrIssuer, ErrAudience, ErrExpired, ErrNotYetValid, ErrType, ErrClaims}

	f.Fuzz(func(t *testing.T, raw string) {
		for _, v := range verifiers {
			c, err := v.Verify(t.Context(), raw)
			if err == nil {
				if c == nil {
					t.Fatal("nil claims without error")
				}
				if !signed[raw] {
					t.Fatalf("accepted a token not signed by the test keys: %q", raw)
				}
				continue
			}
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			if !isAny(err, sentinels) {
				t.Fatalf("error carries no sentinel: %v", err)
			}
		}
	})
}

func isAny(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
