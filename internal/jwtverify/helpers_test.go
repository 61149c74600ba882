package jwtverify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	testIssuer   = "https://as.example.com"
	testAudience = "gatehouse"
)

// testKeys are generated once per test binary: RSA generation is slow.
type testKeySet struct {
	rsa1, rsa2, attackerRSA *rsa.PrivateKey
	ec256, ec384, ec521     *ecdsa.PrivateKey
	attackerEC              *ecdsa.PrivateKey
	ed, attackerEd          ed25519.PrivateKey
}

var (
	testKeysOnce sync.Once
	testKeysVal  *testKeySet
)

func testKeys(tb testing.TB) *testKeySet {
	tb.Helper()
	testKeysOnce.Do(func() {
		k := &testKeySet{}
		var err error
		must := func(e error) {
			if e != nil && err == nil {
				err = e
			}
		}
		var e error
		k.rsa1, e = rsa.GenerateKey(rand.Reader, 2048)
		must(e)
		k.rsa2, e = rsa.GenerateKey(rand.Reader, 2048)
		must(e)
		k.attackerRSA, e = rsa.GenerateKey(rand.Reader, 2048)
		must(e)
		k.ec256, e = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(e)
		k.ec384, e = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(e)
		k.ec521, e = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		must(e)
		k.attackerEC, e = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(e)
		_, k.ed, e = ed25519.GenerateKey(rand.Reader)
		must(e)
		_, k.attackerEd, e = ed25519.GenerateKey(rand.Reader)
		must(e)
		if err != nil {
			panic(err)
		}
		testKeysVal = k
	})
	return testKeysVal
}

// pubJWK is the public JWK of a private key, as a provider publishes it.
func pubJWK(priv any, kid, alg string) jose.JSONWebKey {
	k := jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: alg, Use: "sig"}
	return k.Public()
}

// jwksJSON is a JWKS document holding keys.
func jwksJSON(tb testing.TB, keys ...jose.JSONWebKey) []byte {
	tb.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// defaultJWKS publishes rsa1 ("rsa1"), ec256 ("ec1") and ed ("ed1").
func defaultJWKS(tb testing.TB) []byte {
	k := testKeys(tb)
	return jwksJSON(tb,
		pubJWK(k.rsa1, "rsa1", ""),
		pubJWK(k.ec256, "ec1", "ES256"),
		pubJWK(k.ed, "ed1", "EdDSA"),
	)
}

// jwksServer serves a JWKS document and can be switched to fail, hang or
// serve a huge body. It counts requests.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64
	release  chan struct{} // closed at cleanup: hanging handlers return

	mu      sync.Mutex
	body    []byte
	status  int
	hang    bool
	arrived chan struct{} // when set, gets a value per request before it is served
	gate    chan struct{} // when set, requests wait until it is closed
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{body: body, status: http.StatusOK, release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(s.release) }) // runs first
	return s
}

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	body, status, hang, arrived, gate := s.body, s.status, s.hang, s.arrived, s.gate
	s.mu.Unlock()
	if arrived != nil {
		arrived <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-s.release:
		}
	}
	if hang {
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *jwksServer) setBody(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.status, s.hang = b, http.StatusOK, false
}

func (s *jwksServer) setStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

func (s *jwksServer) setHang(hang bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = hang
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

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

// fixture is a JWKS server, a fake clock and a KeySet reading from them.
type fixture struct {
	t     testing.TB
	srv   *jwksServer
	clock *fakeClock
	keys  *KeySet
}

func newFixture(t testing.TB, body []byte, opts ...func(*KeySetConfig)) *fixture {
	t.Helper()
	f := &fixture{t: t, srv: newJWKSServer(t, body), clock: newFakeClock()}
	cfg := KeySetConfig{
		URL:          f.srv.URL + "/jwks",
		Client:       f.srv.Client(),
		FetchTimeout: 2 * time.Second,
		Clock:        f.clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	ks, err := NewKeySet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.keys = ks
	return f
}

// verifier returns a Verifier on the fixture's key set; cfg's empty issuer,
// audience, purpose and clock are filled in.
func (f *fixture) verifier(cfg Config) *Verifier {
	f.t.Helper()
	if cfg.Purpose == 0 {
		cfg.Purpose = AccessToken
	}
	if cfg.Issuer == "" {
		cfg.Issuer = testIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = testAudience
	}
	if cfg.Clock == nil {
		cfg.Clock = f.clock.Now
	}
	v, err := New(f.keys, cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// claims are access-token claims valid at now; ID-token tests add to them.
func claims(now time.Time) map[string]any {
	return map[string]any{
		"iss":       testIssuer,
		"sub":       "user-1",
		"aud":       testAudience,
		"exp":       now.Add(5 * time.Minute).Unix(),
		"iat":       now.Unix(),
		"jti":       "id-1",
		"client_id": "spa",
		"scope":     "read write",
	}
}

func idClaims(now time.Time) map[string]any {
	c := claims(now)
	delete(c, "client_id")
	delete(c, "scope")
	c["nonce"] = "n-0S6_WzA2Mj"
	return c
}

// tokenSpec describes a token to sign with go-jose.
type tokenSpec struct {
	key      any // private key, or []byte for HMAC
	alg      jose.SignatureAlgorithm
	kid      string // "" for none
	typ      string // "" for none
	headers  map[jose.HeaderKey]any
	embedJWK bool
	claims   map[string]any
}

func sign(tb testing.TB, s tokenSpec) string {
	tb.Helper()
	opts := &jose.SignerOptions{EmbedJWK: s.embedJWK}
	if s.kid != "" {
		opts.WithHeader("kid", s.kid)
	}
	if s.typ != "" {
		opts.WithType(jose.ContentType(s.typ))
	}
	for k, v := range s.headers {
		opts.WithHeader(k, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	payload, err := json.Marshal(s.claims)
	if err != nil {
		tb.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// accessToken is an RS256 at+jwt signed with rsa1, valid at now.
func accessToken(tb testing.TB, now time.Time, edit func(*tokenSpec)) string {
	tb.Helper()
	s := tokenSpec{key: testKeys(tb).rsa1, alg: jose.RS256, kid: "rsa1", typ: "at+jwt", claims: claims(now)}
	if edit != nil {
		edit(&s)
	}
	return sign(tb, s)
}

// craft builds a compact JWS from a header, claims and signature bytes
// without signing: for tokens go-jose refuses to make (alg none...).
func craft(tb testing.TB, header, claims any, sig []byte) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + enc.EncodeToString(sig)
}

// checkErr fails unless err wraps want, and checks that the message does not
// echo the token or any long part of it.
func checkErr(t *testing.T, err, want error, raw string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	msg := err.Error()
	for _, part := range append([]string{raw}, strings.Split(raw, ".")...) {
		if len(part) >= 16 && strings.Contains(msg, part) {
			t.Fatalf("error message contains the token (or a segment of it): %q", msg)
		}
	}
}

// headerJSON is the decoded header of a compact token.
func headerJSON(tb testing.TB, raw string) string {
	tb.Helper()
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// selfSignedCert is a base64 (std) DER certificate for key, as x5c holds it.
func selfSignedCert(tb testing.TB, key *rsa.PrivateKey) string {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "as.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}
