package mint

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/httperr"
)

// JWKS returns the JSON Web Key Set of m's keys, {"keys":[...]}: public keys
// only, each with kid (its RFC 7638 thumbprint), alg and use "sig", the
// signing key first.
func (m *Minter) JWKS() []byte { return slices.Clone(m.jwks) }

// ServeJWKS serves the JWKS at JWKSPath: GET and HEAD, cacheable for five
// minutes, with an ETag for conditional requests. Other methods get 405 and
// the JSON error body.
func (m *Minter) ServeJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httperr.Write(w, r, nil, httperr.ErrMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", m.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(m.jwks))
}

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}
