// Package memstore is an in-memory vault.Store for unit tests of the vault
// service. It keeps everything in maps behind one mutex, copies every value
// in and out (callers never share memory with the store), and passes the
// same conformance suite (vault/storetest) as the SQL stores.
//
// It is not for production: its data is lost on exit and it cannot be
// shared by several Gatehouse instances.
package memstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/vault"
)

// Store is an in-memory vault.Store. Its zero value is not usable; call New.
type Store struct {
	// Now returns the time the store writes into CreatedAt and UpdatedAt;
	// nil means time.Now. Set it before the store is used.
	Now func() time.Time

	mu     sync.Mutex
	conns  map[key]*record
	states map[string]vault.ConnectState
}

type key struct {
	issuer, subject, provider string
}

type record struct {
	conn       vault.Connection
	leaseID    string // "" when no lease is held
	leaseUntil time.Time
}

var _ vault.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{conns: map[key]*record{}, states: map[string]vault.ConnectState{}}
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func keyOf(u vault.User, provider string) key { return key{u.Issuer, u.Subject, provider} }

func cloneSealed(x vault.Sealed) vault.Sealed {
	return vault.Sealed{KeyID: x.KeyID, Data: bytes.Clone(x.Data)}
}

func cloneConn(c *vault.Connection) vault.Connection {
	d := *c
	d.AccessToken = cloneSealed(c.AccessToken)
	d.RefreshToken = cloneSealed(c.RefreshToken)
	d.Scopes = slices.Clone(c.Scopes)
	return d
}

// PutConnectState implements vault.Store. A StateHash that exists is an
// error wrapping vault.ErrConflict.
func (s *Store) PutConnectState(_ context.Context, st vault.ConnectState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.states[st.StateHash]; ok {
		return fmt.Errorf("memstore: put connect state: state exists: %w", vault.ErrConflict)
	}
	st.Verifier = cloneSealed(st.Verifier)
	s.states[st.StateHash] = st
	return nil
}

// TakeConnectState implements vault.Store. An expired state is deleted too.
func (s *Store) TakeConnectState(_ context.Context, stateHash string, now time.Time) (*vault.ConnectState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[stateHash]
	if !ok {
		return nil, vault.ErrNotFound
	}
	delete(s.states, stateHash)
	if now.After(st.ExpiresAt) {
		return nil, vault.ErrNotFound
	}
	return &st, nil
}

// DeleteExpiredConnectStates implements vault.Store.
func (s *Store) DeleteExpiredConnectStates(_ context.Context, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for h, st := range s.states {
		if st.ExpiresAt.Before(now) {
			delete(s.states, h)
			n++
		}
	}
	return n, nil
}

// GetConnection implements vault.Store.
func (s *Store) GetConnection(_ context.Context, u vault.User, provider string) (*vault.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.conns[keyOf(u, provider)]
	if !ok {
		return nil, vault.ErrNotFound
	}
	c := cloneConn(&r.conn)
	return &c, nil
}

// ListConnections implements vault.Store.
func (s *Store) ListConnections(_ context.Context, u vault.User) ([]vault.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cs []vault.Connection
	for k, r := range s.conns {
		if k.issuer == u.Issuer && k.subject == u.Subject {
			cs = append(cs, cloneConn(&r.conn))
		}
	}
	slices.SortFunc(cs, func(a, b vault.Connection) int { return cmp.Compare(a.Provider, b.Provider) })
	return cs, nil
}

// SaveConnection implements vault.Store.
func (s *Store) SaveConnection(_ context.Context, c *vault.Connection) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := keyOf(c.User, c.Provider)
	c.UpdatedAt = now
	if r, ok := s.conns[k]; ok {
		c.CreatedAt = r.conn.CreatedAt
		c.Version = r.conn.Version + 1
	} else {
		c.CreatedAt = now
		c.Version = 1
	}
	s.conns[k] = &record{conn: cloneConn(c)}
	return nil
}

// write stores c's data over r (CreatedAt kept, UpdatedAt now, Version one
// more than stored) and copies the result back into c.
func (r *record) write(c *vault.Connection, now time.Time) {
	c.CreatedAt = r.conn.CreatedAt
	c.UpdatedAt = now
	c.Version = r.conn.Version + 1
	r.conn = cloneConn(c)
}

// UpdateConnection implements vault.Store. The lease, if any, stays.
func (s *Store) UpdateConnection(_ context.Context, c *vault.Connection) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.conns[keyOf(c.User, c.Provider)]
	if !ok {
		return vault.ErrNotFound
	}
	if r.conn.Version != c.Version {
		return vault.ErrConflict
	}
	r.write(c, now)
	return nil
}

// DeleteConnection implements vault.Store.
func (s *Store) DeleteConnection(_ context.Context, u vault.User, provider string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, keyOf(u, provider))
	return nil
}

var errNoLeaseID = errors.New("memstore: empty lease id")

// ClaimRefresh implements vault.Store.
func (s *Store) ClaimRefresh(_ context.Context, u vault.User, provider, leaseID string, now, until time.Time) (*vault.Lease, *vault.Connection, error) {
	if leaseID == "" {
		return nil, nil, errNoLeaseID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.conns[keyOf(u, provider)]
	if !ok {
		return nil, nil, vault.ErrNotFound
	}
	if r.leaseID != "" && !r.leaseUntil.Before(now) {
		return nil, nil, vault.ErrLeaseHeld
	}
	r.leaseID, r.leaseUntil = leaseID, until
	c := cloneConn(&r.conn)
	return &vault.Lease{User: u, Provider: provider, ID: leaseID, Until: until}, &c, nil
}

// CompleteRefresh implements vault.Store.
func (s *Store) CompleteRefresh(_ context.Context, l *vault.Lease, c *vault.Connection) error {
	if l.ID == "" {
		return errNoLeaseID
	}
	if c.User != l.User || c.Provider != l.Provider {
		return errors.New("memstore: complete refresh: the connection is not the lease's")
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.conns[keyOf(l.User, l.Provider)]
	if !ok {
		return vault.ErrNotFound
	}
	if r.leaseID != l.ID {
		return vault.ErrConflict
	}
	r.write(c, now)
	r.leaseID, r.leaseUntil = "", time.Time{}
	return nil
}

// ReleaseRefresh implements vault.Store.
func (s *Store) ReleaseRefresh(_ context.Context, l *vault.Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.conns[keyOf(l.User, l.Provider)]; ok && l.ID != "" && r.leaseID == l.ID {
		r.leaseID, r.leaseUntil = "", time.Time{}
	}
	return nil
}

// Close implements vault.Store; it does nothing.
func (s *Store) Close() error { return nil }
