// Package authz decides whether a route's caller may pass: required scopes
// (all of, any of), roles from a configurable claim (all of, any of) and
// claims equal to configured values. It only reads the Principal, so it works
// the same for every entry.
package authz

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
)

// Rules are a route's requirements.
type Rules struct {
	Scopes, AnyScopes []string
	Roles, AnyRoles   []string
	// RolesClaim names the claim holding roles; dots walk into objects
	// (realm_access.roles). Default "roles".
	RolesClaim string
	// Claims must equal the value (or, for an array claim, contain it).
	Claims map[string]string
}

// Policy checks Rules.
type Policy struct {
	r          Rules
	rolesPath  []string
	scopeChall string
}

// New returns a Policy for r.
func New(r Rules) *Policy {
	if r.RolesClaim == "" {
		r.RolesClaim = "roles"
	}
	p := &Policy{r: r, rolesPath: strings.Split(r.RolesClaim, ".")}
	if want := append(slices.Clone(r.Scopes), r.AnyScopes...); len(want) > 0 {
		p.scopeChall = fmt.Sprintf(`, scope=%q`, strings.Join(want, " "))
	}
	return p
}

// ErrForbidden is the gateway's 403 for a caller who lacks what a route requires.
var ErrForbidden = httperr.New(http.StatusForbidden, httperr.CodeForbidden, "The access token does not grant access to this resource")

// Check returns nil when pr satisfies every rule, else a 403 whose
// WWW-Authenticate says insufficient_scope (RFC 6750 section 3.1).
func (p *Policy) Check(pr *authn.Principal) error {
	if pr == nil || pr.Anonymous() {
		return authn.ErrUnauthorized.WithCause(fmt.Errorf("authz: the route requires an authenticated caller"))
	}
	if missing := missingAll(pr.Scopes, p.r.Scopes); len(missing) > 0 {
		return p.deny(fmt.Errorf("authz: missing scopes %v", missing))
	}
	if len(p.r.AnyScopes) > 0 && !hasAny(pr.Scopes, p.r.AnyScopes) {
		return p.deny(fmt.Errorf("authz: none of the scopes %v", p.r.AnyScopes))
	}
	if len(p.r.Roles) > 0 || len(p.r.AnyRoles) > 0 {
		roles := stringsAt(pr.Claims, p.rolesPath)
		if missing := missingAll(roles, p.r.Roles); len(missing) > 0 {
			return p.deny(fmt.Errorf("authz: missing roles %v in claim %s", missing, p.r.RolesClaim))
		}
		if len(p.r.AnyRoles) > 0 && !hasAny(roles, p.r.AnyRoles) {
			return p.deny(fmt.Errorf("authz: none of the roles %v in claim %s", p.r.AnyRoles, p.r.RolesClaim))
		}
	}
	for name, want := range p.r.Claims {
		if !slices.Contains(stringsAt(pr.Claims, strings.Split(name, ".")), want) {
			return p.deny(fmt.Errorf("authz: claim %s does not equal the required value", name))
		}
	}
	return nil
}

func (p *Policy) deny(cause error) error {
	e := ErrForbidden.WithCause(cause)
	e.WWWAuthenticate = `Bearer realm="` + authn.Realm + `", error="insufficient_scope"` + p.scopeChall
	return e
}

func missingAll(have, want []string) []string {
	var missing []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

func hasAny(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// stringsAt returns the claim at path as strings: a string (split on spaces
// for role lists written as one string), the elements of an array, or a
// number or boolean in its JSON form.
func stringsAt(claims map[string]any, path []string) []string {
	var v any = claims
	for _, seg := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[seg]
	}
	switch x := v.(type) {
	case string:
		return strings.Fields(x)
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := scalar(e); ok {
				out = append(out, s)
			}
		}
		return out
	}
	if s, ok := scalar(v); ok {
		return []string{s}
	}
	return nil
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}
