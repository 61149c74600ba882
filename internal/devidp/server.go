package devidp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// server is op's LegacyServer with the endpoints changed where the provider
// behaves differently from op's defaults. op still parses every request,
// validates redirect URIs, verifies client assertions and id_token_hints,
// builds ID tokens and runs end session.
type server struct {
	*op.LegacyServer
	p *Provider
}

// clientAssertionAlgs are the client assertion algorithms op verifies.
var clientAssertionAlgs = []string{string(jose.RS256), string(jose.PS256), string(jose.ES256)}

// discoveryDocument adds RFC 9207's flag, which op's type lacks.
type discoveryDocument struct {
	*oidc.DiscoveryConfiguration
	AuthorizationResponseISSParameterSupported bool `json:"authorization_response_iss_parameter_supported,omitempty"`
}

// Discovery advertises what the provider does, not op's defaults (which
// list implicit flows, device authorization, the JWT bearer grant and
// phone/address scopes).
func (s *server) Discovery(ctx context.Context, r *op.Request[struct{}]) (*op.Response, error) {
	resp, err := s.LegacyServer.Discovery(ctx, r)
	if err != nil {
		return nil, err
	}
	cfg, ok := resp.Data.(*oidc.DiscoveryConfiguration)
	if !ok {
		return nil, oidc.ErrServerError().WithDescription("unexpected discovery document")
	}
	cfg.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	cfg.ResponseModesSupported = []string{
		string(oidc.ResponseModeQuery), string(oidc.ResponseModeFragment), string(oidc.ResponseModeFormPost),
	}
	cfg.GrantTypesSupported = []oidc.GrantType{
		oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange,
	}
	cfg.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{
		oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodPrivateKeyJWT, oidc.AuthMethodNone,
	}
	cfg.TokenEndpointAuthSigningAlgValuesSupported = clientAssertionAlgs
	cfg.IntrospectionEndpointAuthMethodsSupported = []oidc.AuthMethod{
		oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodPrivateKeyJWT,
	}
	cfg.IntrospectionEndpointAuthSigningAlgValuesSupported = clientAssertionAlgs
	cfg.RevocationEndpointAuthMethodsSupported = cfg.TokenEndpointAuthMethodsSupported
	cfg.RevocationEndpointAuthSigningAlgValuesSupported = clientAssertionAlgs
	cfg.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	cfg.RequestParameterSupported = false
	cfg.RequestObjectSigningAlgValuesSupported = nil
	cfg.RequestURIParameterSupported = false
	cfg.ClaimsParameterSupported = false
	cfg.UILocalesSupported = nil
	cfg.DeviceAuthorizationEndpoint = ""
	cfg.CheckSessionIframe = ""
	return op.NewResponse(&discoveryDocument{
		DiscoveryConfiguration:                     cfg,
		AuthorizationResponseISSParameterSupported: s.p.issParam,
	}), nil
}

// Authorize adds the provider's rules to op's validation: PKCE S256 only
// (and required for public clients), no prompt=none (there is no session to
// reuse), no phone/address scopes (the provider has no such data).
func (s *server) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	c, ok := r.Client.(*client)
	if !ok {
		return nil, oidc.ErrServerError()
	}
	req := r.Data
	if !c.hasGrant(oidc.GrantTypeCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("authorization_code is not allowed for this client")
	}
	switch req.ResponseMode {
	case "", oidc.ResponseModeQuery, oidc.ResponseModeFragment, oidc.ResponseModeFormPost:
	default:
		return nil, oidc.ErrInvalidRequest().WithDescription("unsupported response_mode")
	}
	switch {
	case req.CodeChallenge == "" && c.authMethod == oidc.AuthMethodNone:
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE is required for public clients: send code_challenge with code_challenge_method=S256")
	case req.CodeChallenge == "" && req.CodeChallengeMethod != "":
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method without code_challenge")
	case req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256:
		return nil, oidc.ErrInvalidRequest().WithDescription("only code_challenge_method=S256 is supported")
	}
	if slices.Contains(req.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired().WithDescription("the provider keeps no login session")
	}
	req.Scopes = slices.DeleteFunc(req.Scopes, func(s string) bool {
		return s == oidc.ScopePhone || s == oidc.ScopeAddress
	})
	return s.LegacyServer.Authorize(ctx, r)
}

// VerifyClient authenticates the client at the token and revocation
// endpoints with the method it is registered for.
func (s *server) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	return s.p.authenticateClient(ctx, r.Header, r.Data)
}

// CodeExchange is op's, except that the PKCE verifier is always checked
// against the stored challenge: op skips the check for a confidential
// client that simply omits code_verifier, a PKCE downgrade.
func (s *server) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	c, ok := r.Client.(*client)
	if !ok {
		return nil, oidc.ErrServerError()
	}
	if err := requireCertificate(ctx, c); err != nil {
		return nil, err
	}
	authReq, err := s.p.store.AuthRequestByCode(ctx, r.Data.Code)
	if err != nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("%s", err.Error())
	}
	ar, ok := authReq.(*authRequest)
	if !ok {
		return nil, oidc.ErrServerError()
	}
	if ar.clientID != c.id {
		return nil, oidc.ErrInvalidGrant().WithDescription("code was issued to another client")
	}
	if err := op.AuthorizeCodeChallenge(r.Data.CodeVerifier, ar.codeChallenge); err != nil {
		return nil, err
	}
	if ar.codeChallenge == nil && c.authMethod == oidc.AuthMethodNone {
		return nil, oidc.ErrInvalidGrant().WithDescription("PKCE required")
	}
	if r.Data.RedirectURI != ar.redirectURI {
		return nil, oidc.ErrInvalidGrant().WithDescription("redirect_uri does not correspond")
	}
	withRefresh := slices.Contains(ar.scopes, oidc.ScopeOfflineAccess) && c.hasGrant(oidc.GrantTypeRefreshToken)
	return s.p.tokenResponse(ctx, ar, c, r.Data.Code, "", withRefresh)
}

func (s *server) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	c, ok := r.Client.(*client)
	if !ok {
		return nil, oidc.ErrServerError()
	}
	if err := requireCertificate(ctx, c); err != nil {
		return nil, err
	}
	// The storage's errors are invalid_grant with a description saying why
	// (expired, revoked, rotated out, unknown); op's wrapper would drop it.
	req, err := s.p.store.TokenRequestByRefreshToken(ctx, r.Data.RefreshToken)
	if err != nil {
		return nil, err
	}
	if req.GetClientID() != c.id {
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token was issued to another client")
	}
	if err := op.ValidateRefreshTokenScopes(r.Data.Scopes, req); err != nil {
		return nil, err
	}
	return s.p.tokenResponse(ctx, req, c, "", r.Data.RefreshToken, true)
}

func (s *server) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	c, ok := r.Client.(*client)
	if !ok {
		return nil, oidc.ErrServerError()
	}
	if err := requireCertificate(ctx, c); err != nil {
		return nil, err
	}
	req, err := s.p.store.ClientCredentialsTokenRequest(ctx, c.id, r.Data.Scope)
	if err != nil {
		return nil, err
	}
	return s.p.tokenResponse(ctx, req, c, "", "", false)
}

// requireCertificate refuses a token request of a client with
// certificate-bound tokens that came without a TLS client certificate.
func requireCertificate(ctx context.Context, c *client) error {
	if c.certBound && clientCertificate(ctx) == "" {
		return oidc.ErrInvalidRequest().WithDescription("this client's tokens are bound to its TLS client certificate: send the request with one")
	}
	return nil
}

// TokenExchange is RFC 8693 for access tokens: the subject token must be an
// active access token, the targets among the client's TokenExchangeTargets,
// the scopes a subset of the subject token's.
func (s *server) TokenExchange(ctx context.Context, r *op.ClientRequest[oidc.TokenExchangeRequest]) (*op.Response, error) {
	c, ok := r.Client.(*client)
	if !ok {
		return nil, oidc.ErrServerError()
	}
	if err := requireCertificate(ctx, c); err != nil {
		return nil, err
	}
	req := r.Data
	if req.SubjectTokenType != oidc.AccessTokenType {
		return nil, oidc.ErrInvalidRequest().WithDescription("only access tokens can be exchanged")
	}
	if req.RequestedTokenType != "" && req.RequestedTokenType != oidc.AccessTokenType {
		return nil, oidc.ErrInvalidRequest().WithDescription("only access tokens are issued")
	}
	subject, ok := s.p.activeAccessToken(ctx, req.SubjectToken)
	if !ok {
		return nil, oidc.ErrInvalidGrant().WithDescription("subject token is invalid, expired or revoked")
	}
	targets := append(slices.Clone([]string(req.Audience)), req.Resource...)
	if len(targets) == 0 {
		return nil, invalidTarget("audience or resource is required")
	}
	for _, t := range targets {
		if !slices.Contains(c.exchangeTargets, t) {
			return nil, invalidTarget("the client may not obtain tokens for this target")
		}
	}
	scopes := []string(req.Scopes)
	if len(scopes) == 0 {
		scopes = subject.scopes
	}
	for _, sc := range scopes {
		if !slices.Contains(subject.scopes, sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("the subject token does not grant scope %q", sc)
		}
	}
	actor := subject.actor
	if req.ActorToken != "" {
		if req.ActorTokenType != oidc.AccessTokenType {
			return nil, oidc.ErrInvalidRequest().WithDescription("actor_token_type must be an access token")
		}
		a, ok := s.p.activeAccessToken(ctx, req.ActorToken)
		if !ok {
			return nil, oidc.ErrInvalidGrant().WithDescription("actor token is invalid, expired or revoked")
		}
		actor = &oidc.ActorClaims{Issuer: s.p.issuer, Subject: a.subject, Actor: subject.actor}
	}
	at, err := s.p.store.issueExchanged(subject, c, slices.Compact(slices.Clone(scopes)), slices.Compact(targets), actor)
	if err != nil {
		return nil, err
	}
	token, err := s.p.encodeExchanged(at, c)
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	now := s.p.now()
	s.p.log.Info("devidp: token exchanged", "client_id", c.id, "sub", at.subject, "aud", at.audience, "scope", at.scopes, "actor", actor != nil)
	resp := op.NewResponse(&oidc.TokenExchangeResponse{
		AccessToken:     token,
		IssuedTokenType: oidc.AccessTokenType,
		TokenType:       oidc.BearerToken,
		ExpiresIn:       uint64(max(at.expires.Sub(now).Round(time.Second), 0) / time.Second),
		Scopes:          at.scopes,
	})
	resp.Header.Set("Cache-Control", "no-store")
	resp.Header.Set("Pragma", "no-cache")
	return resp, nil
}

func invalidTarget(desc string) error {
	return oidc.ErrInvalidTarget().WithDescription("%s", desc)
}

// activeAccessToken resolves an access token (opaque or JWT) to its record
// if it is active.
func (p *Provider) activeAccessToken(ctx context.Context, token string) (accessToken, bool) {
	id, sub, ok := p.accessTokenID(ctx, token)
	if !ok {
		return accessToken{}, false
	}
	return p.store.activeAccessToken(id, sub)
}

// JWTProfile refuses the JWT bearer grant, which op would otherwise serve
// for any assertion a client could sign.
func (s *server) JWTProfile(context.Context, *op.Request[oidc.JWTProfileGrantRequest]) (*op.Response, error) {
	return nil, oidc.ErrUnsupportedGrantType().WithDescription("the JWT bearer grant is not supported")
}

// Introspect authenticates the caller like the token endpoint does and
// answers active only for tokens it may see: its own, or any with
// CanIntrospect. Refresh tokens can be introspected too.
func (s *server) Introspect(ctx context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	caller, err := s.p.authenticateClient(ctx, r.Header, r.Data.ClientCredentials)
	if err != nil {
		return nil, err
	}
	resp := new(oidc.IntrospectionResponse)
	token := r.Data.Token
	if s.p.store.introspectRefreshToken(resp, token, caller) {
		return introspectionResponse(resp), nil
	}
	if id, sub, ok := s.p.accessTokenID(ctx, token); ok {
		if err := s.p.store.introspectAccessToken(resp, id, sub, caller); err != nil {
			*resp = oidc.IntrospectionResponse{}
		}
	}
	return introspectionResponse(resp), nil
}

func introspectionResponse(resp *oidc.IntrospectionResponse) *op.Response {
	r := op.NewResponse(resp)
	r.Header.Set("Cache-Control", "no-store")
	return r
}

// UserInfo answers 401 invalid_token for a token that is not active (op
// answers 403) and 403 insufficient_scope for one without openid.
func (s *server) UserInfo(ctx context.Context, r *op.Request[oidc.UserInfoRequest]) (*op.Response, error) {
	id, sub, ok := s.p.accessTokenID(ctx, r.Data.AccessToken)
	if !ok {
		return nil, invalidToken("access token invalid")
	}
	info := new(oidc.UserInfo)
	switch err := s.p.store.SetUserinfoFromToken(ctx, info, id, sub, ""); err {
	case nil:
		return op.NewResponse(info), nil
	case errNoOpenIDScope:
		return nil, op.NewStatusError(&oidc.Error{ErrorType: "insufficient_scope", Description: err.Error()}, http.StatusForbidden)
	default:
		return nil, invalidToken(err.Error())
	}
}

func invalidToken(desc string) error {
	return op.NewStatusError(&oidc.Error{ErrorType: "invalid_token", Description: desc}, http.StatusUnauthorized)
}

// accessTokenID resolves an access token, opaque or JWT, to its id and
// subject. A JWT must carry a valid signature of this provider and not be
// expired.
func (p *Provider) accessTokenID(ctx context.Context, token string) (id, subject string, ok bool) {
	if plain, err := p.op.Crypto().Decrypt(token); err == nil {
		id, subject, ok = strings.Cut(plain, ":")
		return id, subject, ok && id != "" && subject != ""
	}
	claims, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, token, p.op.AccessTokenVerifier(ctx))
	if err != nil {
		return "", "", false
	}
	return claims.JWTID, claims.Subject, claims.JWTID != ""
}

// authenticateClient checks the client's credentials against the method it
// is registered for. Failures answer 401 invalid_client.
func (p *Provider) authenticateClient(ctx context.Context, header http.Header, cc *op.ClientCredentials) (*client, error) {
	if cc == nil {
		return nil, invalidClient("client authentication missing", nil)
	}
	usedBasic := len(header.Get("Authorization")) > 6 && strings.EqualFold(header.Get("Authorization")[:6], "basic ")
	if cc.ClientAssertion != "" {
		opc, err := op.AuthorizePrivateJWTKey(ctx, cc.ClientAssertion, p.op)
		if err != nil {
			return nil, invalidClient("client assertion invalid", err)
		}
		c, ok := opc.(*client)
		if !ok {
			return nil, oidc.ErrServerError()
		}
		if cc.ClientID != "" && cc.ClientID != c.id {
			return nil, invalidClient("client_id does not match the client assertion", nil)
		}
		jti, exp, err := assertionID(cc.ClientAssertion)
		if err != nil {
			return nil, invalidClient("client assertion invalid", err)
		}
		if err := p.store.useAssertion(c.id, jti, exp); err != nil {
			return nil, invalidClient(err.Error(), nil)
		}
		return c, nil
	}
	c, err := p.store.client(cc.ClientID)
	if err != nil {
		return nil, invalidClient("unknown client", err)
	}
	switch c.authMethod {
	case oidc.AuthMethodNone:
		if usedBasic || cc.ClientSecret != "" {
			return nil, invalidClient("public client must not send a client secret", nil)
		}
		return c, nil
	case oidc.AuthMethodPrivateKeyJWT:
		return nil, invalidClient("client must authenticate with private_key_jwt", nil)
	case oidc.AuthMethodBasic:
		if !usedBasic {
			return nil, invalidClient("client must authenticate with client_secret_basic", nil)
		}
	case oidc.AuthMethodPost:
		if usedBasic {
			return nil, invalidClient("client must authenticate with client_secret_post", nil)
		}
	}
	if err := c.checkSecret(cc.ClientSecret); err != nil {
		return nil, invalidClient("invalid client credentials", err)
	}
	return c, nil
}

func invalidClient(desc string, cause error) error {
	return op.NewStatusError(oidc.ErrInvalidClient().WithDescription("%s", desc).WithParent(cause), http.StatusUnauthorized)
}

// assertionID reads jti and exp of a client assertion whose signature was
// already verified.
func assertionID(assertion string) (jti string, exp time.Time, err error) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "", time.Time{}, oidc.ErrParse
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", time.Time{}, err
	}
	var claims struct {
		JTI string    `json:"jti"`
		Exp oidc.Time `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", time.Time{}, err
	}
	return claims.JTI, claims.Exp.AsTime(), nil
}
