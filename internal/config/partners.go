package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
	"github.com/gatehouse-dev/gatehouse/internal/sessioncookie"
)

// Validation of what partners, API users and services use: API keys, client
// certificates (the listener's client CA, the mtls entry, mTLS to
// upstreams) and Gatehouse's own client at the token endpoint (forward
// exchange and client_credentials).

// Request headers an API key may not travel in: credentials and headers
// Gatehouse itself reads, rebuilds or strips.
var reservedKeyHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "Host", "Connection", "Content-Length", "Content-Type",
	"Transfer-Encoding", "Te", "Trailer", "Upgrade", "Keep-Alive", "Forwarded", "X-Real-Ip", "Origin", "Referer",
}

func (v *validator) validateAPIKeys(k *APIKeys, agent *OAuthAgent) {
	const pre = "api_keys."
	canon := http.CanonicalHeaderKey(k.Header)
	switch {
	case !isToken(k.Header):
		v.fail(pre+"header", "%q is not a valid header name", k.Header)
	case slices.Contains(reservedKeyHeaders, canon) || strings.HasPrefix(canon, "X-Forwarded-") ||
		(agent != nil && strings.EqualFold(k.Header, sessioncookie.CSRFHeaderName(agent.Cookie.NamePrefix))):
		v.fail(pre+"header", "%q is a header Gatehouse reads or rewrites itself; use a header of its own such as X-API-Key", k.Header)
	}
	if k.Store != nil {
		v.validateStore(pre+"store.", *k.Store)
	} else if len(k.Keys) == 0 {
		v.warn(pre+"keys", "no keys and no store: every request of the apikey entry is refused")
	}
	ids := map[string]int{}
	hashes := map[string]int{}
	for i, key := range k.Keys {
		p := fmt.Sprintf("%skeys[%d].", pre, i)
		switch {
		case key.ID == "":
			v.fail(p+"id", "is required (the key's public id, from `gatehouse keys api-key`)")
		case !apikey.ValidID(key.ID):
			v.fail(p+"id", "%q is not a key id (%d base64url characters)", key.ID, apikey.IDLen)
		default:
			if j, ok := ids[key.ID]; ok {
				v.fail(p+"id", "%q is also the id of api_keys.keys[%d]", key.ID, j)
			}
			ids[key.ID] = i
		}
		if key.Hash == "" {
			v.fail(p+"hash", "is required (the key's hash, from `gatehouse keys api-key`; never the key itself)")
		} else if _, err := apikey.ParseHash(key.Hash); err != nil {
			if _, perr := apikey.Parse(key.Hash); perr == nil {
				v.fail(p+"hash", "holds an API key; store only its hash (`gatehouse keys api-key` prints both)")
			} else {
				v.fail(p+"hash", "must be %q followed by 64 lower-case hexadecimal characters", apikey.HashPrefix)
			}
		} else {
			if j, ok := hashes[key.Hash]; ok {
				v.fail(p+"hash", "is also the hash of api_keys.keys[%d]", j)
			}
			hashes[key.Hash] = i
		}
		switch {
		case key.ClientID == "":
			v.fail(p+"client_id", "is required (the client the key stands for)")
		case len(key.ClientID) > apikey.MaxClientIDLen || strings.ContainsAny(key.ClientID, "\x00\r\n"):
			v.fail(p+"client_id", "must be 1 to %d characters without control characters", apikey.MaxClientIDLen)
		}
		for j, s := range key.Scopes {
			if !validScope(s) {
				v.fail(fmt.Sprintf("%sscopes[%d]", p, j), "%q is not a valid scope", s)
			}
		}
		if key.ExpiresAt != "" {
			if _, err := time.Parse(time.RFC3339, key.ExpiresAt); err != nil {
				v.fail(p+"expires_at", "%q is not an RFC 3339 time like 2030-01-31T00:00:00Z", key.ExpiresAt)
			}
		}
	}
}

// ExpiryTime returns the key's expiry (zero when it does not expire). The
// value was validated.
func (k *APIKey) ExpiryTime() time.Time {
	t, _ := time.Parse(time.RFC3339, k.ExpiresAt)
	return t
}

func (v *validator) validateClientCA(t TLS) {
	if t.ClientCAFile == "" {
		return
	}
	if t.CertFile == "" {
		v.fail("tls.client_ca_file", "needs tls.cert_file and tls.key_file: client certificates are asked for on Gatehouse's own TLS listener")
	}
	if _, err := v.readCertPool(t.ClientCAFile); err != nil {
		v.fail("tls.client_ca_file", "%v", err)
	}
}

// readCertPool reads a PEM file of certificates.
func (v *validator) readCertPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(v.file(file))
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", err)
	}
	return ParseCertPool(b)
}

// ParseCertPool parses PEM data holding at least one certificate (and
// nothing but certificates).
func ParseCertPool(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("holds a %q PEM block; only CERTIFICATE blocks are allowed", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("holds no PEM certificate")
	}
	return pool, nil
}

func (v *validator) validateRouteMTLS(pre string, r *Route, seen map[string]bool) {
	m := r.MTLS
	if m == nil {
		if seen["mtls"] {
			v.fail(pre+"mtls", "is required with the mtls entry: clients (certificate to client identity) or bound_token")
		}
		return
	}
	if !seen["mtls"] {
		v.fail(pre+"mtls", "is only used with the mtls entry")
	}
	if m.BoundToken && seen["bearer"] {
		v.fail(pre+"mtls.bound_token", "cannot be combined with the bearer entry on one route (both read the Authorization header); publish them as two routes")
	}
	if !m.BoundToken && len(m.Clients) == 0 {
		v.fail(pre+"mtls.clients", "at least one client is required (or bound_token: true): a verified certificate must map to a client identity")
	}
	matchers := map[string]int{}
	for i, cl := range m.Clients {
		p := fmt.Sprintf("%smtls.clients[%d].", pre, i)
		n := 0
		for _, s := range []string{cl.SubjectCN, cl.SANDNS, cl.SANURI} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			v.fail(strings.TrimSuffix(p, "."), "set exactly one of subject_cn, san_dns and san_uri")
		}
		key := "cn:" + cl.SubjectCN + "|dns:" + strings.ToLower(cl.SANDNS) + "|uri:" + cl.SANURI
		if j, ok := matchers[key]; ok && n == 1 {
			v.fail(strings.TrimSuffix(p, "."), "matches the same certificates as %smtls.clients[%d]", pre, j)
		}
		matchers[key] = i
		if cl.SANURI != "" {
			if u, err := url.Parse(cl.SANURI); err != nil || u.Scheme == "" {
				v.fail(p+"san_uri", "%q is not an absolute URI", cl.SANURI)
			}
		}
		if cl.ClientID == "" {
			v.fail(p+"client_id", "is required (the identity the certificate stands for)")
		}
		if m.BoundToken && len(cl.Scopes) > 0 {
			v.fail(p+"scopes", "has no effect with bound_token: the caller's scopes are the bound token's")
		}
		for j, s := range cl.Scopes {
			if !validScope(s) {
				v.fail(fmt.Sprintf("%sscopes[%d]", p, j), "%q is not a valid scope", s)
			}
		}
	}
}

func (v *validator) validateUpstreamTLS(pre string, r *Route) {
	t := r.UpstreamTLS
	if t == nil {
		return
	}
	p := pre + "upstream_tls"
	if u, err := url.Parse(r.Upstream); err == nil && u.Scheme != "https" {
		v.fail(p, "needs an https upstream")
	}
	if t.CAFile != "" {
		if _, err := v.readCertPool(t.CAFile); err != nil {
			v.fail(p+".ca_file", "%v", err)
		}
	}
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		v.fail(p, "set both cert_file and key_file (Gatehouse's client certificate), or neither")
	case t.CertFile != "":
		if _, err := tls.LoadX509KeyPair(v.file(t.CertFile), v.file(t.KeyFile)); err != nil {
			v.fail(p+".cert_file", "cannot load the certificate and key: %v", err)
		}
	}
	if t.CAFile == "" && t.CertFile == "" && t.ServerName == "" {
		v.fail(p, "is empty; set ca_file, cert_file and key_file, or server_name")
	}
	if t.ServerName != "" && !isToken(t.ServerName) {
		v.fail(p+".server_name", "%q is not a host name", t.ServerName)
	}
}

// validateTokenTarget checks the target of a token Gatehouse requests for an
// upstream (exchange, client credentials).
func (v *validator) validateTokenTarget(pre, audience, resource string, scopes []string, targetRequired bool) {
	if targetRequired && audience == "" && resource == "" {
		v.fail(pre, "set audience or resource: the exchanged token is for that upstream only")
	}
	if audience != "" && strings.ContainsAny(audience, " \t\r\n") {
		v.fail(pre+".audience", "%q must not contain spaces", audience)
	}
	if resource != "" {
		// RFC 8707 section 2: an absolute URI without a fragment.
		if u, err := url.Parse(resource); err != nil || u.Scheme == "" || u.Fragment != "" || strings.Contains(resource, "#") {
			v.fail(pre+".resource", "%q must be an absolute URI without a fragment (RFC 8707)", resource)
		}
	}
	for i, s := range scopes {
		if !validScope(s) {
			v.fail(fmt.Sprintf("%s.scopes[%d]", pre, i), "%q is not a valid scope", s)
		}
	}
}
