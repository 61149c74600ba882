package authn

import (
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/origin"
	"github.com/gatehouse-dev/gatehouse/internal/sessioncookie"
)

// Cookie is the OAuth Proxy entry: the access token from the sealed -at
// cookie, with the browser rules around it — a trusted Origin, the CSRF proof
// on every method but GET, HEAD and OPTIONS, and no duplicate cookie names.
type Cookie struct {
	Cookies *sessioncookie.Codec
	Origins *origin.Policy
	// Checker checks the access token from the cookie; nil forwards it
	// unchecked (the route has no token_format).
	Checker Checker
}

// Name implements Entry.
func (c *Cookie) Name() string { return "cookie" }

// Present implements Entry: the request carries the access-token cookie.
func (c *Cookie) Present(r *http.Request) bool {
	_, n := sessioncookie.Lookup(r.Header["Cookie"], c.Cookies.Name(sessioncookie.AT))
	return n > 0
}

// Authenticate implements Entry.
func (c *Cookie) Authenticate(r *http.Request) (*Principal, error) {
	if err := c.Origins.Check(r); err != nil {
		return nil, ErrUnauthorized.WithCause(err)
	}
	if c.Cookies.Duplicates(r) {
		return nil, ErrUnauthorized.WithCause(sessioncookie.ErrDuplicate)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		want, err := c.Cookies.Get(r, sessioncookie.CSRF)
		if err != nil {
			return nil, ErrUnauthorized.WithCause(err)
		}
		got := r.Header.Values(c.Cookies.CSRFHeader())
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), []byte(want)) != 1 {
			return nil, ErrUnauthorized.WithCause(errors.New("authn: CSRF header missing or not equal to the CSRF cookie"))
		}
	}
	at, err := c.Cookies.Get(r, sessioncookie.AT)
	if err != nil {
		return nil, ErrUnauthorized.WithCause(err)
	}
	checker := c.Checker
	if checker == nil {
		checker = Unchecked{}
	}
	p, err := checker.Check(r.Context(), at)
	if err != nil {
		var he *httperr.Error
		if errors.As(err, &he) && he.Status == http.StatusUnauthorized {
			// The SPA reacts to any 401 by refreshing; keep the proxy's code.
			return nil, ErrUnauthorized.WithCause(err)
		}
		return nil, err
	}
	p.Method = "cookie"
	return p, nil
}
