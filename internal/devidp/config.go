package devidp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// ErrInvalidConfig is wrapped by every error New returns for a bad Config.
var ErrInvalidConfig = errors.New("devidp: invalid config")

// OpenID scopes every client may request.
var openIDScopes = []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeOfflineAccess}

// reservedClaims cannot be set through User.Claims: they are registered JWT
// or OpenID claims the provider sets itself.
var reservedClaims = []string{
	"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "acr", "amr", "azp",
	"at_hash", "c_hash", "sid", "act", "cnf", "client_id", "scope", "scopes", "active", "token_type",
	"username", "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
	"profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at",
	"email", "email_verified", "phone_number", "phone_number_verified", "address",
}

// validated is a checked Config in the shapes the provider works with.
type validated struct {
	issuer          string
	insecure        bool
	users           map[string]*User // by ID
	usersByName     map[string]*User
	clients         map[string]*client
	rotate          bool
	reuseDetection  bool
	scopesSupported []string
	claimsSupported []string
}

// validate checks cfg and reports every problem, each with its field path.
func validate(cfg Config) (*validated, error) {
	var errs []error
	fail := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}

	v := &validated{
		users:          make(map[string]*User),
		usersByName:    make(map[string]*User),
		clients:        make(map[string]*client),
		rotate:         cfg.RotateRefreshTokens,
		reuseDetection: cfg.RefreshReuseDetection,
	}

	issuer, insecure, err := checkIssuer(cfg.Issuer)
	if err != nil {
		fail("Issuer", "%v", err)
	}
	v.issuer, v.insecure = issuer, insecure
	if cfg.RefreshReuseDetection && !cfg.RotateRefreshTokens {
		fail("RefreshReuseDetection", "requires RotateRefreshTokens")
	}

	claimNames := map[string]bool{}
	for i, u := range cfg.Users {
		path := fmt.Sprintf("Users[%d]", i)
		switch {
		case u.ID == "":
			fail(path+".ID", "must not be empty")
		case strings.Contains(u.ID, ":"):
			fail(path+".ID", "must not contain ':'")
		case v.users[u.ID] != nil:
			fail(path+".ID", "duplicate %q", u.ID)
		}
		switch {
		case u.Username == "":
			fail(path+".Username", "must not be empty")
		case v.usersByName[u.Username] != nil:
			fail(path+".Username", "duplicate %q", u.Username)
		}
		if u.Password == "" {
			fail(path+".Password", "must not be empty")
		}
		for name := range u.Claims {
			if slices.Contains(reservedClaims, name) {
				fail(path+".Claims", "%q is set by the provider and cannot be overridden", name)
			}
			claimNames[name] = true
		}
		if _, err := json.Marshal(u.Claims); err != nil {
			fail(path+".Claims", "not representable as JSON: %v", err)
		}
		u.Claims = cloneClaims(u.Claims)
		uc := u
		if u.ID != "" && v.users[u.ID] == nil {
			v.users[u.ID] = &uc
		}
		if u.Username != "" && v.usersByName[u.Username] == nil {
			v.usersByName[u.Username] = &uc
		}
	}

	extraScopes := map[string]bool{}
	for i, c := range cfg.Clients {
		path := fmt.Sprintf("Clients[%d]", i)
		cl, cerrs := checkClient(path, c, issuer)
		errs = append(errs, cerrs...)
		if c.ID != "" {
			if v.clients[c.ID] != nil {
				fail(path+".ID", "duplicate %q", c.ID)
			} else {
				v.clients[c.ID] = cl
			}
		}
		for _, s := range c.Scopes {
			extraScopes[s] = true
		}
	}

	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}

	v.scopesSupported = append(slices.Clone(openIDScopes), sortedKeys(extraScopes)...)
	v.claimsSupported = append([]string{
		"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "azp", "at_hash", "c_hash",
		"client_id", "scope", "jti", "name", "given_name", "family_name", "preferred_username",
		"email", "email_verified",
	}, sortedKeys(claimNames)...)
	return v, nil
}

func checkIssuer(raw string) (issuer string, insecure bool, err error) {
	if raw == "" {
		return "", false, errors.New("must not be empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, fmt.Errorf("not a URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", false, fmt.Errorf("scheme must be http or https, not %q", u.Scheme)
	case u.Host == "":
		return "", false, errors.New("must have a host")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", false, errors.New("must not have user info, query or fragment")
	case u.Path != "" && u.Path != "/":
		return "", false, errors.New("must not have a path: the provider serves its endpoints at the root")
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		return "", false, fmt.Errorf("http is allowed only for loopback hosts, not %q", u.Hostname())
	}
	return u.Scheme + "://" + u.Host, u.Scheme == "http", nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkClient(path string, c Client, issuer string) (*client, []error) {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, field, fmt.Sprintf(format, args...)))
	}
	switch {
	case c.ID == "":
		fail("ID", "must not be empty")
	case strings.Contains(c.ID, ":"):
		fail("ID", "must not contain ':'")
	}

	cl := &client{
		id:                     c.ID,
		secret:                 c.Secret,
		redirectURIs:           slices.Clone(c.RedirectURIs),
		postLogoutRedirectURIs: slices.Clone(c.PostLogoutRedirectURIs),
		scopes:                 slices.Clone(c.Scopes),
		accessTokenType:        op.AccessTokenTypeJWT,
		accessTokenLifetime:    orDefault(c.AccessTokenLifetime, DefaultAccessTokenLifetime),
		refreshTokenLifetime:   orDefault(c.RefreshTokenLifetime, DefaultRefreshTokenLifetime),
		idTokenLifetime:        orDefault(c.IDTokenLifetime, DefaultIDTokenLifetime),
		canIntrospect:          c.CanIntrospect,
		loginURL:               issuer + PathLogin + "?authRequestID=",
		exchangeTargets:        slices.Clone(c.TokenExchangeTargets),
		certBound:              c.CertificateBoundAccessTokens,
	}

	switch c.AuthMethod {
	case "", AuthMethodBasic:
		cl.authMethod = oidc.AuthMethodBasic
	case AuthMethodPost:
		cl.authMethod = oidc.AuthMethodPost
	case AuthMethodPrivateKeyJWT:
		cl.authMethod = oidc.AuthMethodPrivateKeyJWT
	case AuthMethodNone:
		cl.authMethod = oidc.AuthMethodNone
	default:
		fail("AuthMethod", "unknown %q (want %s, %s, %s or %s)", c.AuthMethod,
			AuthMethodBasic, AuthMethodPost, AuthMethodPrivateKeyJWT, AuthMethodNone)
	}
	usesSecret := cl.authMethod == oidc.AuthMethodBasic || cl.authMethod == oidc.AuthMethodPost
	switch {
	case usesSecret && c.Secret == "":
		fail("Secret", "required for %s", cl.authMethod)
	case !usesSecret && c.Secret != "" && cl.authMethod != "":
		fail("Secret", "must be empty for %s", cl.authMethod)
	}
	switch {
	case cl.authMethod == oidc.AuthMethodPrivateKeyJWT && len(c.PublicKeys) == 0:
		fail("PublicKeys", "required for %s", AuthMethodPrivateKeyJWT)
	case cl.authMethod != oidc.AuthMethodPrivateKeyJWT && len(c.PublicKeys) > 0:
		fail("PublicKeys", "only used by %s", AuthMethodPrivateKeyJWT)
	}
	kids := map[string]bool{}
	for i, k := range c.PublicKeys {
		switch {
		case !k.Valid():
			fail(fmt.Sprintf("PublicKeys[%d]", i), "not a valid key")
		case !k.IsPublic():
			fail(fmt.Sprintf("PublicKeys[%d]", i), "must be a public key")
		case kids[k.KeyID]:
			fail(fmt.Sprintf("PublicKeys[%d]", i), "duplicate kid %q", k.KeyID)
		case k.KeyID == "" && len(c.PublicKeys) > 1:
			fail(fmt.Sprintf("PublicKeys[%d]", i), "needs a kid when the client has several keys")
		}
		kids[k.KeyID] = true
		cl.publicKeys = append(cl.publicKeys, k)
	}

	for i, u := range c.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			fail(fmt.Sprintf("RedirectURIs[%d]", i), "%v", err)
		}
	}
	for i, u := range c.PostLogoutRedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			fail(fmt.Sprintf("PostLogoutRedirectURIs[%d]", i), "%v", err)
		}
	}
	for i, s := range c.Scopes {
		switch {
		case s == "" || strings.ContainsAny(s, " \t\r\n\"\\"):
			fail(fmt.Sprintf("Scopes[%d]", i), "invalid scope %q", s)
		case slices.Contains(openIDScopes, s) || s == oidc.ScopePhone || s == oidc.ScopeAddress:
			fail(fmt.Sprintf("Scopes[%d]", i), "%q is an OpenID scope, always allowed", s)
		}
	}

	switch c.AccessTokenFormat {
	case "", AccessTokenJWT:
		cl.accessTokenType = op.AccessTokenTypeJWT
	case AccessTokenOpaque:
		cl.accessTokenType = op.AccessTokenTypeBearer
	default:
		fail("AccessTokenFormat", "unknown %q (want %s or %s)", c.AccessTokenFormat, AccessTokenJWT, AccessTokenOpaque)
	}
	cl.audience = []string{c.ID}
	for i, a := range c.AccessTokenAudience {
		if a == "" {
			fail(fmt.Sprintf("AccessTokenAudience[%d]", i), "must not be empty")
			continue
		}
		if !slices.Contains(cl.audience, a) {
			cl.audience = append(cl.audience, a)
		}
	}
	for name, d := range map[string]time.Duration{
		"AccessTokenLifetime":  c.AccessTokenLifetime,
		"RefreshTokenLifetime": c.RefreshTokenLifetime,
		"IDTokenLifetime":      c.IDTokenLifetime,
	} {
		if d < 0 {
			fail(name, "must not be negative")
		}
	}

	grants := c.GrantTypes
	if grants == nil && len(c.RedirectURIs) > 0 {
		grants = []string{GrantAuthorizationCode, GrantRefreshToken}
	}
	for i, g := range grants {
		switch g {
		case GrantAuthorizationCode, GrantRefreshToken:
		case GrantClientCredentials, GrantTokenExchange:
			if cl.authMethod == oidc.AuthMethodNone {
				fail(fmt.Sprintf("GrantTypes[%d]", i), "%s needs a confidential client", g)
			}
		default:
			fail(fmt.Sprintf("GrantTypes[%d]", i), "unsupported %q (want %s, %s, %s or %s)", g,
				GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantTokenExchange)
		}
		if !slices.Contains(cl.grantTypes, oidc.GrantType(g)) {
			cl.grantTypes = append(cl.grantTypes, oidc.GrantType(g))
		}
	}
	if slices.Contains(grants, GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		fail("RedirectURIs", "required for %s", GrantAuthorizationCode)
	}
	if slices.Contains(grants, GrantRefreshToken) && !slices.Contains(grants, GrantAuthorizationCode) {
		fail("GrantTypes", "%s needs %s", GrantRefreshToken, GrantAuthorizationCode)
	}
	for i, t := range c.TokenExchangeTargets {
		if t == "" || strings.ContainsAny(t, " \t\r\n") {
			fail(fmt.Sprintf("TokenExchangeTargets[%d]", i), "invalid target %q", t)
		}
	}
	if len(c.TokenExchangeTargets) > 0 && !slices.Contains(grants, GrantTokenExchange) {
		fail("TokenExchangeTargets", "needs the %s grant", GrantTokenExchange)
	}
	if c.CertificateBoundAccessTokens && cl.authMethod == oidc.AuthMethodNone {
		fail("CertificateBoundAccessTokens", "needs a confidential client")
	}
	return cl, errs
}

func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("not a URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme must be http or https, not %q", u.Scheme)
	case u.Host == "":
		return errors.New("must be absolute")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("must not have a fragment")
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func cloneClaims(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
