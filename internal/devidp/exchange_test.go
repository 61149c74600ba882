package devidp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

// gatewayClient exchanges tokens (RFC 8693) for two downstream APIs.
var gatewayClient = auth{id: "gateway", secret: "gateway-secret", method: devidp.AuthMethodBasic}

const (
	tokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	accessTokenTT = "urn:ietf:params:oauth:token-type:access_token"
)

func withGateway(c *devidp.Config) {
	c.Clients = append(c.Clients, devidp.Client{
		ID: gatewayClient.id, Secret: gatewayClient.secret, Scopes: []string{"read", "write"},
		GrantTypes:           []string{devidp.GrantTokenExchange, devidp.GrantClientCredentials},
		TokenExchangeTargets: []string{"billing-api", "https://reports.example.com/"},
		AccessTokenLifetime:  time.Hour,
	})
}

func exchangeForm(subject string, extra url.Values) url.Values {
	form := url.Values{
		"grant_type":           {tokenExchange},
		"subject_token":        {subject},
		"subject_token_type":   {accessTokenTT},
		"requested_token_type": {accessTokenTT},
	}
	for k, v := range extra {
		form[k] = v
	}
	return form
}

func TestTokenExchange(t *testing.T) {
	t.Parallel()
	f := start(t, withGateway)
	user, _ := f.tokens(t, basicClient, url.Values{"scope": {defaultUserScopes + " write"}})

	r := f.post(t, devidp.PathToken, gatewayClient, exchangeForm(user.AccessToken, url.Values{"audience": {"billing-api"}, "scope": {"read"}}))
	if r.status != http.StatusOK {
		t.Fatalf("exchange: %d %s", r.status, r.body)
	}
	var got struct {
		AccessToken     string `json:"access_token"`
		IssuedTokenType string `json:"issued_token_type"`
		TokenType       string `json:"token_type"`
		ExpiresIn       int    `json:"expires_in"`
		Scope           string `json:"scope"`
	}
	r.json(t, &got)
	if got.IssuedTokenType != accessTokenTT || !strings.EqualFold(got.TokenType, "bearer") || got.ExpiresIn < 3500 || got.Scope != "read" {
		t.Errorf("response %+v", got)
	}
	h, c := f.verify(t, got.AccessToken)
	if h.ExtraHeaders["typ"] != "at+jwt" {
		t.Errorf("typ %v", h.ExtraHeaders["typ"])
	}
	if c["sub"] != alice.ID || c["client_id"] != gatewayClient.id || c["scope"] != "read" || !slices.Equal(toStrings(c["aud"]), []string{"billing-api"}) {
		t.Errorf("exchanged claims %v", c)
	}
	if roles := toStrings(c["roles"]); !slices.Equal(roles, []string{"admin", "user"}) {
		t.Errorf("the user's claims are missing: %v", c)
	}
	if in := f.introspect(t, apiClient, got.AccessToken); in["active"] != true || in["sub"] != alice.ID {
		t.Errorf("exchanged token introspection %v", in)
	}

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			a     auth
			form  url.Values
			error string
		}{
			{"audience not allowed", gatewayClient, exchangeForm(user.AccessToken, url.Values{"audience": {"payroll-api"}}), "invalid_target"},
			{"no target", gatewayClient, exchangeForm(user.AccessToken, nil), "invalid_target"},
			{"scope beyond the subject token", gatewayClient, exchangeForm(user.AccessToken, url.Values{"audience": {"billing-api"}, "scope": {"admin"}}), "invalid_scope"},
			{"unknown subject token", gatewayClient, exchangeForm("not-a-token", url.Values{"audience": {"billing-api"}}), "invalid_grant"},
			{"refresh token as subject", gatewayClient, exchangeForm(user.RefreshToken, url.Values{"audience": {"billing-api"}}), "invalid_grant"},
			{"id token type", gatewayClient, func() url.Values {
				v := exchangeForm(user.AccessToken, url.Values{"audience": {"billing-api"}})
				v.Set("subject_token_type", "urn:ietf:params:oauth:token-type:id_token")
				return v
			}(), "invalid_request"},
			{"client without the grant", basicClient, exchangeForm(user.AccessToken, url.Values{"audience": {"billing-api"}}), "unauthorized_client"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, status := f.token(t, tc.a, tc.form)
				if status != http.StatusBadRequest || got.Error != tc.error {
					t.Errorf("got %d %q (%s), want 400 %s", status, got.Error, got.Description, tc.error)
				}
			})
		}
	})

	t.Run("actor", func(t *testing.T) {
		svc, status := f.token(t, gatewayClient, url.Values{"grant_type": {"client_credentials"}})
		if status != http.StatusOK {
			t.Fatalf("client credentials: %d %s", status, svc.Error)
		}
		r := f.post(t, devidp.PathToken, gatewayClient, exchangeForm(user.AccessToken, url.Values{
			"resource": {"https://reports.example.com/"}, "actor_token": {svc.AccessToken}, "actor_token_type": {accessTokenTT},
		}))
		if r.status != http.StatusOK {
			t.Fatalf("exchange with actor: %d %s", r.status, r.body)
		}
		var tr tokenResponse
		r.json(t, &tr)
		_, c := f.verify(t, tr.AccessToken)
		act, _ := c["act"].(map[string]any)
		if act["sub"] != gatewayClient.id || c["sub"] != alice.ID {
			t.Errorf("act %v sub %v, want act.sub %s", c["act"], c["sub"], gatewayClient.id)
		}
		if in := f.introspect(t, apiClient, tr.AccessToken); in["act"] == nil {
			t.Errorf("introspection lacks act: %v", in)
		}
	})

	t.Run("revoking the grant ends exchanged tokens", func(t *testing.T) {
		f.idp.RevokeUserSessions(alice.ID)
		if in := f.introspect(t, apiClient, got.AccessToken); in["active"] != false {
			t.Errorf("exchanged token still active after revocation: %v", in)
		}
		tr, status := f.token(t, gatewayClient, exchangeForm(user.AccessToken, url.Values{"audience": {"billing-api"}}))
		if status != http.StatusBadRequest || tr.Error != "invalid_grant" {
			t.Errorf("exchange of a revoked token: %d %s", status, tr.Error)
		}
	})
	if s := f.idp.Stats(); s.TokenExchange < 8 {
		t.Errorf("stats count %d exchanges", s.TokenExchange)
	}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func toStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			s, _ := e.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// TestCertificateBoundTokens serves the provider on a TLS listener asking
// for client certificates (an RFC 8705 mTLS endpoint alias): a client with
// CertificateBoundAccessTokens gets tokens whose cnf names its certificate.
func TestCertificateBoundTokens(t *testing.T) {
	t.Parallel()
	partner := auth{id: "partner", secret: "partner-secret", method: devidp.AuthMethodBasic}
	f := start(t, func(c *devidp.Config) {
		c.Clients = append(c.Clients, devidp.Client{
			ID: partner.id, Secret: partner.secret, Scopes: []string{"read"}, AccessTokenFormat: devidp.AccessTokenOpaque,
			GrantTypes: []string{devidp.GrantClientCredentials}, CertificateBoundAccessTokens: true,
		}, devidp.Client{
			ID: "partner-jwt", Secret: partner.secret, Scopes: []string{"read"},
			GrantTypes: []string{devidp.GrantClientCredentials}, CertificateBoundAccessTokens: true,
		})
	})
	alias := httptest.NewUnstartedServer(f.idp)
	alias.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	alias.StartTLS()
	t.Cleanup(alias.Close)

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "partner"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	thumb := base64.RawURLEncoding.EncodeToString(sum[:])

	post := func(t *testing.T, id string, withCert bool) (tokenResponse, int) {
		tr := alias.Client().Transport.(*http.Transport).Clone()
		if withCert {
			tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}
		}
		req, _ := http.NewRequest("POST", alias.URL+devidp.PathToken, strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, partner.secret)
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out tokenResponse
		r := response{status: resp.StatusCode}
		r.body = readAll(t, resp)
		r.json(t, &out)
		return out, resp.StatusCode
	}

	tr, status := post(t, partner.id, true)
	if status != http.StatusOK {
		t.Fatalf("bound client credentials: %d %s %s", status, tr.Error, tr.Description)
	}
	in := f.introspect(t, apiClient, tr.AccessToken)
	cnf, _ := in["cnf"].(map[string]any)
	if cnf["x5t#S256"] != thumb {
		t.Errorf("introspection cnf %v, want x5t#S256 %s", in["cnf"], thumb)
	}
	jwt, status := post(t, "partner-jwt", true)
	if status != http.StatusOK {
		t.Fatalf("bound JWT: %d %s", status, jwt.Error)
	}
	_, c := f.verify(t, jwt.AccessToken)
	if cnf, _ := c["cnf"].(map[string]any); cnf["x5t#S256"] != thumb {
		t.Errorf("JWT cnf %v", c["cnf"])
	}
	if got, status := post(t, partner.id, false); status != http.StatusBadRequest || got.Error != "invalid_request" {
		t.Errorf("without a certificate: %d %s", status, got.Error)
	}
	// Other clients' tokens stay unbound, with or without a certificate.
	svc, status := f.token(t, serviceClient, url.Values{"grant_type": {"client_credentials"}})
	if status != http.StatusOK || f.introspect(t, apiClient, svc.AccessToken)["cnf"] != nil {
		t.Errorf("an unbound client's token has cnf")
	}
}
