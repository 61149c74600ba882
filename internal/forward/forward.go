// Package forward decides what credential a route's upstream receives:
// the caller's own access token, a JWT the authorization server issued for
// it (phantom token), or a JWT Gatehouse signs from the Principal (the Access
// Token pattern). The upstream always gets one bearer token, whatever entry
// the caller used.
package forward

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/mint"
)

// Forwarder returns the bearer token the upstream receives for p ("" for none).
type Forwarder interface {
	Credential(ctx context.Context, p *authn.Principal) (string, error)
}

// AccessToken forwards the caller's own access token (forward: access_token).
type AccessToken struct{}

// Credential implements Forwarder.
func (AccessToken) Credential(_ context.Context, p *authn.Principal) (string, error) {
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
