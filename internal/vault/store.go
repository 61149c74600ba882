// Package vault is Gatehouse's token vault: it acquires, stores (sealed),
// refreshes and uses third-party OAuth tokens (GitHub, Google, any OAuth 2.0
// provider) on behalf of each user, for the user's browser requests and for
// offline backend jobs, and never shows them to the browser.
//
// This file holds the domain types and the Store contract; the SQL
// implementations live in vault/sqlstore and share one conformance suite,
// vault/storetest.
package vault

import (
	"context"
	"errors"
	"time"
)

// User identifies a user of Gatehouse: the issuer and subject of a validated
// access token (never an unverified cookie or ID token).
type User struct {
	Issuer  string
	Subject string
}

// Status of a connection.
type Status string

const (
	// StatusConnected: the tokens are usable (refreshed when needed).
	StatusConnected Status = "connected"
	// StatusRefreshUnknown: a refresh was sent but its answer was lost; the
	// provider may have rotated the refresh token. The next refresh tells.
	StatusRefreshUnknown Status = "refresh_unknown"
	// StatusNeedsReauth: the provider refused the refresh token
	// (invalid_grant); the user must connect again.
	StatusNeedsReauth Status = "needs_reauth"
)

// Sealed is a token sealed at rest: AES-256-GCM ciphertext and the id of
// the key that sealed it (rows are re-sealed lazily after a key rotation).
type Sealed struct {
	KeyID string
	Data  []byte
}

// Connection is one user's tokens for one provider.
type Connection struct {
	User     User
	Provider string
	// AccessToken and RefreshToken are sealed; RefreshToken is empty when the
	// provider issued none.
	AccessToken  Sealed
	RefreshToken Sealed
	// ExpiresAt of the access token; zero when the provider did not say.
	ExpiresAt time.Time
	Scopes    []string
	Status    Status
	// Failures counts consecutive failed refreshes; NextAttempt delays the
	// next one (backoff).
	Failures    int
	NextAttempt time.Time
	// CreatedAt and UpdatedAt are set by the store, from its own clock:
	// CreatedAt when the connection is first saved, UpdatedAt on every write.
	CreatedAt time.Time
	UpdatedAt time.Time
	// Version increases on every write; conditional updates compare it.
	// Claiming and releasing a refresh lease do not change it.
	Version int64
}

// Lease is a claim on refreshing one connection, held by one caller across
// replicas until it is completed, released or expires. No database lock is
// held while the caller talks to the provider.
type Lease struct {
	User     User
	Provider string
	// ID is unique per claim; only its holder can complete or release it.
	ID string
	// Until is when the lease lapses if its holder disappears.
	Until time.Time
}

// ConnectState is the server-side state of a connect flow in progress.
type ConnectState struct {
	// StateHash is the SHA-256 (hex) of the state parameter sent to the provider.
	StateHash string
	Provider  string
	User      User
	// Verifier is the sealed PKCE code verifier.
	Verifier Sealed
	// BindingHash is the SHA-256 (hex) of the value in the browser's binding cookie.
	BindingHash string
	// ReturnTo is a path of the SPA, checked against configuration when the state was created.
	ReturnTo  string
	ExpiresAt time.Time
}

// Errors of Store implementations.
var (
	// ErrNotFound: no such connection or connect state.
	ErrNotFound = errors.New("vault: not found")
	// ErrConflict: a conditional write lost (the version or lease changed).
	ErrConflict = errors.New("vault: conflicting update")
	// ErrLeaseHeld: another caller holds the refresh lease.
	ErrLeaseHeld = errors.New("vault: refresh lease held by another caller")
)

// Store persists connections, refresh leases and connect states. Every
// method is safe for concurrent use by several Gatehouse instances sharing
// the store (PostgreSQL), or by one instance (SQLite, memory).
type Store interface {
	// PutConnectState saves a new connect state; a StateHash that exists is an error.
	PutConnectState(ctx context.Context, s ConnectState) error
	// TakeConnectState deletes and returns the state with stateHash, once:
	// a second call, or a call after ExpiresAt (now), returns ErrNotFound.
	TakeConnectState(ctx context.Context, stateHash string, now time.Time) (*ConnectState, error)
	// DeleteExpiredConnectStates removes states that expired before now.
	DeleteExpiredConnectStates(ctx context.Context, now time.Time) (int, error)

	// GetConnection returns one connection or ErrNotFound.
	GetConnection(ctx context.Context, u User, provider string) (*Connection, error)
	// ListConnections returns the user's connections, ordered by provider.
	ListConnections(ctx context.Context, u User) ([]Connection, error)
	// SaveConnection inserts or replaces a connection after a connect flow,
	// setting Version, CreatedAt (kept when replacing) and UpdatedAt. It
	// clears any refresh lease.
	SaveConnection(ctx context.Context, c *Connection) error
	// UpdateConnection writes c if the stored Version equals c.Version (else
	// ErrConflict; ErrNotFound when deleted), then increments c.Version.
	UpdateConnection(ctx context.Context, c *Connection) error
	// DeleteConnection removes a connection; deleting a missing one is not an error.
	DeleteConnection(ctx context.Context, u User, provider string) error

	// ClaimRefresh takes the refresh lease of a connection by compare-and-set:
	// it succeeds when no lease is held or the held one lapsed before now,
	// and returns the lease with the connection as stored at that moment.
	// Otherwise ErrLeaseHeld (or ErrNotFound).
	ClaimRefresh(ctx context.Context, u User, provider, leaseID string, now, until time.Time) (*Lease, *Connection, error)
	// CompleteRefresh writes c and releases the lease in one atomic step, if
	// lease is still the one held (else ErrConflict: the lease lapsed and
	// someone else took it; ErrNotFound when the connection was deleted). A
	// lease that lapsed but that nobody claimed since is still held, so tokens
	// the provider already issued are not lost. The lease is compared, not the
	// version: c.Version becomes the stored version plus one, which is more
	// than the claimed one when another write happened meanwhile.
	CompleteRefresh(ctx context.Context, l *Lease, c *Connection) error
	// ReleaseRefresh drops the lease without writing the connection (a
	// refresh that was never sent). Releasing a lease no longer held is not an error.
	ReleaseRefresh(ctx context.Context, l *Lease) error

	// Close releases the store's resources.
	Close() error
}
