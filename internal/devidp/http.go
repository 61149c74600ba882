package devidp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
)

// certKey carries the x5t#S256 of the TLS client certificate of a request.
type certKey struct{}

func certThumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// clientCertificate returns the x5t#S256 of the request's TLS client
// certificate, or "".
func clientCertificate(ctx context.Context) string {
	s, _ := ctx.Value(certKey{}).(string)
	return s
}

// maxRequestBody bounds every request body the provider reads.
const maxRequestBody = 1 << 20

// instrument counts requests per endpoint, bounds request bodies, refuses
// grant types the provider does not serve before op routes them, and adds
// the WWW-Authenticate headers op leaves out.
func (p *Provider) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			r = r.WithContext(context.WithValue(r.Context(), certKey{}, certThumbprint(r.TLS.PeerCertificates[0].Raw)))
		}
		c := &p.stats
		switch r.URL.Path {
		case PathDiscovery:
			c.discovery.Add(1)
		case PathKeys:
			c.jwks.Add(1)
		case PathAuthorize:
			c.authorize.Add(1)
		case PathEndSession:
			c.endSession.Add(1)
		case PathUserinfo:
			c.userinfo.Add(1)
			w = &challengeWriter{ResponseWriter: w, challenge: `Bearer error="invalid_token"`}
		case PathIntrospect:
			c.introspection.Add(1)
			w = &challengeWriter{ResponseWriter: w, challenge: `Basic realm="devidp"`}
		case PathRevoke:
			c.revocation.Add(1)
			w = &challengeWriter{ResponseWriter: w, challenge: `Basic realm="devidp"`}
		case PathToken:
			w = &challengeWriter{ResponseWriter: w, challenge: `Basic realm="devidp"`}
			if err := r.ParseForm(); err != nil {
				c.tokenOther.Add(1)
				writeOAuthError(w, http.StatusBadRequest, "invalid_request", "cannot parse form")
				return
			}
			switch gt := r.PostForm.Get("grant_type"); gt {
			case GrantAuthorizationCode:
				c.tokenCode.Add(1)
			case GrantRefreshToken:
				c.tokenRefresh.Add(1)
			case GrantClientCredentials:
				c.tokenClientCredentials.Add(1)
			case GrantTokenExchange:
				c.tokenExchange.Add(1)
			case "":
				c.tokenOther.Add(1)
				writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant_type missing")
				return
			default:
				c.tokenOther.Add(1)
				writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type not supported")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// challengeWriter adds a WWW-Authenticate header to a 401 that has none.
type challengeWriter struct {
	http.ResponseWriter
	challenge string
}

func (w *challengeWriter) WriteHeader(status int) {
	if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", w.challenge)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *challengeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeOAuthError writes an RFC 6749 5.2 error response.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, description})
}
