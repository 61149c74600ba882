// Package authn turns a request's credentials into a Principal. Each entry
// (cookie now; bearer, API key and mTLS later) proves the caller its own way
// and yields the same Principal, so that steps and forwarding never depend on
// how the caller came in.
package authn

import (
	"context"
	"errors"
	"net/http"
	"strings"

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
	// Token is the caller's access token, redacted in logs and output.
	Token secret.Value
	// Method names the entry that proved the caller ("cookie").
	Method string
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the Principal carried by ctx, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}

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

// Authenticate runs the first of entries whose credential r carries. A
// request with credentials for several entries is refused: it is either a
// confused client or an attempt to have one credential checked and another used.
func Authenticate(r *http.Request, entries []Entry) (*Principal, error) {
	var chosen Entry
	for _, e := range entries {
		if e.Present(r) {
			if chosen != nil {
				return nil, ErrUnauthorized.WithCause(errors.New("authn: request carries credentials of entries " + chosen.Name() + " and " + e.Name()))
			}
			chosen = e
		}
	}
	if chosen == nil {
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name()
		}
		return nil, ErrUnauthorized.WithCause(errors.New(errNoCredential.Error() + " (route accepts " + strings.Join(names, ", ") + ")"))
	}
	return chosen.Authenticate(r)
}
