package devidp

import (
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// client is a validated Client; it implements op.Client and is never
// modified after New.
type client struct {
	id                     string
	secret                 string
	authMethod             oidc.AuthMethod
	publicKeys             []jose.JSONWebKey
	redirectURIs           []string
	postLogoutRedirectURIs []string
	scopes                 []string
	accessTokenType        op.AccessTokenType
	audience               []string // access token aud: the client id first
	accessTokenLifetime    time.Duration
	refreshTokenLifetime   time.Duration
	idTokenLifetime        time.Duration
	canIntrospect          bool
	grantTypes             []oidc.GrantType
	loginURL               string // prefix; the auth request id is appended
	exchangeTargets        []string
	certBound              bool
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                    { return c.id }
func (c *client) RedirectURIs() []string           { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.postLogoutRedirectURIs }
func (c *client) AuthMethod() oidc.AuthMethod      { return c.authMethod }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType         { return c.grantTypes }
func (c *client) LoginURL(authRequestID string) string { return c.loginURL + authRequestID }
func (c *client) AccessTokenType() op.AccessTokenType  { return c.accessTokenType }
func (c *client) IDTokenLifetime() time.Duration       { return c.idTokenLifetime }

// ApplicationType is web for confidential clients and user agent for public
// ones; either way redirect URIs are matched exactly.
func (c *client) ApplicationType() op.ApplicationType {
	if c.authMethod == oidc.AuthMethodNone {
		return op.ApplicationTypeUserAgent
	}
	return op.ApplicationTypeWeb
}

// DevMode lets registered http redirect URIs be used by public clients too
// (op otherwise allows http only for confidential ones). URIs are still
// matched exactly.
func (c *client) DevMode() bool { return true }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

func (c *client) IsScopeAllowed(scope string) bool { return slices.Contains(c.scopes, scope) }

// IDTokenUserinfoClaimsAssertion puts the profile and email claims into the
// ID token even though an access token is issued with it.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }

func (c *client) ClockSkew() time.Duration { return 0 }

func (c *client) hasGrant(g oidc.GrantType) bool { return slices.Contains(c.grantTypes, g) }
