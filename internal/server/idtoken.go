package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/oauthagent"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
)

// idTokenVerifier verifies the authorization server's ID tokens with the keys
// from its discovered jwks_uri; the key set is built once discovery is done.
type idTokenVerifier struct {
	provider *oauthclient.Provider
	clientID string
	// allowHTTP permits a plain-http jwks_uri on a non-loopback host
	// (authorization_server.insecure_allow_http).
	allowHTTP bool
	hc        *http.Client
	now       func() time.Time
	logger    *slog.Logger

	mu sync.Mutex
	v  *jwtverify.Verifier
}

func newIDTokenVerifier(p *oauthclient.Provider, clientID string, allowHTTP bool, hc *http.Client, now func() time.Time, logger *slog.Logger) *idTokenVerifier {
	return &idTokenVerifier{provider: p, clientID: clientID, allowHTTP: allowHTTP, hc: hc, now: now, logger: logger}
}

func (iv *idTokenVerifier) verifier() (*jwtverify.Verifier, error) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.v != nil {
		return iv.v, nil
	}
	md, err := iv.provider.Metadata()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", oauthagent.ErrVerifierUnavailable, err)
	}
	keys, err := jwtverify.NewKeySet(jwtverify.KeySetConfig{URL: md.JWKSURI, InsecureAllowHTTP: iv.allowHTTP, Client: iv.hc, Clock: iv.now, Logger: iv.logger})
	if err != nil {
		return nil, fmt.Errorf("server: ID token key set: %w", err)
	}
	v, err := jwtverify.New(keys, jwtverify.Config{
		Purpose:  jwtverify.IDToken,
		Issuer:   iv.provider.Issuer(),
		Audience: iv.clientID,
		Clock:    iv.now,
	})
	if err != nil {
		return nil, fmt.Errorf("server: ID token verifier: %w", err)
	}
	iv.v = v
	return v, nil
}

func (iv *idTokenVerifier) VerifyIDToken(ctx context.Context, raw string) (oauthagent.IDToken, error) {
	v, err := iv.verifier()
	if err != nil {
		return oauthagent.IDToken{}, err
	}
	c, err := v.Verify(ctx, raw)
	if err != nil {
		if errors.Is(err, jwtverify.ErrKeysUnavailable) {
			return oauthagent.IDToken{}, fmt.Errorf("%w: %w", oauthagent.ErrVerifierUnavailable, err)
		}
		return oauthagent.IDToken{}, err
	}
	return oauthagent.IDToken{Subject: c.Subject, Nonce: c.Nonce}, nil
}
