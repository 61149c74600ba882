// Package introspect checks opaque access tokens at the authorization
// server's introspection endpoint (RFC 7662) for the phantom token pattern,
// and caches the answers.
//
// An Introspector is built once per introspection client. Introspect refuses
// tokens of impossible shape before any call (ErrMalformedToken), answers
// from its cache when it can, and otherwise makes one POST to the endpoint
// with Gatehouse's client authentication, shared by every concurrent caller
// that presents the same token.
//
// Three response formats are understood (Format):
//
//   - FormatJSON, RFC 7662: a JSON object whose "active" member must be the
//     boolean true for an active token. The caller mints the upstream JWT
//     from the Result.
//   - FormatJWT, Curity's phantom token variant (Accept: application/jwt):
//     200 with the JWT to forward as is, 204 for an inactive token. The JWT's
//     payload is decoded to fill the Result but its signature is not
//     checked: the answer comes straight from the authorization server over
//     the back channel Gatehouse authenticated to (TLS, client
//     authentication), the same trust the JSON format rests on, and the
//     upstream that receives the JWT verifies it. Its shape is checked
//     (a compact JWS of base64url segments whose payload is a JSON object),
//     because it is put into a request header.
//   - FormatRFC9701 (Accept: application/token-introspection+jwt): a JWT
//     signed by the authorization server about the token, verified with the
//     server's key set (jwtverify.IntrospectionResponse: typ, iss, aud =
//     Gatehouse's client id, iat), whose token_introspection claim is then
//     read like a JSON response.
//
// A result whose token_type is refresh_token reads as inactive: some servers
// introspect refresh tokens as active, and a refresh token must never pass as
// a bearer credential. So does an active result whose exp has passed.
//
// Cache: entries are keyed by SHA-256 of the endpoint and of the whole token;
// the token itself is never stored. An active result lives for the least of
// the token's remaining lifetime (exp), Config.MaxTTL and the response's
// Cache-Control max-age; an inactive one for at most Config.NegativeTTL (10 s
// at most). Other Cache-Control directives (no-store, no-cache) are ignored:
// most servers send no-store on every introspection response, and honouring
// it would disable the cache the phantom token pattern depends on; a server
// that wants less caching sends max-age. Failures are never cached. Every hit
// checks exp against the clock again, so an entry never outlives its token.
// The cache holds at most Config.MaxEntries results; when full it drops
// expired entries first, then the oldest.
//
// Errors never contain the token or a response body, and neither does any
// log line.
package introspect

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
)

// Limits and defaults.
const (
	// MaxTokenBytes is the size of the largest token Introspect sends to the
	// authorization server; larger ones are ErrMalformedToken.
	MaxTokenBytes = 8 << 10
	// MaxResponseBytes caps every response body read from the server.
	MaxResponseBytes = 1 << 20

	DefaultMaxTTL      = 5 * time.Minute
	DefaultNegativeTTL = 10 * time.Second
	// MaxNegativeTTL bounds Config.NegativeTTL: a token that becomes valid
	// (clock skew at the server, a replicated store catching up) must not be
	// refused for long.
	MaxNegativeTTL    = 10 * time.Second
	DefaultMaxEntries = 100_000
)

// Sentinel errors, for errors.Is.
var (
	// ErrMalformedToken: the token is empty, larger than MaxTokenBytes, or
	// not an RFC 6750 b64token. It was not sent anywhere. Callers answer 401.
	ErrMalformedToken = errors.New("introspect: malformed token")
	// ErrUnavailable: the token could not be checked — the endpoint is not
	// known yet, the server is unreachable, timed out, answered 5xx or an
	// unexpected status (401/403 mean it refused Gatehouse's own client), or
	// an unusable body (including an RFC 9701 response that fails
	// verification). Never cached. Callers answer 502
	// authorization_server_error.
	ErrUnavailable = errors.New("introspect: authorization server unavailable")
)

// Format is the response format requested from the introspection endpoint.
type Format int

const (
	// FormatJSON is RFC 7662 JSON (the default): Gatehouse mints the upstream
	// JWT from the Result.
	FormatJSON Format = iota + 1
	// FormatJWT is Curity's phantom token format: Accept: application/jwt;
	// 200 with the JWT to forward as is (Result.JWT), 204 when inactive.
	FormatJWT
	// FormatRFC9701 is Accept: application/token-introspection+jwt: a JWT
	// signed by the authorization server about the token (RFC 9701).
	FormatRFC9701
)

// String returns the format's config name: json, jwt or rfc9701.
func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatJWT:
		return "jwt"
	case FormatRFC9701:
		return "rfc9701"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat returns the Format named by a config value: json (or empty),
// jwt or rfc9701.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "json":
		return FormatJSON, nil
	case "jwt":
		return FormatJWT, nil
	case "rfc9701":
		return FormatRFC9701, nil
	}
	return 0, fmt.Errorf("introspect: unknown format %q (want json, jwt or rfc9701)", s)
}

// accept is the Accept header sent for each format.
func (f Format) accept() string {
	switch f {
	case FormatJWT:
		return "application/jwt"
	case FormatRFC9701:
		return "application/token-introspection+jwt"
	}
	return "application/json"
}

// Config configures an Introspector. Zero values take the documented defaults.
type Config struct {
	// Endpoint returns the introspection endpoint (known after discovery);
	// an error means it is not available yet (required).
	Endpoint func() (string, error)
	// Issuer is the authorization server's issuer: the expected iss of RFC
	// 9701 responses, and Result.Issuer when a response has no iss (required).
	Issuer string
	// ClientID is Gatehouse's client at the server; the aud of an RFC 9701
	// response must contain it (required for FormatRFC9701).
	ClientID string
	// Auth is Gatehouse's client authentication (required).
	Auth oauthclient.ClientAuth
	// HTTP makes the calls (required); its Timeout bounds each call and must
	// be set. Redirects are never followed and cookies never kept, whatever
	// the client's own settings.
	HTTP *http.Client
	// Format defaults to FormatJSON.
	Format Format
	// Keys is the server's key set (required for FormatRFC9701).
	Keys *jwtverify.KeySet

	// MaxTTL caps how long an active result is cached (default 5m).
	MaxTTL time.Duration
	// NegativeTTL is how long an inactive result is cached (default and
	// maximum 10s).
	NegativeTTL time.Duration
	// MaxEntries bounds the cache (default 100 000).
	MaxEntries int

	// Clock defaults to time.Now.
	Clock func() time.Time
	// Logger receives failures of the authorization server (default:
	// discard); never tokens or response bodies.
	Logger *slog.Logger
}

// Result is the outcome of an introspection. Results are shared between
// concurrent callers and with the cache: treat them as read-only.
type Result struct {
	// Active reports whether the token is active. Nothing else is set on an
	// inactive Result but, for FormatJSON and FormatRFC9701, Claims.
	Active bool
	// Issuer is the response's iss, or Config.Issuer when it has none.
	Issuer    string
	Subject   string // sub
	ClientID  string // client_id
	Scope     string // scope: space-separated (an array in the response is joined)
	TokenType string // token_type
	Audience  []string
	// Expiry, IssuedAt and NotBefore are zero when absent.
	Expiry, IssuedAt, NotBefore time.Time
	// Claims holds every member of the introspection response (for
	// FormatRFC9701, of its token_introspection object; for FormatJWT, of
	// the JWT's payload) as decoded by encoding/json.
	Claims map[string]any
	// JWT is, for FormatJWT only, the JWT to forward upstream.
	JWT string
}

// Introspector introspects tokens at one endpoint for one client. It is safe
// for concurrent use. Each call to the server runs in a goroutine of its own
// (so that every waiter can leave when its context ends), which ends with the
// call: the HTTP client's timeout bounds it.
type Introspector struct {
	endpoint    func() (string, error)
	issuer      string
	auth        oauthclient.ClientAuth
	http        *http.Client
	format      Format
	verifier    *jwtverify.Verifier // FormatRFC9701 only
	maxTTL      time.Duration
	negativeTTL time.Duration
	clock       func() time.Time
	log         *slog.Logger

	cache *cache
	group singleflight.Group
	calls atomic.Int64
	ep    atomic.Pointer[endpointHash]
}

// endpointHash is the SHA-256 of the last endpoint seen, so that computing a
// cache key hashes the endpoint only when it changes.
type endpointHash struct {
	url string
	sum [sha256.Size]byte
}

// New validates cfg, reporting every problem, and returns an Introspector.
// It makes no request.
func New(cfg Config) (*Introspector, error) {
	var errs []error
	if cfg.Endpoint == nil {
		errs = append(errs, errors.New("endpoint is required"))
	}
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if cfg.Auth == nil {
		errs = append(errs, errors.New("client authentication is required"))
	}
	if cfg.HTTP == nil {
		errs = append(errs, errors.New("HTTP client is required"))
	} else if cfg.HTTP.Timeout <= 0 {
		errs = append(errs, errors.New("HTTP client needs a timeout: it bounds each call"))
	}
	if cfg.Format == 0 {
		cfg.Format = FormatJSON
	}
	switch cfg.Format {
	case FormatJSON, FormatJWT:
	case FormatRFC9701:
		if cfg.Keys == nil {
			errs = append(errs, errors.New("format rfc9701 needs the authorization server's key set"))
		}
		if cfg.ClientID == "" {
			errs = append(errs, errors.New("format rfc9701 needs the client id (the responses' audience)"))
		}
	default:
		errs = append(errs, fmt.Errorf("format %d: must be FormatJSON, FormatJWT or FormatRFC9701", int(cfg.Format)))
	}
	if cfg.MaxTTL < 0 {
		errs = append(errs, errors.New("max TTL must not be negative"))
	}
	if cfg.NegativeTTL < 0 || cfg.NegativeTTL > MaxNegativeTTL {
		errs = append(errs, fmt.Errorf("negative TTL %s: must be between 0 and %s", cfg.NegativeTTL, MaxNegativeTTL))
	}
	if cfg.MaxEntries < 0 {
		errs = append(errs, errors.New("max entries must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("introspect: %w", errors.Join(errs...))
	}

	i := &Introspector{
		endpoint:    cfg.Endpoint,
		issuer:      cfg.Issuer,
		auth:        cfg.Auth,
		format:      cfg.Format,
		maxTTL:      cmpOr(cfg.MaxTTL, DefaultMaxTTL),
		negativeTTL: cmpOr(cfg.NegativeTTL, DefaultNegativeTTL),
		clock:       cfg.Clock,
		log:         cfg.Logger,
		cache:       newCache(cmpOr(cfg.MaxEntries, DefaultMaxEntries)),
	}
	if i.clock == nil {
		i.clock = time.Now
	}
	if i.log == nil {
		i.log = slog.New(slog.DiscardHandler)
	}
	// A copy, so that the caller's client keeps its own policies.
	hc := *cfg.HTTP
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	hc.Jar = nil
	i.http = &hc
	if cfg.Format == FormatRFC9701 {
		v, err := jwtverify.New(cfg.Keys, jwtverify.Config{
			Purpose:  jwtverify.IntrospectionResponse,
			Issuer:   cfg.Issuer,
			Audience: cfg.ClientID,
			Clock:    i.clock,
		})
		if err != nil {
			return nil, fmt.Errorf("introspect: %w", err)
		}
		i.verifier = v
	}
	return i, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Calls returns the number of requests made to the introspection endpoint.
func (i *Introspector) Calls() int64 { return i.calls.Load() }

// Introspect returns what the authorization server says about token, from
// the cache when it can. An inactive token is a Result with Active false,
// not an error. Errors wrap ErrMalformedToken or ErrUnavailable, or, when
// ctx ends first, ctx's cause; a call already under way then still completes
// (bounded by the HTTP client's timeout) and fills the cache for others.
func (i *Introspector) Introspect(ctx context.Context, token string) (*Result, error) {
	if err := checkToken(token); err != nil {
		return nil, err
	}
	endpoint, err := i.endpoint()
	if err != nil {
		return nil, fmt.Errorf("%w: no introspection endpoint: %w", ErrUnavailable, err)
	}
	if endpoint == "" {
		return nil, fmt.Errorf("%w: the authorization server has no introspection endpoint", ErrUnavailable)
	}
	key := i.key(endpoint, token)
	if res, ok := i.cache.get(key, i.clock()); ok {
		return res, nil
	}
	return i.miss(ctx, endpoint, token, key)
}

// miss joins or starts the one call for key. (Apart from Introspect, so that
// the closure's captures do not cost the cache hit an allocation.)
func (i *Introspector) miss(ctx context.Context, endpoint, token string, key [sha256.Size]byte) (*Result, error) {
	// The call is shared: it must not end because the caller who started it
	// went away. The HTTP client's timeout bounds it.
	callCtx := context.WithoutCancel(ctx)
	ch := i.group.DoChan(string(key[:]), func() (any, error) {
		return i.fetch(callCtx, endpoint, token, key)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Result), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("introspect: waiting for the authorization server: %w", context.Cause(ctx))
	}
}

// smallToken is the size up to which key hashes a token without allocating;
// opaque tokens are usually far smaller.
const smallToken = 512

// key is SHA-256(SHA-256(endpoint) || token).
func (i *Introspector) key(endpoint, token string) (key [sha256.Size]byte) {
	ep := i.ep.Load()
	if ep == nil || ep.url != endpoint {
		ep = &endpointHash{url: endpoint, sum: sha256.Sum256([]byte(endpoint))}
		i.ep.Store(ep)
	}
	if len(token) <= smallToken {
		// Hash from a stack copy: []byte(token) would allocate on every
		// cache hit.
		var buf [sha256.Size + smallToken]byte
		copy(buf[:], ep.sum[:])
		n := copy(buf[sha256.Size:], token)
		return sha256.Sum256(buf[:sha256.Size+n])
	}
	h := sha256.New()
	h.Write(ep.sum[:])
	h.Write([]byte(token))
	h.Sum(key[:0])
	return key
}

// checkToken refuses tokens that cannot be access tokens: empty, larger than
// MaxTokenBytes, or not an RFC 6750 b64token (1*( ALPHA / DIGIT / "-" / "." /
// "_" / "~" / "+" / "/" ) *"=").
func checkToken(token string) error {
	if token == "" {
		return fmt.Errorf("%w: empty", ErrMalformedToken)
	}
	if len(token) > MaxTokenBytes {
		return fmt.Errorf("%w: larger than %d bytes", ErrMalformedToken, MaxTokenBytes)
	}
	padding := false
	for n := 0; n < len(token); n++ {
		c := token[n]
		switch {
		case c == '=':
			if n == 0 {
				return fmt.Errorf("%w: not a b64token", ErrMalformedToken)
			}
			padding = true
		case padding:
			return fmt.Errorf("%w: not a b64token", ErrMalformedToken)
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return fmt.Errorf("%w: not a b64token", ErrMalformedToken)
		}
	}
	return nil
}

// fetch calls the server and caches the result. It runs once per key at a
// time, inside the singleflight group.
func (i *Introspector) fetch(ctx context.Context, endpoint, token string, key [sha256.Size]byte) (*Result, error) {
	res, maxAge, err := i.call(ctx, endpoint, token)
	if err != nil {
		return nil, err
	}
	now := i.clock()
	if res.Active && !res.Expiry.IsZero() && !now.Before(res.Expiry) {
		// Active by the server's word, expired by its own exp.
		res = &Result{Active: false}
	}
	ttl := i.negativeTTL
	if res.Active {
		ttl = i.maxTTL
		if !res.Expiry.IsZero() {
			ttl = min(ttl, res.Expiry.Sub(now))
		}
	}
	if maxAge >= 0 {
		ttl = min(ttl, maxAge)
	}
	if ttl > 0 {
		exp := time.Time{}
		if res.Active {
			exp = res.Expiry
		}
		i.cache.put(key, res, now, now.Add(ttl), exp)
	}
	return res, nil
}

// call makes one request. maxAge is the response's Cache-Control max-age,
// or -1 when it has none.
func (i *Introspector) call(ctx context.Context, endpoint, token string) (res *Result, maxAge time.Duration, err error) {
	i.calls.Add(1)
	level := slog.LevelWarn
	defer func() {
		if err != nil {
			i.log.Log(ctx, level, "introspect: token could not be checked", "endpoint", endpoint, "format", i.format.String(), "error", err.Error())
		}
	}()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	h := http.Header{}
	if err := i.auth.Apply(form, h); err != nil {
		return nil, -1, fmt.Errorf("%w: client authentication: %w", ErrUnavailable, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, -1, fmt.Errorf("%w: introspection request: %w", ErrUnavailable, err)
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", i.format.accept())
	resp, err := i.http.Do(req)
	if err != nil {
		// A *url.Error names the method and the endpoint; the token travels
		// in the body and cannot appear in it.
		return nil, -1, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer drain(resp.Body)

	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNoContent && i.format == FormatJWT:
		// Curity: 204 is an inactive token.
		return &Result{Active: false}, maxAgeOf(resp.Header), nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		level = slog.LevelError // Gatehouse's configuration, not the server's health
		return nil, -1, fmt.Errorf("%w: the authorization server refused Gatehouse's introspection client (HTTP %d)", ErrUnavailable, resp.StatusCode)
	default:
		return nil, -1, fmt.Errorf("%w: introspection answered HTTP %d", ErrUnavailable, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, -1, fmt.Errorf("%w: reading the introspection response: %w", ErrUnavailable, err)
	}
	if len(body) > MaxResponseBytes {
		return nil, -1, fmt.Errorf("%w: introspection response larger than %d bytes", ErrUnavailable, MaxResponseBytes)
	}
	switch i.format {
	case FormatJWT:
		res, err = parseJWTResponse(body, i.issuer)
	case FormatRFC9701:
		res, err = i.parseRFC9701(ctx, body)
	default:
		res, err = parseJSONResponse(body, i.issuer)
	}
	if err != nil {
		return nil, -1, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return res, maxAgeOf(resp.Header), nil
}

// parseRFC9701 verifies a signed introspection response and reads its
// token_introspection object.
func (i *Introspector) parseRFC9701(ctx context.Context, body []byte) (*Result, error) {
	raw := strings.TrimSpace(string(body))
	c, err := i.verifier.Verify(ctx, raw)
	if err != nil {
		// jwtverify's errors never contain the token.
		return nil, fmt.Errorf("RFC 9701 response: %w", err)
	}
	obj, _ := c.Raw["token_introspection"].(map[string]any) // checked by the verifier
	res, err := parseIntrospection(obj, i.issuer)
	if err != nil {
		return nil, fmt.Errorf("RFC 9701 token_introspection: %w", err)
	}
	return res, nil
}

// drain reads a little of body and closes it, so the connection can be reused.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}
