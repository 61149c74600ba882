package jwtverify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// Defaults and limits of a KeySet.
const (
	DefaultFetchTimeout    = 5 * time.Second
	DefaultMaxBytes        = 1 << 20
	DefaultRefetchInterval = 30 * time.Second

	// retryInterval spaces the attempts to load a first key set while none
	// could be fetched yet, so that a flood of tokens does not become a flood
	// of requests to a failing JWKS endpoint.
	retryInterval = time.Second
	// maxKeys bounds the usable keys kept from one JWKS document: a token
	// without kid is tried against every compatible key.
	maxKeys = 64
	// minRSABits is the smallest RSA modulus accepted in a JWKS.
	minRSABits = 2048
)

// KeySetConfig configures a KeySet. Zero values take the documented defaults.
type KeySetConfig struct {
	// URL of the JWKS document (required). It must be https, or http to a
	// loopback host (localhost, 127.0.0.0/8, ::1), or any http URL when
	// InsecureAllowHTTP is set.
	URL string
	// InsecureAllowHTTP allows a plain-http URL to a non-loopback host.
	InsecureAllowHTTP bool
	// Client makes the requests (required; http.DefaultClient is never used).
	Client *http.Client
	// FetchTimeout bounds each fetch (default 5s).
	FetchTimeout time.Duration
	// MaxBytes is the largest JWKS body accepted (default 1 MiB); a larger
	// body is an error.
	MaxBytes int64
	// RefetchInterval (default 30s): at most one fetch per interval is caused
	// by tokens whose key is not in the set.
	RefetchInterval time.Duration
	// Clock defaults to time.Now.
	Clock func() time.Time
	// Logger receives fetch results and ignored keys (default: discard). It
	// never receives tokens.
	Logger *slog.Logger
}

// KeySet is a remote JWKS, fetched lazily on first use and refetched when a
// token names a key that is not in it. It is safe for concurrent use and
// starts no goroutines of its own: fetches run on behalf of the callers that
// need them, deduplicated with singleflight.
//
// Refetch policy:
//   - The first fetch happens when the first token is verified. Concurrent
//     first verifications share one fetch. While no set could ever be
//     fetched, attempts are made at most once per second and verification
//     fails with ErrKeysUnavailable.
//   - A token whose key is not in the set causes at most one fetch per
//     RefetchInterval, shared by every goroutine that needs it; the interval
//     starts when that fetch starts, whether it succeeds or not.
//   - A token whose kid is in the set never causes a fetch, whether or not its
//     signature verifies.
//   - A failed fetch keeps the last good set; a successful one replaces the
//     set entirely (keys removed at the provider stop verifying).
//
// The set is not refetched on a timer; key removal is noticed at the next
// refetch caused by an unknown key.
type KeySet struct {
	url      string
	client   *http.Client
	timeout  time.Duration
	maxBytes int64
	interval time.Duration
	clock    func() time.Time
	log      *slog.Logger

	snap    atomic.Pointer[keySnapshot]
	group   singleflight.Group
	fetches atomic.Int64

	mu          sync.Mutex
	lastAttempt time.Time // start of the last fetch of any kind
	lastRefetch time.Time // start of the last fetch caused by an unknown key
	lastErr     error     // error of the last fetch, nil after a success
}

// NewKeySet validates cfg and returns a KeySet. It makes no request.
func NewKeySet(cfg KeySetConfig) (*KeySet, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("client is required"))
	}
	if err := checkJWKSURL(cfg.URL, cfg.InsecureAllowHTTP); err != nil {
		errs = append(errs, err)
	}
	if cfg.FetchTimeout < 0 {
		errs = append(errs, errors.New("fetch timeout must not be negative"))
	}
	if cfg.MaxBytes < 0 {
		errs = append(errs, errors.New("max bytes must not be negative"))
	}
	if cfg.RefetchInterval < 0 {
		errs = append(errs, errors.New("refetch interval must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("jwtverify: key set: %w", errors.Join(errs...))
	}
	s := &KeySet{
		url:      cfg.URL,
		client:   cfg.Client,
		timeout:  cmpOr(cfg.FetchTimeout, DefaultFetchTimeout),
		maxBytes: cmpOr(cfg.MaxBytes, DefaultMaxBytes),
		interval: cmpOr(cfg.RefetchInterval, DefaultRefetchInterval),
		clock:    cfg.Clock,
		log:      cfg.Logger,
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func checkJWKSURL(raw string, insecureHTTP bool) error {
	if raw == "" {
		return errors.New("url is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if u.Host == "" {
		return fmt.Errorf("url %q: must be absolute", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if insecureHTTP || isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("url %q: must be https (http only to a loopback host, or with InsecureAllowHTTP)", raw)
	default:
		return fmt.Errorf("url %q: scheme must be https", raw)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Fetches returns the number of fetch attempts made so far, successful or not.
func (s *KeySet) Fetches() int64 { return s.fetches.Load() }

// keySnapshot is one fetched JWKS, immutable once published.
type keySnapshot struct {
	byKID map[string][]*verifyKey // keys that have a kid
	all   []*verifyKey            // every usable key, in document order
}

// verifyKey is one usable public key of a JWKS.
type verifyKey struct {
	kid string
	alg string           // the JWK's alg, "" when it names none
	key crypto.PublicKey // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// usableFor reports whether k may verify a signature made with alg: the key
// type (and curve) must fit alg, and a JWK that names its alg must name this
// one.
func (k *verifyKey) usableFor(alg jose.SignatureAlgorithm) bool {
	if k.alg != "" && k.alg != string(alg) {
		return false
	}
	switch pub := k.key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return pub.Curve == elliptic.P256()
		case jose.ES384:
			return pub.Curve == elliptic.P384()
		case jose.ES512:
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// fetchReason says why a fetch is wanted; it decides which limit applies.
type fetchReason int

const (
	reasonLoad    fetchReason = iota // no set yet
	reasonRefetch                    // a token's key is not in the set
)

// current returns the key set, fetching it first if none was ever fetched.
// Its error wraps ErrKeysUnavailable, or is the caller's context error.
func (s *KeySet) current(ctx context.Context) (*keySnapshot, error) {
	if snap := s.snap.Load(); snap != nil {
		return snap, nil
	}
	snap, err := s.do(ctx, reasonLoad)
	if err != nil {
		return nil, err
	}
	return snap, nil
}

// refetch fetches the set again if the refetch interval allows it (or waits
// for a fetch already under way) and returns the set held afterwards, which
// may be the same as before. A failed fetch is logged; the last good set is
// returned with no error.
func (s *KeySet) refetch(ctx context.Context) (*keySnapshot, error) {
	return s.do(ctx, reasonRefetch)
}

// do runs or joins the one fetch under way. The fetch itself is not bound to
// the cancellation of the caller that started it (others may be waiting for
// it) but to FetchTimeout; each caller stops waiting when its own ctx ends.
func (s *KeySet) do(ctx context.Context, reason fetchReason) (*keySnapshot, error) {
	fetchCtx := context.WithoutCancel(ctx)
	ch := s.group.DoChan("jwks", func() (any, error) {
		return s.maybeFetch(fetchCtx, reason)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*keySnapshot), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("jwtverify: waiting for key set: %w", context.Cause(ctx))
	}
}

// maybeFetch applies the rate limits and fetches if they allow it. It runs
// inside the singleflight group, so never twice at the same time.
func (s *KeySet) maybeFetch(ctx context.Context, reason fetchReason) (*keySnapshot, error) {
	now := s.clock()
	s.mu.Lock()
	cur := s.snap.Load()
	switch {
	case cur == nil:
		if !s.lastAttempt.IsZero() && now.Sub(s.lastAttempt) < min(retryInterval, s.interval) {
			err := s.lastErr
			s.mu.Unlock()
			if err == nil {
				err = errors.New("no key set fetched yet")
			}
			return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
		}
	case reason == reasonLoad:
		// Someone else loaded the set since the caller looked.
		s.mu.Unlock()
		return cur, nil
	default:
		if !s.lastRefetch.IsZero() && now.Sub(s.lastRefetch) < s.interval {
			s.mu.Unlock()
			return cur, nil
		}
		s.lastRefetch = now
	}
	s.lastAttempt = now
	s.mu.Unlock()

	snap, err := s.fetch(ctx)

	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if err != nil {
		if cur != nil {
			s.log.WarnContext(ctx, "jwtverify: JWKS refetch failed, keeping the last good key set", "url", s.url, "error", err)
			return cur, nil
		}
		s.log.WarnContext(ctx, "jwtverify: JWKS fetch failed", "url", s.url, "error", err)
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	s.snap.Store(snap)
	s.log.InfoContext(ctx, "jwtverify: JWKS fetched", "url", s.url, "keys", len(snap.all))
	return snap, nil
}

// fetch makes one request for the JWKS and parses it.
func (s *KeySet) fetch(ctx context.Context) (*keySnapshot, error) {
	s.fetches.Add(1)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("JWKS fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS fetch: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("JWKS fetch: reading body: %w", err)
	}
	if int64(len(body)) > s.maxBytes {
		return nil, fmt.Errorf("JWKS fetch: body larger than %d bytes", s.maxBytes)
	}
	return parseJWKS(ctx, body, s.log)
}

// parseJWKS keeps the usable signature keys of a JWKS document. Keys that
// are unusable (see jwkKey) are skipped and logged at debug level; a
// document without any usable key is an error.
func parseJWKS(ctx context.Context, body []byte, log *slog.Logger) (*keySnapshot, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("JWKS: invalid JSON: %w", err)
	}
	snap := &keySnapshot{byKID: make(map[string][]*verifyKey)}
	for i, raw := range doc.Keys {
		k, err := jwkKey(raw)
		if err != nil {
			log.DebugContext(ctx, "jwtverify: ignoring JWKS key", "index", i, "reason", err.Error())
			continue
		}
		if len(snap.all) == maxKeys {
			log.WarnContext(ctx, "jwtverify: JWKS has too many usable keys, ignoring the rest", "max", maxKeys)
			break
		}
		snap.all = append(snap.all, k)
		if k.kid != "" {
			snap.byKID[k.kid] = append(snap.byKID[k.kid], k)
		}
	}
	if len(snap.all) == 0 {
		return nil, fmt.Errorf("JWKS: no usable signature key among %d", len(doc.Keys))
	}
	return snap, nil
}

// jwkKey returns the public verification key of one JWK, or why it is not
// used: symmetric (oct) keys, keys for encryption (use other than sig,
// key_ops without verify), alg that is not an asymmetric signature
// algorithm, key types other than RSA, EC (P-256/384/521) and Ed25519, RSA
// keys under 2048 bits, and invalid keys. Of a private key only the public
// part is kept.
func jwkKey(raw json.RawMessage) (*verifyKey, error) {
	var meta struct {
		Kty    string   `json:"kty"`
		Use    string   `json:"use"`
		KeyOps []string `json:"key_ops"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return nil, fmt.Errorf("invalid JWK: %w", err)
	}
	if meta.Kty == "oct" {
		return nil, errors.New("symmetric key")
	}
	if meta.Use != "" && meta.Use != "sig" {
		return nil, fmt.Errorf("use is %s", quote(meta.Use))
	}
	if meta.KeyOps != nil && !slices.Contains(meta.KeyOps, "verify") {
		return nil, errors.New("key_ops lacks verify")
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("invalid or unsupported JWK: %w", err)
	}
	if jwk.Algorithm != "" && !signatureAlgorithm(jwk.Algorithm) {
		return nil, fmt.Errorf("alg %s is not an allowed signature algorithm", quote(jwk.Algorithm))
	}
	pub := jwk.Public()
	if !pub.Valid() {
		return nil, errors.New("invalid key")
	}
	switch key := pub.Key.(type) {
	case *rsa.PublicKey:
		if key.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits", key.N.BitLen())
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("unsupported key type %T", pub.Key)
	}
	return &verifyKey{kid: jwk.KeyID, alg: jwk.Algorithm, key: pub.Key}, nil
}

// signatureAlgorithm reports whether alg is one a verifier may allow: the
// asymmetric JWS algorithms RS/PS/ES 256/384/512 and EdDSA.
func signatureAlgorithm(alg string) bool {
	switch jose.SignatureAlgorithm(alg) {
	case jose.RS256, jose.RS384, jose.RS512,
		jose.PS256, jose.PS384, jose.PS512,
		jose.ES256, jose.ES384, jose.ES512,
		jose.EdDSA:
		return true
	}
	return false
}
