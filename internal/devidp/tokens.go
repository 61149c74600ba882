package devidp

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// accessTokenJWTType is the JOSE typ of JWT access tokens (RFC 9068 2.1).
const accessTokenJWTType = "at+jwt"

// tokenResponse issues the tokens for a code exchange (req is an
// *authRequest), a refresh (*refreshTokenRequest) or client credentials. It
// does what op.CreateTokenResponse does, except that JWT access tokens are
// signed here: op's signer fixes typ to "JWT" and leaves out the scope claim.
// ID tokens are still built by op.CreateIDToken, so at_hash and c_hash cover
// the tokens actually sent.
func (p *Provider) tokenResponse(ctx context.Context, req op.TokenRequest, c *client, code, currentRefreshToken string, withRefresh bool) (*op.Response, error) {
	var (
		tokenID, refreshToken string
		exp                   time.Time
		err                   error
	)
	if withRefresh {
		tokenID, refreshToken, exp, err = p.store.CreateAccessAndRefreshTokens(ctx, req, currentRefreshToken)
	} else {
		tokenID, exp, err = p.store.CreateAccessToken(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	var cnf string
	if c.certBound {
		cnf = clientCertificate(ctx)
		p.store.bindToken(tokenID, cnf)
	}
	now := p.now()
	accessToken, err := p.encodeAccessToken(req, c, tokenID, now, exp, cnf)
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}

	var idToken string
	if idReq, ok := req.(op.IDTokenRequest); ok && slices.Contains(req.GetScopes(), oidc.ScopeOpenID) {
		idToken, err = op.CreateIDToken(ctx, p.issuer, idReq, c.idTokenLifetime, accessToken, code, p.store, c)
		if err != nil {
			return nil, oidc.ErrServerError().WithParent(err)
		}
	}
	if ar, ok := req.(*authRequest); ok {
		if err := p.store.DeleteAuthRequest(ctx, ar.id); err != nil {
			return nil, err
		}
	}

	grantType := "client_credentials"
	switch req.(type) {
	case *authRequest:
		grantType = "authorization_code"
	case *refreshTokenRequest:
		grantType = "refresh_token"
	}
	p.log.Info("devidp: tokens issued", "grant_type", grantType, "client_id", c.id,
		"sub", req.GetSubject(), "scope", req.GetScopes(), "refresh_token", refreshToken != "", "id_token", idToken != "")

	resp := op.NewResponse(&oidc.AccessTokenResponse{
		AccessToken:  accessToken,
		TokenType:    oidc.BearerToken,
		RefreshToken: refreshToken,
		ExpiresIn:    uint64(max(exp.Sub(now).Round(time.Second), 0) / time.Second),
		IDToken:      idToken,
		Scope:        req.GetScopes(),
	})
	resp.Header.Set("Cache-Control", "no-store")
	resp.Header.Set("Pragma", "no-cache")
	return resp, nil
}

// encodeAccessToken returns the opaque handle op uses for bearer tokens, or
// an RFC 9068 JWT: typ at+jwt, iss, sub, aud, exp, iat, nbf, jti, client_id,
// scope, auth_time for user tokens, the user's extra claims, and cnf for a
// token bound to a certificate.
func (p *Provider) encodeAccessToken(req op.TokenRequest, c *client, tokenID string, now, exp time.Time, cnf string) (string, error) {
	if c.accessTokenType == op.AccessTokenTypeBearer {
		return op.CreateBearerToken(tokenID, req.GetSubject(), p.op.Crypto())
	}
	claims := &oidc.AccessTokenClaims{
		TokenClaims: oidc.TokenClaims{
			Issuer:     p.issuer,
			Subject:    req.GetSubject(),
			Audience:   slices.Clone(c.audience),
			Expiration: oidc.FromTime(exp),
			IssuedAt:   oidc.FromTime(now),
			NotBefore:  oidc.FromTime(now),
			ClientID:   c.id,
			JWTID:      tokenID,
		},
		Scopes: slices.Clone(req.GetScopes()),
	}
	if ur, ok := req.(interface{ GetAuthTime() time.Time }); ok {
		claims.AuthTime = oidc.FromTime(ur.GetAuthTime())
		claims.Claims = p.store.userClaims(req.GetSubject())
	}
	if cnf != "" {
		claims.Claims = withClaim(claims.Claims, "cnf", map[string]any{"x5t#S256": cnf})
	}
	return p.signAccessToken(claims)
}

// encodeExchanged encodes the access token of a token exchange in the
// exchanging client's format.
func (p *Provider) encodeExchanged(at accessToken, c *client) (string, error) {
	if c.accessTokenType == op.AccessTokenTypeBearer {
		return op.CreateBearerToken(at.id, at.subject, p.op.Crypto())
	}
	claims := &oidc.AccessTokenClaims{
		TokenClaims: oidc.TokenClaims{
			Issuer:     p.issuer,
			Subject:    at.subject,
			Audience:   slices.Clone(at.audience),
			Expiration: oidc.FromTime(at.expires),
			IssuedAt:   oidc.FromTime(at.issued),
			NotBefore:  oidc.FromTime(at.issued),
			ClientID:   c.id,
			JWTID:      at.id,
			Actor:      at.actor,
		},
		Scopes: slices.Clone(at.scopes),
	}
	if at.userID != "" {
		claims.AuthTime = oidc.FromTime(at.authTime)
		claims.Claims = p.store.userClaims(at.userID)
	}
	return p.signAccessToken(claims)
}

// withClaim returns a copy of claims with name set to v.
func withClaim(claims map[string]any, name string, v any) map[string]any {
	out := make(map[string]any, len(claims)+1)
	for k, x := range claims {
		out[k] = x
	}
	out[name] = v
	return out
}

// signAccessToken signs claims as an RFC 9068 JWT (typ at+jwt).
func (p *Provider) signAccessToken(claims *oidc.AccessTokenClaims) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("access token claims: %w", err)
	}
	key := p.store.signingKey()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: key.SignatureAlgorithm(), Key: jose.JSONWebKey{Key: key.priv, KeyID: key.id}},
		(&jose.SignerOptions{}).WithType(accessTokenJWTType),
	)
	if err != nil {
		return "", fmt.Errorf("access token signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return jws.CompactSerialize()
}
