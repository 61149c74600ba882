package jwtverify

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

var allAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func TestVerifyValidTokens(t *testing.T) {
	k := testKeys(t)
	body := jwksJSON(t,
		pubJWK(k.rsa1, "rsa1", ""),
		pubJWK(k.ec256, "ec1", "ES256"),
		pubJWK(k.ec384, "ec384", ""),
		pubJWK(k.ec521, "ec521", "ES512"),
		pubJWK(k.ed, "ed1", "EdDSA"),
	)
	f := newFixture(t, body)
	now := f.clock.Now()
	v := f.verifier(Config{Algorithms: allAlgorithms})

	tests := []struct {
		name string
		key  any
		alg  jose.SignatureAlgorithm
		kid  string
		typ  string
	}{
		{"RS256", k.rsa1, jose.RS256, "rsa1", "at+jwt"},
		{"RS384", k.rsa1, jose.RS384, "rsa1", "at+jwt"},
		{"RS512", k.rsa1, jose.RS512, "rsa1", "at+jwt"},
		{"PS256", k.rsa1, jose.PS256, "rsa1", "at+jwt"},
		{"PS384", k.rsa1, jose.PS384, "rsa1", "at+jwt"},
		{"PS512", k.rsa1, jose.PS512, "rsa1", "at+jwt"},
		{"ES256", k.ec256, jose.ES256, "ec1", "at+jwt"},
		{"ES384", k.ec384, jose.ES384, "ec384", "at+jwt"},
		{"ES512", k.ec521, jose.ES512, "ec521", "at+jwt"},
		{"EdDSA", k.ed, jose.EdDSA, "ed1", "at+jwt"},
		{"typ application/at+jwt", k.rsa1, jose.RS256, "rsa1", "application/at+jwt"},
		{"typ is case-insensitive", k.ec256, jose.ES256, "ec1", "AT+JWT"},
		// A token without kid is tried against the keys of a compatible type.
		{"no kid RSA", k.rsa1, jose.RS256, "", "at+jwt"},
		{"no kid EdDSA", k.ed, jose.EdDSA, "", "at+jwt"},
		{"no kid ES384", k.ec384, jose.ES384, "", "at+jwt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := sign(t, tokenSpec{key: tt.key, alg: tt.alg, kid: tt.kid, typ: tt.typ, claims: claims(now)})
			got, err := v.Verify(t.Context(), raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := &Claims{
				Issuer:   testIssuer,
				Subject:  "user-1",
				ClientID: "spa",
				Scope:    "read write",
				JWTID:    "id-1",
				Audience: []string{testAudience},
				Expiry:   now.Add(5 * time.Minute),
				IssuedAt: now,
				Raw: map[string]any{
					"iss": testIssuer, "sub": "user-1", "aud": testAudience,
					"exp": float64(now.Add(5 * time.Minute).Unix()), "iat": float64(now.Unix()),
					"jti": "id-1", "client_id": "spa", "scope": "read write",
				},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
		})
	}
	if n := f.keys.Fetches(); n != 1 {
		t.Errorf("fetches = %d, want 1 (valid tokens with known keys never refetch)", n)
	}
}

func TestVerifyClaimRules(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	now := f.clock.Now()

	set := func(name string, v any) func(*tokenSpec) {
		return func(s *tokenSpec) { s.claims[name] = v }
	}
	del := func(name string) func(*tokenSpec) {
		return func(s *tokenSpec) { delete(s.claims, name) }
	}
	typ := func(typ string) func(*tokenSpec) {
		return func(s *tokenSpec) { s.typ = typ }
	}
	idToken := func(s *tokenSpec) { s.claims = idClaims(now); s.typ = "" }
	all := func(edits ...func(*tokenSpec)) func(*tokenSpec) {
		return func(s *tokenSpec) {
			for _, e := range edits {
				e(s)
			}
		}
	}
	access := Config{Purpose: AccessToken}
	untyped := Config{Purpose: AccessToken, AcceptUntyped: true}
	id := Config{Purpose: IDToken}

	tests := []struct {
		name string
		cfg  Config
		edit func(*tokenSpec)
		want error // nil: valid
	}{
		{"valid access token", access, nil, nil},

		// exp, with the default leeway of 30s.
		{"expired beyond leeway", access, set("exp", now.Add(-31*time.Second).Unix()), ErrExpired},
		{"expired exactly at leeway", access, set("exp", now.Add(-30*time.Second).Unix()), ErrExpired},
		{"expired within leeway", access, set("exp", now.Add(-29*time.Second).Unix()), nil},
		{"expired within custom leeway 60s", Config{Purpose: AccessToken, Leeway: time.Minute}, set("exp", now.Add(-59*time.Second).Unix()), nil},
		{"expired beyond custom leeway 5s", Config{Purpose: AccessToken, Leeway: 5 * time.Second}, set("exp", now.Add(-6*time.Second).Unix()), ErrExpired},
		{"exp missing", access, del("exp"), ErrClaims},
		{"exp is a string", access, set("exp", "tomorrow"), ErrClaims},
		{"exp is null", access, set("exp", nil), ErrClaims},
		{"exp negative", access, set("exp", -1), ErrClaims},
		{"exp beyond year 9999", access, set("exp", 1e300), ErrClaims},
		{"exp fractional", access, set("exp", float64(now.Unix())+0.5), nil},

		// nbf and iat.
		{"nbf in the future beyond leeway", access, set("nbf", now.Add(31*time.Second).Unix()), ErrNotYetValid},
		{"nbf in the future within leeway", access, set("nbf", now.Add(29*time.Second).Unix()), nil},
		{"nbf in the past", access, set("nbf", now.Add(-time.Hour).Unix()), nil},
		{"nbf is a string", access, set("nbf", "soon"), ErrClaims},
		{"iat in the future beyond leeway", access, set("iat", now.Add(2*time.Minute).Unix()), ErrNotYetValid},
		{"iat in the future within leeway", access, set("iat", now.Add(20*time.Second).Unix()), nil},
		{"iat absent on an access token", access, del("iat"), nil},

		// iss: exact match.
		{"issuer wrong", access, set("iss", "https://evil.example.com"), ErrIssuer},
		{"issuer with trailing slash", access, set("iss", testIssuer+"/"), ErrIssuer},
		{"issuer differs in case", access, set("iss", strings.ToUpper(testIssuer)), ErrIssuer},
		{"issuer missing", access, del("iss"), ErrIssuer},
		{"issuer is a number", access, set("iss", 7), ErrIssuer},
		{"issuer empty", access, set("iss", ""), ErrIssuer},

		// aud: string or array containing the audience.
		{"audience wrong", access, set("aud", "other-api"), ErrAudience},
		{"audience array containing it", access, set("aud", []string{"other-api", testAudience}), nil},
		{"audience array without it", access, set("aud", []string{"a", "b"}), ErrAudience},
		{"audience empty array", access, set("aud", []string{}), ErrAudience},
		{"audience missing", access, del("aud"), ErrAudience},
		{"audience array with a number", access, set("aud", []any{testAudience, 1}), ErrAudience},
		{"audience is an object", access, set("aud", map[string]any{"aud": testAudience}), ErrAudience},
		{"audience prefix does not match", access, set("aud", testAudience+"-x"), ErrAudience},

		// Other claims must have the right JSON type.
		{"sub is a number", access, set("sub", 1), ErrClaims},
		{"scope is an array", access, set("scope", []string{"a"}), ErrClaims},
		{"client_id is a bool", access, set("client_id", true), ErrClaims},

		// Access tokens: typ at+jwt (RFC 9068) unless AcceptUntyped.
		{"access token without typ", access, typ(""), ErrType},
		{"access token typed JWT", access, typ("JWT"), ErrType},
		{"access token typed logout+jwt", access, typ("logout+jwt"), ErrType},
		{"access token typ is a number", access, func(s *tokenSpec) { s.typ = ""; s.headers = map[jose.HeaderKey]any{"typ": 1} }, ErrType},
		// An ID token replayed to a bearer route must fail.
		{"ID token used as access token", access, idToken, ErrType},
		{"untyped accepted with AcceptUntyped", untyped, typ(""), nil},
		{"typ JWT accepted with AcceptUntyped", untyped, typ("JWT"), nil},
		{"at+jwt still accepted with AcceptUntyped", untyped, nil, nil},
		// AcceptUntyped must not turn ID tokens into access tokens.
		{"ID token refused with AcceptUntyped", untyped, idToken, ErrClaims},
		{"untyped token with nonce refused with AcceptUntyped", untyped, all(typ("JWT"), set("nonce", "x")), ErrClaims},

		// ID tokens (OIDC Core 3.1.3.7).
		{"ID token valid", id, idToken, nil},
		{"ID token typed JWT", id, all(idToken, typ("JWT")), nil},
		{"ID token typed application/jwt", id, all(idToken, typ("application/jwt")), nil},
		// An access token presented where an ID token is expected must fail.
		{"access token used as ID token", id, nil, ErrType},
		{"ID token typed at+jwt", id, all(idToken, typ("at+jwt")), ErrType},
		{"ID token with azp equal to audience", id, all(idToken, set("azp", testAudience)), nil},
		{"ID token with other azp", id, all(idToken, set("azp", "other-client")), ErrClaims},
		{"ID token with empty azp", id, all(idToken, set("azp", "")), ErrClaims},
		{"ID token with several audiences and azp", id, all(idToken, set("aud", []string{testAudience, "x"}), set("azp", testAudience)), nil},
		{"ID token with several audiences without azp", id, all(idToken, set("aud", []string{testAudience, "x"})), ErrClaims},
		{"ID token without sub", id, all(idToken, del("sub")), ErrClaims},
		{"ID token without iat", id, all(idToken, del("iat")), ErrClaims},
		{"ID token expired", id, all(idToken, set("exp", now.Add(-time.Hour).Unix())), ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := f.verifier(tt.cfg)
			raw := accessToken(t, now, tt.edit)
			_, err := v.Verify(t.Context(), raw)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			checkErr(t, err, tt.want, raw)
		})
	}
}

// Expiry follows the injected clock: a token valid now is refused once the
// clock passes exp plus leeway.
func TestVerifyFollowsInjectedClock(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	v := f.verifier(Config{})
	raw := accessToken(t, f.clock.Now(), nil)
	if _, err := v.Verify(t.Context(), raw); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(5*time.Minute + 29*time.Second)
	if _, err := v.Verify(t.Context(), raw); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	f.clock.Advance(time.Second)
	_, err := v.Verify(t.Context(), raw)
	checkErr(t, err, ErrExpired, raw)
}

func TestClaimsExtraction(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	now := f.clock.Now()
	v := f.verifier(Config{})
	type out struct{ ClientID, Scope, AuthorizedParty string }
	tests := []struct {
		name string
		edit func(c map[string]any)
		want out
	}{
		{"client_id and scope", func(c map[string]any) {}, out{ClientID: "spa", Scope: "read write"}},
		{"client_id from azp", func(c map[string]any) { delete(c, "client_id"); c["azp"] = "mobile" },
			out{ClientID: "mobile", Scope: "read write", AuthorizedParty: "mobile"}},
		{"client_id wins over azp", func(c map[string]any) { c["azp"] = "mobile" },
			out{ClientID: "spa", Scope: "read write", AuthorizedParty: "mobile"}},
		{"scp array", func(c map[string]any) { delete(c, "scope"); c["scp"] = []string{"a", "b", "c"} },
			out{ClientID: "spa", Scope: "a b c"}},
		{"scp string", func(c map[string]any) { delete(c, "scope"); c["scp"] = "a b" },
			out{ClientID: "spa", Scope: "a b"}},
		{"scope wins over scp", func(c map[string]any) { c["scp"] = []string{"x"} },
			out{ClientID: "spa", Scope: "read write"}},
		{"no scope", func(c map[string]any) { delete(c, "scope") }, out{ClientID: "spa"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := accessToken(t, now, func(s *tokenSpec) { tt.edit(s.claims) })
			c, err := v.Verify(t.Context(), raw)
			if err != nil {
				t.Fatal(err)
			}
			got := out{ClientID: c.ClientID, Scope: c.Scope, AuthorizedParty: c.AuthorizedParty}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("scp with a number", func(t *testing.T) {
		raw := accessToken(t, now, func(s *tokenSpec) { delete(s.claims, "scope"); s.claims["scp"] = []any{"a", 1} })
		_, err := v.Verify(t.Context(), raw)
		checkErr(t, err, ErrClaims, raw)
	})
	t.Run("nbf and nonce", func(t *testing.T) {
		idv := f.verifier(Config{Purpose: IDToken})
		raw := accessToken(t, now, func(s *tokenSpec) {
			s.typ = ""
			s.claims = idClaims(now)
			s.claims["nbf"] = now.Add(-time.Minute).Unix()
		})
		c, err := idv.Verify(t.Context(), raw)
		if err != nil {
			t.Fatal(err)
		}
		if c.Nonce != "n-0S6_WzA2Mj" || !c.NotBefore.Equal(now.Add(-time.Minute)) {
			t.Errorf("nonce %q nbf %v", c.Nonce, c.NotBefore)
		}
	})
}

// alg none must never be accepted, whatever its spelling, and must be
// refused before any key is fetched.
func TestRejectsAlgNone(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	now := f.clock.Now()
	v := f.verifier(Config{Algorithms: allAlgorithms})
	for _, alg := range []string{"none", "None", "NONE", "nOnE", ""} {
		t.Run("alg "+alg, func(t *testing.T) {
			for _, kid := range []string{"", "rsa1"} {
				hdr := map[string]any{"alg": alg, "typ": "at+jwt"}
				if kid != "" {
					hdr["kid"] = kid
				}
				raw := craft(t, hdr, claims(now), nil)
				_, err := v.Verify(t.Context(), raw)
				checkErr(t, err, ErrAlgorithm, raw)
			}
		})
	}
	if n := f.srv.requests.Load(); n != 0 {
		t.Errorf("JWKS requests = %d, want 0: alg is checked before any key lookup", n)
	}
}

// The classic key-confusion attack: an HS256 token whose HMAC secret is the
// provider's RSA public key (which anyone can download). It must fail even
// when every asymmetric algorithm is allowed, and before any key lookup.
func TestRejectsHMACSignedWithRSAPublicKey(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	now := f.clock.Now()
	v := f.verifier(Config{Algorithms: allAlgorithms})
	k := testKeys(t)
	der, err := x509.MarshalPKIXPublicKey(&k.rsa1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkKey, err := json.Marshal(pubJWK(k.rsa1, "rsa1", ""))
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{"PEM": pemKey, "DER": der, "JWK": jwkKey}
	for _, alg := range []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512} {
		for name, secret := range secrets {
			t.Run(string(alg)+" "+name, func(t *testing.T) {
				raw := sign(t, tokenSpec{key: secret, alg: alg, kid: "rsa1", typ: "at+jwt", claims: claims(now)})
				_, err := v.Verify(t.Context(), raw)
				checkErr(t, err, ErrAlgorithm, raw)
			})
		}
	}
	if n := f.srv.requests.Load(); n != 0 {
		t.Errorf("JWKS requests = %d, want 0", n)
	}
}

func TestRejectsAlgorithmOutsideAllowList(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	now := f.clock.Now()
	k := testKeys(t)
	v := f.verifier(Config{Algorithms: []string{"RS256"}})
	tests := []struct {
		name string
		spec tokenSpec
	}{
		{"ES256", tokenSpec{key: k.ec256, alg: jose.ES256, kid: "ec1"}},
		{"PS256", tokenSpec{key: k.rsa1, alg: jose.PS256, kid: "rsa1"}},
		{"EdDSA", tokenSpec{key: k.ed, alg: jose.EdDSA, kid: "ed1"}},
		{"RS512", tokenSpec{key: k.rsa1, alg: jose.RS512, kid: "rsa1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.typ, tt.spec.claims = "at+jwt", claims(now)
			raw := sign(t, tt.spec)
			_, err := v.Verify(t.Context(), raw)
			checkErr(t, err, ErrAlgorithm, raw)
		})
	}
	if n := f.srv.requests.Load(); n != 0 {
		t.Errorf("JWKS requests = %d, want 0", n)
	}
}

// A token carrying its own key in the jwk header (signed by that key) must
// not verify: keys come only from the configured JWKS.
func TestIgnoresEmbeddedJWK(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	now := f.clock.Now()
	k := testKeys(t)
	v := f.verifier(Config{})
	tests := []struct {
		name string
		spec tokenSpec
		want error
	}{
		{"RSA with known kid", tokenSpec{key: k.attackerRSA, alg: jose.RS256, kid: "rsa1"}, ErrSignature},
		{"RSA without kid", tokenSpec{key: k.attackerRSA, alg: jose.RS256}, ErrSignature},
		{"EC with known kid", tokenSpec{key: k.attackerEC, alg: jose.ES256, kid: "ec1"}, ErrSignature},
		{"EC without kid", tokenSpec{key: k.attackerEC, alg: jose.ES256}, ErrSignature},
		{"EdDSA without kid", tokenSpec{key: k.attackerEd, alg: jose.EdDSA}, ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.typ, tt.spec.claims, tt.spec.embedJWK = "at+jwt", claims(now), true
			raw := sign(t, tt.spec)
			if !strings.Contains(headerJSON(t, raw), `"jwk"`) {
				t.Fatal("test token has no jwk header")
			}
			_, err := v.Verify(t.Context(), raw)
			checkErr(t, err, tt.want, raw)
		})
	}
	if n := f.keys.Fetches(); n != 1 {
		t.Errorf("fetches = %d, want 1 (no refetch for known kids or kid-less tokens)", n)
	}
}

// jku and x5u must never be fetched: an attacker pointing them at a JWKS of
// their own must not cause a request there, nor get the token accepted.
func TestIgnoresJKUAndX5U(t *testing.T) {
	k := testKeys(t)
	attacker := newJWKSServer(t, jwksJSON(t, pubJWK(k.attackerRSA, "evil", "RS256")))
	f := newFixture(t, defaultJWKS(t))
	now := f.clock.Now()
	v := f.verifier(Config{})
	tests := []struct {
		name   string
		header jose.HeaderKey
		kid    string
		want   error
	}{
		{"jku with attacker kid", "jku", "evil", ErrUnknownKey},
		{"jku with known kid", "jku", "rsa1", ErrSignature},
		{"jku without kid", "jku", "", ErrSignature},
		{"x5u with attacker kid", "x5u", "evil", ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := sign(t, tokenSpec{
				key: k.attackerRSA, alg: jose.RS256, kid: tt.kid, typ: "at+jwt", claims: claims(now),
				headers: map[jose.HeaderKey]any{tt.header: attacker.URL + "/jwks"},
			})
			_, err := v.Verify(t.Context(), raw)
			checkErr(t, err, tt.want, raw)
		})
	}
	if n := attacker.requests.Load(); n != 0 {
		t.Errorf("requests to the jku/x5u server = %d, want 0", n)
	}
	if n := f.keys.Fetches(); n != 2 {
		t.Errorf("fetches of the configured JWKS = %d, want 2 (load + one refetch for the unknown kid)", n)
	}
}

// An x5c header with the attacker's self-signed certificate must not supply
// a key.
func TestIgnoresX5C(t *testing.T) {
	k := testKeys(t)
	f := newFixture(t, defaultJWKS(t))
	now := f.clock.Now()
	v := f.verifier(Config{})
	cert := selfSignedCert(t, k.attackerRSA)
	for _, kid := range []string{"", "rsa1", "evil"} {
		t.Run("kid "+kid, func(t *testing.T) {
			raw := sign(t, tokenSpec{
				key: k.attackerRSA, alg: jose.RS256, kid: kid, typ: "at+jwt", claims: claims(now),
				headers: map[jose.HeaderKey]any{"x5c": []string{cert}},
			})
			_, err := v.Verify(t.Context(), raw)
			if err == nil {
				t.Fatal("token signed by the x5c key verified")
			}
			if !errors.Is(err, ErrSignature) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("error = %v, want ErrSignature or ErrUnknownKey", err)
			}
		})
	}
}

// Unknown critical extensions must be refused (RFC 7515 4.1.11), and b64
// (RFC 7797, which go-jose would honour) too.
func TestRejectsCriticalHeaders(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	now := f.clock.Now()
	v := f.verifier(Config{})
	tests := []struct {
		name    string
		headers map[jose.HeaderKey]any
	}{
		{"unknown extension", map[jose.HeaderKey]any{"crit": []string{"http://example.com/ext"}, "http://example.com/ext": true}},
		{"crit naming a registered claim", map[jose.HeaderKey]any{"crit": []string{"exp"}, "exp": 1}},
		{"crit b64 true", map[jose.HeaderKey]any{"crit": []string{"b64"}, "b64": true}},
		{"empty crit", map[jose.HeaderKey]any{"crit": []string{}}},
		{"b64 without crit", map[jose.HeaderKey]any{"b64": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := accessToken(t, now, func(s *tokenSpec) { s.headers = tt.headers })
			_, err := v.Verify(t.Context(), raw)
			checkErr(t, err, ErrMalformed, raw)
		})
	}
}

func TestRejectsMalformed(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	now := f.clock.Now()
	k := testKeys(t)
	v := f.verifier(Config{})
	valid := accessToken(t, now, nil)
	signRaw := func(payload []byte) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.rsa1},
			(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "rsa1"))
		if err != nil {
			t.Fatal(err)
		}
		obj, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		s, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	jsonSerialized := func() string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.rsa1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := signer.Sign([]byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		return obj.FullSerialize()
	}
	big := accessToken(t, now, func(s *tokenSpec) { s.claims["pad"] = strings.Repeat("x", MaxTokenBytes) })
	parts := strings.Split(valid, ".")

	tests := []struct {
		name string
		raw  string
		// needsKeys: the token is well-formed up to the payload, so the key
		// set is fetched before the payload is refused.
		needsKeys bool
	}{
		{"empty", "", false},
		{"one segment", "abc", false},
		{"two segments", parts[0] + "." + parts[1], false},
		{"four segments", valid + ".x", false},
		{"JWE-like five segments", "a.b.c.d.e", false},
		{"JSON serialization", jsonSerialized(), false},
		{"leading space", " " + valid, false},
		{"trailing newline", valid + "\n", false},
		// The base64 decoder skips CR and LF; they must not be accepted.
		{"newline inside the payload", parts[0] + "." + parts[1][:10] + "\r\n" + parts[1][10:] + "." + parts[2], false},
		{"bad base64 header", "!!!." + parts[1] + "." + parts[2], false},
		{"standard base64 padding", parts[0] + "=." + parts[1] + "." + parts[2], false},
		{"header not JSON", "bm90IGpzb24." + parts[1] + "." + parts[2], false},
		{"header JSON array", "W10." + parts[1] + "." + parts[2], false},
		{"kid not a string", craft(t, map[string]any{"alg": "RS256", "kid": 7, "typ": "at+jwt"}, claims(now), []byte("sig")), false},
		// Size is checked before parsing, even for a correctly signed token.
		{"larger than 16 KiB though signed", big, false},
		{"16 KiB + 1 of junk", strings.Repeat("a", MaxTokenBytes+1), false},
		{"payload not JSON", signRaw([]byte("not json")), true},
		{"payload JSON array", signRaw([]byte(`["iss"]`)), true},
		{"payload null", signRaw([]byte(`null`)), true},
		{"payload with trailing data", signRaw([]byte(`{"iss":"x"} {}`)), true},
		// Respelling a segment with different unused trailing bits decodes
		// to the same bytes; such spellings are refused so that a token has
		// exactly one accepted form (deny-lists and caches key on it).
		{"non-canonical base64 in signature", respellLastChar(t, parts[0]+"."+parts[1]+"."+parts[2]), false},
	}
	if len(big) <= MaxTokenBytes {
		t.Fatalf("test token is only %d bytes", len(big))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.srv.requests.Load()
			_, err := v.Verify(t.Context(), tt.raw)
			checkErr(t, err, ErrMalformed, tt.raw)
			if fetched := f.srv.requests.Load() - before; fetched != 0 && !tt.needsKeys {
				t.Errorf("%d JWKS requests for a token refused before key lookup", fetched)
			}
		})
	}
}

// respellLastChar changes the unused low bits of the token's last base64
// character; the decoded signature is unchanged.
func respellLastChar(t *testing.T, raw string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := raw[strings.LastIndexByte(raw, '.')+1:]
	if len(sig)%4 == 0 {
		t.Fatal("signature segment has no unused bits")
	}
	i := strings.IndexByte(alphabet, raw[len(raw)-1])
	return raw[:len(raw)-1] + string(alphabet[i|1])
}

func TestNewValidatesConfig(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	base := Config{Purpose: AccessToken, Issuer: testIssuer, Audience: testAudience}
	tests := []struct {
		name    string
		keys    *KeySet
		edit    func(*Config)
		wantErr string // "" for success
	}{
		{"defaults", f.keys, func(c *Config) {}, ""},
		{"all allowed algorithms", f.keys, func(c *Config) { c.Algorithms = allAlgorithms }, ""},
		{"leeway 60s", f.keys, func(c *Config) { c.Leeway = time.Minute }, ""},
		{"ID token", f.keys, func(c *Config) { c.Purpose = IDToken }, ""},
		{"no key set", nil, func(c *Config) {}, "key set is required"},
		{"no purpose", f.keys, func(c *Config) { c.Purpose = 0 }, "purpose"},
		{"unknown purpose", f.keys, func(c *Config) { c.Purpose = 99 }, "purpose"},
		{"no issuer", f.keys, func(c *Config) { c.Issuer = "" }, "issuer is required"},
		{"no audience", f.keys, func(c *Config) { c.Audience = "" }, "audience is required"},
		{"alg none", f.keys, func(c *Config) { c.Algorithms = []string{"RS256", "none"} }, `"none" is never allowed`},
		{"alg HS256", f.keys, func(c *Config) { c.Algorithms = []string{"HS256"} }, "HMAC is never allowed"},
		{"alg hs512", f.keys, func(c *Config) { c.Algorithms = []string{"hs512"} }, "HMAC is never allowed"},
		{"alg unknown", f.keys, func(c *Config) { c.Algorithms = []string{"RSA-OAEP"} }, "unsupported"},
		{"alg lower case", f.keys, func(c *Config) { c.Algorithms = []string{"rs256"} }, "unsupported"},
		{"leeway over 60s", f.keys, func(c *Config) { c.Leeway = 61 * time.Second }, "leeway"},
		{"negative leeway", f.keys, func(c *Config) { c.Leeway = -time.Second }, "leeway"},
		{"AcceptUntyped on ID tokens", f.keys, func(c *Config) { c.Purpose = IDToken; c.AcceptUntyped = true }, "access tokens only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			v, err := New(tt.keys, cfg)
			if tt.wantErr == "" {
				if err != nil || v == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("reports every problem", func(t *testing.T) {
		_, err := New(nil, Config{Algorithms: []string{"none"}, Leeway: time.Hour})
		for _, want := range []string{"key set", "purpose", "issuer", "audience", "none", "leeway"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not mention %q", err, want)
			}
		}
	})
	if n := f.srv.requests.Load(); n != 0 {
		t.Errorf("New made %d JWKS requests, want 0", n)
	}
}
