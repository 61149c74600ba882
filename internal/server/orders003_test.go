package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

// TestSeed003OrdersThreeEntryPoints publishes seed 003's orders API at its
// three entry points — mobile apps with bearer tokens (/api/orders), the SPA
// with cookies (/api/web/orders), B2B partners over mutual TLS with
// certificate-bound tokens (/api/b2b/orders) — all through the phantom token
// step, to one upstream URL that Gatehouse reaches over mutual TLS (its own
// client certificate, the upstream's private CA). The API receives the same
// path and the same kind of JWT whoever calls, and never a cookie, an opaque
// token or a client's certificate.
func TestSeed003OrdersThreeEntryPoints(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	upstreamCA, gatehouseCA := newCA(t, "orders upstream CA"), newCA(t, "gatehouse client CA")
	upCAFile := writeFile(t, dir, "orders-ca.pem", upstreamCA.pem)
	clientCert, clientKey := writeCertFiles(t, dir, "gatehouse-client", gatehouseCA.issue(t, certOpts{cn: "gatehouse"}))

	// The orders API validates Gatehouse's JWTs; in front of it, a TLS
	// listener that requires a client certificate of Gatehouse's CA.
	orders := newExampleAPI(t)
	gatehousePool := x509.NewCertPool()
	gatehousePool.AddCert(gatehouseCA.cert)
	var mu sync.Mutex
	var peers []string
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		peers = append(peers, r.TLS.PeerCertificates[0].Subject.CommonName)
		mu.Unlock()
		orders.Config.Handler.ServeHTTP(w, r)
	}))
	front.TLS = &tls.Config{
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: gatehousePool,
		Certificates: []tls.Certificate{upstreamCA.serverCert(t)},
	}
	front.StartTLS()
	t.Cleanup(front.Close)
	upstreamTLS := `upstream_tls: {ca_file: "` + upCAFile + `", cert_file: "` + clientCert + `", key_file: "` + clientKey + `"}`
	phantom := func(name, path, entries string, lines ...string) string {
		return gwRoute(name, path, front.URL+"/orders", entries, append([]string{"strip_prefix: true", "token_format: opaque",
			"forward: phantom", "audience: " + ordersAudience, "require: {scopes: [read]}", upstreamTLS}, lines...)...)
	}
	p := newPartnerEnv(t, partnerSetup{
		g: gateway{introspection: "json", keyFile: filepath.Join(dir, "internal-jwt.pem"), routes: []string{
			phantom("orders", "/api/orders", "[bearer]"),
			phantom("web-orders", "/api/web/orders", "[cookie]"),
			phantom("b2b-orders", "/api/b2b/orders", "[mtls]", "mtls: {bound_token: true, clients: [{subject_cn: partner-a, client_id: partner-a}]}"),
			// The same upstream without Gatehouse's client certificate, and
			// without the upstream's CA.
			gwRoute("no-client-cert", "/api/nocert", front.URL+"/orders", "[bearer]", "token_format: opaque",
				`upstream_tls: {ca_file: "`+upCAFile+`"}`),
			gwRoute("system-roots", "/api/sysroots", front.URL+"/orders", "[bearer]", "token_format: opaque"),
		}},
		idp: []func(*devidp.Config){func(c *devidp.Config) {
			c.Clients[0].AccessTokenFormat = devidp.AccessTokenOpaque // the SPA's tokens are opaque, as in seed 003
		}},
		yaml: func(y string) string {
			return strings.Replace(y, `scope: "openid profile offline_access"`, `scope: "openid profile offline_access read"`, 1)
		},
	})
	e := p.env
	orders.trustGatehouse(e, ordersAudience)

	check := func(t *testing.T, entry, sub, clientID string) {
		t.Helper()
		st := orders.last(t)
		if st.err != nil {
			t.Fatalf("%s: the API refused what Gatehouse forwarded: %v", entry, st.err)
		}
		c := st.claims
		if st.path != "/orders/42" || c.Issuer != e.base || !slices.Equal(c.Audience, []string{ordersAudience}) || c.Subject != sub || c.ClientID != clientID {
			t.Errorf("%s: path %q iss=%q aud=%v sub=%q client_id=%q", entry, st.path, c.Issuer, c.Audience, c.Subject, c.ClientID)
		}
		if h := jwtHeader(t, st.raw); h["typ"] != "at+jwt" {
			t.Errorf("%s: typ %v", entry, h["typ"])
		}
	}

	// Mobile: an opaque bearer token.
	mobile := e.mobileLogin(mobileOpaqueID, "read").access
	if r := e.bearer("GET", "/api/orders/42", mobile); r.StatusCode != 200 {
		t.Fatalf("mobile: %d %s", r.StatusCode, r.body)
	}
	check(t, "mobile", userID, mobileOpaqueID)

	// Web: the SPA's cookies, with Origin and CSRF rules.
	b := e.newBrowser()
	csrf := e.login(b)
	if r := e.do(b, "POST", "/api/web/orders/42", `{"item":1}`, withCSRF(csrf)); r.StatusCode != 200 {
		t.Fatalf("web: %d %s", r.StatusCode, r.body)
	}
	check(t, "web", userID, "spa-client")
	if got := orders.last(t); got.raw == "" {
		t.Fatal("web: no token")
	}

	// B2B: a partner certificate and a token bound to it.
	partner := p.cert(p.partner, certOpts{cn: "partner-a"})
	tok := p.boundToken(partner, "read")
	if r := p.call(partner, "GET", "/api/b2b/orders/42", "Authorization", "Bearer "+tok); r.StatusCode != 200 {
		t.Fatalf("b2b: %d %s", r.StatusCode, r.body)
	}
	check(t, "b2b", partnerID, partnerID)

	// Each entry point accepts only its own kind of caller.
	expectErr(t, "mobile token at the B2B entry", p.call(partner, "GET", "/api/b2b/orders/42", "Authorization", "Bearer "+mobile), 401, "unauthorized")
	// A certificate-bound token is worthless without its certificate, at
	// any entry (RFC 8705 section 3).
	expectErr(t, "bound token at the mobile entry without its certificate", e.bearer("GET", "/api/orders/42", tok), 401, "unauthorized")
	expectErr(t, "bound token at the mobile entry with another certificate", p.call(p.cert(p.partner, certOpts{cn: "partner-a"}),
		"GET", "/api/orders/42", "Authorization", "Bearer "+tok), 401, "unauthorized")
	if r := p.call(partner, "GET", "/api/orders/42", "Authorization", "Bearer "+tok); r.StatusCode != 200 {
		t.Errorf("bound token at the mobile entry with its certificate: %d %s", r.StatusCode, r.body)
	}

	mu.Lock()
	seen := slices.Clone(peers)
	mu.Unlock()
	if len(seen) == 0 || slices.ContainsFunc(seen, func(cn string) bool { return cn != "gatehouse" }) {
		t.Errorf("the upstream saw client certificates %v, want Gatehouse's only", seen)
	}
	n := orders.count()
	expectErr(t, "upstream without Gatehouse's client certificate", e.bearer("GET", "/api/nocert/42", mobile), 502, "bad_gateway")
	expectErr(t, "upstream with a private CA and the system roots", e.bearer("GET", "/api/sysroots/42", mobile), 502, "bad_gateway")
	if orders.count() != n {
		t.Error("a request reached the upstream without mutual TLS")
	}
	e.assertNoSecretsAnywhere()
}
