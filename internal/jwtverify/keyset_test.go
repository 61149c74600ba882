package jwtverify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestKeySetIsFetchedLazily(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	v := f.verifier(Config{})
	if n := f.srv.requests.Load(); n != 0 {
		t.Fatalf("requests after NewKeySet and New = %d, want 0", n)
	}
	if _, err := v.Verify(t.Context(), accessToken(t, f.clock.Now(), nil)); err != nil {
		t.Fatal(err)
	}
	if n, m := f.srv.requests.Load(), f.keys.Fetches(); n != 1 || m != 1 {
		t.Fatalf("requests = %d, Fetches() = %d, want 1 and 1", n, m)
	}
}

// Concurrent first verifications share one fetch.
func TestKeySetFirstFetchIsShared(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	gate, arrived := make(chan struct{}), make(chan struct{}, 200)
	f.srv.mu.Lock()
	f.srv.gate, f.srv.arrived = gate, arrived
	f.srv.mu.Unlock()
	v := f.verifier(Config{})
	raw := accessToken(t, f.clock.Now(), nil)

	const n = 100
	var started, done sync.WaitGroup
	errs := make(chan error, n)
	started.Add(n)
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			started.Done()
			_, err := v.Verify(t.Context(), raw)
			errs <- err
		}()
	}
	started.Wait()
	<-arrived // the one fetch is under way; hold it while the others pile up
	close(gate)
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.keys.Fetches(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
}

func TestKeySetUnavailable(t *testing.T) {
	k := testKeys(t)
	octAndEnc := []byte(`{"keys":[
		{"kty":"oct","kid":"rsa1","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},
		` + string(mustJSON(t, jose.JSONWebKey{Key: &k.rsa1.PublicKey, KeyID: "rsa1", Use: "enc"})) + `]}`)
	tests := []struct {
		name   string
		setup  func(*jwksServer)
		config func(*KeySetConfig)
	}{
		{"status 500", func(s *jwksServer) { s.setStatus(http.StatusInternalServerError) }, nil},
		{"status 404", func(s *jwksServer) { s.setStatus(http.StatusNotFound) }, nil},
		{"status 204", func(s *jwksServer) { s.setStatus(http.StatusNoContent) }, nil},
		{"bad JSON", func(s *jwksServer) { s.setBody([]byte(`{"keys":[`)) }, nil},
		{"HTML", func(s *jwksServer) { s.setBody([]byte(`<html>login</html>`)) }, nil},
		{"empty key set", func(s *jwksServer) { s.setBody([]byte(`{"keys":[]}`)) }, nil},
		{"no keys member", func(s *jwksServer) { s.setBody([]byte(`{}`)) }, nil},
		{"keys is not an array", func(s *jwksServer) { s.setBody([]byte(`{"keys":{}}`)) }, nil},
		{"only unsupported keys", func(s *jwksServer) {
			s.setBody([]byte(`{"keys":[{"kty":"XYZ","kid":"a"},{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
		}, nil},
		{"only symmetric and encryption keys", func(s *jwksServer) { s.setBody(octAndEnc) }, nil},
		{"body over the default 1 MiB", func(s *jwksServer) { s.setBody(padJSON(defaultJWKS(t), DefaultMaxBytes+1)) }, nil},
		{"body over MaxBytes", func(s *jwksServer) { s.setBody(padJSON(defaultJWKS(t), 64<<10+1)) },
			func(c *KeySetConfig) { c.MaxBytes = 64 << 10 }},
		{"server hangs past FetchTimeout", func(s *jwksServer) { s.setHang(true) },
			func(c *KeySetConfig) { c.FetchTimeout = 100 * time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []func(*KeySetConfig)
			if tt.config != nil {
				opts = append(opts, tt.config)
			}
			f := newFixture(t, defaultJWKS(t), opts...)
			tt.setup(f.srv)
			v := f.verifier(Config{})
			raw := accessToken(t, f.clock.Now(), nil)
			start := time.Now()
			_, err := v.Verify(t.Context(), raw)
			checkErr(t, err, ErrKeysUnavailable, raw)
			if d := time.Since(start); d > time.Second {
				t.Errorf("Verify took %s", d)
			}
			if n := f.keys.Fetches(); n != 1 {
				t.Errorf("fetches = %d, want 1", n)
			}
		})
	}
}

// padJSON pads a JSON document with trailing spaces to exactly size bytes.
func padJSON(doc []byte, size int) []byte {
	return append(bytes.Clone(doc), bytes.Repeat([]byte(" "), size-len(doc))...)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeySetAcceptsBodyOfExactlyMaxBytes(t *testing.T) {
	const max = 64 << 10
	f := newFixture(t, padJSON(defaultJWKS(t), max), func(c *KeySetConfig) { c.MaxBytes = max })
	v := f.verifier(Config{})
	if _, err := v.Verify(t.Context(), accessToken(t, f.clock.Now(), nil)); err != nil {
		t.Fatal(err)
	}
}

// While no key set could ever be fetched, a flood of tokens does not become
// a flood of requests: attempts are spaced by a second.
func TestKeySetRetriesWhileUnavailableAtMostOncePerSecond(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	f.srv.setStatus(http.StatusServiceUnavailable)
	v := f.verifier(Config{})
	raw := accessToken(t, f.clock.Now(), nil)
	for range 10 {
		_, err := v.Verify(t.Context(), raw)
		checkErr(t, err, ErrKeysUnavailable, raw)
	}
	if n := f.keys.Fetches(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
	f.clock.Advance(time.Second)
	_, err := v.Verify(t.Context(), raw)
	checkErr(t, err, ErrKeysUnavailable, raw)
	if n := f.keys.Fetches(); n != 2 {
		t.Fatalf("fetches after 1s = %d, want 2", n)
	}
	f.srv.setStatus(http.StatusOK)
	f.clock.Advance(time.Second)
	if _, err := v.Verify(t.Context(), raw); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// A failing refetch keeps the last good set.
func TestKeySetKeepsLastGoodSet(t *testing.T) {
	k := testKeys(t)
	tests := []struct {
		name        string
		breakServer func(*jwksServer)
	}{
		{"status 500", func(s *jwksServer) { s.setStatus(http.StatusInternalServerError) }},
		{"bad JSON", func(s *jwksServer) { s.setBody([]byte("{")) }},
		{"empty set", func(s *jwksServer) { s.setBody([]byte(`{"keys":[]}`)) }},
		{"hang", func(s *jwksServer) { s.setHang(true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, defaultJWKS(t), func(c *KeySetConfig) { c.FetchTimeout = 100 * time.Millisecond })
			v := f.verifier(Config{})
			if _, err := v.Verify(t.Context(), accessToken(t, f.clock.Now(), nil)); err != nil {
				t.Fatal(err)
			}
			tt.breakServer(f.srv)
			f.clock.Advance(DefaultRefetchInterval)
			unknown := accessToken(t, f.clock.Now(), func(s *tokenSpec) { s.key, s.kid = k.rsa2, "rsa2" })
			_, err := v.Verify(t.Context(), unknown)
			checkErr(t, err, ErrUnknownKey, unknown)
			if n := f.keys.Fetches(); n != 2 {
				t.Fatalf("fetches = %d, want 2", n)
			}
			if _, err := v.Verify(t.Context(), accessToken(t, f.clock.Now(), nil)); err != nil {
				t.Fatalf("known key after a failed refetch: %v", err)
			}
		})
	}
}

// Key rotation at the provider: a new kid causes one refetch and verifies;
// keys still published keep verifying; keys no longer published stop
// verifying after the next refetch.
func TestKeyRotation(t *testing.T) {
	k := testKeys(t)
	f := newFixture(t, jwksJSON(t, pubJWK(k.rsa1, "rsa1", "RS256")))
	v := f.verifier(Config{})
	now := f.clock.Now()
	old := accessToken(t, now, nil)
	rotated := accessToken(t, now, func(s *tokenSpec) { s.key, s.kid = k.rsa2, "rsa2" })

	if _, err := v.Verify(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(t.Context(), rotated)
	checkErr(t, err, ErrUnknownKey, rotated)
	if n := f.keys.Fetches(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}

	// The provider publishes rsa2 next to rsa1.
	f.srv.setBody(jwksJSON(t, pubJWK(k.rsa1, "rsa1", "RS256"), pubJWK(k.rsa2, "rsa2", "RS256")))
	_, err = v.Verify(t.Context(), rotated)
	checkErr(t, err, ErrUnknownKey, rotated) // still within the refetch interval
	if n := f.keys.Fetches(); n != 2 {
		t.Fatalf("fetches within the interval = %d, want 2", n)
	}
	f.clock.Advance(DefaultRefetchInterval)
	for _, raw := range []string{rotated, old, rotated} {
		if _, err := v.Verify(t.Context(), raw); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
	}
	if n := f.keys.Fetches(); n != 3 {
		t.Fatalf("fetches = %d, want 3", n)
	}

	// The provider retires rsa1; the next refetch (caused by another new
	// kid) replaces the set and rsa1 stops verifying.
	f.srv.setBody(jwksJSON(t, pubJWK(k.rsa2, "rsa2", "RS256")))
	f.clock.Advance(DefaultRefetchInterval)
	unknown := accessToken(t, now, func(s *tokenSpec) { s.key, s.kid = k.rsa2, "rsa3" })
	_, err = v.Verify(t.Context(), unknown)
	checkErr(t, err, ErrUnknownKey, unknown)
	_, err = v.Verify(t.Context(), old)
	checkErr(t, err, ErrUnknownKey, old)
	if _, err := v.Verify(t.Context(), rotated); err != nil {
		t.Fatal(err)
	}
}

// A flood of tokens with unknown kids makes at most one fetch per
// RefetchInterval: an attacker cannot turn Gatehouse into a JWKS hammer.
func TestUnknownKidFloodMakesOneFetchPerInterval(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	v := f.verifier(Config{})
	now := f.clock.Now()
	k := testKeys(t)
	if _, err := v.Verify(t.Context(), accessToken(t, now, nil)); err != nil {
		t.Fatal(err)
	}
	const n = 100
	tokens := make([]string, n)
	for i := range tokens {
		key := any(k.attackerEC)
		if i%2 == 0 {
			key = k.ec256 // a real key under an unknown kid
		}
		tokens[i] = accessToken(t, now, func(s *tokenSpec) {
			s.key, s.alg, s.kid = key, jose.ES256, fmt.Sprintf("random-%d-%x", i, i*7919)
		})
	}
	flood := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for _, raw := range tokens {
			wg.Go(func() {
				_, err := v.Verify(t.Context(), raw)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("error = %v, want ErrUnknownKey", err)
			}
		}
	}
	flood()
	if got := f.keys.Fetches(); got != 2 {
		t.Fatalf("fetches after first flood = %d, want 2 (load + one refetch)", got)
	}
	f.clock.Advance(DefaultRefetchInterval - time.Second)
	flood()
	if got := f.keys.Fetches(); got != 2 {
		t.Fatalf("fetches after a second flood within the interval = %d, want 2", got)
	}
	f.clock.Advance(time.Second)
	flood()
	if got := f.keys.Fetches(); got != 3 {
		t.Fatalf("fetches after the interval = %d, want 3", got)
	}
}

// A forged signature under a known kid never causes a fetch, however many
// arrive and however much time passes: refetching cannot make a forgery
// valid, and must not be a lever for flooding the provider.
func TestForgedSignatureWithKnownKidMakesNoFetch(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	v := f.verifier(Config{})
	now := f.clock.Now()
	k := testKeys(t)
	valid := accessToken(t, now, nil)
	if _, err := v.Verify(t.Context(), valid); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	tampered := accessToken(t, now, func(s *tokenSpec) { s.claims["sub"] = "admin" })
	tests := []struct {
		name string
		raw  string
	}{
		{"attacker RSA key", accessToken(t, now, func(s *tokenSpec) { s.key = k.attackerRSA })},
		{"attacker EC key", accessToken(t, now, func(s *tokenSpec) { s.key, s.alg, s.kid = k.attackerEC, jose.ES256, "ec1" })},
		{"attacker Ed25519 key", accessToken(t, now, func(s *tokenSpec) { s.key, s.alg, s.kid = k.attackerEd, jose.EdDSA, "ed1" })},
		{"payload swapped", parts[0] + "." + strings.Split(tampered, ".")[1] + "." + parts[2]},
		{"signature of another token", strings.Join(strings.Split(tampered, ".")[:2], ".") + "." + parts[2]},
		{"empty signature", parts[0] + "." + parts[1] + "."},
		// kid names a key whose type or declared alg does not fit the token's alg.
		{"PS256 under a kid whose JWK says ES256", accessToken(t, now, func(s *tokenSpec) { s.key, s.alg, s.kid = k.rsa1, jose.PS256, "ec1" })},
		{"ES256 under an RSA kid", accessToken(t, now, func(s *tokenSpec) { s.key, s.alg, s.kid = k.ec256, jose.ES256, "rsa1" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tt.raw)
			checkErr(t, err, ErrSignature, tt.raw)
		})
	}
	f.clock.Advance(time.Hour)
	t.Run("100 goroutines", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 100 {
			raw := tests[i%len(tests)].raw
			wg.Go(func() {
				if _, err := v.Verify(t.Context(), raw); !errors.Is(err, ErrSignature) {
					t.Errorf("error = %v, want ErrSignature", err)
				}
			})
		}
		wg.Wait()
	})
	if got := f.keys.Fetches(); got != 1 {
		t.Fatalf("fetches = %d, want 1 (the initial load only)", got)
	}
}

// Tokens without kid are tried against every key of a compatible type,
// without refetching; only when the set holds no compatible key is one
// (rate-limited) refetch made.
func TestTokensWithoutKid(t *testing.T) {
	k := testKeys(t)
	f := newFixture(t, jwksJSON(t, pubJWK(k.rsa2, "rsa2", ""), pubJWK(k.rsa1, "", ""), pubJWK(k.ec256, "ec1", "")))
	v := f.verifier(Config{})
	now := f.clock.Now()
	noKid := func(key any, alg jose.SignatureAlgorithm) string {
		return accessToken(t, now, func(s *tokenSpec) { s.key, s.alg, s.kid = key, alg, "" })
	}
	for _, raw := range []string{noKid(k.rsa1, jose.RS256), noKid(k.rsa2, jose.PS256), noKid(k.ec256, jose.ES256)} {
		if _, err := v.Verify(t.Context(), raw); err != nil {
			t.Fatal(err)
		}
	}
	forged := noKid(k.attackerRSA, jose.RS256)
	_, err := v.Verify(t.Context(), forged)
	checkErr(t, err, ErrSignature, forged)
	if n := f.keys.Fetches(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
	ed := noKid(k.ed, jose.EdDSA) // no Ed25519 key in the set
	for range 3 {
		_, err = v.Verify(t.Context(), ed)
		checkErr(t, err, ErrUnknownKey, ed)
	}
	if n := f.keys.Fetches(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
}

// Which JWKS keys are used: never symmetric keys, encryption keys, or keys
// whose declared alg conflicts with the token's; only the public part of a
// private key.
func TestKeySelection(t *testing.T) {
	k := testKeys(t)
	enc := jose.JSONWebKey{Key: &k.rsa2.PublicKey, KeyID: "enc", Use: "enc"}
	private := jose.JSONWebKey{Key: k.rsa1, KeyID: "private", Algorithm: "RS256", Use: "sig"}
	rs256Only := jose.JSONWebKey{Key: &k.rsa2.PublicKey, KeyID: "rs256-only", Algorithm: "RS256"}
	oaep := jose.JSONWebKey{Key: &k.rsa2.PublicKey, KeyID: "oaep", Algorithm: "RSA-OAEP"}
	body := []byte(`{"keys":[` + strings.Join([]string{
		`{"kty":"oct","kid":"oct","k":"` + strings.Repeat("A", 43) + `"}`,
		string(mustJSON(t, enc)),
		string(mustJSON(t, private)),
		string(mustJSON(t, rs256Only)),
		string(mustJSON(t, oaep)),
		keyOps(t, pubJWK(k.ed, "ed-encrypt", ""), "encrypt"),
		keyOps(t, pubJWK(k.ec256, "ec-verify", ""), "verify"),
		`{"kty":"EC","crv":"secp256k1","kid":"k1","x":"AA","y":"AA"}`,
	}, ",") + `]}`)
	f := newFixture(t, body)
	v := f.verifier(Config{Algorithms: allAlgorithms})
	now := f.clock.Now()
	tok := func(key any, alg jose.SignatureAlgorithm, kid string) string {
		return accessToken(t, now, func(s *tokenSpec) { s.key, s.alg, s.kid = key, alg, kid })
	}
	tests := []struct {
		name string
		raw  string
		want error
	}{
		{"private JWK verifies with its public part", tok(k.rsa1, jose.RS256, "private"), nil},
		{"key with alg RS256 verifies RS256", tok(k.rsa2, jose.RS256, "rs256-only"), nil},
		{"key_ops with verify is used", tok(k.ec256, jose.ES256, "ec-verify"), nil},
		{"key with alg RS256 never verifies PS256", tok(k.rsa2, jose.PS256, "rs256-only"), ErrSignature},
		{"key with alg RS256 never verifies RS512", tok(k.rsa2, jose.RS512, "rs256-only"), ErrSignature},
		{"private JWK alg RS256 never verifies PS256", tok(k.rsa1, jose.PS256, "private"), ErrSignature},
		{"use enc is never used", tok(k.rsa2, jose.RS256, "enc"), ErrUnknownKey},
		{"alg RSA-OAEP is never used", tok(k.rsa2, jose.RS256, "oaep"), ErrUnknownKey},
		{"key_ops without verify is never used", tok(k.ed, jose.EdDSA, "ed-encrypt"), ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tt.raw)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkErr(t, err, tt.want, tt.raw)
		})
	}
	snap := f.keys.snap.Load()
	var kids []string
	for _, key := range snap.all {
		kids = append(kids, key.kid)
		switch key.key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			t.Errorf("key %q held as %T, want a public key", key.kid, key.key)
		}
	}
	if got, want := strings.Join(kids, ","), "private,rs256-only,ec-verify"; got != want {
		t.Errorf("usable keys = %s, want %s", got, want)
	}
}

// keyOps is a JWK's JSON with key_ops set.
func keyOps(t *testing.T, k jose.JSONWebKey, ops ...string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(mustJSON(t, k), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "use")
	m["key_ops"] = ops
	return string(mustJSON(t, m))
}

func TestJWKKeyRejectsWeakRSA(t *testing.T) {
	n, err := rand.Prime(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak := &rsa.PublicKey{N: new(big.Int).Mul(n, big.NewInt(3)), E: 65537}
	raw := mustJSON(t, jose.JSONWebKey{Key: weak, KeyID: "weak"})
	if _, err := jwkKey(raw); err == nil || !strings.Contains(err.Error(), "RSA key of") {
		t.Fatalf("jwkKey(1026-bit RSA) error = %v, want a size error", err)
	}
}

func TestKeySetStopsWaitingWhenContextEnds(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	f.srv.setHang(true)
	v := f.verifier(Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := v.Verify(ctx, accessToken(t, f.clock.Now(), nil))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Verify returned after %s", d)
	}
}

// The shared fetch is not cancelled with the context of the caller that
// happened to start it: the others waiting for it still get the key set.
func TestKeySetFetchOutlivesFirstCallersContext(t *testing.T) {
	f := newFixture(t, defaultJWKS(t))
	gate, arrived := make(chan struct{}), make(chan struct{}, 10)
	f.srv.mu.Lock()
	f.srv.gate, f.srv.arrived = gate, arrived
	f.srv.mu.Unlock()
	v := f.verifier(Config{})
	raw := accessToken(t, f.clock.Now(), nil)

	ctx, cancel := context.WithCancel(t.Context())
	errA := make(chan error, 1)
	go func() {
		_, err := v.Verify(ctx, raw)
		errA <- err
	}()
	<-arrived
	cancel()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: error = %v, want context.Canceled", err)
	}
	close(gate)
	if _, err := v.Verify(t.Context(), raw); err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if n := f.keys.Fetches(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
}

func TestNewKeySetValidatesConfig(t *testing.T) {
	client := &http.Client{}
	tests := []struct {
		name    string
		cfg     KeySetConfig
		wantErr string
	}{
		{"https", KeySetConfig{URL: "https://as.example.com/jwks", Client: client}, ""},
		{"http to localhost", KeySetConfig{URL: "http://localhost:8080/jwks", Client: client}, ""},
		{"http to 127.0.0.1", KeySetConfig{URL: "http://127.0.0.1:8080/jwks", Client: client}, ""},
		{"http to ::1", KeySetConfig{URL: "http://[::1]:8080/jwks", Client: client}, ""},
		{"http with InsecureAllowHTTP", KeySetConfig{URL: "http://idp:8080/jwks", Client: client, InsecureAllowHTTP: true}, ""},
		{"http to a remote host", KeySetConfig{URL: "http://as.example.com/jwks", Client: client}, "must be https"},
		{"no client", KeySetConfig{URL: "https://as.example.com/jwks"}, "client is required"},
		{"no URL", KeySetConfig{Client: client}, "url is required"},
		{"relative URL", KeySetConfig{URL: "/jwks", Client: client}, "absolute"},
		{"file URL", KeySetConfig{URL: "file:///etc/jwks", Client: client}, "absolute"},
		{"ftp URL", KeySetConfig{URL: "ftp://as.example.com/jwks", Client: client}, "scheme"},
		{"negative timeout", KeySetConfig{URL: "https://as.example.com/jwks", Client: client, FetchTimeout: -1}, "timeout"},
		{"negative max bytes", KeySetConfig{URL: "https://as.example.com/jwks", Client: client, MaxBytes: -1}, "max bytes"},
		{"negative interval", KeySetConfig{URL: "https://as.example.com/jwks", Client: client, RefetchInterval: -1}, "interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := NewKeySet(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || ks == nil {
					t.Fatalf("NewKeySet: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		ks, err := NewKeySet(KeySetConfig{URL: "https://as.example.com/jwks", Client: client})
		if err != nil {
			t.Fatal(err)
		}
		if ks.timeout != DefaultFetchTimeout || ks.maxBytes != DefaultMaxBytes || ks.interval != DefaultRefetchInterval || ks.clock == nil || ks.log == nil {
			t.Errorf("defaults not applied: timeout %s max %d interval %s", ks.timeout, ks.maxBytes, ks.interval)
		}
	})
}
