package authn

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
)

// APIKey is a key the apikey entry accepts: its id, the SHA-256 of the
// whole key, and the client it stands for.
type APIKey struct {
	ID       string
	Sum      [sha256.Size]byte
	ClientID string
	Scopes   []string
	// Expires is zero for a key that does not expire.
	Expires time.Time
	Revoked bool
}

// APIKeyStore is where the apikey entry finds keys created at run time
// (apikey.Store has it).
type APIKeyStore interface {
	// Lookup returns the key with id, or an error wrapping
	// apikey.ErrNotFound; any other error means the store cannot answer.
	Lookup(ctx context.Context, id string) (apikey.Record, error)
}

// DefaultAPIKeyLookupTimeout bounds a store lookup when
// APIKeysConfig.LookupTimeout is zero.
const DefaultAPIKeyLookupTimeout = 5 * time.Second

// APIKeysConfig configures the apikey entry.
type APIKeysConfig struct {
	// Header carries the key.
	Header string
	// Keys are the keys of the configuration file.
	Keys []APIKey
	// Store, when set, is asked on every request for a key whose id is not
	// in Keys: nothing is cached, so a key revoked in the store is refused
	// by the next request.
	Store APIKeyStore
	// LookupTimeout bounds a store lookup; zero means
	// DefaultAPIKeyLookupTimeout.
	LookupTimeout time.Duration
	// Now is the clock keys expire by; nil means time.Now.
	Now func() time.Time
}

// APIKeys is the entry of API users (seed 004): a key in a header of its own,
// looked up by its public id (in the configuration's keys, then in the
// store) and compared by hash in constant time. An unknown, malformed,
// expired or revoked key gets the same 401, and the time the check takes
// does not depend on the secret part of the key. A store that cannot answer
// gets ErrKeyStore (502), never a 401 and never a pass.
type APIKeys struct {
	header  string
	keys    map[string]*APIKey
	store   APIKeyStore
	timeout time.Duration
	now     func() time.Time
}

// NewAPIKeys returns the entry.
func NewAPIKeys(c APIKeysConfig) (*APIKeys, error) {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.LookupTimeout <= 0 {
		c.LookupTimeout = DefaultAPIKeyLookupTimeout
	}
	e := &APIKeys{
		header: http.CanonicalHeaderKey(c.Header), keys: make(map[string]*APIKey, len(c.Keys)),
		store: c.Store, timeout: c.LookupTimeout, now: c.Now,
	}
	for i := range c.Keys {
		k := c.Keys[i]
		if !apikey.ValidID(k.ID) || k.ClientID == "" {
			return nil, fmt.Errorf("authn: API key %d: id and client id are required", i)
		}
		if _, dup := e.keys[k.ID]; dup {
			return nil, fmt.Errorf("authn: API key id %s is listed twice", k.ID)
		}
		k.Scopes = slices.Clone(k.Scopes)
		e.keys[k.ID] = &k
	}
	return e, nil
}

// Header is the canonical name of the header the key travels in.
func (e *APIKeys) Header() string { return e.header }

// Name implements Entry.
func (e *APIKeys) Name() string { return "apikey" }

// Present implements Entry: the request carries the key header.
func (e *APIKeys) Present(r *http.Request) bool { return len(r.Header[e.header]) > 0 }

// errBadKey is the one cause every refused key gets in responses; the log
// line says more (never the key).
var errBadKey = errors.New("authn: API key refused")

// dummySum is compared against when the id is unknown, so that an unknown
// id costs what a known one does.
var dummySum [sha256.Size]byte

// ErrKeyStore is the apikey entry's answer when its store cannot say
// whether a key is valid: 502 key_store_error. The request is neither
// admitted nor told that its key is bad.
var ErrKeyStore = httperr.New(http.StatusBadGateway, "key_store_error", "Gatehouse cannot check API keys at the moment")

// lookup finds the key with id in the configuration's keys, then in the
// store; it reports false for an id neither knows.
func (e *APIKeys) lookup(ctx context.Context, id string) (*APIKey, bool, error) {
	if k, ok := e.keys[id]; ok {
		return k, true, nil
	}
	if e.store == nil {
		return nil, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	r, err := e.store.Lookup(ctx, id)
	switch {
	case errors.Is(err, apikey.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case r.ID != id:
		return nil, false, fmt.Errorf("authn: the store answered the lookup of key id %s with key id %s", id, r.ID)
	}
	return &APIKey{
		ID: r.ID, Sum: r.Sum, ClientID: r.ClientID, Scopes: r.Scopes,
		Expires: r.ExpiresAt, Revoked: !r.RevokedAt.IsZero(),
	}, true, nil
}

// Authenticate implements Entry.
func (e *APIKeys) Authenticate(r *http.Request) (*Principal, error) {
	vals := r.Header[e.header]
	if len(vals) != 1 {
		return nil, ErrUnauthorized.WithCause(fmt.Errorf("%w: %d %s headers", errBadKey, len(vals), e.header))
	}
	id, err := apikey.Parse(vals[0])
	if err != nil {
		return nil, ErrUnauthorized.WithCause(fmt.Errorf("%w: malformed key", errBadKey))
	}
	k, known, err := e.lookup(r.Context(), id)
	if err != nil {
		return nil, ErrKeyStore.WithCause(fmt.Errorf("authn: looking up API key id %s: %w", id, err))
	}
	want := &dummySum
	if known {
		want = &k.Sum
	}
	got := apikey.Sum(vals[0])
	match := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	switch {
	case !known:
		return nil, ErrUnauthorized.WithCause(fmt.Errorf("%w: unknown key id %s", errBadKey, id))
	case !match:
		return nil, ErrUnauthorized.WithCause(fmt.Errorf("%w: wrong secret for key id %s", errBadKey, id))
	case k.Revoked:
		return nil, ErrUnauthorized.WithCause(fmt.Errorf("%w: key id %s is revoked", errBadKey, id))
	case !k.Expires.IsZero() && !e.now().Before(k.Expires):
		return nil, ErrUnauthorized.WithCause(fmt.Errorf("%w: key id %s expired", errBadKey, id))
	}
	return &Principal{
		Subject:   k.ClientID,
		ClientID:  k.ClientID,
		Scopes:    slices.Clone(k.Scopes),
		Expiry:    k.Expires,
		TokenHash: "apikey:" + hex.EncodeToString(k.Sum[:]),
		Method:    "apikey",
		Checked:   true,
	}, nil
}
