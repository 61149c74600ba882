package authn

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/httperr"
)

// MTLSClient maps certificates to a client identity by exactly one of a
// subject common name, a DNS SAN or a URI SAN.
type MTLSClient struct {
	SubjectCN, SANDNS, SANURI string
	ClientID                  string
	Scopes                    []string
}

func (c *MTLSClient) matches(cert *x509.Certificate) bool {
	switch {
	case c.SubjectCN != "":
		return cert.Subject.CommonName == c.SubjectCN
	case c.SANDNS != "":
		return slices.ContainsFunc(cert.DNSNames, func(n string) bool { return strings.EqualFold(n, c.SANDNS) })
	case c.SANURI != "":
		return slices.ContainsFunc(cert.URIs, func(u *url.URL) bool { return u.String() == c.SANURI })
	}
	return false
}

// MTLS is the entry of partners calling over mutual TLS (seed 003's B2B
// entry point). The listener asks for a client certificate without
// verifying it (so that routes without this entry work for clients that
// have none); this entry verifies the chain against the client CAs, for
// client authentication, at the injected clock's time, and maps the
// certificate to a client.
//
// With Bound set, the caller must also present an access token bound to the
// certificate (RFC 8705 section 3: the token's cnf claim holds x5t#S256, the
// SHA-256 thumbprint of the certificate), checked by Bound; the caller is
// then the token's. Clients, when given, further limit which certificates
// may present tokens.
type MTLS struct {
	Roots   *x509.CertPool
	Clients []MTLSClient
	Bound   Checker
	Now     func() time.Time
	// Realm of the WWW-Authenticate challenge in bound-token mode.
	Realm string
}

// Name implements Entry.
func (m *MTLS) Name() string { return "mtls" }

// Present implements Entry: the TLS handshake carried a client certificate.
func (m *MTLS) Present(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.PeerCertificates) > 0
}

// Thumbprint is the RFC 8705 x5t#S256 of a certificate: the base64url
// SHA-256 of its DER encoding.
func Thumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// errCertificate: the client certificate is not one the route accepts.
var errCertificate = errors.New("authn: client certificate refused")

// Authenticate implements Entry.
func (m *MTLS) Authenticate(r *http.Request) (*Principal, error) {
	if !m.Present(r) {
		return nil, ErrUnauthorized.WithCause(fmt.Errorf("%w: none presented", errCertificate))
	}
	certs := r.TLS.PeerCertificates
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         m.Roots,
		Intermediates: inter,
		CurrentTime:   now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, ErrUnauthorized.WithCause(fmt.Errorf("%w: %w", errCertificate, err))
	}
	var client *MTLSClient
	for i := range m.Clients {
		if m.Clients[i].matches(leaf) {
			client = &m.Clients[i]
			break
		}
	}
	if client == nil && (m.Bound == nil || len(m.Clients) > 0) {
		return nil, ErrUnauthorized.WithCause(fmt.Errorf("%w: the certificate of %q maps to no configured client", errCertificate, leaf.Subject.CommonName))
	}
	if m.Bound != nil {
		return m.boundToken(r)
	}
	return &Principal{
		Subject:   client.ClientID,
		ClientID:  client.ClientID,
		Scopes:    slices.Clone(client.Scopes),
		Expiry:    leaf.NotAfter,
		TokenHash: "x5t#S256:" + Thumbprint(leaf),
		Method:    "mtls",
		Checked:   true,
	}, nil
}

// errNotBound: the token is not bound to the presented certificate.
var errNotBound = errors.New("authn: the access token is not bound to the client certificate")

// boundToken checks the Authorization header's token and its binding to the
// request's (verified) certificate.
func (m *MTLS) boundToken(r *http.Request) (*Principal, error) {
	vals := r.Header["Authorization"]
	if len(vals) == 0 {
		return nil, m.challenge(ErrUnauthorized.WithCause(errors.New("authn: mtls route needs a certificate-bound access token")), "", "")
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	token = strings.TrimLeft(token, " ")
	if len(vals) != 1 || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return nil, m.challenge(ErrInvalidToken, "invalid_request", "the Authorization header must be Bearer <token>")
	}
	p, err := m.Bound.Check(r.Context(), token)
	if err != nil {
		var he *httperr.Error
		if errors.As(err, &he) && he.Status == http.StatusUnauthorized {
			return nil, m.challenge(he, "invalid_token", "the access token is invalid or expired")
		}
		return nil, err
	}
	if _, ok := p.Claims["cnf"]; !ok {
		return nil, m.challenge(ErrInvalidToken.WithCause(errNotBound), "invalid_token", "the access token is not bound to the client certificate")
	}
	if err := checkBinding(r, p); err != nil {
		return nil, m.challenge(ErrInvalidToken.WithCause(err), "invalid_token", "the access token is not bound to the client certificate")
	}
	p.Method = "mtls"
	return p, nil
}

// checkBinding verifies the proof of possession a token demands: a token
// with cnf is only good with what cnf names. Gatehouse verifies RFC 8705
// certificate binding (x5t#S256 equal to the thumbprint of the TLS client
// certificate of the request); any other confirmation method (DPoP's jkt)
// cannot be proven and is refused. A token without cnf needs nothing.
func checkBinding(r *http.Request, p *Principal) error {
	raw, ok := p.Claims["cnf"]
	if !ok {
		return nil
	}
	cnf, _ := raw.(map[string]any)
	bound, _ := cnf["x5t#S256"].(string)
	if bound == "" {
		return errors.New("authn: the access token demands a proof of possession Gatehouse does not support")
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no client certificate", errNotBound)
	}
	// The certificate itself is not judged here (chain, expiry): binding
	// proves the caller holds the key the authorization server bound the
	// token to, over this connection.
	if subtle.ConstantTimeCompare([]byte(bound), []byte(Thumbprint(r.TLS.PeerCertificates[0]))) != 1 {
		return errNotBound
	}
	return nil
}

func (m *MTLS) challenge(e *httperr.Error, code, desc string) *httperr.Error {
	c := *e
	if code == "" {
		c.WWWAuthenticate = fmt.Sprintf(`Bearer realm=%q`, m.Realm)
	} else {
		c.WWWAuthenticate = fmt.Sprintf(`Bearer realm=%q, error=%q, error_description=%q`, m.Realm, code, desc)
	}
	return &c
}
