package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
)

// APIKeys is the apikey.Store on the store's database (the api_keys
// table). Lookups use the read connections, so that on SQLite a key
// revoked by another process (the command line) is seen by the next
// lookup, with no cache in between.
type APIKeys struct{ s *Store }

var _ apikey.Store = (*APIKeys)(nil)

// APIKeys returns the store's API keys. They share its connections: Close
// the Store when done.
func (s *Store) APIKeys() *APIKeys { return &APIKeys{s: s} }

const apiKeyColumns = `id, hash, client_id, scopes, expires_at, revoked_at, created_at`

func scanAPIKey(row interface{ Scan(...any) error }) (apikey.Record, error) {
	var (
		r                    apikey.Record
		hash, scopes         string
		expiresAt, revokedAt sql.NullInt64
		createdAt            int64
	)
	if err := row.Scan(&r.ID, &hash, &r.ClientID, &scopes, &expiresAt, &revokedAt, &createdAt); err != nil {
		return apikey.Record{}, err
	}
	sum, err := apikey.ParseHash(hash)
	if err != nil {
		return apikey.Record{}, fmt.Errorf("key %s: hash: %w", r.ID, err)
	}
	r.Sum = sum
	if r.Scopes, err = decodeScopes(scopes); err != nil {
		return apikey.Record{}, fmt.Errorf("key %s: %w", r.ID, err)
	}
	r.ExpiresAt = fromNullMS(expiresAt)
	r.RevokedAt = fromNullMS(revokedAt)
	r.CreatedAt = fromMS(createdAt)
	return r, nil
}

// Lookup implements apikey.Store.
func (k *APIKeys) Lookup(ctx context.Context, id string) (apikey.Record, error) {
	r, err := scanAPIKey(k.s.r.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return apikey.Record{}, apikey.ErrNotFound
	}
	if err != nil {
		return apikey.Record{}, fmt.Errorf("sqlstore: look up API key: %w", err)
	}
	return r, nil
}

// Create implements apikey.Store.
func (k *APIKeys) Create(ctx context.Context, r apikey.Record) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("sqlstore: create API key: %w", err)
	}
	scopes, err := encodeScopes(r.Scopes)
	if err != nil {
		return fmt.Errorf("sqlstore: create API key: %w", err)
	}
	res, err := k.s.w.ExecContext(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO NOTHING`,
		r.ID, apikey.HashPrefix+hex.EncodeToString(r.Sum[:]), r.ClientID, scopes,
		nullMS(r.ExpiresAt), nullMS(r.RevokedAt), r.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("sqlstore: create API key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: create API key: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create API key %s: %w", r.ID, apikey.ErrExists)
	}
	return nil
}

// Revoke implements apikey.Store: one UPDATE, which keeps an earlier
// revocation time.
func (k *APIKeys) Revoke(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("sqlstore: revoke API key %s: %w", id, apikey.ErrZeroTime)
	}
	res, err := k.s.w.ExecContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1`,
		id, at.UnixMilli())
	if err != nil {
		return fmt.Errorf("sqlstore: revoke API key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: revoke API key: %w", err)
	}
	if n == 0 {
		return apikey.ErrNotFound
	}
	return nil
}

// List implements apikey.Store.
func (k *APIKeys) List(ctx context.Context) ([]apikey.Record, error) {
	rows, err := k.s.r.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list API keys: %w", err)
	}
	defer rows.Close()
	var out []apikey.Record
	for rows.Next() {
		r, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: list API keys: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: list API keys: %w", err)
	}
	return out, nil
}
