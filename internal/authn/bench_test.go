package authn_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/origin"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/sessioncookie"
)

// Per-request costs of the entries and token checkers, for `make bench`'s
// micro view (BENCHMARKS.md). Run: go test -run '^$' -bench . ./internal/authn

const (
	benchIssuer   = "https://idp.example.com"
	benchAudience = "orders-api"
	benchOrigin   = "https://www.example.com"
)

// benchCookies returns a codec, an origin policy and a request to a cookie
// route carrying sealed -at and -csrf cookies, as a browser sends them.
func benchCookies(b testing.TB, method, accessToken string) (*sessioncookie.Codec, *origin.Policy, *http.Request) {
	b.Helper()
	key, err := seal.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	ring, err := seal.NewRing([]seal.Key{key}, nil)
	if err != nil {
		b.Fatal(err)
	}
	codec := sessioncookie.New(sessioncookie.Config{Prefix: "example", Path: "/", BasePath: "/oauth-agent", Ring: ring})
	at, err := ring.SealString(accessToken)
	if err != nil {
		b.Fatal(err)
	}
	csrfToken := "c2a1f5a9d8e34b6f9a0c7e1d2b3f4a5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a"
	csrf, err := ring.SealString(csrfToken)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(method, "https://api.example.com/api/orders/42", nil)
	r.Header.Set("Origin", benchOrigin)
	r.Header.Set("Cookie", "example-at="+at+"; example-csrf="+csrf)
	r.Header.Set(codec.CSRFHeader(), csrfToken)
	return codec, origin.New([]string{benchOrigin}, true), r
}

// BenchmarkCookieEntry is the cookie entry without a token check (forward:
// access_token): Origin, duplicate names, the -at cookie opened. POST adds
// the CSRF check: the -csrf cookie opened and compared with the header.
func BenchmarkCookieEntry(b *testing.B) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		name := method
		if method == http.MethodPost {
			name = "POST-CSRF"
		}
		b.Run(name, func(b *testing.B) {
			codec, origins, r := benchCookies(b, method, "an-access-token-of-about-the-usual-length-0123456789abcdef0123456789")
			e := &authn.Cookie{Cookies: codec, Origins: origins}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// jwtFixture is a provider's RSA key, its JWKS served over HTTP, and a
// verifier for its access tokens.
type jwtFixture struct {
	key      *rsa.PrivateKey
	verifier *jwtverify.Verifier
	fetches  *atomic.Int64
}

func newJWTFixture(b testing.TB) *jwtFixture {
	b.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		b.Fatal(err)
	}
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	b.Cleanup(srv.Close)
	ks, err := jwtverify.NewKeySet(jwtverify.KeySetConfig{URL: srv.URL, Client: srv.Client()})
	if err != nil {
		b.Fatal(err)
	}
	v, err := jwtverify.New(ks, jwtverify.Config{Purpose: jwtverify.AccessToken, Issuer: benchIssuer, Audience: benchAudience})
	if err != nil {
		b.Fatal(err)
	}
	return &jwtFixture{key: key, verifier: v, fetches: &fetches}
}

// token signs an RS256 at+jwt access token with the usual claims.
func (f *jwtFixture) token(b testing.TB, jti string) string {
	b.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: f.key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{
		"iss": benchIssuer, "sub": "user-1", "aud": []string{benchAudience, "spa"}, "client_id": "spa",
		"scope": "openid profile orders:read orders:write", "jti": jti,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"roles": []string{"customer"},
	})
	jws, err := signer.Sign(payload)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkJWTChecker: cold is a token the checker has not seen (parse,
// RS256 signature, claims, cache insert); cached is the same token again,
// which must not verify a signature; parallel shows contention on the cache.
func BenchmarkJWTChecker(b *testing.B) {
	f := newJWTFixture(b)
	tok := f.token(b, "t-1")
	b.Run("cold", func(b *testing.B) {
		// A new checker per iteration: its cache is empty, the key set warm.
		if _, err := authn.NewJWTChecker(f.verifier, nil, 0).Check(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := authn.NewJWTChecker(f.verifier, nil, 0).Check(b.Context(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := authn.NewJWTChecker(f.verifier, nil, 0)
		if _, err := c.Check(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Check(b.Context(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		c := authn.NewJWTChecker(f.verifier, nil, 0)
		toks := []string{tok, f.token(b, "t-2"), f.token(b, "t-3"), f.token(b, "t-4")}
		for _, t := range toks {
			if _, err := c.Check(b.Context(), t); err != nil {
				b.Fatal(err)
			}
		}
		var n atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			t := toks[n.Add(1)%int64(len(toks))]
			for pb.Next() {
				if _, err := c.Check(b.Context(), t); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	if got := f.fetches.Load(); got != 1 {
		b.Fatalf("JWKS fetched %d times, want 1", got)
	}
}

// BenchmarkCookieEntryJWT is the cookie entry with token_format: jwt and a
// warm verified-token cache (the internal-JWT route's entry).
func BenchmarkCookieEntryJWT(b *testing.B) {
	f := newJWTFixture(b)
	tok := f.token(b, "t-1")
	codec, origins, r := benchCookies(b, http.MethodGet, tok)
	e := &authn.Cookie{Cookies: codec, Origins: origins, Checker: authn.NewJWTChecker(f.verifier, nil, 0)}
	if _, err := e.Authenticate(r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBearerEntryJWT is the bearer entry with a warm verified-token cache.
func BenchmarkBearerEntryJWT(b *testing.B) {
	f := newJWTFixture(b)
	tok := f.token(b, "t-1")
	e := &authn.Bearer{Checker: authn.NewJWTChecker(f.verifier, nil, 0), Realm: authn.Realm}
	r := httptest.NewRequest(http.MethodGet, "https://api.example.com/api/orders/42", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if _, err := e.Authenticate(r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := authn.Authenticate(r, []authn.Entry{e}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestJWTCheckerCacheHitVerifiesNoSignature pins the performance budget's
// "a cached JWT check does no signature verification" without timing: a
// verification (parse, RS256, claims) allocates well over a hundred times,
// a cache hit only the caller's copy of the Principal.
func TestJWTCheckerCacheHitVerifiesNoSignature(t *testing.T) {
	f := newJWTFixture(t)
	tok := f.token(t, "t-1")
	c := authn.NewJWTChecker(f.verifier, nil, 0)
	first, err := c.Check(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		p, err := c.Check(t.Context(), tok)
		if err != nil || p.Subject != first.Subject || p.TokenHash != first.TokenHash || !p.Checked {
			t.Fatalf("cache hit: %+v, %v", p, err)
		}
	})
	if allocs > 1 {
		t.Fatalf("a cached check allocates %v times; budget 1 (the Principal copy), a verification would allocate far more", allocs)
	}
}
