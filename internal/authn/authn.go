// Package authn turns a request's credentials into a Principal. Each entry
// (cookie, bearer, API key, mTLS, anonymous) proves the caller its own way
// and yields the same Principal, so that steps and forwarding never depend on
// how the caller came in.
package authn

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

// Principal is the authenticated caller of a route.
type Principal struct {
	Issuer   string
	Subject  string
	ClientID string
	Scopes   []string
	Claims   map[string]any
	// Expiry of the caller's token; zero when unknown (an unchecked cookie token).
	Expiry time.Time
	// Token is the caller's access token, redacted in logs and output.
	Token secret.Value
	// TokenHash is the hex SHA-256 of Token: the caller's identity for caches.
	TokenHash string
	// UpstreamJWT is a JWT the authorization server issued for this token
	// (Curity-style introspection with Accept: application/jwt), forwarded as
	// is by forward: phantom.
	UpstreamJWT secret.Value
	// Method names the entry that proved the caller: cookie, bearer, apikey,
	// mtls or anonymous. API key and certificate callers have no Token; their
	// TokenHash identifies the key or certificate and Expiry is the key's or
	// certificate's.
	Method string
	// Checked reports whether the token was verified (JWT) or introspected;
	// an unchecked cookie token only proves the cookie was sealed by Gatehouse.
	Checked bool
}

// Anonymous reports whether p is the anonymous caller.
func (p *Principal) Anonymous() bool { return p.Method == "anonymous" }

// Entry authenticates requests one way.
type Entry interface {
	// Name is the entry's config name ("cookie").
	Name() string
	// Present reports whether r carries this entry's kind of credential.
	Present(r *http.Request) bool
	// Authenticate proves r's caller or returns an *httperr.Error.
	Authenticate(r *http.Request) (*Principal, error)
}

// ErrUnauthorized is the gateway's 401.
var ErrUnauthorized = httperr.New(http.StatusUnauthorized, httperr.CodeUnauthorized, "Access denied due to missing or invalid credentials")

// ErrForbidden is the gateway's 403.
var ErrForbidden = httperr.New(http.StatusForbidden, httperr.CodeForbidden, "Access to this resource is forbidden")

// errNoCredential is the cause when a request carries no credential at all.
var errNoCredential = errors.New("authn: no credential presented")

// Authenticate runs the entry whose credential r carries. A request with
// credentials for several entries is refused: it is either a confused client
// or an attempt to have one credential checked and another used. Without any
// credential the anonymous entry (when listed) admits the request; an invalid
// credential never falls back to anonymous.
func Authenticate(r *http.Request, entries []Entry) (*Principal, error) {
	var chosen, anonymous Entry
	bearer := slices.ContainsFunc(entries, func(e Entry) bool { return e.Name() == "bearer" })
	for _, e := range entries {
		if e.Name() == "anonymous" {
			anonymous = e
			continue
		}
		if e.Present(r) {
			if chosen != nil {
				err := ErrUnauthorized.WithCause(errors.New("authn: request carries credentials of entries " + chosen.Name() + " and " + e.Name()))
				if bearer {
					// RFC 6750 section 3.1: more than one method of presenting a token.
					err.WWWAuthenticate = `Bearer realm="` + Realm + `", error="invalid_request", error_description="the request carries more than one credential"`
				}
				return nil, err
			}
			chosen = e
		}
	}
	if chosen != nil {
		p, err := chosen.Authenticate(r)
		if err != nil && bearer {
			return nil, withBearerChallenge(err)
		}
		return p, err
	}
	if anonymous != nil {
		return anonymous.Authenticate(r)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	err := ErrUnauthorized.WithCause(errors.New(errNoCredential.Error() + " (route accepts " + strings.Join(names, ", ") + ")"))
	if bearer {
		// RFC 6750 section 3.1: no error code when no credential was sent.
		err.WWWAuthenticate = `Bearer realm="` + Realm + `"`
	}
	return nil, err
}

// Realm is the realm of Gatehouse's WWW-Authenticate challenges.
const Realm = "gatehouse"

// withBearerChallenge gives a 401 without a challenge the plain Bearer one:
// on a route that accepts bearer tokens every 401 names the scheme (RFC 9110
// section 15.5.2, RFC 6750 section 3), whichever entry refused the request.
func withBearerChallenge(err error) error {
	var he *httperr.Error
	if !errors.As(err, &he) || he.Status != http.StatusUnauthorized || he.WWWAuthenticate != "" {
		return err
	}
	c := *he
	c.WWWAuthenticate = `Bearer realm="` + Realm + `"`
	return &c
}
