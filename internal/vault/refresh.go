package vault

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/vault/provider"
)

// AccessToken is a usable access token of a connection.
type AccessToken struct {
	Value secret.Value
	// ExpiresAt is zero when the provider did not say.
	ExpiresAt time.Time
}

// Token returns a usable access token of u's connection to provider name.
//
// It refreshes the token when it expires within RefreshAhead, or when
// rejected is the stored token (the provider's API answered 401 to it), under
// the refresh discipline:
//
//   - one refresh per connection at a time across instances: a lease claimed
//     by compare-and-set in the store, no lock held during the call to the
//     provider; concurrent callers of this instance share one attempt, and a
//     caller that finds another instance's lease re-reads the store until
//     the new token is there (at most LeaseTTL), instead of refreshing again;
//   - the new tokens are stored (with a rotated refresh token) before the
//     access token is returned to anyone;
//   - a refresh whose answer was lost marks the connection refresh_unknown;
//     invalid_grant marks it needs_reauth; failures pause refreshing with
//     exponential backoff; a failed refresh never replaces the refresh token.
//
// While the stored token is still valid, a failed or paused refresh returns
// it rather than an error.
func (v *Vault) Token(ctx context.Context, u User, name, rejected string) (*AccessToken, error) {
	p, ok := v.cfg.Providers[name]
	if !ok {
		return nil, ErrUnknownProvider
	}
	c, rec, err := v.load(ctx, u, name)
	if err != nil {
		return nil, err
	}
	if tok, due, err := v.judge(ctx, c, rec, rejected, v.cfg.Now()); !due {
		return tok, err
	}
	key := u.Issuer + "\x00" + u.Subject + "\x00" + name
	if rejected != "" {
		key += "\x00" + Hash(rejected)
	}
	// The shared attempt outlives a caller that goes away: abandoning a
	// refresh in flight would turn it into a lost response.
	ch := v.flight.DoChan(key, func() (any, error) {
		return v.refreshLoop(context.WithoutCancel(ctx), p, u, name, rejected)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*AccessToken), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (v *Vault) load(ctx context.Context, u User, name string) (*Connection, *accessRecord, error) {
	c, err := v.cfg.Store.GetConnection(ctx, u, name)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrNotConnected
	}
	if err != nil {
		return nil, nil, err
	}
	rec, err := v.read(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	return c, rec, nil
}

// judge decides whether c's token can be used as it is. due reports that a
// refresh is needed; otherwise the token or a final error is returned.
func (v *Vault) judge(ctx context.Context, c *Connection, rec *accessRecord, rejected string, now time.Time) (tok *AccessToken, due bool, err error) {
	if c.Status == StatusNeedsReauth {
		return nil, false, ErrNeedsReauth
	}
	current := &AccessToken{Value: secret.New(rec.Token), ExpiresAt: c.ExpiresAt}
	wasRejected := rejected != "" && subtle.ConstantTimeCompare([]byte(rec.Token), []byte(rejected)) == 1
	expiring := !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt.Add(-v.cfg.RefreshAhead))
	if !wasRejected && !expiring {
		return current, false, nil
	}
	if len(c.RefreshToken.Data) == 0 {
		if wasRejected || !now.Before(c.ExpiresAt) {
			// Nothing to renew it with: the user must connect again.
			next := *c
			next.Status = StatusNeedsReauth
			if err := v.cfg.Store.UpdateConnection(ctx, &next); err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
				return nil, false, err
			}
			v.cfg.Logger.Info("vault: the access token ended and there is no refresh token; the connection needs the user again", "provider", c.Provider)
			return nil, false, ErrNeedsReauth
		}
		return current, false, nil
	}
	return nil, true, nil
}

// refreshLoop claims the lease and refreshes, or waits for the holder of
// another lease to finish.
func (v *Vault) refreshLoop(ctx context.Context, p *provider.Provider, u User, name, rejected string) (*AccessToken, error) {
	waitUntil := time.Now().Add(v.cfg.LeaseTTL)
	for {
		c, rec, err := v.load(ctx, u, name)
		if err != nil {
			return nil, err
		}
		now := v.cfg.Now()
		tok, due, err := v.judge(ctx, c, rec, rejected, now)
		if !due {
			return tok, err
		}
		var fallback *AccessToken
		if (c.ExpiresAt.IsZero() || now.Before(c.ExpiresAt)) && (rejected == "" || rec.Token != rejected) {
			fallback = &AccessToken{Value: secret.New(rec.Token), ExpiresAt: c.ExpiresAt}
		}
		if now.Before(c.NextAttempt) {
			if fallback != nil {
				return fallback, nil
			}
			return nil, &BackoffError{Until: c.NextAttempt}
		}
		leaseID, err := randomValue()
		if err != nil {
			return nil, err
		}
		lease, lc, err := v.cfg.Store.ClaimRefresh(ctx, u, name, leaseID, now, now.Add(v.cfg.LeaseTTL))
		switch {
		case errors.Is(err, ErrLeaseHeld):
			if fallback != nil {
				return fallback, nil
			}
			if time.Now().After(waitUntil) {
				return nil, ErrBusy
			}
			t := time.NewTimer(v.cfg.PollInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
			continue
		case errors.Is(err, ErrNotFound):
			return nil, ErrNotConnected
		case err != nil:
			return nil, fmt.Errorf("vault: claim refresh lease: %w", err)
		}
		if lc.Version != c.Version {
			// Written between the read and the claim: judge the new state.
			if err := v.cfg.Store.ReleaseRefresh(ctx, lease); err != nil {
				return nil, fmt.Errorf("vault: release refresh lease: %w", err)
			}
			continue
		}
		return v.refresh(ctx, p, lease, lc, rec.Claims, fallback)
	}
}

// refresh calls the provider while holding lease and stores the outcome.
func (v *Vault) refresh(ctx context.Context, p *provider.Provider, lease *Lease, lc *Connection, claims map[string]any, fallback *AccessToken) (*AccessToken, error) {
	rt, err := v.cfg.Sealer.Open(lc.RefreshToken, refreshAD(lc.User, lc.Provider))
	if err != nil {
		_ = v.cfg.Store.ReleaseRefresh(ctx, lease)
		return nil, fmt.Errorf("vault: open refresh token of %s: %w", lc.Provider, err)
	}
	tok, rerr := p.Refresh(ctx, string(rt))
	clear(rt)
	now := v.cfg.Now()
	next := *lc
	log := v.cfg.Logger.With("provider", lc.Provider, "issuer", lc.User.Issuer, "subject", lc.User.Subject)
	if rerr == nil {
		if err := v.setTokens(&next, tok, claims, now); err != nil {
			// The provider may have rotated the refresh token; keeping the
			// lease until it lapses is all that can be done.
			return nil, err
		}
		next.Status, next.Failures, next.NextAttempt = StatusConnected, 0, time.Time{}
		if err := v.cfg.Store.CompleteRefresh(ctx, lease, &next); err != nil {
			// Not stored, so never used: whoever took over the connection
			// (a new connect, a disconnect) has the last word.
			log.Error("vault: refreshed tokens could not be stored; they are discarded", "error", err.Error())
			if errors.Is(err, ErrNotFound) {
				return nil, ErrNotConnected
			}
			return nil, fmt.Errorf("%w: %w", ErrBusy, err)
		}
		log.Info("vault: token refreshed", "rotated", !tok.RefreshToken.IsZero(), "expires_in", tok.ExpiresIn)
		return &AccessToken{Value: tok.AccessToken, ExpiresAt: next.ExpiresAt}, nil
	}
	next.Failures++
	next.NextAttempt = now.Add(v.backoff(next.Failures))
	result := fmt.Errorf("%w: %w", ErrProvider, rerr)
	switch {
	case isInvalidGrant(rerr):
		next.Status = StatusNeedsReauth
		result = ErrNeedsReauth
	case errors.Is(rerr, provider.ErrLost):
		next.Status = StatusRefreshUnknown
	}
	if err := v.cfg.Store.CompleteRefresh(ctx, lease, &next); err != nil {
		log.Warn("vault: the failed refresh could not be recorded", "error", err.Error())
	}
	log.Warn("vault: refresh failed", "status", string(next.Status), "failures", next.Failures,
		"next_attempt", next.NextAttempt.UTC().Format(time.RFC3339), "error", rerr.Error())
	if fallback != nil && result != ErrNeedsReauth {
		return fallback, nil
	}
	return nil, result
}

// backoff is the pause after the n-th consecutive failure.
func (v *Vault) backoff(n int) time.Duration {
	d := v.cfg.MinBackoff
	for i := 1; i < n && d < v.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, v.cfg.MaxBackoff)
}
