// Package forward decides what credential a route's upstream receives:
// the caller's own access token, a JWT the authorization server issued for
// it (phantom token), a JWT Gatehouse signs from the Principal (the Access
// Token pattern), a token the authorization server issues for the upstream
// in exchange for the caller's (RFC 8693), or Gatehouse's own token (client
// credentials). The upstream always gets one bearer token, whatever entry
// the caller used.
package forward

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/exchange"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/mint"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/servicetoken"
)

// Forwarder returns the bearer token the upstream receives for p ("" for none).
type Forwarder interface {
	Credential(ctx context.Context, p *authn.Principal) (string, error)
}

// AccessToken forwards the caller's own access token (forward: access_token).
type AccessToken struct{}

// Credential implements Forwarder.
func (AccessToken) Credential(_ context.Context, p *authn.Principal) (string, error) {
	if p.Token.IsZero() && !p.Anonymous() {
		// An API key or certificate caller has no token; configuration
		// validation refuses such routes, this is the last line.
		return "", errMint.WithCause(errors.New("forward: the caller has no access token to forward"))
	}
	return p.Token.Reveal(), nil
}

// Minted forwards a JWT Gatehouse signs from the Principal (forward:
// internal_jwt), or for forward: phantom the JWT the authorization server
// returned at introspection when there is one.
type Minted struct {
	Minter   *mint.Minter
	Audience string
	// Claims are copied from the caller's token when present (forward_claims).
	Claims []string
	// PreferUpstreamJWT forwards Principal.UpstreamJWT when set (phantom).
	PreferUpstreamJWT bool
}

var errMint = httperr.New(http.StatusInternalServerError, httperr.CodeServerError, "Gatehouse could not issue a token for the upstream")

// errNoIdentity: the authorization server vouched for a token without naming
// its subject or client, so there is no one to issue a token for.
var errNoIdentity = httperr.New(http.StatusBadGateway, httperr.CodeASError, "The authorization server did not identify the token's subject or client")

// Credential implements Forwarder.
func (m *Minted) Credential(_ context.Context, p *authn.Principal) (string, error) {
	if p.Anonymous() {
		return "", nil
	}
	if m.PreferUpstreamJWT && !p.UpstreamJWT.IsZero() {
		return p.UpstreamJWT.Reveal(), nil
	}
	if !p.Checked {
		return "", errMint.WithCause(fmt.Errorf("forward: refusing to mint for an unchecked token"))
	}
	var extra map[string]any
	for _, c := range m.Claims {
		if v, ok := p.Claims[c]; ok {
			if extra == nil {
				extra = map[string]any{}
			}
			extra[c] = v
		}
	}
	// RFC 7662 makes sub and client_id optional; a token of a client acting
	// for itself (client credentials) is about the client.
	sub := p.Subject
	if sub == "" {
		sub = p.ClientID
	}
	if sub == "" {
		return "", errNoIdentity
	}
	tok, err := m.Minter.Mint(mint.Subject{
		Subject:  sub,
		ClientID: p.ClientID,
		Scopes:   p.Scopes,
		Expiry:   p.Expiry,
		Claims:   extra,
		CacheKey: p.TokenHash,
	}, m.Audience)
	if err != nil {
		return "", errMint.WithCause(err)
	}
	return tok, nil
}

// Errors of forwards that ask the authorization server for a token.
var (
	// errExchangeGrant: the server refused the caller's token (invalid_grant).
	errExchangeGrant = httperr.New(http.StatusUnauthorized, httperr.CodeUnauthorized, "The access token cannot be exchanged for this resource")
	// errExchangeTarget: the caller may not have a token for this upstream or these scopes.
	errExchangeTarget = httperr.New(http.StatusForbidden, httperr.CodeForbidden, "The access token does not grant access to this resource")
	// errTokenService: the server could not be asked or refused Gatehouse's own client.
	errTokenService = httperr.New(http.StatusBadGateway, httperr.CodeASError, "A problem occurred with a request to the Authorization Server")
)

// Exchange forwards a token the authorization server issues for the
// route's upstream in exchange for the caller's (forward: exchange, RFC 8693).
type Exchange struct {
	Exchanger *exchange.Exchanger
	Request   exchange.Request
}

// Credential implements Forwarder.
func (f *Exchange) Credential(ctx context.Context, p *authn.Principal) (string, error) {
	if p.Anonymous() {
		return "", nil
	}
	if p.Token.IsZero() || !p.Checked {
		return "", errMint.WithCause(errors.New("forward: exchange needs a verified access token"))
	}
	tok, err := f.Exchanger.Exchange(ctx, exchange.Subject{Token: p.Token.Reveal(), Hash: p.TokenHash, Expiry: p.Expiry}, f.Request)
	if err != nil {
		return "", tokenError(ctx, err)
	}
	return tok, nil
}

// ClientCredentials forwards Gatehouse's own access token (forward:
// client_credentials): the upstream sees Gatehouse's service identity, not
// the caller's.
type ClientCredentials struct {
	Source *servicetoken.Source
}

// Credential implements Forwarder.
func (f *ClientCredentials) Credential(ctx context.Context, p *authn.Principal) (string, error) {
	if p.Anonymous() {
		return "", nil
	}
	tok, err := f.Source.Token(ctx)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return "", ctxErr
		}
		// Any refusal of Gatehouse's own client is Gatehouse's configuration,
		// not the caller's fault.
		return "", errTokenService.WithCause(err)
	}
	return tok, nil
}

// tokenError maps an exchange failure: invalid_grant is the caller's token
// (401), invalid_target and invalid_scope what it may reach (403), anything
// else the server or Gatehouse's own client (502).
func tokenError(ctx context.Context, err error) error {
	var oe *oauthclient.Error
	switch {
	case errors.As(err, &oe) && oe.Code == "invalid_grant":
		e := errExchangeGrant.WithCause(err)
		e.WWWAuthenticate = `Bearer realm="` + authn.Realm + `", error="invalid_token"`
		return e
	case errors.As(err, &oe) && (oe.Code == "invalid_target" || oe.Code == "invalid_scope"):
		e := errExchangeTarget.WithCause(err)
		e.WWWAuthenticate = `Bearer realm="` + authn.Realm + `", error="insufficient_scope"`
		return e
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return errTokenService.WithCause(err)
}
