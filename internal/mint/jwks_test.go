package mint

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// thumbprint computes the RFC 7638 SHA-256 thumbprint of an EC P-256 or
// Ed25519 public key by hand (RFC 7638 3.2, RFC 8037 2): the required
// members in lexicographic order, no whitespace.
func thumbprint(tb testing.TB, pub crypto.PublicKey) string {
	tb.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	var canonical string
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		raw, err := p.Bytes() // 0x04 | X | Y
		if err != nil {
			tb.Fatal(err)
		}
		canonical = fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, b64(raw[1:33]), b64(raw[33:]))
	case ed25519.PublicKey:
		canonical = fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":"%s"}`, b64(p))
	default:
		tb.Fatalf("thumbprint of %T", pub)
	}
	sum := sha256.Sum256([]byte(canonical))
	return b64(sum[:])
}

// TestKeyIDKnownAnswer checks the kid against the thumbprint in RFC 8037
// Appendix A.3.
func TestKeyIDKnownAnswer(t *testing.T) {
	seed, err := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	if err != nil {
		t.Fatal(err)
	}
	m := newMinter(t, newFakeClock(), func(c *Config) { c.Keys = []crypto.Signer{ed25519.NewKeyFromSeed(seed)} })
	if got, want := m.KeyIDs()[0], "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Fatalf("kid = %s, want %s (RFC 8037 A.3)", got, want)
	}
}

// TestJWKSHasNoPrivateKeyMaterial pins that the published key set carries
// public keys only: no private member in any key, and no private key's
// bytes anywhere in the document.
func TestJWKSHasNoPrivateKeyMaterial(t *testing.T) {
	es, ed := newES256(t), newEd25519(t)
	m := newMinter(t, newFakeClock(), func(c *Config) { c.Keys = []crypto.Signer{es, ed} })
	body := m.JWKS()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2", len(set.Keys))
	}
	for i, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "priv"} {
			if _, ok := k[private]; ok {
				t.Errorf("keys[%d] has private member %q", i, private)
			}
		}
	}
	b64 := base64.RawURLEncoding.EncodeToString
	d, err := es.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string][]byte{"EC d": d, "Ed25519 seed": ed.Seed()} {
		if strings.Contains(string(body), b64(secret)) {
			t.Errorf("JWKS contains the %s", name)
		}
	}
	want := []map[string]any{
		{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": thumbprint(t, es.Public())},
		{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": thumbprint(t, ed.Public())},
	}
	for i := range set.Keys {
		delete(set.Keys[i], "x")
		delete(set.Keys[i], "y")
	}
	if diff := cmp.Diff(want, set.Keys); diff != "" {
		t.Errorf("JWKS keys without x, y (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{thumbprint(t, es.Public()), thumbprint(t, ed.Public())}, m.KeyIDs()); diff != "" {
		t.Errorf("KeyIDs (-want +got):\n%s", diff)
	}
}

func TestServeJWKS(t *testing.T) {
	m := newMinter(t, newFakeClock(), nil)
	jwks := string(m.JWKS())
	tests := []struct {
		name       string
		method     string
		header     map[string]string
		wantStatus int
		wantHeader map[string]string
		wantBody   string
	}{
		{
			name: "GET", method: http.MethodGet, wantStatus: http.StatusOK, wantBody: jwks,
			wantHeader: map[string]string{
				"Content-Type": "application/jwk-set+json", "Cache-Control": "public, max-age=300",
				"X-Content-Type-Options": "nosniff", "ETag": m.etag,
			},
		},
		{
			name: "HEAD", method: http.MethodHead, wantStatus: http.StatusOK, wantBody: "",
			wantHeader: map[string]string{"Content-Type": "application/jwk-set+json", "Cache-Control": "public, max-age=300", "Content-Length": fmt.Sprint(len(jwks))},
		},
		{
			name: "conditional GET", method: http.MethodGet, header: map[string]string{"If-None-Match": m.etag},
			wantStatus: http.StatusNotModified, wantHeader: map[string]string{"ETag": m.etag},
		},
		{
			name: "POST", method: http.MethodPost, wantStatus: http.StatusMethodNotAllowed,
			wantBody:   `{"code":"method_not_allowed","message":"Method not allowed"}`,
			wantHeader: map[string]string{"Allow": "GET, HEAD", "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"},
		},
		{name: "PUT", method: http.MethodPut, wantStatus: http.StatusMethodNotAllowed, wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "DELETE", method: http.MethodDelete, wantStatus: http.StatusMethodNotAllowed},
		{name: "OPTIONS", method: http.MethodOptions, wantStatus: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, JWKSPath, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			m.ServeJWKS(w, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", w.Code, tt.wantStatus)
			}
			for k, v := range tt.wantHeader {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tt.wantBody != "" || tt.method == http.MethodHead {
				if got := w.Body.String(); got != tt.wantBody {
					t.Errorf("body = %s, want %s", got, tt.wantBody)
				}
			}
		})
	}
}

// TestJWKSIsACopy: a caller that edits the returned bytes does not change
// what is served.
func TestJWKSIsACopy(t *testing.T) {
	m := newMinter(t, newFakeClock(), nil)
	b := m.JWKS()
	want := string(b)
	clear(b)
	if got := string(m.JWKS()); got != want {
		t.Fatal("JWKS changed after the caller edited a returned copy")
	}
}
