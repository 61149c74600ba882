package sqlstore

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
	apikeytest "github.com/gatehouse-dev/gatehouse/internal/apikey/storetest"
)

func TestAPIKeysSQLiteFile(t *testing.T) {
	apikeytest.Run(t, func(t *testing.T) apikey.Store {
		return openT(t, DriverSQLite, filepath.Join(t.TempDir(), "gatehouse.db")).APIKeys()
	})
}

func TestAPIKeysSQLiteMemory(t *testing.T) {
	apikeytest.Run(t, func(t *testing.T) apikey.Store {
		return openT(t, DriverSQLite, ":memory:").APIKeys()
	})
}

func TestAPIKeysPostgres(t *testing.T) {
	pg := newPostgres(t)
	apikeytest.Run(t, func(t *testing.T) apikey.Store {
		return openT(t, DriverPostgres, pg.schema(t)).APIKeys()
	})
}

// testRevokedElsewhere: a key revoked through another store on the same
// database (the command line, another instance) is refused by the next
// lookup of the first: nothing in between caches a key.
func testRevokedElsewhere(t *testing.T, d Driver, dsn string) {
	ctx := t.Context()
	server, cli := openT(t, d, dsn).APIKeys(), openT(t, d, dsn).APIKeys()
	k, _ := apikey.Generate(nil)
	rec := apikey.Record{ID: k.ID, Sum: apikey.Sum(k.Value), ClientID: "job", CreatedAt: time.Now()}
	if err := cli.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if got, err := server.Lookup(ctx, k.ID); err != nil || !got.RevokedAt.IsZero() {
		t.Fatalf("Lookup of a new key: %+v, %v", got, err)
	}
	if err := cli.Revoke(ctx, k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, err := server.Lookup(ctx, k.ID); err != nil || got.RevokedAt.IsZero() {
		t.Errorf("Lookup right after a revocation elsewhere: %+v, %v; want the key revoked", got, err)
	}
}

func TestAPIKeysSQLiteRevokedElsewhere(t *testing.T) {
	testRevokedElsewhere(t, DriverSQLite, filepath.Join(t.TempDir(), "gatehouse.db"))
}

func TestAPIKeysPostgresRevokedElsewhere(t *testing.T) {
	testRevokedElsewhere(t, DriverPostgres, newPostgres(t).schema(t))
}

// TestAPIKeysCorruptRow: a row whose hash is not a hash fails the lookup
// (the entry then refuses with a store error) rather than matching anything.
func TestAPIKeysCorruptRow(t *testing.T) {
	s := openT(t, DriverSQLite, ":memory:")
	k, _ := apikey.Generate(nil)
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO api_keys (id, hash, client_id, scopes, created_at)
VALUES ($1, $2, 'c', 'not json', 0)`, k.ID, apikey.Hash(k.Value)); err != nil {
		t.Fatal(err)
	}
	_, err := s.APIKeys().Lookup(t.Context(), k.ID)
	if err == nil || errors.Is(err, apikey.ErrNotFound) {
		t.Errorf("Lookup of a corrupt row: %v, want an error", err)
	}
}

// TestAPIKeysStoreDown: a store whose table is gone (or whose database is
// closed) fails lookups with an error that is not ErrNotFound, so the
// entry answers 502 rather than 401 or 200.
func TestAPIKeysStoreDown(t *testing.T) {
	s, err := Open(t.Context(), DriverSQLite, filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := apikey.Generate(nil)
	if _, err := s.w.ExecContext(t.Context(), `DROP TABLE api_keys`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.APIKeys().Lookup(t.Context(), k.ID); err == nil || errors.Is(err, apikey.ErrNotFound) {
		t.Errorf("Lookup without the table: %v, want an error", err)
	}
	s.Close()
	if _, err := s.APIKeys().Lookup(t.Context(), k.ID); err == nil || errors.Is(err, apikey.ErrNotFound) {
		t.Errorf("Lookup on a closed store: %v, want an error", err)
	}
}
