package authn_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
	"github.com/gatehouse-dev/gatehouse/internal/apikey/memstore"
	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
)

// countingStore counts the lookups that reach a store.
type countingStore struct {
	authn.APIKeyStore
	n atomic.Int64
}

func (c *countingStore) Lookup(ctx context.Context, id string) (apikey.Record, error) {
	c.n.Add(1)
	return c.APIKeyStore.Lookup(ctx, id)
}

// hangingStore answers no lookup before its context ends.
type hangingStore struct{}

func (hangingStore) Lookup(ctx context.Context, _ string) (apikey.Record, error) {
	<-ctx.Done()
	return apikey.Record{}, ctx.Err()
}

func newKey(t *testing.T) apikey.Key {
	t.Helper()
	k, err := apikey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyRequest(vals ...string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	for _, v := range vals {
		r.Header.Add("X-API-Key", v)
	}
	return r
}

// wantStatus fails unless err is an *httperr.Error with status and code, and
// its text does not hold the key.
func wantStatus(t *testing.T, what string, err error, status int, code, key string) {
	t.Helper()
	var he *httperr.Error
	if !errors.As(err, &he) || he.Status != status || he.Code != code {
		t.Errorf("%s: %v, want %d %s", what, err, status, code)
	}
	if err != nil && contains(err.Error(), key) {
		t.Errorf("%s: the error text holds the key", what)
	}
}

// TestAPIKeysEntryStore: keys of the store are looked up on every request
// (after the configuration's), so a revocation in the store is seen by the
// very next request; unknown, wrong, expired and revoked store keys get the
// one 401 of configured keys.
func TestAPIKeysEntryStore(t *testing.T) {
	ctx := t.Context()
	var clock atomic.Pointer[time.Time]
	t0 := time.Unix(1_800_000_000, 0)
	clock.Store(&t0)
	now := func() time.Time { return *clock.Load() }

	mem := memstore.New()
	store := &countingStore{APIKeyStore: mem}
	configured, stored, expiring, revoked, shadowed := newKey(t), newKey(t), newKey(t), newKey(t), newKey(t)
	create := func(k apikey.Key, client string, edit func(*apikey.Record)) {
		r := apikey.Record{ID: k.ID, Sum: apikey.Sum(k.Value), ClientID: client, Scopes: []string{"reports"}, CreatedAt: t0}
		if edit != nil {
			edit(&r)
		}
		if err := mem.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	create(stored, "store-job", nil)
	create(expiring, "short-job", func(r *apikey.Record) { r.ExpiresAt = t0.Add(time.Hour) })
	create(revoked, "leaked-job", func(r *apikey.Record) { r.RevokedAt = t0.Add(-time.Hour) })
	// A configured key that is revoked is refused even when the store
	// holds an unrevoked key with its id: the configuration comes first.
	create(shadowed, "store-shadow", nil)
	e, err := authn.NewAPIKeys(authn.APIKeysConfig{
		Header: "X-API-Key",
		Keys: []authn.APIKey{
			{ID: configured.ID, Sum: apikey.Sum(configured.Value), ClientID: "config-job", Scopes: []string{"read"}},
			{ID: shadowed.ID, Sum: apikey.Sum(shadowed.Value), ClientID: "config-shadow", Revoked: true},
		},
		Store: store, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}

	p, err := e.Authenticate(keyRequest(configured.Value))
	if err != nil || p.ClientID != "config-job" {
		t.Fatalf("configured key: %+v, %v", p, err)
	}
	if n := store.n.Load(); n != 0 {
		t.Errorf("a configured key cost %d store lookups, want 0", n)
	}
	p, err = e.Authenticate(keyRequest(stored.Value))
	if err != nil {
		t.Fatalf("stored key: %v", err)
	}
	if p.Subject != "store-job" || p.ClientID != "store-job" || len(p.Scopes) != 1 || p.Scopes[0] != "reports" ||
		p.Method != "apikey" || !p.Checked || !p.Expiry.IsZero() || p.TokenHash == "" {
		t.Errorf("principal of a stored key: %+v", p)
	}
	if p, err := e.Authenticate(keyRequest(expiring.Value)); err != nil || !p.Expiry.Equal(t0.Add(time.Hour)) {
		t.Errorf("stored key with an expiry ahead: %+v, %v", p, err)
	}

	wrong := stored.Value[:len(stored.Value)-2] + "xx"
	if wrong == stored.Value {
		wrong = stored.Value[:len(stored.Value)-2] + "yy"
	}
	for name, k := range map[string]string{
		"revoked in the store":           revoked.Value,
		"wrong secret":                   wrong,
		"unknown":                        newKey(t).Value,
		"revoked in the configuration":   shadowed.Value,
		"the configured hash as the key": apikey.Hash(stored.Value),
	} {
		_, err := e.Authenticate(keyRequest(k))
		wantStatus(t, name, err, 401, "unauthorized", k)
	}

	// Revoked now: the next request is refused, nothing is cached.
	before := store.n.Load()
	if err := mem.Revoke(ctx, stored.ID, now()); err != nil {
		t.Fatal(err)
	}
	_, err = e.Authenticate(keyRequest(stored.Value))
	wantStatus(t, "the request right after a revocation", err, 401, "unauthorized", stored.Value)
	if n := store.n.Load() - before; n != 1 {
		t.Errorf("one request cost %d store lookups, want 1", n)
	}

	// Expired by the injected clock.
	later := t0.Add(time.Hour)
	clock.Store(&later)
	_, err = e.Authenticate(keyRequest(expiring.Value))
	wantStatus(t, "a stored key at its expiry", err, 401, "unauthorized", expiring.Value)
}

// TestAPIKeysEntryStoreDown: a store that fails or hangs gets 502
// key_store_error, never a 401 (the key may be good) and never a pass;
// configured and malformed keys are answered without the store.
func TestAPIKeysEntryStoreDown(t *testing.T) {
	good := newKey(t)
	configured := newKey(t)
	mem := memstore.New()
	if err := mem.Create(t.Context(), apikey.Record{ID: good.ID, Sum: apikey.Sum(good.Value), ClientID: "job", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	mem.Err = func() error { return errors.New("connection refused") }
	keys := []authn.APIKey{{ID: configured.ID, Sum: apikey.Sum(configured.Value), ClientID: "config-job"}}
	for _, tc := range []struct {
		name  string
		store authn.APIKeyStore
	}{
		{"failing", mem},
		{"hanging", hangingStore{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := authn.NewAPIKeys(authn.APIKeysConfig{Header: "X-API-Key", Keys: keys, Store: tc.store, LookupTimeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			p, err := e.Authenticate(keyRequest(good.Value))
			if p != nil {
				t.Fatalf("admitted while the store is down: %+v", p)
			}
			wantStatus(t, "good key, store down", err, 502, "key_store_error", good.Value)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the lookup took %v; LookupTimeout is 50ms", d)
			}
			var he *httperr.Error
			if errors.As(err, &he) && (he.Message != authn.ErrKeyStore.Message || he.WWWAuthenticate != "") {
				t.Errorf("store error %+v, want ErrKeyStore without a challenge", he)
			}
			if p, err := e.Authenticate(keyRequest(configured.Value)); err != nil || p.ClientID != "config-job" {
				t.Errorf("configured key while the store is down: %+v, %v", p, err)
			}
			_, err = e.Authenticate(keyRequest("gkey.malformed"))
			wantStatus(t, "malformed key while the store is down", err, 401, "unauthorized", "gkey.malformed")
		})
	}
}
