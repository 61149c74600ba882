package server_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/keyfile"
)

// Internal JWT (forward: internal_jwt, the Access Token pattern): Gatehouse
// signs a short-lived JWT from the Principal, which an example API validates
// through Gatehouse's /.well-known/jwks.json (DESIGN component 5).

// gatehouseJWKS fetches Gatehouse's JWKS and returns its kids in order.
func (e *env) gatehouseJWKS() (kids []string, algs []string) {
	e.t.Helper()
	r := e.do(e.raw(), "GET", "/.well-known/jwks.json", nil, withoutOrigin())
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/jwk-set+json" {
		e.t.Fatalf("JWKS: %d %s %s", r.StatusCode, r.Header.Get("Content-Type"), r.body)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.body, &set); err != nil {
		e.t.Fatal(err)
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				e.t.Errorf("the JWKS publishes private key member %q", private)
			}
		}
		if k["use"] != "sig" {
			e.t.Errorf("JWKS key use %v, want sig", k["use"])
		}
		kid, _ := k["kid"].(string)
		alg, _ := k["alg"].(string)
		kids = append(kids, kid)
		algs = append(algs, alg)
	}
	return kids, algs
}

// TestInternalJWT: whatever the entry, the API receives a JWT Gatehouse
// signed from the Principal — typ at+jwt, ES256 with a kid from its JWKS,
// iss = public_url, aud = the route's audience, sub, scope, client_id, jti,
// the claims the route forwards, exp = min(now + ttl, the source token's
// exp) — cached per (caller, audience, scopes) until shortly before it
// expires.
func TestInternalJWT(t *testing.T) {
	t.Parallel()
	orders, billing, anon := newExampleAPI(t), newExampleAPI(t), newExampleAPI(t)
	keyFile := filepath.Join(t.TempDir(), "internal-jwt.pem")
	mintRoute := func(name, path, upstream, entries, aud string) string {
		return gwRoute(name, path, upstream, entries, "token_format: jwt", "audience: "+aud, "forward: internal_jwt",
			"forward_claims: [roles, tenant, realm_access, nonce, cnf, email]")
	}
	e := newGateway(t, gateway{keyFile: keyFile, routes: []string{
		mintRoute("orders", "/orders", orders.URL, "[cookie, bearer]", ordersAudience),
		mintRoute("billing", "/billing", billing.URL, "[bearer]", billingAudience),
		mintRoute("maybe", "/maybe", anon.URL, "[bearer, anonymous]", ordersAudience),
	}}, func(c *devidp.Config) {
		for i := range c.Clients {
			c.Clients[i].AccessTokenAudience = append(c.Clients[i].AccessTokenAudience, billingAudience)
		}
	})
	orders.trustGatehouse(e, ordersAudience)
	billing.trustGatehouse(e, billingAudience)
	anon.trustGatehouse(e, ordersAudience)
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated key file: %v %v, want mode 0600", st, err)
	}
	kids, algs := e.gatehouseJWKS()
	if len(kids) != 1 || algs[0] != "ES256" {
		t.Fatalf("JWKS kids %v algs %v, want one ES256 key", kids, algs)
	}

	mint := func(t *testing.T, api *exampleAPI, path, token string) *jwtverify.Claims {
		t.Helper()
		r := e.sub(t).bearer("GET", path, token)
		if r.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, r.StatusCode, r.body)
		}
		st := api.last(t)
		if st.err != nil {
			t.Fatalf("the API refused the minted JWT: %v", st.err)
		}
		if st.raw == token {
			t.Fatal("the caller's token was forwarded")
		}
		e.secrets[fmt.Sprintf("minted %d", len(e.secrets))] = st.raw
		return st.claims
	}

	job := e.clientToken(jobClientID, jobSecret, "read")
	start := e.clock.Now()
	c := mint(t, orders, "/orders/1", job)
	h := jwtHeader(t, orders.last(t).raw)
	if h["typ"] != "at+jwt" || h["alg"] != "ES256" || h["kid"] != kids[0] {
		t.Errorf("minted header %v, want typ at+jwt, alg ES256, kid %s", h, kids[0])
	}
	aud, _ := c.Raw["aud"].(string)
	if c.Issuer != e.base || aud != ordersAudience || c.Subject != jobClientID || c.ClientID != jobClientID || c.Scope != "read" || c.JWTID == "" {
		t.Errorf("minted claims %v", c.Raw)
	}
	if d := c.Expiry.Sub(start); d < 5*time.Minute-2*time.Second || d > 5*time.Minute+5*time.Second {
		t.Errorf("minted token lives %v, want the 5m ttl (the source lives an hour)", d)
	}
	first := c.JWTID

	t.Run("cached per caller, audience and scopes", func(t *testing.T) {
		if c := mint(t, orders, "/orders/2", job); c.JWTID != first {
			t.Error("the same caller on the same audience got a new token")
		}
		b := mint(t, billing, "/billing/1", job)
		if b.JWTID == first || b.Raw["aud"] != billingAudience {
			t.Errorf("another audience: jti %s aud %v, want a token of its own for %s", b.JWTID, b.Raw["aud"], billingAudience)
		}
		wider := e.clientToken(jobClientID, jobSecret, "read", "write")
		if w := mint(t, orders, "/orders/3", wider); w.JWTID == first || w.Scope != "read write" {
			t.Errorf("other scopes: jti %s scope %q", w.JWTID, w.Scope)
		}
	})

	t.Run("reminted shortly before expiry", func(t *testing.T) {
		defer e.clock.set(0)
		e.clock.set(3 * time.Minute)
		if c := mint(t, orders, "/orders/4", job); c.JWTID != first {
			t.Error("reminted with 2 of 5 minutes left")
		}
		e.clock.set(4*time.Minute + 10*time.Second)
		c := mint(t, orders, "/orders/5", job)
		if c.JWTID == first {
			t.Error("a token with 50 s left is still handed out")
		}
		if d := c.Expiry.Sub(e.clock.Now()); d < 4*time.Minute {
			t.Errorf("the new token lives %v", d)
		}
	})

	t.Run("never outlives the source token", func(t *testing.T) {
		defer e.clock.set(0)
		tok := e.clientToken(jobClientID, jobSecret, "write")
		exp := time.Unix(int64(jwtClaims(t, tok)["exp"].(float64)), 0)
		e.clock.set(time.Until(exp.Add(-2 * time.Minute)))
		c := mint(t, orders, "/orders/6", tok)
		if !c.Expiry.Equal(exp) {
			t.Errorf("minted exp %v, want the source token's %v", c.Expiry, exp)
		}
	})

	t.Run("same claims through the cookie and a mobile app", func(t *testing.T) {
		e := e.sub(t)
		e.login(e.browser)
		if r := e.do(e.browser, "GET", "/orders/7", nil); r.StatusCode != 200 {
			t.Fatalf("cookie: %d %s", r.StatusCode, r.body)
		}
		web := orders.last(t)
		if web.err != nil {
			t.Fatalf("the API refused the minted JWT: %v", web.err)
		}
		e.secrets["minted for the cookie"] = web.raw
		mobile := mint(t, orders, "/orders/8", e.mobileLogin(mobileClientID, "read").access)
		for _, c := range []*jwtverify.Claims{web.claims, mobile} {
			if c.Subject != userID || c.Raw["tenant"] != "acme" {
				t.Errorf("minted for alice: sub %q tenant %v", c.Subject, c.Raw["tenant"])
			}
			if roles, _ := c.Raw["roles"].([]any); !slices.Equal(roles, []any{"orders:read", "orders:write"}) {
				t.Errorf("forwarded roles %v", c.Raw["roles"])
			}
			if _, ok := c.Raw["realm_access"].(map[string]any); !ok {
				t.Errorf("forwarded realm_access %v", c.Raw["realm_access"])
			}
			for _, reserved := range []string{"nonce", "cnf", "auth_time", "azp", "scp"} {
				if _, ok := c.Raw[reserved]; ok {
					t.Errorf("minted token carries %s", reserved)
				}
			}
		}
		if web.claims.ClientID != "spa-client" || mobile.ClientID != mobileClientID {
			t.Errorf("client_id web %q mobile %q", web.claims.ClientID, mobile.ClientID)
		}
	})

	t.Run("anonymous callers get no token", func(t *testing.T) {
		e := e.sub(t)
		r := e.do(e.raw(), "GET", "/maybe/1", nil, withoutOrigin())
		if r.StatusCode != http.StatusUnauthorized { // the example API's own 401
			t.Fatalf("status %d", r.StatusCode)
		}
		if st := anon.last(t); st.raw != "" {
			t.Error("the upstream received a token for an anonymous caller")
		}
		mint(t, anon, "/maybe/2", job)
	})
	e.assertNoSecretsAnywhere()
}

// TestInternalJWTRotation rotates Gatehouse's signing key with overlap, end
// to end through an API validating with Gatehouse's JWKS: Gatehouse starts
// with key A (ES256, generated into its key file) and mints; restarted with
// key_file B (EdDSA) and previous_key_files [A], it signs with B while the
// token signed with A still validates; restarted with only B, the token
// signed with A is refused.
func TestInternalJWTRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyA, keyB := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
	api := newExampleAPI(t)
	route := gwRoute("orders", "/orders", api.URL, "[bearer]", "token_format: jwt", "audience: "+ordersAudience, "forward: internal_jwt")
	e := newGateway(t, gateway{keyFile: keyA, routes: []string{route}})
	api.trustGatehouse(e, ordersAudience)
	job := e.clientToken(jobClientID, jobSecret, "read")

	forward := func(what string) string {
		t.Helper()
		if r := e.bearer("GET", "/orders/1", job); r.StatusCode != 200 {
			t.Fatalf("%s: %d %s", what, r.StatusCode, r.body)
		}
		st := api.last(t)
		if st.err != nil {
			t.Fatalf("%s: the API refused the minted token: %v", what, st.err)
		}
		e.secrets["minted "+what] = st.raw
		return st.raw
	}
	// A fresh API instance: it knows nothing but Gatehouse's JWKS right now.
	freshCheck := func(tok string) error {
		t.Helper()
		_, v := newTokenVerifier(t, e.base+"/.well-known/jwks.json", e.base, ordersAudience, e.gw.Client(), e.clock.Now)
		_, err := v.Verify(context.Background(), tok)
		return err
	}

	tokA := forward("with key A")
	kidA := jwtHeader(t, tokA)["kid"]
	if kids, _ := e.gatehouseJWKS(); !slices.Equal(kids, []string{kidA.(string)}) {
		t.Fatalf("JWKS %v, want only A's kid %v", kids, kidA)
	}

	// Sign with B, keep publishing A.
	e.restart(gateway{keyFile: keyB, internalJWT: []string{"algorithm: EdDSA", fmt.Sprintf("previous_key_files: [%q]", keyA)},
		routes: []string{route}}.edit(t))
	kids, algs := e.gatehouseJWKS()
	if len(kids) != 2 || kids[1] != kidA || algs[0] != "EdDSA" || algs[1] != "ES256" {
		t.Fatalf("JWKS kids %v algs %v, want [B (EdDSA), A (ES256)]", kids, algs)
	}
	tokB := forward("with key B") // the API meets kid B and refetches
	if h := jwtHeader(t, tokB); h["kid"] != kids[0] || h["alg"] != "EdDSA" {
		t.Errorf("new tokens carry %v, want B's kid %s and EdDSA", h, kids[0])
	}
	if err := freshCheck(tokA); err != nil {
		t.Errorf("the token signed with A during the overlap: %v", err)
	}

	// Drop A. (B's file exists now: algorithm no longer matters.)
	e.restart(gateway{keyFile: keyB, routes: []string{route}}.edit(t))
	if k, _ := e.gatehouseJWKS(); !slices.Equal(k, kids[:1]) {
		t.Fatalf("JWKS %v, want only B", k)
	}
	if err := freshCheck(tokA); !errors.Is(err, jwtverify.ErrUnknownKey) {
		t.Errorf("the token signed with A once A is dropped: %v, want unknown key", err)
	}
	if err := freshCheck(tokB); err != nil {
		t.Errorf("the token signed with B: %v", err)
	}
	if tok := forward("after dropping A"); jwtHeader(t, tok)["kid"] != kids[0] {
		t.Error("not signed with B")
	}
	e.assertNoSecretsAnywhere()
}

// TestInternalJWTKeyFromFile: a key file the operator provides is used as it
// is, P-256 or Ed25519 (algorithm only chooses the type of a key Gatehouse
// creates): the JWKS publishes it under its RFC 7638 thumbprint and minted
// tokens are signed with it.
func TestInternalJWTKeyFromFile(t *testing.T) {
	t.Parallel()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  crypto.Signer
		alg  string
		cfg  []string // more internal_jwt lines
	}{
		{"P-256", ecKey(t), "ES256", nil},
		{"Ed25519", ed, "EdDSA", nil},
		{"Ed25519 with algorithm EdDSA", ed, "EdDSA", []string{"algorithm: EdDSA"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pemData, err := keyfile.EncodePEM(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "operator-key.pem")
			if err := os.WriteFile(path, pemData, 0o600); err != nil {
				t.Fatal(err)
			}
			thumb, err := (&jose.JSONWebKey{Key: tc.key.Public()}).Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			kid := base64.RawURLEncoding.EncodeToString(thumb)
			api := newExampleAPI(t)
			e := newGateway(t, gateway{keyFile: path, internalJWT: tc.cfg, routes: []string{
				gwRoute("orders", "/orders", api.URL, "[bearer]", "token_format: jwt", "audience: "+ordersAudience, "forward: internal_jwt"),
			}})
			api.trustGatehouse(e, ordersAudience)
			if kids, algs := e.gatehouseJWKS(); !slices.Equal(kids, []string{kid}) || !slices.Equal(algs, []string{tc.alg}) {
				t.Errorf("JWKS kids %v algs %v, want [%s] [%s]", kids, algs, kid, tc.alg)
			}
			if r := e.bearer("GET", "/orders/1", e.clientToken(jobClientID, jobSecret, "read")); r.StatusCode != 200 {
				t.Fatalf("%d %s", r.StatusCode, r.body)
			}
			st := api.last(t)
			if h := jwtHeader(t, st.raw); st.err != nil || h["kid"] != kid || h["alg"] != tc.alg {
				t.Errorf("minted header %v (API: %v), want kid %s alg %s", h, st.err, kid, tc.alg)
			}
			e.secrets["minted"] = st.raw
			e.assertNoSecretsAnywhere()
			if strings.Contains(e.logs.String(), strings.TrimSpace(string(pemData))) {
				t.Error("the key file's content is in the logs")
			}
		})
	}
}
