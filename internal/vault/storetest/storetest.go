// Package storetest is the conformance suite of vault.Store. Every
// implementation (vault/memstore, vault/sqlstore on SQLite and PostgreSQL)
// runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) vault.Store { ... })
//	}
//
// The suite checks the contract written on vault.Store and nothing more, so
// that a behaviour one implementation has and another lacks shows up here.
// Times are compared to the second: that is all the contract promises.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse-dev/gatehouse/internal/vault"
)

// Run runs the conformance suite. newStore returns a new, empty store and
// arranges for it to be closed when t ends (t.Cleanup); it is called once
// per subtest.
func Run(t *testing.T, newStore func(t *testing.T) vault.Store) {
	t.Run("ConnectState", func(t *testing.T) { testConnectStates(t, newStore) })
	t.Run("Connection", func(t *testing.T) { testConnections(t, newStore) })
	t.Run("Lease", func(t *testing.T) { testLeases(t, newStore) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, newStore) })
}

// t0 is the suite's "now": in the future (no real clock interferes), off
// UTC and with a fraction of a second, to show the store does not depend on
// either.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 891_234_567, time.FixedZone("UTC+5:30", 5*3600+1800))

var (
	alice = vault.User{Issuer: "https://login.example.com/", Subject: "alice"}
	// aliceElsewhere has alice's subject at another issuer: another user.
	aliceElsewhere = vault.User{Issuer: "https://other.example.net/", Subject: "alice"}
	bob            = vault.User{Issuer: "https://login.example.com/", Subject: "bob"}
)

// equalTimes treats two times as equal when both are zero or they are less
// than a second apart, in any location.
var equalTimes = cmp.Comparer(func(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	d := a.Sub(b)
	return -time.Second < d && d < time.Second
})

var cmpOpts = []cmp.Option{equalTimes, cmpopts.EquateEmpty()}

func diff(want, got any) string { return cmp.Diff(want, got, cmpOpts...) }

// randomBytes returns n random bytes that include 0x00 and 0xff, so that
// a store treating blobs as text shows.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	if n >= 2 {
		b[0], b[n-1] = 0x00, 0xff
	}
	return b
}

func sealed(keyID string, n int) vault.Sealed {
	return vault.Sealed{KeyID: keyID, Data: randomBytes(n)}
}

// newConnection returns a connection with every field set.
func newConnection(u vault.User, provider string) *vault.Connection {
	return &vault.Connection{
		User:         u,
		Provider:     provider,
		AccessToken:  sealed("k1", 80),
		RefreshToken: sealed("k1", 64),
		ExpiresAt:    t0.Add(time.Hour),
		Scopes:       []string{"repo", "read:org", "https://www.googleapis.com/auth/drive.readonly"},
		Status:       vault.StatusConnected,
	}
}

func newState(hash string, expiresAt time.Time) vault.ConnectState {
	return vault.ConnectState{
		StateHash:   hash,
		Provider:    "github",
		User:        alice,
		Verifier:    sealed("k1", 75),
		BindingHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		ReturnTo:    "/settings/connections?tab=github",
		ExpiresAt:   expiresAt,
	}
}

// store wraps a vault.Store with helpers that fail the test on unexpected errors.
type store struct {
	vault.Store
	t   *testing.T
	ctx context.Context
}

func open(t *testing.T, newStore func(t *testing.T) vault.Store) *store {
	t.Helper()
	return &store{Store: newStore(t), t: t, ctx: t.Context()}
}

func (s *store) save(c *vault.Connection) *vault.Connection {
	s.t.Helper()
	if err := s.SaveConnection(s.ctx, c); err != nil {
		s.t.Fatalf("SaveConnection(%s, %s): %v", c.User.Subject, c.Provider, err)
	}
	return c
}

func (s *store) get(u vault.User, provider string) *vault.Connection {
	s.t.Helper()
	c, err := s.GetConnection(s.ctx, u, provider)
	if err != nil {
		s.t.Fatalf("GetConnection(%s, %s): %v", u.Subject, provider, err)
	}
	return c
}

func (s *store) claim(u vault.User, provider, id string, now, until time.Time) (*vault.Lease, *vault.Connection) {
	s.t.Helper()
	l, c, err := s.ClaimRefresh(s.ctx, u, provider, id, now, until)
	if err != nil {
		s.t.Fatalf("ClaimRefresh(%s): %v", id, err)
	}
	return l, c
}

// wantErr fails unless err matches target (nil for success).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	switch {
	case target == nil && err != nil:
		t.Fatalf("%s: %v, want success", what, err)
	case target != nil && !errors.Is(err, target):
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

// clone returns a deep copy of c, as a second caller holding its own copy would.
func clone(c *vault.Connection) *vault.Connection {
	d := *c
	d.AccessToken.Data = bytes.Clone(c.AccessToken.Data)
	d.RefreshToken.Data = bytes.Clone(c.RefreshToken.Data)
	d.Scopes = append([]string(nil), c.Scopes...)
	return &d
}

func testConnectStates(t *testing.T, newStore func(t *testing.T) vault.Store) {
	t.Run("PutTakeOnce", func(t *testing.T) {
		s := open(t, newStore)
		want := newState("hash-1", t0.Add(10*time.Minute))
		if err := s.PutConnectState(s.ctx, want); err != nil {
			t.Fatalf("PutConnectState: %v", err)
		}
		got, err := s.TakeConnectState(s.ctx, "hash-1", t0)
		if err != nil {
			t.Fatalf("TakeConnectState: %v", err)
		}
		if d := diff(&want, got); d != "" {
			t.Errorf("TakeConnectState mismatch (-want +got):\n%s", d)
		}
		if !bytes.Equal(got.Verifier.Data, want.Verifier.Data) {
			t.Errorf("Verifier.Data is not byte-exact")
		}
		_, err = s.TakeConnectState(s.ctx, "hash-1", t0)
		wantErr(t, "second TakeConnectState", err, vault.ErrNotFound)
	})

	t.Run("TakeMissing", func(t *testing.T) {
		s := open(t, newStore)
		_, err := s.TakeConnectState(s.ctx, "no-such-hash", t0)
		wantErr(t, "TakeConnectState", err, vault.ErrNotFound)
	})

	t.Run("DuplicatePutRefused", func(t *testing.T) {
		s := open(t, newStore)
		first := newState("hash-dup", t0.Add(10*time.Minute))
		if err := s.PutConnectState(s.ctx, first); err != nil {
			t.Fatalf("PutConnectState: %v", err)
		}
		second := newState("hash-dup", t0.Add(5*time.Minute))
		second.User = bob
		second.ReturnTo = "/elsewhere"
		if err := s.PutConnectState(s.ctx, second); err == nil {
			t.Fatal("second PutConnectState with the same StateHash succeeded")
		}
		got, err := s.TakeConnectState(s.ctx, "hash-dup", t0)
		if err != nil {
			t.Fatalf("TakeConnectState: %v", err)
		}
		if d := diff(&first, got); d != "" {
			t.Errorf("the refused put changed the state (-want +got):\n%s", d)
		}
	})

	t.Run("Expired", func(t *testing.T) {
		tests := []struct {
			name string
			now  time.Time
			want error
		}{
			{"before expiry", t0.Add(-time.Minute), nil},
			{"at expiry", t0, nil},
			{"a second after expiry", t0.Add(time.Second), vault.ErrNotFound},
			{"an hour after expiry", t0.Add(time.Hour), vault.ErrNotFound},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				s := open(t, newStore)
				if err := s.PutConnectState(s.ctx, newState("hash-exp", t0)); err != nil {
					t.Fatalf("PutConnectState: %v", err)
				}
				_, err := s.TakeConnectState(s.ctx, "hash-exp", tc.now)
				wantErr(t, "TakeConnectState", err, tc.want)
			})
		}
	})

	t.Run("DeleteExpired", func(t *testing.T) {
		s := open(t, newStore)
		expiries := map[string]time.Time{
			"long-gone":   t0.Add(-time.Hour),
			"just-gone":   t0.Add(-time.Second),
			"at-now":      t0, // expires at now, not before: kept
			"still-valid": t0.Add(time.Hour),
		}
		for h, exp := range expiries {
			if err := s.PutConnectState(s.ctx, newState(h, exp)); err != nil {
				t.Fatalf("PutConnectState(%s): %v", h, err)
			}
		}
		n, err := s.DeleteExpiredConnectStates(s.ctx, t0)
		if err != nil {
			t.Fatalf("DeleteExpiredConnectStates: %v", err)
		}
		if n != 2 {
			t.Errorf("DeleteExpiredConnectStates = %d, want 2", n)
		}
		// Taking with a "now" before every expiry shows which rows are gone.
		early := t0.Add(-2 * time.Hour)
		for h, want := range map[string]error{
			"long-gone": vault.ErrNotFound, "just-gone": vault.ErrNotFound,
			"at-now": nil, "still-valid": nil,
		} {
			_, err := s.TakeConnectState(s.ctx, h, early)
			wantErr(t, "TakeConnectState("+h+")", err, want)
		}
		n, err = s.DeleteExpiredConnectStates(s.ctx, t0)
		if err != nil || n != 0 {
			t.Errorf("second DeleteExpiredConnectStates = %d, %v; want 0, nil", n, err)
		}
	})
}

func testConnections(t *testing.T, newStore func(t *testing.T) vault.Store) {
	t.Run("SaveGet", func(t *testing.T) {
		s := open(t, newStore)
		c := s.save(newConnection(alice, "github"))
		if c.Version < 1 {
			t.Errorf("Version after SaveConnection = %d, want ≥ 1", c.Version)
		}
		if c.CreatedAt.IsZero() || c.UpdatedAt.IsZero() {
			t.Errorf("SaveConnection left CreatedAt (%v) or UpdatedAt (%v) zero", c.CreatedAt, c.UpdatedAt)
		}
		got := s.get(alice, "github")
		if d := diff(c, got); d != "" {
			t.Errorf("GetConnection mismatch (-want +got):\n%s", d)
		}
	})

	t.Run("GetMissing", func(t *testing.T) {
		s := open(t, newStore)
		s.save(newConnection(alice, "github"))
		for _, tc := range []struct {
			name     string
			u        vault.User
			provider string
		}{
			{"other provider", alice, "google"},
			{"other subject", bob, "github"},
			{"same subject at another issuer", aliceElsewhere, "github"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := s.GetConnection(s.ctx, tc.u, tc.provider)
				wantErr(t, "GetConnection", err, vault.ErrNotFound)
			})
		}
	})

	t.Run("SealedBytesExact", func(t *testing.T) {
		s := open(t, newStore)
		c := newConnection(alice, "github")
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		c.AccessToken = vault.Sealed{KeyID: "2026-01_a", Data: all}
		c.RefreshToken = vault.Sealed{KeyID: "9f86d081", Data: randomBytes(4096)}
		s.save(c)
		got := s.get(alice, "github")
		for _, f := range []struct {
			name      string
			want, got vault.Sealed
		}{
			{"AccessToken", c.AccessToken, got.AccessToken},
			{"RefreshToken", c.RefreshToken, got.RefreshToken},
		} {
			if f.got.KeyID != f.want.KeyID || !bytes.Equal(f.got.Data, f.want.Data) {
				t.Errorf("%s did not round-trip byte-exact: key id %q, %d bytes; want %q, %d bytes",
					f.name, f.got.KeyID, len(f.got.Data), f.want.KeyID, len(f.want.Data))
			}
		}
	})

	t.Run("OptionalFieldsEmpty", func(t *testing.T) {
		s := open(t, newStore)
		c := newConnection(alice, "github")
		c.RefreshToken = vault.Sealed{} // the provider issued none
		c.ExpiresAt = time.Time{}       // the provider did not say
		c.Scopes = nil
		s.save(c)
		got := s.get(alice, "github")
		if d := diff(c, got); d != "" {
			t.Errorf("GetConnection mismatch (-want +got):\n%s", d)
		}
		if !got.ExpiresAt.IsZero() || !got.NextAttempt.IsZero() {
			t.Errorf("zero times came back as ExpiresAt %v, NextAttempt %v", got.ExpiresAt, got.NextAttempt)
		}
	})

	t.Run("StatusFailuresNextAttempt", func(t *testing.T) {
		s := open(t, newStore)
		c := s.save(newConnection(alice, "github"))
		for _, st := range []struct {
			status   vault.Status
			failures int
			next     time.Time
		}{
			{vault.StatusRefreshUnknown, 1, t0.Add(30 * time.Second)},
			{vault.StatusNeedsReauth, 7, t0.Add(90 * time.Minute)},
			{vault.StatusConnected, 0, time.Time{}},
		} {
			c.Status, c.Failures, c.NextAttempt = st.status, st.failures, st.next
			if err := s.UpdateConnection(s.ctx, c); err != nil {
				t.Fatalf("UpdateConnection(%s): %v", st.status, err)
			}
			if d := diff(c, s.get(alice, "github")); d != "" {
				t.Errorf("after writing status %s (-want +got):\n%s", st.status, d)
			}
		}
	})

	t.Run("ReplaceKeepsCreatedAt", func(t *testing.T) {
		s := open(t, newStore)
		first := s.save(newConnection(alice, "github"))
		firstVersion := first.Version

		second := newConnection(alice, "github")
		second.Scopes = []string{"user:email"}
		second.Status = vault.StatusConnected
		second.CreatedAt = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC) // ignored: the store keeps its own
		second.Version = 0
		s.save(second)
		if d := diff(first.CreatedAt, second.CreatedAt); d != "" {
			t.Errorf("replacing changed CreatedAt (-want +got):\n%s", d)
		}
		if second.Version <= firstVersion {
			t.Errorf("Version after replacing = %d, want > %d", second.Version, firstVersion)
		}
		if second.UpdatedAt.Before(first.UpdatedAt.Add(-time.Second)) {
			t.Errorf("UpdatedAt went back: %v after %v", second.UpdatedAt, first.UpdatedAt)
		}
		got := s.get(alice, "github")
		if d := diff(second, got); d != "" {
			t.Errorf("GetConnection after replace (-want +got):\n%s", d)
		}
		// A caller still holding the replaced connection loses.
		err := s.UpdateConnection(s.ctx, first)
		wantErr(t, "UpdateConnection with the replaced version", err, vault.ErrConflict)
	})

	t.Run("NoAliasing", func(t *testing.T) {
		s := open(t, newStore)
		c := newConnection(alice, "github")
		want := clone(s.save(c))
		c.AccessToken.Data[1] ^= 0xff
		c.Scopes[0] = "changed after save"
		got := s.get(alice, "github")
		if d := diff(want, got); d != "" {
			t.Fatalf("changing the saved value changed the store (-want +got):\n%s", d)
		}
		got.RefreshToken.Data[1] ^= 0xff
		got.Scopes[0] = "changed after get"
		if d := diff(want, s.get(alice, "github")); d != "" {
			t.Errorf("changing a returned value changed the store (-want +got):\n%s", d)
		}
	})

	t.Run("ListOwnOrderedByProvider", func(t *testing.T) {
		s := open(t, newStore)
		var want []vault.Connection
		for _, p := range []string{"slack", "github", "microsoft", "google"} {
			s.save(newConnection(alice, p))
		}
		for _, p := range []string{"github", "google", "microsoft", "slack"} {
			want = append(want, *s.get(alice, p))
		}
		s.save(newConnection(aliceElsewhere, "github"))
		s.save(newConnection(aliceElsewhere, "zoom"))
		s.save(newConnection(bob, "box"))

		got, err := s.ListConnections(s.ctx, alice)
		if err != nil {
			t.Fatalf("ListConnections: %v", err)
		}
		if d := diff(want, got); d != "" {
			t.Errorf("ListConnections(alice) mismatch (-want +got):\n%s", d)
		}
		got, err = s.ListConnections(s.ctx, aliceElsewhere)
		if err != nil {
			t.Fatalf("ListConnections: %v", err)
		}
		if len(got) != 2 || got[0].Provider != "github" || got[1].Provider != "zoom" || got[0].User != aliceElsewhere {
			t.Errorf("ListConnections(alice at another issuer) = %v, want her github and zoom", providers(got))
		}
		got, err = s.ListConnections(s.ctx, vault.User{Issuer: alice.Issuer, Subject: "nobody"})
		if err != nil || len(got) != 0 {
			t.Errorf("ListConnections(unknown user) = %v, %v; want none, nil", providers(got), err)
		}
	})

	t.Run("UpdateVersionCheck", func(t *testing.T) {
		s := open(t, newStore)
		c := s.save(newConnection(alice, "github"))
		stale := clone(c)
		v := c.Version

		c.AccessToken = sealed("k2", 90)
		c.RefreshToken = sealed("k2", 70)
		c.ExpiresAt = t0.Add(2 * time.Hour)
		c.Scopes = []string{"repo"}
		if err := s.UpdateConnection(s.ctx, c); err != nil {
			t.Fatalf("UpdateConnection: %v", err)
		}
		if c.Version != v+1 {
			t.Errorf("Version after UpdateConnection = %d, want %d", c.Version, v+1)
		}
		if d := diff(stale.CreatedAt, c.CreatedAt); d != "" {
			t.Errorf("UpdateConnection changed CreatedAt (-want +got):\n%s", d)
		}
		if d := diff(c, s.get(alice, "github")); d != "" {
			t.Errorf("GetConnection after update (-want +got):\n%s", d)
		}

		want := clone(c)
		stale.Scopes = []string{"admin"}
		err := s.UpdateConnection(s.ctx, stale)
		wantErr(t, "UpdateConnection with a stale version", err, vault.ErrConflict)
		if stale.Version != v {
			t.Errorf("a refused UpdateConnection changed c.Version to %d", stale.Version)
		}
		if d := diff(want, s.get(alice, "github")); d != "" {
			t.Errorf("a refused update changed the connection (-want +got):\n%s", d)
		}
	})

	t.Run("UpdateMissing", func(t *testing.T) {
		s := open(t, newStore)
		never := newConnection(alice, "github")
		never.Version = 1
		err := s.UpdateConnection(s.ctx, never)
		wantErr(t, "UpdateConnection of a connection never saved", err, vault.ErrNotFound)

		c := s.save(newConnection(alice, "google"))
		if err := s.DeleteConnection(s.ctx, alice, "google"); err != nil {
			t.Fatalf("DeleteConnection: %v", err)
		}
		err = s.UpdateConnection(s.ctx, c)
		wantErr(t, "UpdateConnection after delete", err, vault.ErrNotFound)
	})

	t.Run("Delete", func(t *testing.T) {
		s := open(t, newStore)
		s.save(newConnection(alice, "github"))
		s.save(newConnection(alice, "google"))
		s.save(newConnection(aliceElsewhere, "github"))
		s.save(newConnection(bob, "github"))
		if err := s.DeleteConnection(s.ctx, alice, "github"); err != nil {
			t.Fatalf("DeleteConnection: %v", err)
		}
		_, err := s.GetConnection(s.ctx, alice, "github")
		wantErr(t, "GetConnection after delete", err, vault.ErrNotFound)
		for _, k := range []struct {
			u vault.User
			p string
		}{{alice, "google"}, {aliceElsewhere, "github"}, {bob, "github"}} {
			s.get(k.u, k.p) // still there
		}
		if err := s.DeleteConnection(s.ctx, alice, "github"); err != nil {
			t.Errorf("deleting again: %v, want nil", err)
		}
		if err := s.DeleteConnection(s.ctx, bob, "never-connected"); err != nil {
			t.Errorf("deleting a connection that never existed: %v, want nil", err)
		}
	})
}

func providers(cs []vault.Connection) []string {
	var ps []string
	for _, c := range cs {
		ps = append(ps, c.User.Issuer+" "+c.User.Subject+" "+c.Provider)
	}
	return ps
}

func testLeases(t *testing.T, newStore func(t *testing.T) vault.Store) {
	until := t0.Add(30 * time.Second)
	lapsed := until.Add(time.Second) // a "now" after the first lease lapsed

	t.Run("ClaimOnce", func(t *testing.T) {
		s := open(t, newStore)
		stored := s.save(newConnection(alice, "github"))
		l, c := s.claim(alice, "github", "lease-a", t0, until)
		want := &vault.Lease{User: alice, Provider: "github", ID: "lease-a", Until: until}
		if d := diff(want, l); d != "" {
			t.Errorf("ClaimRefresh lease (-want +got):\n%s", d)
		}
		if d := diff(stored, c); d != "" {
			t.Errorf("ClaimRefresh connection (-want +got):\n%s", d)
		}
		for _, tc := range []struct {
			name string
			id   string
			now  time.Time
		}{
			{"another caller", "lease-b", t0},
			{"the same lease id", "lease-a", t0},
			{"another caller just before until", "lease-b", until.Add(-time.Second)},
			{"another caller at until", "lease-b", until},
		} {
			_, _, err := s.ClaimRefresh(s.ctx, alice, "github", tc.id, tc.now, tc.now.Add(time.Minute))
			wantErr(t, "ClaimRefresh by "+tc.name, err, vault.ErrLeaseHeld)
		}
		// Leases are per connection.
		s.save(newConnection(alice, "google"))
		s.save(newConnection(aliceElsewhere, "github"))
		s.claim(alice, "google", "lease-c", t0, until)
		s.claim(aliceElsewhere, "github", "lease-d", t0, until)
	})

	t.Run("ClaimMissing", func(t *testing.T) {
		s := open(t, newStore)
		_, _, err := s.ClaimRefresh(s.ctx, alice, "github", "lease-a", t0, until)
		wantErr(t, "ClaimRefresh", err, vault.ErrNotFound)
	})

	t.Run("ClaimLeavesVersion", func(t *testing.T) {
		s := open(t, newStore)
		stored := s.save(newConnection(alice, "github"))
		l, c := s.claim(alice, "github", "lease-a", t0, until)
		if c.Version != stored.Version {
			t.Errorf("ClaimRefresh returned Version %d, want %d", c.Version, stored.Version)
		}
		if err := s.ReleaseRefresh(s.ctx, l); err != nil {
			t.Fatalf("ReleaseRefresh: %v", err)
		}
		if d := diff(stored, s.get(alice, "github")); d != "" {
			t.Errorf("claim and release changed the connection (-want +got):\n%s", d)
		}
	})

	t.Run("LapsedLeaseCanBeClaimed", func(t *testing.T) {
		s := open(t, newStore)
		s.save(newConnection(alice, "github"))
		s.claim(alice, "github", "lease-a", t0, until)
		l, _ := s.claim(alice, "github", "lease-b", lapsed, lapsed.Add(30*time.Second))
		if l.ID != "lease-b" {
			t.Errorf("lease ID = %q, want lease-b", l.ID)
		}
		_, _, err := s.ClaimRefresh(s.ctx, alice, "github", "lease-c", lapsed, lapsed.Add(time.Minute))
		wantErr(t, "ClaimRefresh while the new lease is held", err, vault.ErrLeaseHeld)
	})

	t.Run("CompleteWritesAndReleases", func(t *testing.T) {
		s := open(t, newStore)
		s.save(newConnection(alice, "github"))
		l, c := s.claim(alice, "github", "lease-a", t0, until)
		v := c.Version
		c.AccessToken = sealed("k2", 96)
		c.RefreshToken = sealed("k2", 72)
		c.ExpiresAt = t0.Add(8 * time.Hour)
		c.Status, c.Failures, c.NextAttempt = vault.StatusConnected, 0, time.Time{}
		if err := s.CompleteRefresh(s.ctx, l, c); err != nil {
			t.Fatalf("CompleteRefresh: %v", err)
		}
		if c.Version != v+1 {
			t.Errorf("Version after CompleteRefresh = %d, want %d", c.Version, v+1)
		}
		got := s.get(alice, "github")
		if d := diff(c, got); d != "" {
			t.Errorf("GetConnection after CompleteRefresh (-want +got):\n%s", d)
		}
		if !bytes.Equal(got.RefreshToken.Data, c.RefreshToken.Data) {
			t.Errorf("refresh token not byte-exact after CompleteRefresh")
		}
		// Released: another caller claims before the old lease would have lapsed.
		s.claim(alice, "github", "lease-b", t0, until)
		// The completed lease is gone: completing it again conflicts.
		err := s.CompleteRefresh(s.ctx, l, clone(c))
		wantErr(t, "CompleteRefresh of a completed lease", err, vault.ErrConflict)
	})

	t.Run("CompleteRecordsFailure", func(t *testing.T) {
		s := open(t, newStore)
		stored := s.save(newConnection(alice, "github"))
		l, c := s.claim(alice, "github", "lease-a", t0, until)
		c.Status, c.Failures, c.NextAttempt = vault.StatusRefreshUnknown, 1, t0.Add(time.Minute)
		if err := s.CompleteRefresh(s.ctx, l, c); err != nil {
			t.Fatalf("CompleteRefresh: %v", err)
		}
		got := s.get(alice, "github")
		if d := diff(c, got); d != "" {
			t.Errorf("GetConnection (-want +got):\n%s", d)
		}
		if !bytes.Equal(got.RefreshToken.Data, stored.RefreshToken.Data) {
			t.Errorf("the last good refresh token was lost")
		}
	})

	t.Run("CompleteAfterLapseNotReclaimed", func(t *testing.T) {
		s := open(t, newStore)
		s.save(newConnection(alice, "github"))
		l, c := s.claim(alice, "github", "lease-a", t0, until)
		c.RefreshToken = sealed("k1", 64) // the provider rotated it: it must not be lost
		if err := s.CompleteRefresh(s.ctx, l, c); err != nil {
			t.Fatalf("CompleteRefresh after Until with nobody else claiming: %v", err)
		}
		if d := diff(c, s.get(alice, "github")); d != "" {
			t.Errorf("GetConnection (-want +got):\n%s", d)
		}
	})

	t.Run("CompleteLapsedAndReclaimed", func(t *testing.T) {
		for _, winnerFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("winner completes first %v", winnerFirst), func(t *testing.T) {
				s := open(t, newStore)
				s.save(newConnection(alice, "github"))
				la, ca := s.claim(alice, "github", "lease-a", t0, until)
				lb, cb := s.claim(alice, "github", "lease-b", lapsed, lapsed.Add(30*time.Second))
				ca.AccessToken, ca.RefreshToken = sealed("loser", 80), sealed("loser", 64)
				cb.AccessToken, cb.RefreshToken = sealed("winner", 80), sealed("winner", 64)
				if winnerFirst {
					if err := s.CompleteRefresh(s.ctx, lb, cb); err != nil {
						t.Fatalf("CompleteRefresh by the holder: %v", err)
					}
				}
				err := s.CompleteRefresh(s.ctx, la, ca)
				wantErr(t, "CompleteRefresh with a lapsed and reclaimed lease", err, vault.ErrConflict)
				if !winnerFirst {
					if err := s.CompleteRefresh(s.ctx, lb, cb); err != nil {
						t.Fatalf("CompleteRefresh by the holder: %v", err)
					}
				}
				got := s.get(alice, "github")
				if d := diff(cb, got); d != "" {
					t.Errorf("the winner's tokens were not kept (-want +got):\n%s", d)
				}
			})
		}
	})

	t.Run("CompleteAfterAnotherWrite", func(t *testing.T) {
		s := open(t, newStore)
		s.save(newConnection(alice, "github"))
		l, c := s.claim(alice, "github", "lease-a", t0, until)
		// Someone writes while the lease is held (a lazy re-seal, say).
		other := s.get(alice, "github")
		other.AccessToken = sealed("k2", 80)
		if err := s.UpdateConnection(s.ctx, other); err != nil {
			t.Fatalf("UpdateConnection while a lease is held: %v", err)
		}
		// The lease is untouched by that write.
		_, _, err := s.ClaimRefresh(s.ctx, alice, "github", "lease-b", t0, until)
		wantErr(t, "ClaimRefresh after UpdateConnection", err, vault.ErrLeaseHeld)

		c.AccessToken = sealed("k2", 88)
		if err := s.CompleteRefresh(s.ctx, l, c); err != nil {
			t.Fatalf("CompleteRefresh: %v", err)
		}
		if c.Version <= other.Version {
			t.Errorf("Version after CompleteRefresh = %d, want > %d (the write made meanwhile)", c.Version, other.Version)
		}
		err = s.UpdateConnection(s.ctx, other)
		wantErr(t, "UpdateConnection with the version before the refresh", err, vault.ErrConflict)
		if d := diff(c, s.get(alice, "github")); d != "" {
			t.Errorf("GetConnection (-want +got):\n%s", d)
		}
	})

	t.Run("CompleteDeleted", func(t *testing.T) {
		s := open(t, newStore)
		s.save(newConnection(alice, "github"))
		l, c := s.claim(alice, "github", "lease-a", t0, until)
		if err := s.DeleteConnection(s.ctx, alice, "github"); err != nil {
			t.Fatalf("DeleteConnection: %v", err)
		}
		err := s.CompleteRefresh(s.ctx, l, c)
		wantErr(t, "CompleteRefresh after delete", err, vault.ErrNotFound)
		if err := s.ReleaseRefresh(s.ctx, l); err != nil {
			t.Errorf("ReleaseRefresh after delete: %v, want nil", err)
		}
	})

	t.Run("Release", func(t *testing.T) {
		s := open(t, newStore)
		stored := s.save(newConnection(alice, "github"))
		l, _ := s.claim(alice, "github", "lease-a", t0, until)
		if err := s.ReleaseRefresh(s.ctx, l); err != nil {
			t.Fatalf("ReleaseRefresh: %v", err)
		}
		if err := s.ReleaseRefresh(s.ctx, l); err != nil {
			t.Errorf("ReleaseRefresh twice: %v, want nil", err)
		}
		if d := diff(stored, s.get(alice, "github")); d != "" {
			t.Errorf("ReleaseRefresh wrote the connection (-want +got):\n%s", d)
		}
		s.claim(alice, "github", "lease-b", t0, until)
		err := s.CompleteRefresh(s.ctx, l, clone(stored))
		wantErr(t, "CompleteRefresh of a released lease", err, vault.ErrConflict)
	})

	t.Run("ReleaseNotHeld", func(t *testing.T) {
		s := open(t, newStore)
		s.save(newConnection(alice, "github"))
		la, _ := s.claim(alice, "github", "lease-a", t0, until)
		s.claim(alice, "github", "lease-b", lapsed, lapsed.Add(30*time.Second))
		if err := s.ReleaseRefresh(s.ctx, la); err != nil {
			t.Fatalf("ReleaseRefresh of a lease taken over: %v, want nil", err)
		}
		_, _, err := s.ClaimRefresh(s.ctx, alice, "github", "lease-c", lapsed, lapsed.Add(time.Minute))
		wantErr(t, "ClaimRefresh after the old holder released", err, vault.ErrLeaseHeld)
	})

	t.Run("SaveClearsLease", func(t *testing.T) {
		s := open(t, newStore)
		s.save(newConnection(alice, "github"))
		l, c := s.claim(alice, "github", "lease-a", t0, until)
		reconnected := s.save(newConnection(alice, "github")) // a new connect flow
		c.AccessToken = sealed("stale-refresh", 80)
		err := s.CompleteRefresh(s.ctx, l, c)
		wantErr(t, "CompleteRefresh after SaveConnection", err, vault.ErrConflict)
		if d := diff(reconnected, s.get(alice, "github")); d != "" {
			t.Errorf("the new connection's tokens were not kept (-want +got):\n%s", d)
		}
		s.claim(alice, "github", "lease-b", t0, until)
	})
}

// race runs f(i) for i in [0, n) at once and returns the errors.
func race(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner fails unless exactly one of errs is nil and all others match loss.
func oneWinner(t *testing.T, errs []error, loss error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("callers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, loss):
			t.Errorf("caller %d: %v, want %v", i, err, loss)
		}
	}
	if winner < 0 {
		t.Fatalf("no caller won among %d", len(errs))
	}
	return winner
}

func testConcurrency(t *testing.T, newStore func(t *testing.T) vault.Store) {
	until := t0.Add(30 * time.Second)

	t.Run("Claim50", func(t *testing.T) {
		s := open(t, newStore)
		s.save(newConnection(alice, "github"))
		leases := make([]*vault.Lease, 50)
		errs := race(50, func(i int) error {
			var err error
			leases[i], _, err = s.ClaimRefresh(s.ctx, alice, "github", fmt.Sprintf("lease-%d", i), t0, until)
			return err
		})
		w := oneWinner(t, errs, vault.ErrLeaseHeld)
		if err := s.CompleteRefresh(s.ctx, leases[w], s.get(alice, "github")); err != nil {
			t.Errorf("CompleteRefresh by the winner: %v", err)
		}
	})

	t.Run("Claim50Lapsed", func(t *testing.T) {
		s := open(t, newStore)
		s.save(newConnection(alice, "github"))
		s.claim(alice, "github", "gone", t0, until)
		now := until.Add(time.Second)
		errs := race(50, func(i int) error {
			_, _, err := s.ClaimRefresh(s.ctx, alice, "github", fmt.Sprintf("lease-%d", i), now, now.Add(30*time.Second))
			return err
		})
		oneWinner(t, errs, vault.ErrLeaseHeld)
	})

	t.Run("Update20", func(t *testing.T) {
		s := open(t, newStore)
		c := s.save(newConnection(alice, "github"))
		copies := make([]*vault.Connection, 20)
		for i := range copies {
			copies[i] = clone(c)
			copies[i].Failures = i + 1
		}
		errs := race(20, func(i int) error { return s.UpdateConnection(s.ctx, copies[i]) })
		w := oneWinner(t, errs, vault.ErrConflict)
		got := s.get(alice, "github")
		if got.Failures != w+1 || got.Version != c.Version+1 {
			t.Errorf("stored Failures %d, Version %d; want the winner's %d, %d", got.Failures, got.Version, w+1, c.Version+1)
		}
	})

	t.Run("Take20", func(t *testing.T) {
		s := open(t, newStore)
		if err := s.PutConnectState(s.ctx, newState("hash-race", t0.Add(time.Minute))); err != nil {
			t.Fatalf("PutConnectState: %v", err)
		}
		errs := race(20, func(int) error {
			_, err := s.TakeConnectState(s.ctx, "hash-race", t0)
			return err
		})
		oneWinner(t, errs, vault.ErrNotFound)
	})
}
