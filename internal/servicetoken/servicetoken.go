// Package servicetoken obtains and caches Gatehouse's own access tokens
// (OAuth client credentials): for upstreams that need a service identity
// (forward: client_credentials) and for the actor token of a token exchange.
//
// A Source holds one token for one target (audience, resource, scopes). It
// serves the token while more than max(10 s, a fifth of its lifetime) of it
// is left, then obtains a new one before the old one expires; concurrent
// callers that find no usable token share one token request. Failures are
// not cached.
package servicetoken

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
)

// DefaultLifetime is assumed for a token whose response has no expires_in.
const DefaultLifetime = time.Minute

const (
	minMargin     = 10 * time.Second
	marginDivisor = 5
)

// Config configures a Source.
type Config struct {
	// Client is Gatehouse's client at the token endpoint (required).
	Client   *oauthclient.Client
	Audience string
	Resource string
	Scopes   []string
	Clock    func() time.Time
	Logger   *slog.Logger
}

// Source is one cached client-credentials token. Safe for concurrent use.
type Source struct {
	cfg   Config
	mu    sync.RWMutex
	token string
	stale time.Time // from then on the token is renewed before use
	group singleflight.Group
	calls atomic.Int64
}

// New returns a Source.
func New(cfg Config) (*Source, error) {
	if cfg.Client == nil {
		return nil, errors.New("servicetoken: a token endpoint client is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg}, nil
}

// Calls returns how many token requests s made.
func (s *Source) Calls() int64 { return s.calls.Load() }

// Token returns a usable token. Errors wrap *oauthclient.Error (the server
// refused Gatehouse's client), oauthclient.ErrUnavailable or
// oauthclient.ErrNotReady, or ctx's cause.
func (s *Source) Token(ctx context.Context) (string, error) {
	now := s.cfg.Clock()
	s.mu.RLock()
	tok, stale := s.token, s.stale
	s.mu.RUnlock()
	if tok != "" && now.Before(stale) {
		return tok, nil
	}
	callCtx := context.WithoutCancel(ctx)
	ch := s.group.DoChan("", func() (any, error) { return s.fetch(callCtx) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("servicetoken: waiting for the authorization server: %w", context.Cause(ctx))
	}
}

func (s *Source) fetch(ctx context.Context) (string, error) {
	s.calls.Add(1)
	tr, err := s.cfg.Client.ClientCredentials(ctx, s.cfg.Audience, s.cfg.Resource, s.cfg.Scopes)
	if err != nil {
		s.cfg.Logger.Warn("servicetoken: client credentials request failed", "client_id", s.cfg.Client.ClientID, "error", err.Error())
		return "", err
	}
	now := s.cfg.Clock()
	lifetime := DefaultLifetime
	if tr.ExpiresIn > 0 {
		lifetime = time.Duration(tr.ExpiresIn) * time.Second
	}
	tok := tr.AccessToken.Reveal()
	s.mu.Lock()
	s.token, s.stale = tok, now.Add(lifetime-max(minMargin, lifetime/marginDivisor))
	s.mu.Unlock()
	return tok, nil
}
