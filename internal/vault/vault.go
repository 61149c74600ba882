package vault

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/vault/provider"
)

// Sealer seals tokens at rest (AES-256-GCM with a key id per value, see
// vault/sealer). The associated data binds a sealed value to its place: a
// value copied to another user's row, or from the refresh token column to
// the access token column, does not open.
type Sealer interface {
	Seal(plaintext, associatedData []byte) (Sealed, error)
	Open(s Sealed, associatedData []byte) ([]byte, error)
	// NeedsReseal reports whether s was sealed with a key other than the
	// current one (it is then re-sealed when next read).
	NeedsReseal(s Sealed) bool
}

// Errors of the Vault. The HTTP layer maps them to status codes.
var (
	// ErrUnknownProvider: no provider of that name is configured.
	ErrUnknownProvider = errors.New("vault: unknown provider")
	// ErrNotConnected: the user has no connection to the provider.
	ErrNotConnected = errors.New("vault: not connected")
	// ErrNeedsReauth: the provider refused the refresh token, or the
	// connection has none and its access token ended; the user must connect again.
	ErrNeedsReauth = errors.New("vault: the connection must be made again")
	// ErrProvider: the provider could not refresh the token now.
	ErrProvider = errors.New("vault: the provider could not refresh the token")
	// ErrBusy: another caller holds the refresh lease and did not finish in time.
	ErrBusy = errors.New("vault: another refresh of the connection is still in progress")
)

// BackoffError reports that refreshing is paused after failures until Until.
type BackoffError struct{ Until time.Time }

func (e *BackoffError) Error() string {
	return "vault: refresh paused after repeated failures until " + e.Until.UTC().Format(time.RFC3339)
}

// Unwrap makes a BackoffError an ErrProvider.
func (e *BackoffError) Unwrap() error { return ErrProvider }

// ConnectWindow bounds the time between the start and the callback of a connect flow.
const ConnectWindow = 10 * time.Minute

// Config configures a Vault.
type Config struct {
	Store     Store
	Sealer    Sealer
	Providers map[string]*provider.Provider
	// RefreshAhead refreshes tokens this long before they expire.
	RefreshAhead time.Duration
	// ClaimNames are the claims of the user's session recorded (sealed, with
	// the tokens) when the user connects: job entitlements match them.
	ClaimNames []string
	// ReturnURL is the SPA page the connect callback redirects to.
	ReturnURL string
	// LeaseTTL is how long a refresh lease is held at most; it must exceed
	// the providers' timeout. Callers waiting for another instance's lease
	// wait at most this long. Default 30s.
	LeaseTTL time.Duration
	// PollInterval is how often a waiting caller re-reads the store; default 25ms.
	PollInterval time.Duration
	// MinBackoff and MaxBackoff bound the pause after failed refreshes; it
	// doubles with each consecutive failure. Defaults 5s and 5m.
	MinBackoff, MaxBackoff time.Duration
	Now                    func() time.Time
	Logger                 *slog.Logger
}

// Vault is the token vault service: connect flows, the user's connections,
// and access tokens refreshed under the refresh discipline.
type Vault struct {
	cfg    Config
	flight singleflight.Group
}

// New returns a Vault.
func New(cfg Config) (*Vault, error) {
	if cfg.Store == nil || cfg.Sealer == nil {
		return nil, errors.New("vault: a store and a sealer are required")
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 25 * time.Millisecond
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 5 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Minute, cfg.MinBackoff)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Vault{cfg: cfg}, nil
}

// Provider returns the provider called name.
func (v *Vault) Provider(name string) (*provider.Provider, bool) {
	p, ok := v.cfg.Providers[name]
	return p, ok
}

// Run discovers the providers that need it and removes expired connect
// states every minute, until ctx ends.
func (v *Vault) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range v.cfg.Providers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Run(ctx)
		}()
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
			if n, err := v.cfg.Store.DeleteExpiredConnectStates(ctx, v.cfg.Now()); err != nil && ctx.Err() == nil {
				v.cfg.Logger.Warn("vault: cannot remove expired connect states", "error", err.Error())
			} else if n > 0 {
				v.cfg.Logger.Debug("vault: expired connect states removed", "count", n)
			}
		}
	}
}

// sealed records. The access token's record also carries the user's
// entitlement claims, so that they are encrypted at rest like the tokens.
type accessRecord struct {
	Token  string         `json:"t"`
	Claims map[string]any `json:"c,omitempty"`
}

type connectRecord struct {
	Verifier string         `json:"v"`
	Claims   map[string]any `json:"c,omitempty"`
}

// ad returns associated data binding a sealed value to its purpose and row.
func ad(parts ...string) []byte {
	b, _ := json.Marshal(append([]string{"gatehouse-vault-v1"}, parts...))
	return b
}

func accessAD(u User, p string) []byte  { return ad("access", u.Issuer, u.Subject, p) }
func refreshAD(u User, p string) []byte { return ad("refresh", u.Issuer, u.Subject, p) }
func connectAD(stateHash string) []byte { return ad("connect", stateHash) }

// Hash returns the hex SHA-256 of s: how states and binding values are stored.
func Hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func randomValue() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("vault: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Start is the outcome of starting a connect flow.
type Start struct {
	// AuthorizationURL is where the browser goes next.
	AuthorizationURL string
	// Binding is the value of the browser's binding cookie.
	Binding secret.Value
}

// StartConnect begins a connect flow of user u (with the verified claims of
// the session) to provider name: it stores the connect state and returns
// the authorization URL and the binding value for the browser's cookie.
func (v *Vault) StartConnect(ctx context.Context, u User, claims map[string]any, name string) (*Start, error) {
	p, ok := v.cfg.Providers[name]
	if !ok {
		return nil, ErrUnknownProvider
	}
	state, err := randomValue()
	if err != nil {
		return nil, err
	}
	verifier, err := randomValue()
	if err != nil {
		return nil, err
	}
	binding, err := randomValue()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(verifier))
	authURL, err := p.AuthorizationURL(state, base64.RawURLEncoding.EncodeToString(sum[:]))
	if err != nil {
		return nil, err
	}
	stateHash := Hash(state)
	rec, _ := json.Marshal(connectRecord{Verifier: verifier, Claims: v.pickClaims(claims)})
	sealed, err := v.cfg.Sealer.Seal(rec, connectAD(stateHash))
	clear(rec)
	if err != nil {
		return nil, fmt.Errorf("vault: seal connect state: %w", err)
	}
	err = v.cfg.Store.PutConnectState(ctx, ConnectState{
		StateHash:   stateHash,
		Provider:    name,
		User:        u,
		Verifier:    sealed,
		BindingHash: Hash(binding),
		ReturnTo:    v.cfg.ReturnURL,
		ExpiresAt:   v.cfg.Now().Add(ConnectWindow),
	})
	if err != nil {
		return nil, fmt.Errorf("vault: save connect state: %w", err)
	}
	return &Start{AuthorizationURL: authURL, Binding: secret.New(binding)}, nil
}

// pickClaims keeps the claims job entitlements look at.
func (v *Vault) pickClaims(claims map[string]any) map[string]any {
	var out map[string]any
	for _, n := range v.cfg.ClaimNames {
		if c, ok := claims[n]; ok {
			if out == nil {
				out = map[string]any{}
			}
			out[n] = c
		}
	}
	return out
}

// Result of a connect callback, as the SPA sees it.
type Result string

const (
	ResultConnected Result = "connected"
	ResultDenied    Result = "denied"
	ResultFailed    Result = "failed"
)

// FinishConnect handles the provider's redirect to the callback of provider
// name with the query q and the browser's binding value ("" when the cookie
// is missing or ambiguous). Tokens are stored only when the state exists, is
// unused and unexpired, was made for this provider, and the binding matches.
// The error explains a failed or denied result for the log; it is never
// shown to the browser.
func (v *Vault) FinishConnect(ctx context.Context, name string, q url.Values, binding string) (Result, error) {
	p, ok := v.cfg.Providers[name]
	if !ok {
		return ResultFailed, ErrUnknownProvider
	}
	state := q.Get("state")
	if state == "" || len(q["state"]) != 1 {
		return ResultFailed, errors.New("vault: callback without one state parameter")
	}
	stateHash := Hash(state)
	cs, err := v.cfg.Store.TakeConnectState(ctx, stateHash, v.cfg.Now())
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return ResultFailed, errors.New("vault: unknown, used or expired state")
		}
		return ResultFailed, err
	}
	if cs.Provider != name {
		return ResultFailed, fmt.Errorf("vault: the state was made for provider %q, the callback is %q's", cs.Provider, name)
	}
	if binding == "" || subtle.ConstantTimeCompare([]byte(Hash(binding)), []byte(cs.BindingHash)) != 1 {
		return ResultFailed, errors.New("vault: the binding cookie is missing or does not match the state")
	}
	if e := q.Get("error"); e != "" {
		if e == "access_denied" {
			return ResultDenied, errors.New("vault: the user or provider denied access")
		}
		return ResultFailed, fmt.Errorf("vault: the provider answered the authorization request with an error")
	}
	code := q.Get("code")
	if code == "" || len(q["code"]) != 1 {
		return ResultFailed, errors.New("vault: callback without one code parameter")
	}
	if err := p.CheckIssuer(q.Get("iss"), q.Has("iss")); err != nil {
		return ResultFailed, err
	}
	plain, err := v.cfg.Sealer.Open(cs.Verifier, connectAD(stateHash))
	if err != nil {
		return ResultFailed, fmt.Errorf("vault: open connect state: %w", err)
	}
	var rec connectRecord
	err = json.Unmarshal(plain, &rec)
	clear(plain)
	if err != nil {
		return ResultFailed, fmt.Errorf("vault: connect state: %w", err)
	}
	tok, err := p.Exchange(ctx, code, rec.Verifier)
	if err != nil {
		return ResultFailed, fmt.Errorf("vault: code exchange at %s: %w", name, err)
	}
	if tok.ExpiresIn == 0 && tok.RefreshToken.IsZero() && !p.Has(provider.NonExpiringTokens) {
		return ResultFailed, fmt.Errorf("vault: %s issued a token without expires_in and without refresh_token (set the non_expiring_tokens quirk if its tokens never expire)", name)
	}
	c := &Connection{User: cs.User, Provider: name, Status: StatusConnected, Scopes: tok.Scopes}
	if c.Scopes == nil {
		c.Scopes = slices.Clone(p.Scopes())
	}
	if err := v.setTokens(c, tok, rec.Claims, v.cfg.Now()); err != nil {
		return ResultFailed, err
	}
	if err := v.cfg.Store.SaveConnection(ctx, c); err != nil {
		return ResultFailed, fmt.Errorf("vault: save connection: %w", err)
	}
	v.cfg.Logger.Info("vault: connection made", "provider", name, "issuer", cs.User.Issuer, "subject", cs.User.Subject,
		"refresh_token", !tok.RefreshToken.IsZero(), "expires_in", tok.ExpiresIn)
	return ResultConnected, nil
}

// setTokens seals a token response into c. A response without a refresh
// token keeps c's (providers that do not rotate).
func (v *Vault) setTokens(c *Connection, tok *provider.Token, claims map[string]any, now time.Time) error {
	rec, _ := json.Marshal(accessRecord{Token: tok.AccessToken.Reveal(), Claims: claims})
	at, err := v.cfg.Sealer.Seal(rec, accessAD(c.User, c.Provider))
	clear(rec)
	if err != nil {
		return fmt.Errorf("vault: seal access token: %w", err)
	}
	c.AccessToken = at
	if !tok.RefreshToken.IsZero() {
		rt, err := v.cfg.Sealer.Seal([]byte(tok.RefreshToken.Reveal()), refreshAD(c.User, c.Provider))
		if err != nil {
			return fmt.Errorf("vault: seal refresh token: %w", err)
		}
		c.RefreshToken = rt
	}
	c.ExpiresAt = time.Time{}
	if tok.ExpiresIn > 0 {
		c.ExpiresAt = now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	if tok.Scopes != nil {
		c.Scopes = tok.Scopes
	}
	return nil
}

// Info describes a connection without its tokens.
type Info struct {
	Provider  string
	Scopes    []string
	ExpiresAt time.Time // zero when unknown
	Status    Status
}

// List returns the user's connections to configured providers.
func (v *Vault) List(ctx context.Context, u User) ([]Info, error) {
	cs, err := v.cfg.Store.ListConnections(ctx, u)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(cs))
	for _, c := range cs {
		if _, ok := v.cfg.Providers[c.Provider]; ok {
			out = append(out, Info{Provider: c.Provider, Scopes: c.Scopes, ExpiresAt: c.ExpiresAt, Status: c.Status})
		}
	}
	return out, nil
}

// Disconnect revokes the connection's tokens at the provider, when it has a
// revocation endpoint (best effort, 5 seconds at most), then deletes it.
func (v *Vault) Disconnect(ctx context.Context, u User, name string) error {
	p, ok := v.cfg.Providers[name]
	if !ok {
		return ErrUnknownProvider
	}
	c, err := v.cfg.Store.GetConnection(ctx, u, name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if p.CanRevoke() {
		token, hint, err := v.revocable(c)
		if err == nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err = p.Revoke(rctx, token, hint)
			cancel()
		}
		if err != nil {
			v.cfg.Logger.Warn("vault: revocation at the provider failed; the connection is deleted anyway", "provider", name, "error", err.Error())
		}
	}
	return v.cfg.Store.DeleteConnection(ctx, u, name)
}

// revocable returns the token that ends the grant: the refresh token, or
// the access token when there is none.
func (v *Vault) revocable(c *Connection) (string, string, error) {
	if len(c.RefreshToken.Data) > 0 {
		rt, err := v.cfg.Sealer.Open(c.RefreshToken, refreshAD(c.User, c.Provider))
		if err != nil {
			return "", "", err
		}
		return string(rt), "refresh_token", nil
	}
	rec, err := v.openAccess(c)
	if err != nil {
		return "", "", err
	}
	return rec.Token, "access_token", nil
}

func (v *Vault) openAccess(c *Connection) (*accessRecord, error) {
	plain, err := v.cfg.Sealer.Open(c.AccessToken, accessAD(c.User, c.Provider))
	if err != nil {
		return nil, fmt.Errorf("vault: open access token of %s: %w", c.Provider, err)
	}
	var rec accessRecord
	err = json.Unmarshal(plain, &rec)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("vault: access token record of %s: %w", c.Provider, err)
	}
	return &rec, nil
}

// Claims returns the user's claims recorded when the connection was made
// (only those named in Config.ClaimNames).
func (v *Vault) Claims(ctx context.Context, u User, name string) (map[string]any, error) {
	if _, ok := v.cfg.Providers[name]; !ok {
		return nil, ErrUnknownProvider
	}
	c, err := v.cfg.Store.GetConnection(ctx, u, name)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotConnected
	}
	if err != nil {
		return nil, err
	}
	rec, err := v.read(ctx, c)
	if err != nil {
		return nil, err
	}
	return rec.Claims, nil
}

// read opens c's access record and re-seals c with the current key when it
// was sealed with an older one (lazy re-sealing; a conflicting write wins).
func (v *Vault) read(ctx context.Context, c *Connection) (*accessRecord, error) {
	rec, err := v.openAccess(c)
	if err != nil {
		return nil, err
	}
	hasRT := len(c.RefreshToken.Data) > 0
	if !v.cfg.Sealer.NeedsReseal(c.AccessToken) && !(hasRT && v.cfg.Sealer.NeedsReseal(c.RefreshToken)) {
		return rec, nil
	}
	next := *c
	if err := v.reseal(&next); err != nil {
		return nil, err
	}
	switch err := v.cfg.Store.UpdateConnection(ctx, &next); {
	case err == nil:
		*c = next
		v.cfg.Logger.Debug("vault: connection re-sealed with the current key", "provider", c.Provider)
	case errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
		// Another write came first; it sealed with the current key itself.
	default:
		return nil, fmt.Errorf("vault: re-seal: %w", err)
	}
	return rec, nil
}

func (v *Vault) reseal(c *Connection) error {
	for _, f := range []struct {
		s  *Sealed
		ad []byte
	}{{&c.AccessToken, accessAD(c.User, c.Provider)}, {&c.RefreshToken, refreshAD(c.User, c.Provider)}} {
		if len(f.s.Data) == 0 {
			continue
		}
		plain, err := v.cfg.Sealer.Open(*f.s, f.ad)
		if err != nil {
			return fmt.Errorf("vault: re-seal: %w", err)
		}
		s, err := v.cfg.Sealer.Seal(plain, f.ad)
		clear(plain)
		if err != nil {
			return fmt.Errorf("vault: re-seal: %w", err)
		}
		*f.s = s
	}
	return nil
}

// isInvalidGrant reports whether err is the provider's invalid_grant.
func isInvalidGrant(err error) bool {
	var oe *oauthclient.Error
	return errors.As(err, &oe) && oe.Code == "invalid_grant"
}
