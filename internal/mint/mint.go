// Package mint signs Gatehouse's own short-lived JWT access tokens for
// upstream services (the Access Token pattern) and publishes the public keys
// that verify them as a JWKS.
//
// Whatever way a caller came in — SPA cookie, bearer JWT, introspected opaque
// token — the upstream receives one kind of token: an RFC 9068 access token
// (typ at+jwt) signed by Gatehouse with ES256 or EdDSA, whose iss is
// Gatehouse's public URL and whose aud is the route's audience. It lasts at
// most the configured TTL (five minutes at most) and never beyond the
// credential it was minted from. Upstreams verify it with the keys ServeJWKS
// publishes at JWKSPath.
//
// # Claims
//
// iss, aud (one string), sub, client_id, scope (the scopes sorted, without
// duplicates, space-separated; absent when there are none), jti (128 random
// bits), iat and exp. Subject.Claims adds claims such as roles; a name that
// IsReservedClaim reports is dropped without an error, so a source token's
// claims can be passed as they are and never override the ones above or
// smuggle in a proof of possession (cnf), a delegation (act), a second scope
// claim (scp) or an ID token's nonce.
//
// # Cache
//
// A minted token is reused for the same source credential (Subject.CacheKey),
// audience and set of scopes while more than max(10s, 20% of its lifetime) of
// it is left, so that an upstream never receives a token about to expire. A
// reuse signs nothing. Concurrent misses for one key sign once. The cache
// holds at most Config.MaxEntries tokens: tokens no longer served go first,
// then those that would stop being served soonest (for tokens of full TTL,
// the oldest).
//
// # Key rotation
//
// Config.Keys[0] signs; every key is published. To rotate from key A to key B
// without a verification failure: publish B while A still signs ([A, B]),
// wait until upstreams have refetched the JWKS (ServeJWKS allows caching for
// five minutes; jwtverify also refetches on an unknown kid), sign with B
// ([B, A]), wait one TTL so that every token signed by A has expired, then
// drop A ([B]). Each step is a new Minter; its cache starts empty, so tokens
// minted with the old signing key are not handed out again.
package mint

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// Defaults and limits.
const (
	// DefaultTTL is the lifetime of a minted token when Config.TTL is zero;
	// it is also the largest TTL New accepts.
	DefaultTTL = 5 * time.Minute
	MaxTTL     = DefaultTTL
	// MinTTL is the smallest TTL New accepts.
	MinTTL = time.Second
	// DefaultMaxEntries bounds the cache when Config.MaxEntries is zero.
	DefaultMaxEntries = 100_000
	// MaxTokenBytes is the size of the largest token Mint returns: a
	// larger one (too many extra claims) would not fit in the upstream
	// request's headers, so Mint fails with ErrTooLarge instead.
	MaxTokenBytes = 8 << 10
	// JWKSPath is where Gatehouse serves ServeJWKS.
	JWKSPath = "/.well-known/jwks.json"
	// TokenType is the typ header of every minted token (RFC 9068).
	TokenType = "at+jwt"
)

// Sentinel errors; Mint's errors wrap one of them, or the error of the
// randomness source, the JSON encoder or the signer.
var (
	// ErrInvalid: the audience, subject, client id or a scope is missing or
	// malformed.
	ErrInvalid = errors.New("mint: invalid request")
	// ErrSourceExpired: Subject.Expiry is not after now. A token is never
	// minted for an expired credential.
	ErrSourceExpired = errors.New("mint: source credential has expired")
	// ErrTooLarge: the token would be longer than MaxTokenBytes.
	ErrTooLarge = errors.New("mint: token too large")
)

// Config configures a Minter. Zero values take the documented defaults.
type Config struct {
	// Issuer is Gatehouse's public_url, the iss of every minted token
	// (required; an absolute http or https URL).
	Issuer string
	// Keys are the signing keys: ECDSA P-256 (ES256) or Ed25519 (EdDSA),
	// as LoadOrCreateKey returns them, or any crypto.Signer with such a
	// public key (a KMS, an HSM). Keys[0] signs; all are published in the
	// JWKS. At least one is required, and no key may appear twice.
	Keys []crypto.Signer
	// TTL is the lifetime of a minted token (default and maximum 5m,
	// minimum 1s); it is shortened to the source credential's expiry.
	TTL time.Duration
	// MaxEntries bounds the token cache (default 100_000).
	MaxEntries int
	// Clock is the only source of time (default time.Now).
	Clock func() time.Time
	// Random supplies the jti bits (default crypto/rand.Reader). It must be
	// safe for concurrent use. Signatures draw their own randomness.
	Random io.Reader
}

// Subject is what a token is minted about: the caller, as the entry that
// authenticated it saw it.
type Subject struct {
	// Subject is the sub claim (required).
	Subject string
	// ClientID is the client_id claim (required; RFC 9068 2.2).
	ClientID string
	// Scopes become the scope claim, sorted and without duplicates. Each
	// must be an RFC 6749 scope-token: no spaces, quotes or backslashes.
	Scopes []string
	// Expiry is the source credential's exp; zero when unknown. The minted
	// token never outlives it, and Mint fails with ErrSourceExpired when it
	// is not after now (compared in whole seconds, as exp is written).
	Expiry time.Time
	// Claims are extra claims copied into the token (roles, acr, ...). The
	// names IsReservedClaim reports are dropped; values must encode as JSON.
	Claims map[string]any
	// CacheKey identifies the source credential, e.g. the hex SHA-256 of the
	// caller's token; "" disables caching for this call. Two calls with the
	// same CacheKey must describe the same caller: a cached token is only
	// reused when its sub and client_id match and it does not outlive
	// Expiry, but its other claims are not compared.
	CacheKey string
}

// reserved are the claim names Subject.Claims cannot set: the ones Mint sets
// itself, and the ones that would change what the token proves.
var reserved = map[string]struct{}{
	"iss": {}, "sub": {}, "aud": {}, "exp": {}, "nbf": {}, "iat": {}, "jti": {},
	"client_id": {}, "scope": {}, "azp": {},
	"scp":   {}, // read as the scope by verifiers (jwtverify too) when scope is absent
	"cnf":   {}, // the minted token is not bound to the source token's key
	"act":   {}, // delegation is for token exchange to state, not to copy
	"nonce": {}, // an ID token's claim; an access token with one looks like an ID token
}

// IsReservedClaim reports whether Mint drops the claim name from
// Subject.Claims: iss, sub, aud, exp, nbf, iat, jti, client_id, scope, scp,
// azp, cnf, act and nonce.
func IsReservedClaim(name string) bool {
	_, ok := reserved[name]
	return ok
}

// Minter mints tokens and serves its JWKS. It is immutable apart from its
// cache and counter, and safe for concurrent use.
type Minter struct {
	issuer string
	ttl    time.Duration
	clock  func() time.Time
	random io.Reader
	signer jose.Signer
	kids   []string
	jwks   []byte
	etag   string
	cache  *cache
	mints  atomic.Int64
}

// New validates cfg, reporting every problem, and returns a Minter.
func New(cfg Config) (*Minter, error) {
	var errs []error
	if err := checkIssuer(cfg.Issuer); err != nil {
		errs = append(errs, err)
	}
	switch {
	case cfg.TTL == 0:
		cfg.TTL = DefaultTTL
	case cfg.TTL < MinTTL || cfg.TTL > MaxTTL:
		errs = append(errs, fmt.Errorf("ttl %s: must be between %s and %s", cfg.TTL, MinTTL, MaxTTL))
	}
	switch {
	case cfg.MaxEntries == 0:
		cfg.MaxEntries = DefaultMaxEntries
	case cfg.MaxEntries < 0:
		errs = append(errs, fmt.Errorf("max entries %d: must not be negative", cfg.MaxEntries))
	}
	if len(cfg.Keys) == 0 {
		errs = append(errs, errors.New("at least one key is required"))
	}
	var (
		pub  []jose.JSONWebKey
		algs []jose.SignatureAlgorithm
	)
	for i, k := range cfg.Keys {
		jwk, err := publicJWK(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("keys[%d]: %w", i, err))
			continue
		}
		if j := slices.IndexFunc(pub, func(p jose.JSONWebKey) bool { return p.KeyID == jwk.KeyID }); j >= 0 {
			errs = append(errs, fmt.Errorf("keys[%d]: the same key as keys[%d]", i, j))
			continue
		}
		pub = append(pub, jwk)
		algs = append(algs, jose.SignatureAlgorithm(jwk.Algorithm))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("mint: %w", errors.Join(errs...))
	}
	signer, err := newSigner(cfg.Keys[0], algs[0], pub[0])
	if err != nil {
		return nil, fmt.Errorf("mint: keys[0]: %w", err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: pub})
	if err != nil {
		return nil, fmt.Errorf("mint: encoding the JWKS: %w", err)
	}
	m := &Minter{
		issuer: cfg.Issuer,
		ttl:    cfg.TTL,
		clock:  cfg.Clock,
		random: cfg.Random,
		signer: signer,
		jwks:   jwks,
		etag:   etag(jwks),
		cache:  newCache(cfg.MaxEntries),
	}
	for _, p := range pub {
		m.kids = append(m.kids, p.KeyID)
	}
	if m.clock == nil {
		m.clock = time.Now
	}
	if m.random == nil {
		m.random = rand.Reader
	}
	return m, nil
}

func checkIssuer(iss string) error {
	if iss == "" {
		return errors.New("issuer is required")
	}
	u, err := url.Parse(iss)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q: must be an absolute http or https URL without query or fragment", iss)
	}
	return nil
}

// algorithm names the JOSE algorithm for a public key Gatehouse mints with.
func algorithm(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p != nil && p.Curve == elliptic.P256() {
			return jose.ES256, nil
		}
	case ed25519.PublicKey:
		if len(p) == ed25519.PublicKeySize {
			return jose.EdDSA, nil
		}
	}
	return "", fmt.Errorf("%s key: %w", describeKey(pub), errUnsupportedKey)
}

var errUnsupportedKey = errors.New("minting supports ES256 (EC P-256) and EdDSA (Ed25519) keys only")

// describeKey names a key type for an error message.
func describeKey(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p != nil && p.Curve != nil {
			return "an EC " + p.Curve.Params().Name
		}
		return "an EC"
	case ed25519.PublicKey:
		return "an Ed25519"
	case *rsa.PublicKey:
		return "an RSA"
	}
	return fmt.Sprintf("a %T", pub)
}

// publicJWK is the published form of k: public key, alg, use sig, and its
// RFC 7638 thumbprint as kid.
func publicJWK(k crypto.Signer) (jose.JSONWebKey, error) {
	if k == nil {
		return jose.JSONWebKey{}, errors.New("nil key")
	}
	if e, ok := k.(*ecdsa.PrivateKey); ok && e == nil {
		return jose.JSONWebKey{}, errors.New("nil key")
	}
	pub := k.Public()
	alg, err := algorithm(pub)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	jwk := jose.JSONWebKey{Key: pub, Algorithm: string(alg), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("thumbprint: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return jwk, nil
}

// newSigner builds the go-jose signer for k and checks, once, that a
// signature it makes verifies with the key that will be published: a
// crypto.Signer whose Sign and Public disagree fails here, not per request.
func newSigner(k crypto.Signer, alg jose.SignatureAlgorithm, pub jose.JSONWebKey) (jose.Signer, error) {
	var key any = k
	switch k.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey:
	default:
		key = cryptosigner.Opaque(k)
	}
	opts := (&jose.SignerOptions{}).WithType(TokenType).WithHeader(jose.HeaderKey("kid"), pub.KeyID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return nil, err
	}
	obj, err := signer.Sign([]byte(`{"self-test":true}`))
	if err != nil {
		return nil, fmt.Errorf("self-test signature: %w", err)
	}
	if _, err := obj.Verify(pub); err != nil {
		return nil, fmt.Errorf("self-test signature does not verify with the public key: %w", err)
	}
	return signer, nil
}

// KeyIDs returns the kid of every published key; the first signs.
func (m *Minter) KeyIDs() []string { return slices.Clone(m.kids) }

// Mints returns how many tokens m has signed.
func (m *Minter) Mints() int64 { return m.mints.Load() }

// Mint returns a token about s for audience: a cached one while enough of it
// is left, else a newly signed one.
func (m *Minter) Mint(s Subject, audience string) (string, error) {
	now := m.clock()
	if audience == "" {
		return "", fmt.Errorf("%w: audience is required", ErrInvalid)
	}
	if s.Subject == "" {
		return "", fmt.Errorf("%w: subject is required", ErrInvalid)
	}
	if s.ClientID == "" {
		return "", fmt.Errorf("%w: client id is required", ErrInvalid)
	}
	scope, err := joinScopes(s.Scopes)
	if err != nil {
		return "", err
	}
	iat := now.Unix()
	exp := now.Add(m.ttl).Unix()
	if !s.Expiry.IsZero() {
		// In whole seconds, as exp is written: the token must expire after
		// now and not after the source (a truncated Expiry after now implies
		// Expiry after now).
		if !time.Unix(s.Expiry.Unix(), 0).After(now) {
			return "", ErrSourceExpired
		}
		exp = min(exp, s.Expiry.Unix())
	}
	if s.CacheKey == "" {
		return m.sign(tokenSpec{subject: s, audience: audience, scope: scope, iat: iat, exp: exp})
	}
	key := cacheKey{cred: s.CacheKey, aud: audience, scope: scope}
	if e := m.cache.lookup(key, now, &s); e != nil {
		return e.token, nil
	}
	return m.mintCached(key, now, s, tokenSpec{audience: audience, scope: scope, iat: iat, exp: exp})
}

// mintCached mints on a cache miss, once for concurrent misses of key. It is
// apart from Mint so that only a miss moves s to the heap.
func (m *Minter) mintCached(key cacheKey, now time.Time, s Subject, t tokenSpec) (string, error) {
	t.subject = s
	e, err := m.cache.get(key, now, &s, func() (*entry, error) {
		raw, err := m.sign(t)
		if err != nil {
			return nil, err
		}
		return newEntry(raw, &s, t.iat, t.exp), nil
	})
	if err != nil {
		return "", err
	}
	return e.token, nil
}

// tokenSpec is what sign needs, validated.
type tokenSpec struct {
	subject  Subject
	audience string
	scope    string
	iat, exp int64
}

func (m *Minter) sign(t tokenSpec) (string, error) {
	var jti [16]byte
	if _, err := io.ReadFull(m.random, jti[:]); err != nil {
		return "", fmt.Errorf("mint: reading randomness for jti: %w", err)
	}
	claims := make(map[string]any, len(t.subject.Claims)+9)
	for k, v := range t.subject.Claims {
		if !IsReservedClaim(k) {
			claims[k] = v
		}
	}
	claims["iss"] = m.issuer
	claims["aud"] = t.audience
	claims["sub"] = t.subject.Subject
	claims["client_id"] = t.subject.ClientID
	if t.scope != "" {
		claims["scope"] = t.scope
	}
	claims["jti"] = base64.RawURLEncoding.EncodeToString(jti[:])
	claims["iat"] = t.iat
	claims["exp"] = t.exp
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("mint: encoding claims: %w", err)
	}
	// A compact JWS is at least 4/3 of the payload: fail before signing.
	if base64.RawURLEncoding.EncodedLen(len(payload)) > MaxTokenBytes {
		return "", fmt.Errorf("%w: claims of %d bytes", ErrTooLarge, len(payload))
	}
	obj, err := m.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("mint: signing: %w", err)
	}
	m.mints.Add(1)
	raw, err := obj.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("mint: serializing: %w", err)
	}
	if len(raw) > MaxTokenBytes {
		return "", fmt.Errorf("%w: %d bytes", ErrTooLarge, len(raw))
	}
	return raw, nil
}

// joinScopes validates scopes and joins them sorted and without duplicates.
func joinScopes(scopes []string) (string, error) {
	sorted := true
	for i, s := range scopes {
		if !scopeToken(s) {
			return "", fmt.Errorf("%w: scopes[%d] is not an RFC 6749 scope-token", ErrInvalid, i)
		}
		if i > 0 && scopes[i-1] >= s {
			sorted = false
		}
	}
	if !sorted {
		scopes = slices.Clone(scopes)
		slices.Sort(scopes)
		scopes = slices.Compact(scopes)
	}
	return strings.Join(scopes, " "), nil
}

// scopeToken reports whether s is 1*( %x21 / %x23-5B / %x5D-7E ).
func scopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
