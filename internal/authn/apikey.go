package authn

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
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

// APIKeys is the entry of API users (seed 004): a key in a header of its own,
// looked up by its public id and compared by hash in constant time. An
// unknown, malformed, expired or revoked key gets the same 401, and the
// time the check takes does not depend on the secret part of the key.
type APIKeys struct {
	header string
	keys   map[string]*APIKey
	now    func() time.Time
}

// NewAPIKeys returns the entry for keys presented in header.
func NewAPIKeys(header string, keys []APIKey, now func() time.Time) (*APIKeys, error) {
	if now == nil {
		now = time.Now
	}
	e := &APIKeys{header: http.CanonicalHeaderKey(header), keys: make(map[string]*APIKey, len(keys)), now: now}
	for i := range keys {
		k := keys[i]
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
	k, known := e.keys[id]
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
