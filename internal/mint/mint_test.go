package mint

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
)

func TestNewValidatesConfig(t *testing.T) {
	es := newES256(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	var nilEC *ecdsa.PrivateKey
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means success
	}{
		{"valid", Config{Issuer: testIssuer, Keys: []crypto.Signer{es}}, nil},
		{"valid with http issuer and all fields", Config{Issuer: "http://localhost:8080", Keys: []crypto.Signer{es, newEd25519(t)}, TTL: time.Minute, MaxEntries: 10}, nil},
		{"missing issuer", Config{Keys: []crypto.Signer{es}}, []string{"issuer is required"}},
		{"relative issuer", Config{Issuer: "gatehouse", Keys: []crypto.Signer{es}}, []string{"absolute http or https URL"}},
		{"issuer with query", Config{Issuer: testIssuer + "?x=1", Keys: []crypto.Signer{es}}, []string{"absolute http or https URL"}},
		{"ttl above 5m", Config{Issuer: testIssuer, Keys: []crypto.Signer{es}, TTL: 6 * time.Minute}, []string{"ttl 6m0s"}},
		{"ttl below 1s", Config{Issuer: testIssuer, Keys: []crypto.Signer{es}, TTL: 500 * time.Millisecond}, []string{"ttl 500ms"}},
		{"negative ttl", Config{Issuer: testIssuer, Keys: []crypto.Signer{es}, TTL: -time.Second}, []string{"ttl -1s"}},
		{"negative max entries", Config{Issuer: testIssuer, Keys: []crypto.Signer{es}, MaxEntries: -1}, []string{"max entries -1"}},
		{"no keys", Config{Issuer: testIssuer}, []string{"at least one key"}},
		{"nil key", Config{Issuer: testIssuer, Keys: []crypto.Signer{nil}}, []string{"keys[0]: nil key"}},
		{"typed nil key", Config{Issuer: testIssuer, Keys: []crypto.Signer{nilEC}}, []string{"keys[0]: nil key"}},
		{"RSA key", Config{Issuer: testIssuer, Keys: []crypto.Signer{es, rsaKey}}, []string{"keys[1]: an RSA key", "ES256", "EdDSA"}},
		{"P-384 key", Config{Issuer: testIssuer, Keys: []crypto.Signer{p384}}, []string{"keys[0]: an EC P-384 key"}},
		{"duplicate key", Config{Issuer: testIssuer, Keys: []crypto.Signer{es, es}}, []string{"keys[1]: the same key as keys[0]"}},
		{"every problem at once", Config{TTL: time.Hour, MaxEntries: -5}, []string{"issuer is required", "ttl 1h0m0s", "max entries -5", "at least one key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.cfg)
			if len(tt.want) == 0 {
				if err != nil || m == nil {
					t.Fatalf("New = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted an invalid config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "mint: ") {
				t.Errorf("error %q is not prefixed with the package name", err)
			}
		})
	}
}

// opaqueSigner hides the concrete key type, as a KMS or HSM signer would.
type opaqueSigner struct{ crypto.Signer }

// lyingSigner publishes one key and signs with another.
type lyingSigner struct {
	crypto.Signer
	pub crypto.PublicKey
}

func (s lyingSigner) Public() crypto.PublicKey { return s.pub }

func TestNewRefusesSignerThatDoesNotMatchItsPublicKey(t *testing.T) {
	s := lyingSigner{Signer: newES256(t), pub: newES256(t).Public()}
	_, err := New(Config{Issuer: testIssuer, Keys: []crypto.Signer{s}})
	if err == nil || !strings.Contains(err.Error(), "self-test") {
		t.Fatalf("New = %v, want a self-test failure", err)
	}
}

func TestMintHeader(t *testing.T) {
	es, ed := newES256(t), newEd25519(t)
	tests := []struct {
		name    string
		key     crypto.Signer
		wantAlg string
	}{
		{"ES256", es, "ES256"},
		{"EdDSA", ed, "EdDSA"},
		{"ES256 behind crypto.Signer", opaqueSigner{es}, "ES256"},
		{"EdDSA behind crypto.Signer", opaqueSigner{ed}, "EdDSA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			m := newMinter(t, clock, func(c *Config) { c.Keys = []crypto.Signer{tt.key} })
			raw := mustMint(t, m, user(), testAudience)
			want := map[string]any{"alg": tt.wantAlg, "kid": thumbprint(t, tt.key.Public()), "typ": "at+jwt"}
			if diff := cmp.Diff(want, segment(t, raw, 0)); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
			verify(t, newUpstream(t, clock, m).verifier(testAudience), raw)
		})
	}
}

func TestMintClaims(t *testing.T) {
	now := float64(t0.Unix())
	tests := []struct {
		name string
		ttl  time.Duration
		s    func(*Subject)
		aud  string
		want map[string]any // without jti
	}{
		{
			name: "all registered claims; exp is now plus the default TTL",
			want: map[string]any{
				"iss": testIssuer, "aud": testAudience, "sub": "user-1", "client_id": "spa",
				"scope": "orders:read", "iat": now, "exp": now + 300,
			},
		},
		{
			name: "scopes sorted and deduplicated",
			s:    func(s *Subject) { s.Scopes = []string{"write", "read", "write", "admin"} },
			want: map[string]any{
				"iss": testIssuer, "aud": testAudience, "sub": "user-1", "client_id": "spa",
				"scope": "admin read write", "iat": now, "exp": now + 300,
			},
		},
		{
			name: "no scopes: no scope claim",
			s:    func(s *Subject) { s.Scopes = nil },
			want: map[string]any{
				"iss": testIssuer, "aud": testAudience, "sub": "user-1", "client_id": "spa",
				"iat": now, "exp": now + 300,
			},
		},
		{
			name: "source expires first: exp is the source's",
			s:    func(s *Subject) { s.Expiry = t0.Add(90 * time.Second) },
			want: map[string]any{
				"iss": testIssuer, "aud": testAudience, "sub": "user-1", "client_id": "spa",
				"scope": "orders:read", "iat": now, "exp": now + 90,
			},
		},
		{
			name: "source expiry with a fraction: exp rounds down, never past the source",
			s:    func(s *Subject) { s.Expiry = t0.Add(90*time.Second + 700*time.Millisecond) },
			want: map[string]any{
				"iss": testIssuer, "aud": testAudience, "sub": "user-1", "client_id": "spa",
				"scope": "orders:read", "iat": now, "exp": now + 90,
			},
		},
		{
			name: "unknown source expiry: now plus TTL",
			s:    func(s *Subject) { s.Expiry = time.Time{} },
			want: map[string]any{
				"iss": testIssuer, "aud": testAudience, "sub": "user-1", "client_id": "spa",
				"scope": "orders:read", "iat": now, "exp": now + 300,
			},
		},
		{
			name: "configured TTL",
			ttl:  time.Minute,
			want: map[string]any{
				"iss": testIssuer, "aud": testAudience, "sub": "user-1", "client_id": "spa",
				"scope": "orders:read", "iat": now, "exp": now + 60,
			},
		},
		{
			name: "source expires after now+TTL: TTL wins",
			s:    func(s *Subject) { s.Expiry = t0.Add(24 * time.Hour) },
			want: map[string]any{
				"iss": testIssuer, "aud": testAudience, "sub": "user-1", "client_id": "spa",
				"scope": "orders:read", "iat": now, "exp": now + 300,
			},
		},
		{
			name: "extra claims copied",
			s: func(s *Subject) {
				s.Claims = map[string]any{"roles": []any{"admin", "user"}, "acr": "mfa", "tenant": map[string]any{"id": "t1"}}
			},
			want: map[string]any{
				"iss": testIssuer, "aud": testAudience, "sub": "user-1", "client_id": "spa",
				"scope": "orders:read", "iat": now, "exp": now + 300,
				"roles": []any{"admin", "user"}, "acr": "mfa", "tenant": map[string]any{"id": "t1"},
			},
		},
		{
			name: "another audience, as one string",
			aud:  "billing-api",
			want: map[string]any{
				"iss": testIssuer, "aud": "billing-api", "sub": "user-1", "client_id": "spa",
				"scope": "orders:read", "iat": now, "exp": now + 300,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			m := newMinter(t, clock, func(c *Config) { c.TTL = tt.ttl })
			s := user()
			if tt.s != nil {
				tt.s(&s)
			}
			aud := tt.aud
			if aud == "" {
				aud = testAudience
			}
			raw := mustMint(t, m, s, aud)
			got := segment(t, raw, 1)
			if _, ok := got["jti"].(string); !ok {
				t.Errorf("jti = %v, want a string", got["jti"])
			}
			delete(got, "jti")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
			c := verify(t, newUpstream(t, clock, m).verifier(aud), raw)
			if c.Subject != "user-1" || c.ClientID != "spa" || c.Issuer != testIssuer {
				t.Errorf("verified claims = %+v", c)
			}
		})
	}
}

// TestReservedClaimsCannotBeOverridden pins that claims copied from a source
// token (Subject.Claims) cannot change what the minted token says about who
// issued it, for whom, until when, with which scopes, or bind or delegate
// it. The scp case stops a privilege escalation: verifiers (jwtverify too)
// read scp as the scope when scope is absent.
func TestReservedClaimsCannotBeOverridden(t *testing.T) {
	clock := newFakeClock()
	m := newMinter(t, clock, nil)
	evil := map[string]any{
		"iss": "https://evil.example", "sub": "admin", "aud": "everything",
		"exp": float64(t0.Add(24 * time.Hour).Unix()), "nbf": float64(0), "iat": float64(0), "jti": "fixed",
		"client_id": "admin-cli", "scope": "admin", "scp": []any{"admin"}, "azp": "admin-cli",
		"cnf": map[string]any{"jkt": "attacker"}, "act": map[string]any{"sub": "attacker"}, "nonce": "n",
		"roles": []any{"user"},
	}
	for name := range evil {
		if name != "roles" && !IsReservedClaim(name) {
			t.Errorf("IsReservedClaim(%q) = false", name)
		}
	}
	s := user()
	s.Scopes = nil
	s.Claims = evil
	raw := mustMint(t, m, s, testAudience)
	got := segment(t, raw, 1)
	delete(got, "jti")
	want := map[string]any{
		"iss": testIssuer, "aud": testAudience, "sub": "user-1", "client_id": "spa",
		"iat": float64(t0.Unix()), "exp": float64(t0.Add(5 * time.Minute).Unix()), "roles": []any{"user"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	c := verify(t, newUpstream(t, clock, m).verifier(testAudience), raw)
	if c.Scope != "" {
		t.Errorf("verifier sees scope %q, want none", c.Scope)
	}
	if IsReservedClaim("roles") {
		t.Error(`IsReservedClaim("roles") = true`)
	}
}

func TestMintRefuses(t *testing.T) {
	tests := []struct {
		name    string
		s       func(*Subject)
		aud     string
		random  io.Reader
		wantErr error  // errors.Is target, or nil for any error
		wantMsg string // substring
	}{
		{name: "empty audience", aud: "-", wantErr: ErrInvalid, wantMsg: "audience"},
		{name: "empty subject", s: func(s *Subject) { s.Subject = "" }, wantErr: ErrInvalid, wantMsg: "subject"},
		{name: "empty client id", s: func(s *Subject) { s.ClientID = "" }, wantErr: ErrInvalid, wantMsg: "client id"},
		// A scope with a space would add scopes when joined: "read admin".
		{name: "scope with a space (scope injection)", s: func(s *Subject) { s.Scopes = []string{"read admin"} }, wantErr: ErrInvalid, wantMsg: "scopes[0]"},
		{name: "empty scope", s: func(s *Subject) { s.Scopes = []string{"read", ""} }, wantErr: ErrInvalid, wantMsg: "scopes[1]"},
		{name: "scope with a quote", s: func(s *Subject) { s.Scopes = []string{`a"b`} }, wantErr: ErrInvalid},
		{name: "scope with a backslash", s: func(s *Subject) { s.Scopes = []string{`a\b`} }, wantErr: ErrInvalid},
		{name: "scope with a non-ASCII byte", s: func(s *Subject) { s.Scopes = []string{"lecture:é"} }, wantErr: ErrInvalid},
		{name: "source expires now", s: func(s *Subject) { s.Expiry = t0 }, wantErr: ErrSourceExpired},
		{name: "source expired", s: func(s *Subject) { s.Expiry = t0.Add(-time.Second) }, wantErr: ErrSourceExpired},
		{name: "source expires within the second", s: func(s *Subject) { s.Expiry = t0.Add(500 * time.Millisecond) }, wantErr: ErrSourceExpired},
		{name: "extra claim not JSON", s: func(s *Subject) { s.Claims = map[string]any{"x": math.NaN()} }, wantMsg: "encoding claims"},
		{name: "too large", s: func(s *Subject) { s.Claims = map[string]any{"big": strings.Repeat("x", MaxTokenBytes)} }, wantErr: ErrTooLarge},
		{name: "randomness fails", random: &countingReader{fail: errors.New("entropy gone")}, wantMsg: "entropy gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMinter(t, newFakeClock(), func(c *Config) { c.Random = tt.random })
			s := user()
			if tt.s != nil {
				tt.s(&s)
			}
			aud := testAudience
			if tt.aud == "-" {
				aud = ""
			}
			for _, key := range []string{"", "cred-1"} { // uncached and cached paths
				s.CacheKey = key
				raw, err := m.Mint(s, aud)
				if err == nil {
					t.Fatalf("Mint succeeded (cache key %q): %s", key, raw)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("error %q does not contain %q", err, tt.wantMsg)
				}
			}
			if n := m.Mints(); n != 0 {
				t.Errorf("Mints = %d after refusals, want 0", n)
			}
		})
	}
}

func TestJTI(t *testing.T) {
	t.Run("128 bits from Config.Random", func(t *testing.T) {
		m := newMinter(t, newFakeClock(), func(c *Config) { c.Random = &countingReader{} })
		raw := mustMint(t, m, user(), testAudience)
		jti, _ := segment(t, raw, 1)["jti"].(string)
		b, err := base64.RawURLEncoding.DecodeString(jti)
		if err != nil {
			t.Fatal(err)
		}
		want := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
		if diff := cmp.Diff(want, b); diff != "" {
			t.Errorf("jti bytes (-want +got):\n%s", diff)
		}
	})
	t.Run("unique per mint", func(t *testing.T) {
		m := newMinter(t, newFakeClock(), nil)
		s := user()
		s.CacheKey = ""
		seen := map[string]bool{}
		for range 200 {
			jti, _ := segment(t, mustMint(t, m, s, testAudience), 1)["jti"].(string)
			if len(jti) != 22 || seen[jti] {
				t.Fatalf("jti %q: repeated or not 128 bits", jti)
			}
			seen[jti] = true
		}
	})
}

// TestMintUsesOnlyTheClock: with a clock far from real time, the token is
// dated by the clock, and it verifies only on that clock.
func TestMintUsesOnlyTheClock(t *testing.T) {
	clock := &fakeClock{now: time.Date(2040, 6, 1, 0, 0, 0, 0, time.UTC)}
	m := newMinter(t, clock, nil)
	s := user()
	s.Expiry = time.Time{}
	raw := mustMint(t, m, s, testAudience)
	if iat := segment(t, raw, 1)["iat"]; iat != float64(clock.now.Unix()) {
		t.Fatalf("iat = %v, want the clock's %d", iat, clock.now.Unix())
	}
	u := newUpstream(t, clock, m)
	verify(t, u.verifier(testAudience), raw)
	clock.Advance(6 * time.Minute)
	if _, err := u.verifier(testAudience).Verify(t.Context(), raw); !errors.Is(err, jwtverify.ErrExpired) {
		t.Fatalf("Verify after exp = %v, want %v", err, jwtverify.ErrExpired)
	}
}
