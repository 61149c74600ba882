package jwtverify

import (
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// BenchmarkVerify measures a verification with a warm key set: parse,
// signature, claims.
func BenchmarkVerify(b *testing.B) {
	k := testKeys(b)
	fx := newFixture(b, defaultJWKS(b))
	v := fx.verifier(Config{})
	now := fx.clock.Now()
	for _, bc := range []struct {
		name string
		spec tokenSpec
	}{
		{"RS256", tokenSpec{key: k.rsa1, alg: jose.RS256, kid: "rsa1"}},
		{"PS256", tokenSpec{key: k.rsa1, alg: jose.PS256, kid: "rsa1"}},
		{"ES256", tokenSpec{key: k.ec256, alg: jose.ES256, kid: "ec1"}},
		{"EdDSA", tokenSpec{key: k.ed, alg: jose.EdDSA, kid: "ed1"}},
	} {
		bc.spec.typ, bc.spec.claims = "at+jwt", claims(now)
		raw := sign(b, bc.spec)
		if _, err := v.Verify(b.Context(), raw); err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
