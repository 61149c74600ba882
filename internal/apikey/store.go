package apikey

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of a Store.
var (
	// ErrNotFound: no key with that id.
	ErrNotFound = errors.New("apikey: no such key")
	// ErrExists: a key with that id exists already.
	ErrExists = errors.New("apikey: a key with this id exists")
	// ErrZeroTime: Revoke was given the zero time.
	ErrZeroTime = errors.New("apikey: revocation time is zero")
)

// MaxClientIDLen bounds a key's client id.
const MaxClientIDLen = 255

// Record is an API key as a Store holds it: its public id, the SHA-256 of
// the whole key (never the key), and the client it stands for.
type Record struct {
	ID       string
	Sum      [sha256.Size]byte
	ClientID string
	// Scopes the key grants; nil and empty are the same.
	Scopes []string
	// ExpiresAt is the time from which the key is refused; zero for a key
	// that does not expire.
	ExpiresAt time.Time
	// RevokedAt is when the key was revoked; zero while it is not. A
	// revoked key is refused whatever the time.
	RevokedAt time.Time
	CreatedAt time.Time
}

// Validate reports what makes r unfit to be stored: an id that is not a key
// id, a missing or overlong client id, a scope with spaces, quotes or
// backslashes, or a zero hash.
func (r *Record) Validate() error {
	var errs []error
	if !ValidID(r.ID) {
		errs = append(errs, fmt.Errorf("apikey: %q is not a key id", r.ID))
	}
	if r.ClientID == "" || len(r.ClientID) > MaxClientIDLen || strings.ContainsAny(r.ClientID, "\x00\r\n") {
		errs = append(errs, fmt.Errorf("apikey: the client id must be 1 to %d characters without control characters", MaxClientIDLen))
	}
	for _, s := range r.Scopes {
		if !ValidScope(s) {
			errs = append(errs, fmt.Errorf("apikey: %q is not a valid scope", s))
		}
	}
	if r.Sum == ([sha256.Size]byte{}) {
		errs = append(errs, errors.New("apikey: the record has no hash"))
	}
	return errors.Join(errs...)
}

// ValidScope reports whether s can be a scope: not empty, without spaces,
// quotes or backslashes.
func ValidScope(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\r\n\"\\")
}

// Store holds API keys created at run time (`gatehouse keys api-key
// create`). The apikey entry looks a presented key's id up on every
// request, so that a revocation is seen by the next request; the command
// line creates, revokes and lists keys. Implementations: the SQL store
// (vault/sqlstore, SQLite and PostgreSQL) and apikey/memstore for tests;
// apikey/storetest is the contract's conformance suite.
//
// Times are kept to the millisecond at least.
type Store interface {
	// Lookup returns the key with id, revoked and expired ones included,
	// or ErrNotFound.
	Lookup(ctx context.Context, id string) (Record, error)
	// Create stores r. A record that fails Validate is an error; a key
	// with r.ID that exists is ErrExists (and stays as it was).
	Create(ctx context.Context, r Record) error
	// Revoke marks the key with id revoked at at (which must not be the
	// zero time). A key revoked before keeps its first RevokedAt (and Revoke
	// returns nil); an unknown id is ErrNotFound.
	Revoke(ctx context.Context, id string, at time.Time) error
	// List returns every key, revoked and expired ones included, ordered
	// by CreatedAt and then ID.
	List(ctx context.Context) ([]Record, error)
}
