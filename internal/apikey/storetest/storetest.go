// Package storetest is the conformance suite of apikey.Store. Every
// implementation (apikey/memstore, vault/sqlstore on SQLite and PostgreSQL)
// runs it from its own tests:
//
//	func TestAPIKeyStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) apikey.Store { ... })
//	}
//
// The suite checks the contract written on apikey.Store and nothing more.
// Times are compared to the millisecond: that is all the contract promises.
package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
)

// Run runs the conformance suite. newStore returns a new, empty store and
// arranges for it to be closed when t ends (t.Cleanup); it is called once
// per subtest.
func Run(t *testing.T, newStore func(t *testing.T) apikey.Store) {
	t.Run("CreateLookup", func(t *testing.T) { testCreateLookup(t, newStore(t)) })
	t.Run("CreateInvalid", func(t *testing.T) { testCreateInvalid(t, newStore(t)) })
	t.Run("CreateExisting", func(t *testing.T) { testCreateExisting(t, newStore(t)) })
	t.Run("Revoke", func(t *testing.T) { testRevoke(t, newStore(t)) })
	t.Run("List", func(t *testing.T) { testList(t, newStore(t)) })
	t.Run("Copies", func(t *testing.T) { testCopies(t, newStore(t)) })
	t.Run("ConcurrentCreate", func(t *testing.T) { testConcurrentCreate(t, newStore(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceled(t, newStore(t)) })
}

// t0 is the suite's "now": in the future (no real clock interferes), off
// UTC and with a fraction of a millisecond, to show the store depends on
// neither.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 891_234_567, time.FixedZone("UTC+5:30", 5*3600+1800))

// equalTimes treats two times as equal when both are zero or they are less
// than a millisecond apart, in any location.
var equalTimes = cmp.Comparer(func(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	d := a.Sub(b)
	return -time.Millisecond < d && d < time.Millisecond
})

func diff(want, got any) string { return cmp.Diff(want, got, equalTimes, cmpopts.EquateEmpty()) }

// record returns a new key's record for client, created at created.
func record(t *testing.T, client string, created time.Time, scopes ...string) apikey.Record {
	t.Helper()
	k, err := apikey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return apikey.Record{ID: k.ID, Sum: apikey.Sum(k.Value), ClientID: client, Scopes: scopes, CreatedAt: created}
}

func lookup(t *testing.T, s apikey.Store, id string) apikey.Record {
	t.Helper()
	r, err := s.Lookup(t.Context(), id)
	if err != nil {
		t.Fatalf("Lookup %s: %v", id, err)
	}
	return r
}

func testCreateLookup(t *testing.T, s apikey.Store) {
	ctx := t.Context()
	full := record(t, "reporting-job", t0, "reports:read", "orders")
	full.ExpiresAt = t0.Add(90 * 24 * time.Hour)
	bare := record(t, "a client id with spaces, ünïcode and 'quotes'", t0.Add(time.Second))
	for _, r := range []apikey.Record{full, bare} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	for _, want := range []apikey.Record{full, bare} {
		if d := diff(want, lookup(t, s, want.ID)); d != "" {
			t.Errorf("Lookup %s (-want +got):\n%s", want.ID, d)
		}
	}
	if got := lookup(t, s, bare.ID); !got.ExpiresAt.IsZero() || !got.RevokedAt.IsZero() {
		t.Errorf("a key without expiry reads back with ExpiresAt %v, RevokedAt %v", got.ExpiresAt, got.RevokedAt)
	}
	unknown := record(t, "x", t0)
	if _, err := s.Lookup(ctx, unknown.ID); !errors.Is(err, apikey.ErrNotFound) {
		t.Errorf("Lookup of an unknown id: %v, want ErrNotFound", err)
	}
	if _, err := s.Lookup(ctx, ""); !errors.Is(err, apikey.ErrNotFound) {
		t.Errorf("Lookup of the empty id: %v, want ErrNotFound", err)
	}
}

func testCreateInvalid(t *testing.T, s apikey.Store) {
	ctx := t.Context()
	for name, edit := range map[string]func(*apikey.Record){
		"bad id":          func(r *apikey.Record) { r.ID = "short" },
		"no client id":    func(r *apikey.Record) { r.ClientID = "" },
		"client id \\n":   func(r *apikey.Record) { r.ClientID = "a\nb" },
		"scope with a sp": func(r *apikey.Record) { r.Scopes = []string{"a b"} },
		"no hash":         func(r *apikey.Record) { r.Sum = [32]byte{} },
	} {
		r := record(t, "c", t0)
		edit(&r)
		if err := s.Create(ctx, r); err == nil || errors.Is(err, apikey.ErrExists) {
			t.Errorf("%s: Create: %v, want a validation error", name, err)
		}
	}
	if got, err := s.List(ctx); err != nil || len(got) != 0 {
		t.Errorf("after refused creates: List = %v, %v; want nothing", got, err)
	}
}

func testCreateExisting(t *testing.T, s apikey.Store) {
	ctx := t.Context()
	first := record(t, "first", t0, "a")
	if err := s.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := record(t, "second", t0.Add(time.Minute), "b")
	second.ID = first.ID
	if err := s.Create(ctx, second); !errors.Is(err, apikey.ErrExists) {
		t.Errorf("Create with an existing id: %v, want ErrExists", err)
	}
	if d := diff(first, lookup(t, s, first.ID)); d != "" {
		t.Errorf("the first key changed (-want +got):\n%s", d)
	}
}

func testRevoke(t *testing.T, s apikey.Store) {
	ctx := t.Context()
	a, b := record(t, "a", t0), record(t, "b", t0)
	for _, r := range []apikey.Record{a, b} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	at := t0.Add(time.Hour)
	if err := s.Revoke(ctx, a.ID, at); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	want := a
	want.RevokedAt = at
	if d := diff(want, lookup(t, s, a.ID)); d != "" {
		t.Errorf("revoked key (-want +got):\n%s", d)
	}
	if got := lookup(t, s, b.ID); !got.RevokedAt.IsZero() {
		t.Errorf("revoking %s revoked %s too", a.ID, b.ID)
	}
	// A second revocation keeps the first time.
	if err := s.Revoke(ctx, a.ID, at.Add(time.Hour)); err != nil {
		t.Errorf("second Revoke: %v", err)
	}
	if got := lookup(t, s, a.ID); diff(at, got.RevokedAt) != "" {
		t.Errorf("second Revoke moved RevokedAt to %v, want %v", got.RevokedAt, at)
	}
	if err := s.Revoke(ctx, record(t, "x", t0).ID, at); !errors.Is(err, apikey.ErrNotFound) {
		t.Errorf("Revoke of an unknown id: %v, want ErrNotFound", err)
	}
	if err := s.Revoke(ctx, b.ID, time.Time{}); !errors.Is(err, apikey.ErrZeroTime) {
		t.Errorf("Revoke at the zero time: %v, want ErrZeroTime", err)
	}
	if got := lookup(t, s, b.ID); !got.RevokedAt.IsZero() {
		t.Errorf("a refused Revoke revoked the key")
	}
}

func testList(t *testing.T, s apikey.Store) {
	ctx := t.Context()
	if got, err := s.List(ctx); err != nil || len(got) != 0 {
		t.Fatalf("List of an empty store = %v, %v", got, err)
	}
	// Created out of order; two at one time (ordered by id).
	late := record(t, "late", t0.Add(2*time.Hour))
	early := record(t, "early", t0, "x")
	same1, same2 := record(t, "same", t0.Add(time.Hour)), record(t, "same", t0.Add(time.Hour))
	expired := record(t, "expired", t0.Add(30*time.Minute))
	expired.ExpiresAt = t0.Add(-time.Hour)
	for _, r := range []apikey.Record{late, same2, early, same1, expired} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Revoke(ctx, late.ID, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	late.RevokedAt = t0.Add(3 * time.Hour)
	same := []apikey.Record{same1, same2}
	slices.SortFunc(same, func(a, b apikey.Record) int { return strings.Compare(a.ID, b.ID) })
	want := []apikey.Record{early, expired, same[0], same[1], late}
	got, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(want, got); d != "" {
		t.Errorf("List (-want +got):\n%s", d)
	}
}

// testCopies: records go in and come out as copies.
func testCopies(t *testing.T, s apikey.Store) {
	ctx := t.Context()
	r := record(t, "c", t0, "a", "b")
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.Scopes[0] = "changed after Create"
	got := lookup(t, s, r.ID)
	if got.Scopes[0] != "a" {
		t.Fatalf("the store shares the caller's scopes: %v", got.Scopes)
	}
	got.Scopes[0] = "changed after Lookup"
	list, _ := s.List(ctx)
	list[0].Scopes[1] = "changed after List"
	if again := lookup(t, s, r.ID); !slices.Equal(again.Scopes, []string{"a", "b"}) {
		t.Errorf("the store shares memory with a caller: %v", again.Scopes)
	}
}

// testConcurrentCreate: of concurrent creates of one id exactly one wins.
func testConcurrentCreate(t *testing.T, s apikey.Store) {
	ctx := t.Context()
	base := record(t, "winner", t0)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			r := base
			r.ClientID = string(rune('a' + i))
			errs[i] = s.Create(ctx, r)
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, apikey.ErrExists):
			t.Errorf("create %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d concurrent creates of one id succeeded, want 1", won)
	}
}

// testCanceled: a canceled context fails every call; it never looks like
// an unknown key.
func testCanceled(t *testing.T, s apikey.Store) {
	r := record(t, "c", t0)
	if err := s.Create(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Lookup(ctx, r.ID); err == nil || errors.Is(err, apikey.ErrNotFound) {
		t.Errorf("Lookup with a canceled context: %v, want an error other than ErrNotFound", err)
	}
	if _, err := s.Lookup(ctx, record(t, "x", t0).ID); err == nil || errors.Is(err, apikey.ErrNotFound) {
		t.Errorf("Lookup of an unknown id with a canceled context: %v, want an error other than ErrNotFound", err)
	}
	if _, err := s.List(ctx); err == nil {
		t.Error("List with a canceled context succeeded")
	}
}
