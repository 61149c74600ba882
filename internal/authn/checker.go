package authn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/introspect"
	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

// Checker turns an access token into a Principal: by verifying it as a JWT,
// by introspecting it, or (Unchecked) by taking the cookie's word for it.
type Checker interface {
	Check(ctx context.Context, token string) (*Principal, error)
}

// Errors of token checks. Each is an *httperr.Error; the entry adds the
// WWW-Authenticate challenge where the route speaks RFC 6750.
var (
	// ErrInvalidToken: the token is malformed, forged, expired, for another
	// audience or inactive.
	ErrInvalidToken = httperr.New(http.StatusUnauthorized, httperr.CodeUnauthorized, "The access token is invalid or expired")
	// ErrASUnavailable: the token could not be checked because the
	// authorization server (its keys or its introspection endpoint) is unavailable.
	ErrASUnavailable = httperr.New(http.StatusBadGateway, httperr.CodeASError, "A problem occurred with a request to the Authorization Server")
)

// tokenSum is the SHA-256 of a token. It hashes the string's bytes in
// place: []byte(token) would copy the token on every request.
func tokenSum(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// tokenHash is the hex SHA-256 of a token.
func tokenHash(token string) string {
	h := tokenSum(token)
	return hex.EncodeToString(h[:])
}

// Unchecked accepts the token as it is: the cookie entry's default, where
// the sealed cookie proves Gatehouse issued it and the upstream validates it.
type Unchecked struct{}

// Check implements Checker.
func (Unchecked) Check(_ context.Context, token string) (*Principal, error) {
	return &Principal{Token: secret.New(token), TokenHash: tokenHash(token)}, nil
}

// JWTChecker verifies JWT access tokens and caches verified tokens by their
// SHA-256 until they expire, so a repeated token costs no signature check.
// The cache belongs to one verifier (one issuer and audience): a token
// verified for one route's audience is never accepted from the cache of another.
//
// Cache hits take a read lock only, so concurrent requests do not queue
// behind each other, and allocate only the caller's copy of the Principal.
type JWTChecker struct {
	verifier   *jwtverify.Verifier
	now        func() time.Time
	maxEntries int

	mu    sync.RWMutex
	cache map[[sha256.Size]byte]*jwtEntry
}

type jwtEntry struct {
	p       Principal // immutable after insertion; callers get copies
	expires time.Time
}

// DefaultJWTCacheEntries bounds a JWTChecker's cache.
const DefaultJWTCacheEntries = 100_000

// NewJWTChecker returns a checker using v.
func NewJWTChecker(v *jwtverify.Verifier, now func() time.Time, maxEntries int) *JWTChecker {
	if now == nil {
		now = time.Now
	}
	if maxEntries <= 0 {
		maxEntries = DefaultJWTCacheEntries
	}
	return &JWTChecker{verifier: v, now: now, maxEntries: maxEntries, cache: map[[sha256.Size]byte]*jwtEntry{}}
}

// Check implements Checker.
func (c *JWTChecker) Check(ctx context.Context, token string) (*Principal, error) {
	if len(token) > jwtverify.MaxTokenBytes {
		return nil, ErrInvalidToken.WithCause(jwtverify.ErrMalformed)
	}
	key := tokenSum(token)
	now := c.now()
	c.mu.RLock()
	e, ok := c.cache[key]
	c.mu.RUnlock()
	if ok {
		if now.Before(e.expires) {
			p := e.p
			return &p, nil
		}
		c.mu.Lock()
		if c.cache[key] == e {
			delete(c.cache, key)
		}
		c.mu.Unlock()
	}
	claims, err := c.verifier.Verify(ctx, token)
	if err != nil {
		if errors.Is(err, jwtverify.ErrKeysUnavailable) {
			return nil, ErrASUnavailable.WithCause(err)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, ErrInvalidToken.WithCause(err)
	}
	p := Principal{
		Issuer:    claims.Issuer,
		Subject:   claims.Subject,
		ClientID:  claims.ClientID,
		Scopes:    strings.Fields(claims.Scope),
		Claims:    claims.Raw,
		Expiry:    claims.Expiry,
		Token:     secret.New(token),
		TokenHash: hex.EncodeToString(key[:]),
		Checked:   true,
	}
	c.store(key, p, claims.Expiry, now)
	return &p, nil
}

func (c *JWTChecker) store(key [sha256.Size]byte, p Principal, exp, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cache) >= c.maxEntries {
		for k, e := range c.cache {
			if !now.Before(e.expires) {
				delete(c.cache, k)
			}
		}
		// Still full of live tokens: drop an arbitrary tenth rather than grow.
		if len(c.cache) >= c.maxEntries {
			n := c.maxEntries / 10
			for k := range c.cache {
				if n <= 0 {
					break
				}
				delete(c.cache, k)
				n--
			}
		}
	}
	c.cache[key] = &jwtEntry{p: p, expires: exp}
}

// OpaqueChecker introspects opaque tokens (the introspector caches results).
type OpaqueChecker struct {
	Introspector *introspect.Introspector
}

// Check implements Checker.
func (c *OpaqueChecker) Check(ctx context.Context, token string) (*Principal, error) {
	res, err := c.Introspector.Introspect(ctx, token)
	switch {
	case errors.Is(err, introspect.ErrMalformedToken):
		return nil, ErrInvalidToken.WithCause(err)
	case err != nil:
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, ErrASUnavailable.WithCause(err)
	case !res.Active:
		return nil, ErrInvalidToken.WithCause(errors.New("authn: the token is not active"))
	}
	p := &Principal{
		Issuer:      res.Issuer,
		Subject:     res.Subject,
		ClientID:    res.ClientID,
		Scopes:      strings.Fields(res.Scope),
		Claims:      res.Claims,
		Expiry:      res.Expiry,
		Token:       secret.New(token),
		TokenHash:   tokenHash(token),
		UpstreamJWT: secret.New(res.JWT),
		Checked:     true,
	}
	return p, nil
}

// Bearer is the entry of apps and services: an RFC 6750 bearer token in the
// Authorization header, checked by Checker. Cookies are ignored.
type Bearer struct {
	Checker Checker
	// Realm of the WWW-Authenticate challenge.
	Realm string
}

// Name implements Entry.
func (b *Bearer) Name() string { return "bearer" }

// Present implements Entry: the request has an Authorization header.
func (b *Bearer) Present(r *http.Request) bool { return len(r.Header["Authorization"]) > 0 }

// Authenticate implements Entry.
func (b *Bearer) Authenticate(r *http.Request) (*Principal, error) {
	vals := r.Header["Authorization"]
	if len(vals) != 1 {
		return nil, b.challenge(ErrInvalidToken, "invalid_request", "one Authorization header is required")
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	token = strings.TrimLeft(token, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return nil, b.challenge(ErrInvalidToken, "invalid_request", "the Authorization header must be Bearer <token>")
	}
	p, err := b.Checker.Check(r.Context(), token)
	if err != nil {
		var he *httperr.Error
		if errors.As(err, &he) && he.Status == http.StatusUnauthorized {
			return nil, b.challenge(he, "invalid_token", "the access token is invalid or expired")
		}
		return nil, err
	}
	if err := checkBinding(r, p); err != nil {
		return nil, b.challenge(ErrInvalidToken.WithCause(err), "invalid_token", "the access token is bound to a key the request does not prove")
	}
	p.Method = "bearer"
	return p, nil
}

// challenge returns e with an RFC 6750 WWW-Authenticate header.
func (b *Bearer) challenge(e *httperr.Error, code, desc string) *httperr.Error {
	c := *e
	c.WWWAuthenticate = fmt.Sprintf(`Bearer realm=%q, error=%q, error_description=%q`, b.Realm, code, desc)
	return &c
}

// Anonymous admits requests without credentials. A request with a credential
// of another of the route's entries is authenticated by that entry and fails
// if the credential is invalid: it never falls back to anonymous.
type Anonymous struct{}

// Name implements Entry.
func (Anonymous) Name() string { return "anonymous" }

// Present implements Entry: anonymous is never "present"; Authenticate uses
// it when no other entry's credential is.
func (Anonymous) Present(*http.Request) bool { return false }

// Authenticate implements Entry.
func (Anonymous) Authenticate(*http.Request) (*Principal, error) {
	return &Principal{Method: "anonymous"}, nil
}
