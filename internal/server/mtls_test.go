package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// TestMTLS: a route with the mtls entry needs a client certificate that
// chains to tls.client_ca_file, is valid now and is for client
// authentication, and maps to a configured client by subject CN or URI SAN;
// every failure is the same 401 JSON error. With bound_token the caller must
// also present an access token bound to that certificate (RFC 8705).
// Routes without the entry keep working with or without a certificate.
func TestMTLS(t *testing.T) {
	t.Parallel()
	orders, bound, mobile := newExampleAPI(t), newExampleAPI(t), newUpstream(t)
	p := newPartnerEnv(t, partnerSetup{g: gateway{
		introspection: "json",
		keyFile:       filepath.Join(t.TempDir(), "internal-jwt.pem"),
		routes: []string{
			gwRoute("b2b", "/api/b2b/orders", orders.URL+"/orders", "[mtls]", "strip_prefix: true",
				`mtls: {clients: [{subject_cn: partner-a, client_id: partner-a, scopes: [read]}, {san_uri: "`+partnerBURI+`", client_id: partner-b}]}`,
				"forward: internal_jwt", "audience: "+ordersAudience, "require: {scopes: [read]}"),
			gwRoute("b2b-bound", "/api/b2b/bound", bound.URL+"/orders", "[mtls]", "strip_prefix: true",
				"mtls: {bound_token: true}", "token_format: opaque", "forward: phantom", "audience: "+ordersAudience),
			gwRoute("mobile", "/api/orders", mobile.URL, "[bearer]", "token_format: jwt", "audience: "+ordersAudience),
		},
	}})
	e := p.env
	orders.trustGatehouse(e, ordersAudience)
	bound.trustGatehouse(e, ordersAudience)

	partnerA := p.cert(p.partner, certOpts{cn: "partner-a"})
	partnerB := p.cert(p.partner, certOpts{cn: "b", uris: []string{partnerBURI}})

	r := p.call(partnerA, "GET", "/api/b2b/orders/7")
	if r.StatusCode != 200 {
		t.Fatalf("partner certificate: %d %s", r.StatusCode, r.body)
	}
	st := orders.last(t)
	if st.err != nil || st.path != "/orders/7" {
		t.Fatalf("the API got %q: %v", st.path, st.err)
	}
	if c := st.claims; c.Subject != "partner-a" || c.ClientID != "partner-a" || c.Scope != "read" || c.Issuer != e.base ||
		!slices.Equal(c.Audience, []string{ordersAudience}) {
		t.Errorf("minted for the partner: sub=%q client_id=%q scope=%q iss=%q aud=%v", c.Subject, c.ClientID, c.Scope, c.Issuer, c.Audience)
	}
	if exp := st.claims.Expiry; exp.After(partnerA.Leaf.NotAfter) {
		t.Errorf("the minted token outlives the certificate")
	}
	// The URI SAN maps to partner-b, which lacks the scope the route requires.
	expectErr(t, "partner-b without the scope", p.call(partnerB, "GET", "/api/b2b/orders/7"), 403, "forbidden")

	refused := []struct {
		name string
		cert *tls.Certificate
	}{
		{"no certificate", nil},
		{"certificate from another CA", p.cert(p.other, certOpts{cn: "partner-a"})},
		{"expired certificate", p.cert(p.partner, certOpts{cn: "partner-a", notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})},
		{"certificate not yet valid", p.cert(p.partner, certOpts{cn: "partner-a", notBefore: time.Now().Add(time.Hour), notAfter: time.Now().Add(48 * time.Hour)})},
		{"server certificate", p.cert(p.partner, certOpts{cn: "partner-a", usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})},
		{"unknown subject", p.cert(p.partner, certOpts{cn: "stranger"})},
		{"self-signed with the partner's name", func() *tls.Certificate { ca := newCA(t, "partner-a"); return p.cert(ca, certOpts{cn: "partner-a"}) }()},
	}
	var bodies []string
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			r := p.sub(t).call(tc.cert, "GET", "/api/b2b/orders/7")
			expectErr(t, tc.name, r, 401, "unauthorized")
			bodies = append(bodies, string(r.body))
		})
	}
	for _, b := range bodies {
		if b != bodies[0] {
			t.Errorf("refusals are told apart in their bodies: %q", bodies)
			break
		}
	}

	t.Run("other routes work with and without a certificate", func(t *testing.T) {
		p := p.sub(t)
		tok := p.mobileLogin(mobileClientID, "read").access
		for _, cert := range []*tls.Certificate{nil, partnerA, p.cert(p.partner, certOpts{cn: "stranger"})} {
			if r := p.call(cert, "GET", "/api/orders/1", "Authorization", "Bearer "+tok); r.StatusCode != 200 {
				t.Errorf("bearer route with certificate %v: %d %s", cert != nil, r.StatusCode, r.body)
			}
		}
		// The bearer route does not take a certificate as a credential.
		expectErr(t, "certificate on a bearer route", p.call(partnerA, "GET", "/api/orders/1"), 401, "unauthorized")
	})

	t.Run("certificate-bound token", func(t *testing.T) {
		p := p.sub(t)
		tok := p.boundToken(partnerA, "read")
		r := p.call(partnerA, "GET", "/api/b2b/bound/9", "Authorization", "Bearer "+tok)
		if r.StatusCode != 200 {
			t.Fatalf("bound token with its certificate: %d %s", r.StatusCode, r.body)
		}
		st := bound.last(t)
		if st.err != nil || st.raw == tok || st.claims.Subject != partnerID || st.claims.ClientID != partnerID || st.claims.Scope != "read" {
			t.Fatalf("the API got sub=%q client_id=%q scope=%q err=%v", st.claims.Subject, st.claims.ClientID, st.claims.Scope, st.err)
		}

		expectInvalid := func(what string, r *response) {
			t.Helper()
			if expectErr(t, what, r, 401, "unauthorized") {
				if params, ok := bearerChallenge(r.Header.Get("WWW-Authenticate")); !ok || params["error"] != "invalid_token" {
					t.Errorf("%s: WWW-Authenticate %q", what, r.Header.Get("WWW-Authenticate"))
				}
			}
		}
		// partner-b's certificate is valid, but the token is bound to partner-a's.
		expectInvalid("token bound to another certificate", p.call(partnerB, "GET", "/api/b2b/bound/9", "Authorization", "Bearer "+tok))
		// A token bound to partner-b's certificate, presented with partner-a's.
		tokB := p.boundToken(partnerB, "read")
		expectInvalid("partner-b's token with partner-a's certificate", p.call(partnerA, "GET", "/api/b2b/bound/9", "Authorization", "Bearer "+tokB))
		// A valid token of another client, bound to nothing.
		expectInvalid("unbound token", p.call(partnerA, "GET", "/api/b2b/bound/9", "Authorization", "Bearer "+p.clientToken(opaqueJobID, opaqueJobSecret, "read")))
		expectErr(t, "bound token without a certificate", p.call(nil, "GET", "/api/b2b/bound/9", "Authorization", "Bearer "+tok), 401, "unauthorized")
		expectErr(t, "certificate without a token", p.call(partnerA, "GET", "/api/b2b/bound/9"), 401, "unauthorized")
		expectErr(t, "bound token with an expired copy of the certificate", p.call(
			p.cert(p.partner, certOpts{cn: "partner-a", notAfter: time.Now().Add(-time.Minute)}), "GET", "/api/b2b/bound/9", "Authorization", "Bearer "+tok), 401, "unauthorized")
	})
	e.assertNoSecretsAnywhere()
}

// TestServeListenerAsksForClientCertificates runs `gatehouse serve`'s own
// listener (Serve) with tls.client_ca_file: the handshake succeeds without
// a certificate (anonymous route 200, mtls route 401) and with one from
// another CA (it is judged by the route, not the handshake); the mtls route
// accepts the partner's certificate. The listener names the client CA in
// its certificate request.
func TestServeListenerAsksForClientCertificates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gatewayCA, partnerCA, otherCA := newCA(t, "gateway CA"), newCA(t, "partner CA"), newCA(t, "other CA")
	writeCertFiles(t, dir, "gateway", gatewayCA.serverCert(t))
	writeFile(t, dir, "clients.pem", partnerCA.pem)
	api := newUpstream(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + ln.Addr().String()
	keyPath := filepath.Join(dir, "jwt.pem")
	y := fmt.Sprintf(`
public_url: %q
tls: {cert_file: gateway.crt, key_file: gateway.key, client_ca_file: clients.pem}
internal_jwt: {key_file: jwt.pem}
routes:
  - {name: public, path: /public, upstream: %q, entry: [anonymous]}
  - name: b2b
    path: /b2b
    upstream: %q
    entry: [mtls]
    mtls: {clients: [{subject_cn: partner-a, client_id: partner-a}]}
    forward: internal_jwt
    audience: b2b-api
`, base, api.URL, api.URL)
	cfgPath := writeFile(t, dir, "gatehouse.yaml", []byte(y))
	cfg, _, err := config.Load(cfgPath, config.Options{Env: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv, err := server.New(cfg, server.Options{ConfigDir: dir, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	roots := x509.NewCertPool()
	roots.AddCert(gatewayCA.cert)
	var requested [][]byte
	get := func(t *testing.T, path string, cert *tls.Certificate) int {
		t.Helper()
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: roots,
			GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
				requested = cri.AcceptableCAs
				if cert == nil {
					return &tls.Certificate{}, nil
				}
				return cert, nil
			},
		}}}
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	partner := partnerCA.issue(t, certOpts{cn: "partner-a"})
	other := otherCA.issue(t, certOpts{cn: "partner-a"})
	for _, tc := range []struct {
		path string
		cert *tls.Certificate
		want int
	}{
		{"/public/x", nil, 200},
		{"/public/x", &other, 200},
		{"/public/x", &partner, 200},
		{"/b2b/x", nil, 401},
		{"/b2b/x", &other, 401},
		{"/b2b/x", &partner, 200},
	} {
		if got := get(t, tc.path, tc.cert); got != tc.want {
			t.Errorf("GET %s with certificate %v: %d, want %d", tc.path, tc.cert != nil, got, tc.want)
		}
	}
	if len(requested) != 1 || !slices.Equal(requested[0], partnerCA.cert.RawSubject) {
		t.Errorf("the certificate request names %d CAs, want the client CA", len(requested))
	}
	if _, err := os.Stat(keyPath); err != nil {
		t.Errorf("internal_jwt key: %v", err)
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Error("a private key reached the logs")
	}
}
