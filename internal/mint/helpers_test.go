package mint

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
)

const (
	testIssuer   = "https://gatehouse.example.com"
	testAudience = "orders-api"
)

// t0 is the fake clock's start, on a whole second.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newES256(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newEd25519(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// newMinter builds a Minter on a fake clock with one ES256 key unless edit
// sets keys.
func newMinter(tb testing.TB, clock *fakeClock, edit func(*Config)) *Minter {
	tb.Helper()
	cfg := Config{Issuer: testIssuer, Clock: clock.Now}
	if edit != nil {
		edit(&cfg)
	}
	if cfg.Keys == nil {
		cfg.Keys = []crypto.Signer{newES256(tb)}
	}
	m, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// user is a Subject valid for one hour from t0, cached under "cred-1".
func user() Subject {
	return Subject{
		Subject:  "user-1",
		ClientID: "spa",
		Scopes:   []string{"orders:read"},
		Expiry:   t0.Add(time.Hour),
		CacheKey: "cred-1",
	}
}

func mustMint(tb testing.TB, m *Minter, s Subject, aud string) string {
	tb.Helper()
	raw, err := m.Mint(s, aud)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// segment decodes part i (0 header, 1 payload) of a compact JWS as JSON.
func segment(tb testing.TB, raw string, i int) map[string]any {
	tb.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		tb.Fatalf("not a compact JWS: %d segments", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		tb.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// upstream is an API that verifies minted tokens with jwtverify against a
// JWKS server that serves the current Minter's ServeJWKS.
type upstream struct {
	t        testing.TB
	clock    *fakeClock
	minter   atomic.Pointer[Minter]
	srv      *httptest.Server
	requests atomic.Int64
}

func newUpstream(t testing.TB, clock *fakeClock, m *Minter) *upstream {
	t.Helper()
	u := &upstream{t: t, clock: clock}
	u.minter.Store(m)
	mux := http.NewServeMux()
	mux.HandleFunc(JWKSPath, func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		u.minter.Load().ServeJWKS(w, r)
	})
	u.srv = httptest.NewServer(mux)
	t.Cleanup(u.srv.Close)
	return u
}

// verifier returns a verifier with a key set of its own, as an upstream
// that starts now would have.
func (u *upstream) verifier(audience string) *jwtverify.Verifier {
	u.t.Helper()
	ks, err := jwtverify.NewKeySet(jwtverify.KeySetConfig{
		URL:    u.srv.URL + JWKSPath,
		Client: u.srv.Client(),
		Clock:  u.clock.Now,
	})
	if err != nil {
		u.t.Fatal(err)
	}
	v, err := jwtverify.New(ks, jwtverify.Config{
		Purpose:  jwtverify.AccessToken,
		Issuer:   testIssuer,
		Audience: audience,
		Clock:    u.clock.Now,
	})
	if err != nil {
		u.t.Fatal(err)
	}
	return v
}

func verify(tb testing.TB, v *jwtverify.Verifier, raw string) *jwtverify.Claims {
	tb.Helper()
	c, err := v.Verify(context.Background(), raw)
	if err != nil {
		tb.Fatalf("minted token does not verify: %v", err)
	}
	return c
}

// countingReader returns 0, 1, 2, ... and counts reads; it can be made to
// fail.
type countingReader struct {
	mu   sync.Mutex
	next byte
	fail error
}

func (r *countingReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	for i := range p {
		p[i] = r.next
		r.next++
	}
	return len(p), nil
}
