// Package memstore is an in-memory apikey.Store for unit tests. It keeps the
// records in a map behind one mutex, copies them in and out (callers never
// share memory with the store), and passes the same conformance suite
// (apikey/storetest) as the SQL store.
//
// It is not for production: its keys are lost on exit and the command line
// cannot reach them.
package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
)

// Store is an in-memory apikey.Store. Its zero value is an empty store.
type Store struct {
	// Err, when set, is returned by every call: a store that is down.
	Err func() error

	mu   sync.Mutex
	keys map[string]apikey.Record
}

var _ apikey.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store { return &Store{} }

func clone(r apikey.Record) apikey.Record {
	r.Scopes = slices.Clone(r.Scopes)
	return r
}

func (s *Store) fail(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.Err != nil {
		return s.Err()
	}
	return nil
}

// Lookup implements apikey.Store.
func (s *Store) Lookup(ctx context.Context, id string) (apikey.Record, error) {
	if err := s.fail(ctx); err != nil {
		return apikey.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.keys[id]
	if !ok {
		return apikey.Record{}, apikey.ErrNotFound
	}
	return clone(r), nil
}

// Create implements apikey.Store.
func (s *Store) Create(ctx context.Context, r apikey.Record) error {
	if err := s.fail(ctx); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("memstore: create: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[r.ID]; ok {
		return fmt.Errorf("memstore: create %s: %w", r.ID, apikey.ErrExists)
	}
	if s.keys == nil {
		s.keys = map[string]apikey.Record{}
	}
	s.keys[r.ID] = clone(r)
	return nil
}

// Revoke implements apikey.Store.
func (s *Store) Revoke(ctx context.Context, id string, at time.Time) error {
	if err := s.fail(ctx); err != nil {
		return err
	}
	if at.IsZero() {
		return fmt.Errorf("memstore: revoke %s: %w", id, apikey.ErrZeroTime)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.keys[id]
	if !ok {
		return apikey.ErrNotFound
	}
	if r.RevokedAt.IsZero() {
		r.RevokedAt = at
		s.keys[id] = r
	}
	return nil
}

// List implements apikey.Store.
func (s *Store) List(ctx context.Context) ([]apikey.Record, error) {
	if err := s.fail(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]apikey.Record, 0, len(s.keys))
	for _, r := range s.keys {
		out = append(out, clone(r))
	}
	slices.SortFunc(out, func(a, b apikey.Record) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}
