// Package sqlstore is the vault.Store on SQL databases: SQLite (pure Go,
// modernc.org/sqlite; the embedded default) and PostgreSQL (pgx, through
// database/sql). Both run the same statements; only the schema files differ.
// The same database also holds the API keys created at run time
// (Store.APIKeys, an apikey.Store).
//
// Open applies the embedded schema migrations (recorded in a
// schema_migrations table) before it returns. Instances starting at once on
// one PostgreSQL database migrate one after the other, under an advisory
// lock.
//
// Concurrency is by compare-and-set: claiming a refresh lease, completing it
// and updating a connection are each one conditional UPDATE (on the lease
// or the version), so no row lock is held between calls, in particular not
// while the vault talks to a provider. PostgreSQL re-checks the condition of
// an UPDATE that waited for a concurrent one, so of several instances
// claiming one lease exactly one wins.
//
// SQLite is for one Gatehouse instance: the database is a local file, and
// writes go through a single connection (reads through a small pool of
// read-only connections, which WAL mode lets run beside the writer), with
// busy_timeout and BEGIN IMMEDIATE against any other process touching the
// file. Several instances need PostgreSQL.
//
// Times are stored as unix milliseconds, UTC, on both databases.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/gatehouse-dev/gatehouse/internal/vault"
)

// Driver names a database.
type Driver string

const (
	// DriverSQLite: the data source is a file path, or ":memory:" for a
	// database that lives as long as the Store (tests).
	DriverSQLite Driver = "sqlite"
	// DriverPostgres: the data source is a PostgreSQL URL or key=value DSN
	// as pgx accepts it (postgres://user@host:5432/db?sslmode=verify-full).
	DriverPostgres Driver = "postgres"
)

const (
	// sqliteBusyTimeout is how long an SQLite statement waits for a lock
	// held by another connection before it fails.
	sqliteBusyTimeout = 10 * time.Second
	// sqliteReaders is the number of read-only SQLite connections.
	sqliteReaders = 4
	// postgresConns bounds the connections of one instance to PostgreSQL.
	postgresConns = 10
)

// Store is a vault.Store on SQLite or PostgreSQL. Open returns one.
type Store struct {
	// Now returns the time the store writes into CreatedAt and UpdatedAt;
	// nil means time.Now. Set it before the store is used.
	Now func() time.Time

	driver Driver
	w      *sql.DB // every write (on SQLite: the one writer connection)
	r      *sql.DB // GetConnection and ListConnections; w but for SQLite files
}

var _ vault.Store = (*Store)(nil)

// Open connects to the database, applies the migrations it lacks and
// returns the store. Close releases it.
func Open(ctx context.Context, driver Driver, dataSource string) (*Store, error) {
	if dataSource == "" {
		return nil, fmt.Errorf("sqlstore: open %s: empty data source", driver)
	}
	s := &Store{driver: driver}
	var err error
	switch driver {
	case DriverSQLite:
		err = s.openSQLite(dataSource)
	case DriverPostgres:
		err = s.openPostgres(dataSource)
	default:
		return nil, fmt.Errorf("sqlstore: unknown driver %q (want %q or %q)", driver, DriverSQLite, DriverPostgres)
	}
	if err != nil {
		return nil, err
	}
	if err := s.w.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlstore: open %s: %w", driver, err)
	}
	if _, err := migrate(ctx, s.w, driver, time.Now()); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// sqliteDSN returns modernc.org/sqlite's data source for a file path (as a
// URI filename, so that no character of the path is read as a parameter)
// with the given pragmas.
func sqliteDSN(path string, pragmas ...string) string {
	var b strings.Builder
	if path == ":memory:" {
		b.WriteString(path)
	} else {
		b.WriteString("file:")
		b.WriteString(strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path))
	}
	fmt.Fprintf(&b, "?_txlock=immediate&_pragma=busy_timeout(%d)", sqliteBusyTimeout.Milliseconds())
	for _, p := range pragmas {
		b.WriteString("&_pragma=")
		b.WriteString(p)
	}
	return b.String()
}

func (s *Store) openSQLite(path string) error {
	memory := path == ":memory:"
	pragmas := []string{"foreign_keys(1)"}
	if !memory {
		pragmas = append(pragmas, "journal_mode(WAL)")
	}
	w, err := sql.Open("sqlite", sqliteDSN(path, pragmas...))
	if err != nil {
		return fmt.Errorf("sqlstore: open sqlite: %w", err)
	}
	// One writer: SQLite has one anyway, and queueing in database/sql
	// rather than in busy-waits makes concurrent claims cheap and fair. An
	// in-memory database exists once per connection, so it gets only this
	// one, kept open.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s.w, s.r = w, w
	if memory {
		return nil
	}
	r, err := sql.Open("sqlite", sqliteDSN(path, "query_only(1)"))
	if err != nil {
		w.Close()
		return fmt.Errorf("sqlstore: open sqlite: %w", err)
	}
	r.SetMaxOpenConns(sqliteReaders)
	r.SetMaxIdleConns(sqliteReaders)
	s.r = r
	return nil
}

func (s *Store) openPostgres(dsn string) error {
	// pgx's stdlib driver rather than pgxpool: the store is a handful of
	// single statements, and database/sql lets SQLite and PostgreSQL share
	// every line of them.
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("sqlstore: open postgres: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(postgresConns)
	db.SetMaxIdleConns(postgresConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s.w, s.r = db, db
	return nil
}

// Close closes the database connections.
func (s *Store) Close() error {
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

func (s *Store) now() time.Time {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	// The stored precision, so the caller's copy equals what is read back.
	return fromMS(now().UnixMilli())
}

func fromMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func fromNullMS(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return fromMS(ms.Int64)
}

// nullMS is t in unix milliseconds, NULL for the zero time.
func nullMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// blob is b, never nil: nil would be NULL in a NOT NULL column.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func emptyToNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func encodeScopes(scopes []string) (string, error) {
	if len(scopes) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(scopes)
	return string(b), err
}

func decodeScopes(s string) ([]string, error) {
	var scopes []string
	if err := json.Unmarshal([]byte(s), &scopes); err != nil {
		return nil, fmt.Errorf("scopes: %w", err)
	}
	if len(scopes) == 0 {
		return nil, nil
	}
	return scopes, nil
}

// Connect states.

// PutConnectState implements vault.Store. A StateHash that exists is an
// error wrapping vault.ErrConflict.
func (s *Store) PutConnectState(ctx context.Context, st vault.ConnectState) error {
	res, err := s.w.ExecContext(ctx, `INSERT INTO connect_states
	(state_hash, provider, issuer, subject, verifier_key_id, verifier, binding_hash, return_to, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (state_hash) DO NOTHING`,
		st.StateHash, st.Provider, st.User.Issuer, st.User.Subject, st.Verifier.KeyID, blob(st.Verifier.Data),
		st.BindingHash, st.ReturnTo, st.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("sqlstore: put connect state: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: put connect state: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: put connect state: state exists: %w", vault.ErrConflict)
	}
	return nil
}

// TakeConnectState implements vault.Store. One DELETE … RETURNING takes the
// state, so of concurrent callers only one gets it; an expired state is
// deleted too.
func (s *Store) TakeConnectState(ctx context.Context, stateHash string, now time.Time) (*vault.ConnectState, error) {
	st := vault.ConnectState{StateHash: stateHash}
	var expiresAt int64
	err := s.w.QueryRowContext(ctx, `DELETE FROM connect_states WHERE state_hash = $1
RETURNING provider, issuer, subject, verifier_key_id, verifier, binding_hash, return_to, expires_at`, stateHash).
		Scan(&st.Provider, &st.User.Issuer, &st.User.Subject, &st.Verifier.KeyID, &st.Verifier.Data,
			&st.BindingHash, &st.ReturnTo, &expiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, vault.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: take connect state: %w", err)
	}
	if now.UnixMilli() > expiresAt {
		return nil, vault.ErrNotFound
	}
	st.Verifier.Data = emptyToNil(st.Verifier.Data)
	st.ExpiresAt = fromMS(expiresAt)
	return &st, nil
}

// DeleteExpiredConnectStates implements vault.Store.
func (s *Store) DeleteExpiredConnectStates(ctx context.Context, now time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM connect_states WHERE expires_at < $1`, now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("sqlstore: delete expired connect states: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlstore: delete expired connect states: %w", err)
	}
	return int(n), nil
}

// Connections.

// connColumns are the columns scanConnection reads, in its order.
const connColumns = `issuer, subject, provider, access_key_id, access_token, refresh_key_id, refresh_token,
	expires_at, scopes, status, failures, next_attempt, created_at, updated_at, version`

func scanConnection(row interface{ Scan(...any) error }) (*vault.Connection, error) {
	var (
		c                      vault.Connection
		expiresAt, nextAttempt sql.NullInt64
		createdAt, updatedAt   int64
		scopes                 string
		status                 string
	)
	if err := row.Scan(&c.User.Issuer, &c.User.Subject, &c.Provider,
		&c.AccessToken.KeyID, &c.AccessToken.Data, &c.RefreshToken.KeyID, &c.RefreshToken.Data,
		&expiresAt, &scopes, &status, &c.Failures, &nextAttempt, &createdAt, &updatedAt, &c.Version); err != nil {
		return nil, err
	}
	var err error
	if c.Scopes, err = decodeScopes(scopes); err != nil {
		return nil, err
	}
	c.AccessToken.Data = emptyToNil(c.AccessToken.Data)
	c.RefreshToken.Data = emptyToNil(c.RefreshToken.Data)
	c.Status = vault.Status(status)
	c.ExpiresAt = fromNullMS(expiresAt)
	c.NextAttempt = fromNullMS(nextAttempt)
	c.CreatedAt = fromMS(createdAt)
	c.UpdatedAt = fromMS(updatedAt)
	return &c, nil
}

// GetConnection implements vault.Store.
func (s *Store) GetConnection(ctx context.Context, u vault.User, provider string) (*vault.Connection, error) {
	c, err := scanConnection(s.r.QueryRowContext(ctx, `SELECT `+connColumns+` FROM connections
WHERE issuer = $1 AND subject = $2 AND provider = $3`, u.Issuer, u.Subject, provider))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, vault.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get connection: %w", err)
	}
	return c, nil
}

// ListConnections implements vault.Store.
func (s *Store) ListConnections(ctx context.Context, u vault.User) ([]vault.Connection, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+connColumns+` FROM connections
WHERE issuer = $1 AND subject = $2 ORDER BY provider`, u.Issuer, u.Subject)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list connections: %w", err)
	}
	defer rows.Close()
	var cs []vault.Connection
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: list connections: %w", err)
		}
		cs = append(cs, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: list connections: %w", err)
	}
	return cs, nil
}

// connArgs are the arguments $1 … $13 of the statements that write a
// connection: its key, its data and updated_at.
func connArgs(c *vault.Connection, updatedAt time.Time) ([]any, error) {
	scopes, err := encodeScopes(c.Scopes)
	if err != nil {
		return nil, err
	}
	return []any{
		c.User.Issuer, c.User.Subject, c.Provider, // $1 … $3
		c.AccessToken.KeyID, blob(c.AccessToken.Data), c.RefreshToken.KeyID, blob(c.RefreshToken.Data), // $4 … $7
		nullMS(c.ExpiresAt), scopes, string(c.Status), c.Failures, nullMS(c.NextAttempt), // $8 … $12
		updatedAt.UnixMilli(), // $13
	}, nil
}

// setData writes a connection's data from connArgs.
const setData = `access_key_id = $4, access_token = $5, refresh_key_id = $6, refresh_token = $7,
	expires_at = $8, scopes = $9, status = $10, failures = $11, next_attempt = $12, updated_at = $13,
	version = version + 1`

// SaveConnection implements vault.Store: one upsert, which keeps
// created_at, increments the version and clears the lease of a row it
// replaces.
func (s *Store) SaveConnection(ctx context.Context, c *vault.Connection) error {
	now := s.now()
	args, err := connArgs(c, now)
	if err != nil {
		return fmt.Errorf("sqlstore: save connection: %w", err)
	}
	var createdAt, version int64
	err = s.w.QueryRowContext(ctx, `INSERT INTO connections (`+connColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, 1)
ON CONFLICT (issuer, subject, provider) DO UPDATE SET
	access_key_id = excluded.access_key_id, access_token = excluded.access_token,
	refresh_key_id = excluded.refresh_key_id, refresh_token = excluded.refresh_token,
	expires_at = excluded.expires_at, scopes = excluded.scopes, status = excluded.status,
	failures = excluded.failures, next_attempt = excluded.next_attempt, updated_at = excluded.updated_at,
	version = connections.version + 1, lease_id = NULL, lease_until = NULL
RETURNING created_at, version`, args...).Scan(&createdAt, &version)
	if err != nil {
		return fmt.Errorf("sqlstore: save connection: %w", err)
	}
	c.CreatedAt, c.UpdatedAt, c.Version = fromMS(createdAt), now, version
	return nil
}

// UpdateConnection implements vault.Store: one UPDATE conditional on the
// version. The lease, if any, stays.
func (s *Store) UpdateConnection(ctx context.Context, c *vault.Connection) error {
	return s.conditionalWrite(ctx, "update connection", c, `UPDATE connections SET `+setData+`
WHERE issuer = $1 AND subject = $2 AND provider = $3 AND version = $14
RETURNING created_at, version`, c.Version)
}

// CompleteRefresh implements vault.Store: one UPDATE conditional on the
// lease id, which also clears the lease.
func (s *Store) CompleteRefresh(ctx context.Context, l *vault.Lease, c *vault.Connection) error {
	if l.ID == "" {
		return errNoLeaseID
	}
	if c.User != l.User || c.Provider != l.Provider {
		return errors.New("sqlstore: complete refresh: the connection is not the lease's")
	}
	return s.conditionalWrite(ctx, "complete refresh", c, `UPDATE connections SET `+setData+`,
	lease_id = NULL, lease_until = NULL
WHERE issuer = $1 AND subject = $2 AND provider = $3 AND lease_id = $14
RETURNING created_at, version`, l.ID)
}

// conditionalWrite runs query, an UPDATE of c's row conditional on cond
// ($14); when no row matched, it tells ErrConflict from ErrNotFound.
func (s *Store) conditionalWrite(ctx context.Context, op string, c *vault.Connection, query string, cond any) error {
	now := s.now()
	args, err := connArgs(c, now)
	if err != nil {
		return fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	var createdAt, version int64
	err = s.w.QueryRowContext(ctx, query, append(args, cond)...).Scan(&createdAt, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return s.missOrConflict(ctx, op, c.User, c.Provider, vault.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	c.CreatedAt, c.UpdatedAt, c.Version = fromMS(createdAt), now, version
	return nil
}

// missOrConflict returns ErrNotFound when the connection does not exist,
// else conflict: the reason a conditional statement matched no row.
func (s *Store) missOrConflict(ctx context.Context, op string, u vault.User, provider string, conflict error) error {
	var one int
	err := s.w.QueryRowContext(ctx, `SELECT 1 FROM connections WHERE issuer = $1 AND subject = $2 AND provider = $3`,
		u.Issuer, u.Subject, provider).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return vault.ErrNotFound
	case err != nil:
		return fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	return conflict
}

// DeleteConnection implements vault.Store.
func (s *Store) DeleteConnection(ctx context.Context, u vault.User, provider string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM connections WHERE issuer = $1 AND subject = $2 AND provider = $3`,
		u.Issuer, u.Subject, provider)
	if err != nil {
		return fmt.Errorf("sqlstore: delete connection: %w", err)
	}
	return nil
}

// Refresh leases.

var errNoLeaseID = errors.New("sqlstore: empty lease id")

// ClaimRefresh implements vault.Store: one UPDATE conditional on the lease
// being free or lapsed, returning the row as it stands.
func (s *Store) ClaimRefresh(ctx context.Context, u vault.User, provider, leaseID string, now, until time.Time) (*vault.Lease, *vault.Connection, error) {
	if leaseID == "" {
		return nil, nil, errNoLeaseID
	}
	c, err := scanConnection(s.w.QueryRowContext(ctx, `UPDATE connections SET lease_id = $4, lease_until = $5
WHERE issuer = $1 AND subject = $2 AND provider = $3 AND (lease_id IS NULL OR lease_until < $6)
RETURNING `+connColumns, u.Issuer, u.Subject, provider, leaseID, until.UnixMilli(), now.UnixMilli()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, s.missOrConflict(ctx, "claim refresh", u, provider, vault.ErrLeaseHeld)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sqlstore: claim refresh: %w", err)
	}
	return &vault.Lease{User: u, Provider: provider, ID: leaseID, Until: fromMS(until.UnixMilli())}, c, nil
}

// ReleaseRefresh implements vault.Store.
func (s *Store) ReleaseRefresh(ctx context.Context, l *vault.Lease) error {
	if l.ID == "" {
		return nil
	}
	_, err := s.w.ExecContext(ctx, `UPDATE connections SET lease_id = NULL, lease_until = NULL
WHERE issuer = $1 AND subject = $2 AND provider = $3 AND lease_id = $4`,
		l.User.Issuer, l.User.Subject, l.Provider, l.ID)
	if err != nil {
		return fmt.Errorf("sqlstore: release refresh: %w", err)
	}
	return nil
}
