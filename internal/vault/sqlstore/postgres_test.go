package sqlstore

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/gatehouse-dev/gatehouse/internal/vault"
	"github.com/gatehouse-dev/gatehouse/internal/vault/storetest"
)

// postgresEnv names the variable holding the DSN of a PostgreSQL database
// the tests may create schemas in.
const postgresEnv = "GATEHOUSE_TEST_POSTGRES"

// postgres is a PostgreSQL database for tests; every schema it makes is
// dropped when the test that made it ends.
type postgres struct {
	dsn   string
	admin *sql.DB

	mu      sync.Mutex
	schemas []string // to drop, sanitized
}

// newPostgres skips t unless GATEHOUSE_TEST_POSTGRES is set.
func newPostgres(t *testing.T) *postgres {
	t.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		t.Skip("PostgreSQL tests skipped: set " + postgresEnv + " to a DSN, e.g. " + postgresEnv +
			"='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go test ./internal/vault/sqlstore " +
			"(each run works in its own random schema, dropped afterwards)")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("%s: %v", postgresEnv, err)
	}
	admin := stdlib.OpenDB(*cfg)
	admin.SetMaxOpenConns(2)
	t.Cleanup(func() { admin.Close() })
	if err := admin.PingContext(t.Context()); err != nil {
		t.Fatalf("connect to %s: %v", postgresEnv, err)
	}
	p := &postgres{dsn: dsn, admin: admin}
	// Schemas are dropped together when the test ends: one DROP of many
	// schemas costs about what one of one schema does.
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.schemas) == 0 {
			return
		}
		if _, err := admin.Exec("DROP SCHEMA " + strings.Join(p.schemas, ", ") + " CASCADE"); err != nil {
			t.Errorf("drop test schemas: %v", err)
		}
	})
	return p
}

// schema creates a new schema, dropped when the test that called
// newPostgres ends, and returns a DSN whose search_path is that schema.
func (p *postgres) schema(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	name := "gatehouse_test_" + hex.EncodeToString(b)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := p.admin.ExecContext(t.Context(), "CREATE SCHEMA "+ident); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	p.mu.Lock()
	p.schemas = append(p.schemas, ident)
	p.mu.Unlock()
	return withSearchPath(t, p.dsn, name)
}

// withSearchPath adds search_path (a run-time parameter pgx sends at
// connect) to a URL or key=value DSN.
func withSearchPath(t *testing.T, dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s: %v", postgresEnv, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

func TestPostgres(t *testing.T) {
	pg := newPostgres(t)
	storetest.Run(t, func(t *testing.T) vault.Store {
		return openT(t, DriverPostgres, pg.schema(t))
	})
}

// TestPostgresTwoInstancesOneLease: two Gatehouse instances (two stores,
// two connection pools) on one database race for one refresh lease.
func TestPostgresTwoInstancesOneLease(t *testing.T) {
	pg := newPostgres(t)
	dsn := pg.schema(t)
	a, b := openT(t, DriverPostgres, dsn), openT(t, DriverPostgres, dsn)
	u := vault.User{Issuer: "https://login.example.com/", Subject: "alice"}
	c := &vault.Connection{User: u, Provider: "github", AccessToken: vault.Sealed{KeyID: "k", Data: []byte{1}}, Status: vault.StatusConnected}
	if err := a.SaveConnection(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for round := range 5 {
		errs := make([]error, 40)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range errs {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				<-start
				_, _, errs[i] = s.ClaimRefresh(t.Context(), u, "github", fmt.Sprintf("r%d-%d", round, i), now, now.Add(time.Minute))
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, vault.ErrLeaseHeld):
				t.Errorf("round %d, caller %d: %v", round, i, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d callers won the lease, want 1", round, won)
		}
		now = now.Add(2 * time.Minute) // the lease lapses before the next round
	}
}

// TestPostgresConcurrentOpen: instances starting at once on an empty schema
// all succeed and the migrations are applied once (the advisory lock).
func TestPostgresConcurrentOpen(t *testing.T) {
	pg := newPostgres(t)
	dsn := pg.schema(t)
	stores := make([]*Store, 4)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), DriverPostgres, dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		stores[i].Close()
	}
	s := openT(t, DriverPostgres, dsn)
	checkMigrations(t, s)
}

func TestPostgresMigrateTwice(t *testing.T) {
	pg := newPostgres(t)
	testMigrateTwice(t, DriverPostgres, pg.schema(t))
}
