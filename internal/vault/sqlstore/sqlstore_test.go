package sqlstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/internal/vault"
	"github.com/gatehouse-dev/gatehouse/internal/vault/storetest"
)

func openT(t *testing.T, d Driver, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), d, dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestSQLiteFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) vault.Store {
		return openT(t, DriverSQLite, filepath.Join(t.TempDir(), "vault.db"))
	})
}

func TestSQLiteMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) vault.Store {
		return openT(t, DriverSQLite, ":memory:")
	})
}

// checkMigrations fails unless schema_migrations lists every migration once.
func checkMigrations(t *testing.T, s *Store) {
	t.Helper()
	ms, err := loadMigrations(s.driver)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.w.QueryContext(t.Context(), `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s", v, name))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range ms {
		want = append(want, fmt.Sprintf("%d %s", m.version, m.name))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", d)
	}
}

// testMigrateTwice opens the store twice and migrates a third time by hand:
// the later runs apply nothing and keep the data.
func testMigrateTwice(t *testing.T, d Driver, dsn string) {
	ctx := t.Context()
	s, err := Open(ctx, d, dsn)
	if err != nil {
		t.Fatal(err)
	}
	u := vault.User{Issuer: "https://login.example.com/", Subject: "alice"}
	c := &vault.Connection{User: u, Provider: "github", AccessToken: vault.Sealed{KeyID: "k", Data: []byte("sealed")}, Status: vault.StatusConnected}
	if err := s.SaveConnection(ctx, c); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openT(t, d, dsn)
	applied, err := migrate(ctx, s.w, d, time.Now())
	if err != nil || len(applied) != 0 {
		t.Errorf("migrating an up-to-date database applied %v, %v; want nothing", applied, err)
	}
	checkMigrations(t, s)
	if _, err := s.GetConnection(ctx, u, "github"); err != nil {
		t.Errorf("the connection saved before reopening: %v", err)
	}
}

func TestSQLiteMigrateTwice(t *testing.T) {
	testMigrateTwice(t, DriverSQLite, filepath.Join(t.TempDir(), "vault.db"))
}

func TestSQLiteNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openT(t, DriverSQLite, path)
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), DriverSQLite, path)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a database from a newer Gatehouse: %v, want an error saying so", err)
	}
}

// TestSQLitePath: the path is a file name, whatever characters it holds,
// and the database is in WAL mode.
func TestSQLitePath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "va?ult#1%20.db")
	s := openT(t, DriverSQLite, path)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file: %v", err)
	}
	var mode string
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	// The read-only connections see the writer's data and cannot write.
	u := vault.User{Issuer: "i", Subject: "s"}
	if err := s.SaveConnection(t.Context(), &vault.Connection{User: u, Provider: "p", Status: vault.StatusConnected}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetConnection(t.Context(), u, "p"); err != nil {
		t.Errorf("GetConnection through the readers: %v", err)
	}
	if _, err := s.r.ExecContext(t.Context(), `DELETE FROM connections`); err == nil {
		t.Errorf("a reader connection could write")
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		driver Driver
		dsn    string
	}{
		{"unknown driver", "mysql", "x"},
		{"empty data source", DriverSQLite, ""},
		{"sqlite directory missing", DriverSQLite, filepath.Join(t.TempDir(), "missing", "vault.db")},
		{"bad postgres dsn", DriverPostgres, "postgres://%zz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := Open(t.Context(), tc.driver, tc.dsn); err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

// TestOpenErrorHidesPassword: Open's errors end up in logs; the password of
// a PostgreSQL DSN must not (security invariant 9).
func TestOpenErrorHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://gatehouse:s3cret-pw@127.0.0.1:5432/db?sslmode=bogus",
		"postgres://gatehouse:s3cret-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		"host=127.0.0.1 port=1 user=gatehouse password=s3cret-pw sslmode=disable connect_timeout=2",
	} {
		_, err := Open(t.Context(), DriverPostgres, dsn)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("Open error shows the password: %v", err)
		}
	}
}
