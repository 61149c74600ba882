package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Migrations are SQL files named NNNN_description.sql under
// migrations/<dialect>/, applied in order of NNNN, each once. A migration is
// never edited after release: a change is a new file, for both dialects.
//
//go:embed migrations
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrationLockKey is the PostgreSQL advisory lock that serializes
// migrations of instances starting at once: "gatehous" in ASCII.
const migrationLockKey int64 = 0x67617465686f7573

func loadMigrations(d Driver) ([]migration, error) {
	dir := path.Join("migrations", string(d))
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		if !ok || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration %s: name is not NNNN_description.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: bad version %q", name, num)
		}
		b, err := fs.ReadFile(migrationFiles, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s have the same version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// migrate applies the migrations db lacks, all in one transaction: either
// the schema is brought up to date or nothing changes. On PostgreSQL the
// transaction first takes an advisory lock, so that instances starting at
// once migrate one after the other (the second finds nothing to do); on
// SQLite the writer's transactions begin IMMEDIATE, which serializes them.
// It returns the versions it applied.
func migrate(ctx context.Context, db *sql.DB, d Driver, now time.Time) (applied []int, err error) {
	ms, err := loadMigrations(d)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: load migrations: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: migrate: begin: %w", err)
	}
	defer tx.Rollback()

	if d == DriverPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
			return nil, fmt.Errorf("sqlstore: migrate: take the migration lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    BIGINT NOT NULL PRIMARY KEY,
	name       TEXT   NOT NULL,
	applied_at BIGINT NOT NULL
)`); err != nil {
		return nil, fmt.Errorf("sqlstore: migrate: create schema_migrations: %w", err)
	}
	done := map[int]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: migrate: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlstore: migrate: read schema_migrations: %w", err)
		}
		done[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: migrate: read schema_migrations: %w", err)
	}
	latest := ms[len(ms)-1].version
	for v := range done {
		if v > latest {
			return nil, fmt.Errorf("sqlstore: the database schema is at version %d, newer than this Gatehouse knows (%d): run a newer Gatehouse", v, latest)
		}
	}

	for _, m := range ms {
		if done[m.version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return nil, fmt.Errorf("sqlstore: migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.version, m.name, now.UnixMilli()); err != nil {
			return nil, fmt.Errorf("sqlstore: migration %s: record it: %w", m.name, err)
		}
		applied = append(applied, m.version)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlstore: migrate: commit: %w", err)
	}
	return applied, nil
}
