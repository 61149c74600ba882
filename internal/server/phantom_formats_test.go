package server_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

// signingAS stands in front of the provider's introspection endpoint and
// answers in the formats the provider does not speak: Curity's phantom
// token (Accept: application/jwt: the JWT to forward, 204 when inactive)
// and RFC 9701 (Accept: application/token-introspection+jwt: a signed JWT
// about the token). It asks the provider whether the token is active (with
// Gatehouse's own client authentication) and signs with a test key whose
// JWKS it serves together with the provider's keys. It is the one fake of
// these tests; its mode injects faults.
type signingAS struct {
	*httptest.Server
	key *ecdsa.PrivateKey
	kid string

	mu    sync.Mutex
	idp   *devidp.Provider
	mode  string // "" or one of the as* modes
	calls int
	last  string // the last JWT it answered with
}

// Fault modes of a signingAS.
const (
	asFail      = "500"        // HTTP 500
	asForged    = "forged"     // signed with a key that is not in the JWKS, under its kid
	asWrongAud  = "wrong-aud"  // RFC 9701 response for another client
	asUntyped   = "untyped"    // RFC 9701 response without its typ
	asWrongIss  = "wrong-iss"  // RFC 9701 response from another issuer
	asAsJSONNow = "plain-json" // ignores Accept and answers RFC 7662 JSON
)

// newSigningAS starts a signingAS; setProvider must be called before it
// gets requests.
func newSigningAS(t *testing.T) *signingAS {
	t.Helper()
	a := &signingAS{key: ecKey(t), kid: "signing-as-" + rand.Text()[:8]}
	forger := ecKey(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(a.provider().Issuer() + devidp.PathKeys)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		var set jose.JSONWebKeySet
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &a.key.PublicKey, KeyID: a.kid, Algorithm: "ES256", Use: "sig"})
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(set)
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		mode := a.mode
		a.calls++
		a.mu.Unlock()
		if mode == asFail {
			http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
			return
		}
		obj, err := a.askProvider(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		key := a.key
		if mode == asForged {
			key = forger
		}
		now := time.Now()
		accept := r.Header.Get("Accept")
		switch {
		case mode == asAsJSONNow || !strings.Contains(accept, "jwt"):
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(obj)
		case accept == "application/jwt":
			if obj["active"] != true {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			claims := map[string]any{}
			for k, v := range obj {
				switch k {
				case "active", "token_type", "username", "given_name", "family_name", "name", "preferred_username", "email", "email_verified":
				default:
					claims[k] = v
				}
			}
			claims["aud"] = []string{ordersAudience}
			claims["iat"] = now.Unix()
			claims["jti"] = rand.Text()
			a.answer(w, "application/jwt", map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": a.kid}, claims, key)
		default:
			iss, aud, typ := a.provider().Issuer(), introClientID, "token-introspection+jwt"
			switch mode {
			case asWrongAud:
				aud = "another-gateway"
			case asUntyped:
				typ = "JWT"
			case asWrongIss:
				iss = "https://other-as.example"
			}
			a.answer(w, "application/token-introspection+jwt", map[string]any{"alg": "ES256", "typ": typ, "kid": a.kid},
				map[string]any{"iss": iss, "aud": aud, "iat": now.Unix(), "token_introspection": obj}, key)
		}
	})
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

// askProvider relays the introspection request to the provider as JSON.
func (a *signingAS) askProvider(r *http.Request) (map[string]any, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest("POST", a.provider().Issuer()+devidp.PathIntrospect, strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("provider introspection: %d", resp.StatusCode)
	}
	var obj map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func (a *signingAS) answer(w http.ResponseWriter, contentType string, header, claims map[string]any, key *ecdsa.PrivateKey) {
	tok, err := makeJWS(header, claims, key)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	a.mu.Lock()
	a.last = tok
	a.mu.Unlock()
	w.Header().Set("Content-Type", contentType)
	_, _ = io.WriteString(w, tok)
}

func (a *signingAS) setProvider(idp *devidp.Provider) {
	a.mu.Lock()
	a.idp = idp
	a.mu.Unlock()
}

func (a *signingAS) provider() *devidp.Provider {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.idp
}

func (a *signingAS) set(mode string) {
	a.mu.Lock()
	a.mode = mode
	a.mu.Unlock()
}

func (a *signingAS) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

func (a *signingAS) lastJWT() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

// newSigningEnv is a Gatehouse whose introspection endpoint and JWKS are a
// signingAS's, with a bearer and a cookie phantom route to an example API.
func newSigningEnv(t *testing.T, format string) (*env, *signingAS, *exampleAPI) {
	t.Helper()
	orders := newExampleAPI(t)
	as := newSigningAS(t)
	g := gateway{
		introspection:         format,
		introspectionEndpoint: as.URL + "/introspect",
		jwksURI:               as.URL + "/jwks",
		routes: []string{
			gwRoute("orders", "/api/orders", orders.URL, "[bearer]", "token_format: opaque", "forward: phantom", "audience: "+ordersAudience),
			gwRoute("web-orders", "/api/web/orders", orders.URL, "[cookie]", "token_format: opaque", "forward: phantom", "audience: "+ordersAudience),
		},
	}
	if format == "rfc9701" {
		g.keyFile = filepath.Join(t.TempDir(), "internal-jwt.pem")
	}
	e := newGateway(t, g, func(c *devidp.Config) { c.Clients[0].AccessTokenFormat = devidp.AccessTokenOpaque })
	as.setProvider(e.idp)
	return e, as, orders
}

// TestPhantomCurityJWT: introspection format jwt (Curity's phantom token,
// Accept: application/jwt). The JWT the authorization server answers with is
// forwarded as it is, on bearer and cookie routes alike, and cached like a
// JSON result; 204 means inactive; a failure is 502 and not cached.
func TestPhantomCurityJWT(t *testing.T) {
	t.Parallel()
	e, as, orders := newSigningEnv(t, "jwt")
	orders.trust(t, as.URL+"/jwks", e.idp.Issuer(), ordersAudience, &http.Client{Timeout: 5 * time.Second}, e.clock.Now)

	tok := e.clientToken(opaqueJobID, opaqueJobSecret, "read")
	for i := range 3 {
		if r := e.bearer("GET", "/api/orders/1", tok); r.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, r.StatusCode, r.body)
		}
		st := orders.last(t)
		if st.err != nil {
			t.Fatalf("the API refused the forwarded JWT: %v", st.err)
		}
		if st.raw != as.lastJWT() || jwtHeader(t, st.raw)["kid"] != as.kid {
			t.Fatal("the API did not receive the authorization server's JWT as it is")
		}
		if st.claims.Subject != opaqueJobID || st.claims.Scope != "read" {
			t.Errorf("forwarded claims sub=%q scope=%q", st.claims.Subject, st.claims.Scope)
		}
	}
	e.secrets["the AS's phantom JWT"] = as.lastJWT()
	if n := as.count(); n != 1 {
		t.Errorf("3 requests made %d introspections, want 1", n)
	}

	// The web entry point: the SPA's opaque token becomes the AS's JWT too.
	e.login(e.browser)
	if r := e.do(e.browser, "GET", "/api/web/orders/1", nil); r.StatusCode != 200 {
		t.Fatalf("cookie route: %d %s", r.StatusCode, r.body)
	}
	if st := orders.last(t); st.err != nil || st.claims.Subject != userID || st.raw != as.lastJWT() {
		t.Errorf("cookie route: the API got sub %v (err %v), want alice's JWT from the AS", st.claims, st.err)
	}
	e.secrets["the AS's phantom JWT for alice"] = as.lastJWT()

	calls := orders.count()
	revoked := e.clientToken(opaqueJobID, opaqueJobSecret, "read")
	e.revoke(opaqueJobID, opaqueJobSecret, revoked)
	expectInvalidToken(t, "inactive (204)", e.bearer("GET", "/api/orders/1", revoked))

	fresh := e.clientToken(opaqueJobID, opaqueJobSecret, "read")
	for _, mode := range []string{asFail, asAsJSONNow} {
		as.set(mode)
		expectErr(t, "authorization server answering "+mode, e.bearer("GET", "/api/orders/1", fresh), http.StatusBadGateway, "authorization_server_error")
	}
	if orders.count() != calls {
		t.Error("the API was called while the token was inactive or could not be checked")
	}
	as.set("")
	if r := e.bearer("GET", "/api/orders/1", fresh); r.StatusCode != 200 {
		t.Fatalf("after recovery: %d %s", r.StatusCode, r.body)
	}
	e.secrets["the AS's phantom JWT, fresh"] = as.lastJWT()
	e.assertNoSecretsAnywhere()
}

// TestPhantomRFC9701: introspection format rfc9701 (Accept:
// application/token-introspection+jwt). Gatehouse verifies the signed
// response — signature with the server's keys, typ, iss, aud = its own
// client — and mints the upstream JWT from its token_introspection claims.
// A response that fails any check is an authorization server error (502),
// never an accepted token, and is not cached.
func TestPhantomRFC9701(t *testing.T) {
	t.Parallel()
	e, as, orders := newSigningEnv(t, "rfc9701")
	orders.trustGatehouse(e, ordersAudience)

	tok := e.clientToken(opaqueJobID, opaqueJobSecret, "read", "write")
	for i := range 2 {
		if r := e.bearer("GET", "/api/orders/1", tok); r.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, r.StatusCode, r.body)
		}
	}
	st := orders.last(t)
	if st.err != nil {
		t.Fatalf("the API refused the minted JWT: %v", st.err)
	}
	if c := st.claims; c.Issuer != e.base || c.Subject != opaqueJobID || c.ClientID != opaqueJobID || c.Scope != "read write" {
		t.Errorf("minted claims iss=%q sub=%q client_id=%q scope=%q", c.Issuer, c.Subject, c.ClientID, c.Scope)
	}
	if n := as.count(); n != 1 {
		t.Errorf("2 requests made %d introspections, want 1", n)
	}

	e.login(e.browser)
	if r := e.do(e.browser, "GET", "/api/web/orders/1", nil); r.StatusCode != 200 {
		t.Fatalf("cookie route: %d %s", r.StatusCode, r.body)
	}
	if st := orders.last(t); st.err != nil || st.claims.Subject != userID || st.claims.ClientID != "spa-client" {
		t.Errorf("cookie route: the API got %+v (err %v), want a token about alice", st.claims, st.err)
	}

	for _, mode := range []string{asForged, asWrongAud, asUntyped, asWrongIss, asFail, asAsJSONNow} {
		t.Run(mode, func(t *testing.T) {
			e := e.sub(t)
			calls := orders.count()
			fresh := e.clientToken(opaqueJobID, opaqueJobSecret, "read")
			as.set(mode)
			expectErr(t, mode, e.bearer("GET", "/api/orders/1", fresh), http.StatusBadGateway, "authorization_server_error")
			if orders.count() != calls {
				t.Fatal("the API was called")
			}
			as.set("")
			if r := e.bearer("GET", "/api/orders/1", fresh); r.StatusCode != 200 {
				t.Errorf("the same token once the server answers properly: %d %s (a failure was cached)", r.StatusCode, r.body)
			}
		})
	}

	calls := orders.count()
	revoked := e.clientToken(opaqueJobID, opaqueJobSecret, "read")
	e.revoke(opaqueJobID, opaqueJobSecret, revoked)
	expectInvalidToken(t, "inactive", e.bearer("GET", "/api/orders/1", revoked))
	if orders.count() != calls {
		t.Error("the API was called with an inactive token")
	}
	e.assertNoSecretsAnywhere()
}
