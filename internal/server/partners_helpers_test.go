package server_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

// Helpers of the tests of partners, API users and services: API keys, mTLS,
// token exchange and client credentials.

const (
	// Gatehouse's own client at the token endpoint: token exchange and
	// client credentials.
	tokenClientID     = "gatehouse-tx"
	tokenClientSecret = "gatehouse-token-client-secret-4b1d"
	// A B2B partner whose tokens are bound to its certificate (RFC 8705).
	partnerID     = "partner-a"
	partnerSecret = "partner-a-secret-77c0"
	// The audience of Gatehouse's own client-credentials tokens.
	reportsAudience = "reports-api"
	// A resource Gatehouse may exchange tokens for.
	billingResource = "https://billing.example.com/"
	partnerBURI     = "spiffe://partners.example/b"
)

// withPartnerClients adds Gatehouse's token client (token exchange for the
// billing API, client credentials for the reports API) and the B2B partner.
func withPartnerClients(c *devidp.Config) {
	c.Clients = append(c.Clients,
		devidp.Client{
			ID: tokenClientID, Secret: tokenClientSecret, Scopes: []string{"read", "write"},
			GrantTypes:           []string{devidp.GrantTokenExchange, devidp.GrantClientCredentials},
			TokenExchangeTargets: []string{billingAudience, billingResource},
			AccessTokenAudience:  []string{reportsAudience}, AccessTokenLifetime: 10 * time.Minute,
		},
		devidp.Client{
			ID: partnerID, Secret: partnerSecret, Scopes: []string{"read", "write"},
			GrantTypes: []string{devidp.GrantClientCredentials}, CertificateBoundAccessTokens: true,
			AccessTokenFormat: devidp.AccessTokenOpaque, AccessTokenAudience: []string{ordersAudience}, AccessTokenLifetime: time.Hour,
		},
	)
}

// partnerSetup is what a partner test adds to the gateway tests' setup.
type partnerSetup struct {
	g gateway
	// top holds top-level YAML blocks (api_keys: ...).
	top []string
	// tokenClient adds authorization_server.token_client.
	tokenClient bool
	idp         []func(*devidp.Config)
	// yaml edits the configuration last.
	yaml func(string) string
}

// partnerEnv is a Gatehouse serving TLS with its own listener configuration
// (client certificates of partnerCA asked for), the provider's token
// endpoint behind a scriptedServer (for faults), and the provider's mTLS
// endpoint alias for partners' certificate-bound tokens.
type partnerEnv struct {
	*env
	dir     string
	fake    *scriptedServer
	alias   *httptest.Server
	partner *testCA // issues partners' certificates; tls.client_ca_file
	other   *testCA // a CA Gatehouse does not trust
	setup   partnerSetup
	// edit turns baseYAML into the configuration of a setup (for restart).
	edit func(partnerSetup) func(string) string
}

func newPartnerEnv(t *testing.T, ps partnerSetup) *partnerEnv {
	t.Helper()
	dir := t.TempDir()
	gatewayCA, partnerCA, otherCA := newCA(t, "gateway CA"), newCA(t, "partner CA"), newCA(t, "someone else's CA")
	certFile, keyFile := writeCertFiles(t, dir, "gateway", gatewayCA.serverCert(t))
	caFile := writeFile(t, dir, "partner-ca.pem", partnerCA.pem)
	var target atomic.Pointer[httputil.ReverseProxy]
	fake := newScriptedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { target.Load().ServeHTTP(w, r) }))
	mkEdit := func(ps partnerSetup) func(string) string {
		edit := ps.g.edit(t)
		return func(y string) string {
			// A generous AS timeout: 100 concurrent TLS handshakes under the
			// race detector on a loaded machine must not time out the one call.
			y = strings.Replace(y, `  timeout: "2s"`, `  timeout: "10s"`, 1)
			y = edit(y)
			as := []string{fmt.Sprintf("  token_endpoint: %q", fake.URL+devidp.PathToken)}
			if ps.tokenClient {
				as = append(as, "  token_client:", "    client_id: "+tokenClientID, "    client_secret: "+tokenClientSecret)
			}
			y = insertAfter(t, y, "authorization_server:", strings.Join(as, "\n")+"\n")
			top := fmt.Sprintf("tls:\n  cert_file: %q\n  key_file: %q\n  client_ca_file: %q\n", certFile, keyFile, caFile) + strings.Join(ps.top, "")
			y = strings.Replace(y, "\nroutes:\n", "\n"+top+"routes:\n", 1)
			if ps.yaml != nil {
				y = ps.yaml(y)
			}
			return y
		}
	}
	e := newEnv(t, envOptions{
		idp: func(c *devidp.Config) {
			withGatewayClients(c)
			withPartnerClients(c)
			for _, f := range ps.idp {
				f(c)
			}
		},
		yaml:         mkEdit(ps),
		gatehouseTLS: true,
	})
	idpURL, _ := url.Parse(e.idp.Issuer())
	target.Store(httputil.NewSingleHostReverseProxy(idpURL))
	alias := httptest.NewUnstartedServer(e.idp)
	alias.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	alias.StartTLS()
	t.Cleanup(alias.Close)
	for k, v := range map[string]string{
		"introspection client secret": introSecret, "token client secret": tokenClientSecret, "partner secret": partnerSecret,
	} {
		e.secrets[k] = v
	}
	return &partnerEnv{env: e, dir: dir, fake: fake, alias: alias, partner: partnerCA, other: otherCA, setup: ps, edit: mkEdit}
}

// sub returns p for use inside subtest t.
func (p *partnerEnv) sub(t *testing.T) *partnerEnv {
	c := *p
	c.env = p.env.sub(t)
	return &c
}

// client returns a client of the gateway that presents cert (none when nil).
func (p *partnerEnv) client(cert *tls.Certificate) *http.Client {
	return withCert(p.raw(), cert)
}

// call sends a request as a partner would: no Origin, no cookies, the given
// certificate and headers.
func (p *partnerEnv) call(cert *tls.Certificate, method, path string, headers ...string) *response {
	p.t.Helper()
	req, err := http.NewRequest(method, p.base+path, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return p.send(p.client(cert), req)
}

// boundToken obtains a partner token bound to cert at the provider's mTLS
// endpoint alias (client credentials, opaque).
func (p *partnerEnv) boundToken(cert *tls.Certificate, scopes ...string) string {
	p.t.Helper()
	tr := p.alias.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	form := url.Values{"grant_type": {devidp.GrantClientCredentials}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	req, _ := http.NewRequest("POST", p.alias.URL+devidp.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(partnerID, partnerSecret)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		p.t.Fatalf("bound token: %d %s", resp.StatusCode, body)
	}
	tok := jsonField(p.t, body, "access_token")
	p.secrets[fmt.Sprintf("bound token %d", len(p.secrets))] = tok
	return tok
}

// cert issues a certificate of ca.
func (p *partnerEnv) cert(ca *testCA, o certOpts) *tls.Certificate {
	p.t.Helper()
	c := ca.issue(p.t, o)
	return &c
}

// jsonField returns the string member name of a JSON object.
func jsonField(t *testing.T, body []byte, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("not JSON: %q", body)
	}
	s, _ := m[name].(string)
	if s == "" {
		t.Fatalf("no %s in %s", name, body)
	}
	return s
}
