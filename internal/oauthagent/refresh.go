package oauthagent

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// refresher runs refresh-token grants so that concurrent and late duplicate
// /refresh calls presenting the same refresh token share one result: one call
// to the authorization server, and for reuseWindow afterwards the same new
// cookies without another call. Without this, a server that rotates refresh
// tokens answers the second tab with invalid_grant and logs the user out.
//
// The ledger keeps sealed Set-Cookie values only, never plaintext tokens.
type refresher struct {
	a      *Agent
	window time.Duration
	group  singleflight.Group

	mu        sync.Mutex
	ledger    map[[32]byte]ledgerEntry
	lastSweep time.Time
}

type ledgerEntry struct {
	cookies []string
	expires time.Time
}

// maxLedger bounds the ledger; past it, results are simply not remembered.
const maxLedger = 100_000

func newRefresher(a *Agent, window time.Duration) *refresher {
	return &refresher{a: a, window: window, ledger: map[[32]byte]ledgerEntry{}}
}

var (
	errSubjectChanged = errors.New("oauthagent: refreshed ID token is for another subject")
	errSubjectUnknown = errors.New("oauthagent: the refresh cookie does not name the session's subject, so a refreshed ID token cannot be checked")
)

func (f *refresher) do(ctx context.Context, rc refreshCookie) ([]string, error) {
	key := sha256.Sum256([]byte(rc.RefreshToken))
	if c, ok := f.lookup(key); ok {
		return c, nil
	}
	v, err, _ := f.group.Do(string(key[:]), func() (any, error) {
		if c, ok := f.lookup(key); ok {
			return c, nil
		}
		// The call is shared: it must not fail because the first caller left.
		ctx := context.WithoutCancel(ctx)
		tokens, err := f.a.deps.Client.Refresh(ctx, rc.RefreshToken)
		if err != nil {
			return nil, err
		}
		sub := rc.Subject
		if !tokens.IDToken.IsZero() {
			id, err := f.a.deps.IDTokens.VerifyIDToken(ctx, tokens.IDToken.Reveal())
			if err != nil {
				if errors.Is(err, ErrVerifierUnavailable) {
					return nil, errASUnavailable.WithCause(err)
				}
				return nil, errInvalidIDToken.WithCause(err)
			}
			if rc.Subject == "" {
				// A refresh cookie without the session's subject (written by
				// Curity's agent) cannot show that the new ID token is for the
				// same user: end the session, the user logs in again once.
				return nil, errSessionExpired.WithCause(errSubjectUnknown)
			}
			if id.Subject != rc.Subject {
				return nil, errInvalidIDToken.WithCause(errSubjectChanged)
			}
			sub = id.Subject
		}
		cookies, err := f.a.sessionCookies(tokens.AccessToken.Reveal(), tokens.RefreshToken.Reveal(), tokens.IDToken.Reveal(), sub, "", false)
		if err != nil {
			return nil, err
		}
		f.remember(key, cookies)
		return cookies, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]string), nil
}

func (f *refresher) lookup(key [32]byte) ([]string, bool) {
	if f.window <= 0 {
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.ledger[key]
	if !ok || f.a.deps.Now().After(e.expires) {
		return nil, false
	}
	return e.cookies, true
}

func (f *refresher) remember(key [32]byte, cookies []string) {
	if f.window <= 0 {
		return
	}
	now := f.a.deps.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.lastSweep) > f.window || len(f.ledger) >= maxLedger {
		for k, e := range f.ledger {
			if now.After(e.expires) {
				delete(f.ledger, k)
			}
		}
		f.lastSweep = now
	}
	if len(f.ledger) < maxLedger {
		f.ledger[key] = ledgerEntry{cookies: cookies, expires: now.Add(f.window)}
	}
}
