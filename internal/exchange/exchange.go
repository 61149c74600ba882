// Package exchange trades a caller's access token for a narrowly scoped,
// audience-restricted one per upstream (RFC 8693 token exchange at the
// authorization server, seed 001's gateway token exchange).
//
// An Exchanger is built once per Gatehouse client at the token endpoint and
// shared by every route that exchanges. Exchange answers from its cache when
// it can and otherwise makes one token request, shared by every concurrent
// caller presenting the same subject token for the same target.
//
// Cache: entries are keyed by the SHA-256 of the subject token together with
// the audience, the resource, the sorted scopes and whether an actor token is
// sent; neither token is stored in a key. A new token is served while more
// than max(10 s, a fifth of its lifetime) of it is left, and never after the
// subject token's own expiry: an exchange result is no longer valid than the
// credential it came from. A refusal by the authorization server
// (invalid_grant, invalid_target, invalid_scope) is remembered for at most
// 10 seconds, so that a refused caller cannot make Gatehouse call the server
// on every request; other failures (unreachable, 5xx, garbage, other error
// codes) are never cached. The cache is bounded: when full, entries no
// longer served go first, then arbitrary ones.
//
// Errors never contain a token or a response body.
package exchange

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
)

// Defaults and limits.
const (
	// DefaultMaxEntries bounds the cache.
	DefaultMaxEntries = 100_000
	// NegativeTTL is the longest a refusal is remembered.
	NegativeTTL = 10 * time.Second
	// DefaultLifetime is assumed for a token whose response has no expires_in.
	DefaultLifetime = time.Minute
	minMargin       = 10 * time.Second
	marginDivisor   = 5
)

// Refusals that are answers about the subject token or the target, and are
// cached briefly.
var cachedRefusals = []string{"invalid_grant", "invalid_target", "invalid_scope"}

// ErrNoActor: a request asks for an actor token and the Exchanger has no source of one.
var ErrNoActor = errors.New("exchange: no actor token source configured")

// Config configures an Exchanger.
type Config struct {
	// Client makes the token requests with Gatehouse's client authentication
	// (required). Its HTTP client's timeout bounds every call.
	Client *oauthclient.Client
	// Actor returns Gatehouse's own access token, sent as actor_token for
	// requests with Actor set; nil refuses such requests.
	Actor func(ctx context.Context) (string, error)
	// Clock defaults to time.Now.
	Clock func() time.Time
	// MaxEntries bounds the cache (default DefaultMaxEntries).
	MaxEntries int
	// Logger receives failures (never tokens); default discard.
	Logger *slog.Logger
}

// Request is what a route asks for.
type Request struct {
	Audience string
	Resource string
	Scopes   []string
	// Actor sends Gatehouse's own token as actor_token.
	Actor bool
}

// Subject is the caller's access token.
type Subject struct {
	Token string
	// Hash is the hex SHA-256 of Token (computed when empty).
	Hash string
	// Expiry of Token; zero when unknown.
	Expiry time.Time
}

// Exchanger exchanges tokens and caches the results. It is safe for
// concurrent use.
type Exchanger struct {
	client *oauthclient.Client
	actor  func(ctx context.Context) (string, error)
	clock  func() time.Time
	log    *slog.Logger
	max    int

	mu      sync.RWMutex
	entries map[[sha256.Size]byte]*entry
	group   singleflight.Group
	calls   atomic.Int64
}

type entry struct {
	token   string
	refusal error     // a cached refusal when set
	until   time.Time // end of the entry's time in the cache
}

// New returns an Exchanger.
func New(cfg Config) (*Exchanger, error) {
	if cfg.Client == nil {
		return nil, errors.New("exchange: a token endpoint client is required")
	}
	x := &Exchanger{client: cfg.Client, actor: cfg.Actor, clock: cfg.Clock, log: cfg.Logger, max: cfg.MaxEntries,
		entries: make(map[[sha256.Size]byte]*entry)}
	if x.clock == nil {
		x.clock = time.Now
	}
	if x.log == nil {
		x.log = slog.New(slog.DiscardHandler)
	}
	if x.max <= 0 {
		x.max = DefaultMaxEntries
	}
	return x, nil
}

// Calls returns how many token exchange requests x made.
func (x *Exchanger) Calls() int64 { return x.calls.Load() }

// Exchange returns an access token for req in place of s's token. Errors
// wrap *oauthclient.Error when the authorization server refused (its Code
// says why), and otherwise oauthclient.ErrUnavailable, oauthclient.ErrNotReady,
// ErrNoActor or, when ctx ends first, ctx's cause.
func (x *Exchanger) Exchange(ctx context.Context, s Subject, req Request) (string, error) {
	if s.Token == "" {
		return "", errors.New("exchange: no subject token")
	}
	if req.Actor && x.actor == nil {
		return "", ErrNoActor
	}
	if s.Hash == "" {
		sum := sha256.Sum256([]byte(s.Token))
		s.Hash = hex.EncodeToString(sum[:])
	}
	key := cacheKey(s.Hash, req)
	now := x.clock()
	if !s.Expiry.IsZero() && !now.Before(s.Expiry) {
		return "", &oauthclient.Error{Status: 400, Code: "invalid_grant", Description: "the subject token has expired"}
	}
	x.mu.RLock()
	e := x.entries[key]
	x.mu.RUnlock()
	if e != nil && now.Before(e.until) {
		if e.refusal != nil {
			return "", e.refusal
		}
		return e.token, nil
	}
	callCtx := context.WithoutCancel(ctx)
	ch := x.group.DoChan(string(key[:]), func() (any, error) {
		return x.fetch(callCtx, key, s, req)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("exchange: waiting for the authorization server: %w", context.Cause(ctx))
	}
}

// cacheKey is SHA-256 over the subject token's hash and the request's target.
func cacheKey(subjectHash string, req Request) [sha256.Size]byte {
	scopes := slices.Clone(req.Scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	actor := "0"
	if req.Actor {
		actor = "1"
	}
	// Fields are joined with NUL, which none of them may contain.
	return sha256.Sum256([]byte(strings.Join([]string{subjectHash, req.Audience, req.Resource, strings.Join(scopes, " "), actor}, "\x00")))
}

// fetch makes the exchange and caches its result; it runs once per key at a
// time, inside the singleflight group.
func (x *Exchanger) fetch(ctx context.Context, key [sha256.Size]byte, s Subject, req Request) (string, error) {
	tr, err := x.call(ctx, s, req)
	now := x.clock()
	if err != nil {
		var oe *oauthclient.Error
		if errors.As(err, &oe) && slices.Contains(cachedRefusals, oe.Code) {
			until := now.Add(NegativeTTL)
			if !s.Expiry.IsZero() && s.Expiry.Before(until) {
				until = s.Expiry
			}
			x.put(key, &entry{refusal: err, until: until}, now)
		}
		return "", err
	}
	lifetime := DefaultLifetime
	if tr.ExpiresIn > 0 {
		lifetime = time.Duration(tr.ExpiresIn) * time.Second
	}
	until := now.Add(lifetime - max(minMargin, lifetime/marginDivisor))
	if !s.Expiry.IsZero() && s.Expiry.Before(until) {
		until = s.Expiry
	}
	tok := tr.AccessToken.Reveal()
	if now.Before(until) {
		x.put(key, &entry{token: tok, until: until}, now)
	}
	return tok, nil
}

func (x *Exchanger) call(ctx context.Context, s Subject, req Request) (*oauthclient.TokenResponse, error) {
	var actor string
	if req.Actor {
		var err error
		if actor, err = x.actor(ctx); err != nil {
			x.log.Warn("exchange: no actor token", "error", err.Error())
			return nil, fmt.Errorf("exchange: actor token: %w", err)
		}
	}
	x.calls.Add(1)
	tr, err := x.client.TokenExchange(ctx, oauthclient.TokenExchangeRequest{
		SubjectToken: s.Token, ActorToken: actor, Audience: req.Audience, Resource: req.Resource, Scopes: req.Scopes,
	})
	if err != nil {
		level := slog.LevelWarn
		var oe *oauthclient.Error
		if errors.As(err, &oe) && slices.Contains(cachedRefusals, oe.Code) {
			level = slog.LevelInfo // an answer about the caller, not a fault
		}
		x.log.Log(ctx, level, "exchange: token exchange failed", "audience", req.Audience, "resource", req.Resource, "error", err.Error())
		return nil, err
	}
	return tr, nil
}

// put stores e under key, making room first.
func (x *Exchanger) put(key [sha256.Size]byte, e *entry, now time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.entries[key]; !ok && len(x.entries) >= x.max {
		for k, old := range x.entries {
			if !now.Before(old.until) {
				delete(x.entries, k)
			}
		}
		for k := range x.entries {
			if len(x.entries) < x.max-x.max/10 {
				break
			}
			delete(x.entries, k)
		}
	}
	x.entries[key] = e
}

// Len returns the number of cached entries (for tests).
func (x *Exchanger) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.entries)
}
