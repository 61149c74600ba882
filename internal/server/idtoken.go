package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/oauthagent"
)

// idTokenVerifier verifies the authorization server's ID tokens with the
// server's shared key set, built once discovery is done.
type idTokenVerifier struct {
	as       *asDeps
	clientID string

	mu sync.Mutex
	v  *jwtverify.Verifier
}

func (iv *idTokenVerifier) verifier() (*jwtverify.Verifier, error) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.v != nil {
		return iv.v, nil
	}
	keys, err := iv.as.keySet()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", oauthagent.ErrVerifierUnavailable, err)
	}
	v, err := jwtverify.New(keys, jwtverify.Config{
		Purpose:  jwtverify.IDToken,
		Issuer:   iv.as.provider.Issuer(),
		Audience: iv.clientID,
		Clock:    iv.as.now,
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
