// Package jwtverify verifies signed JWTs — ID tokens from the authorization
// server, JWT access tokens from bearer clients, and signed token
// introspection responses (RFC 9701) — against a remote JWKS.
//
// A KeySet holds the provider's keys: fetched lazily, refetched at most once
// per interval when a token names an unknown key, never because a known key
// failed to verify a signature. A Verifier, built once per issuer, audience
// and purpose, checks a token in this order and stops at the first failure:
//
//  1. size (at most MaxTokenBytes) and shape: compact JWS, three segments
//     of canonical base64url (one accepted spelling per token);
//  2. alg against the allow-list, before any key is looked up;
//  3. header: no crit or b64, typ fits the purpose;
//  4. signature, with a key of the set chosen by kid and alg only — the jku,
//     x5u, jwk and x5c headers are never used;
//  5. claims: iss, aud, exp, nbf, iat, then the purpose's rules.
//
// Verifying a nonce, scopes or other route rules is the caller's job; the
// verified claims are returned for it.
package jwtverify

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// MaxTokenBytes is the size of the largest token Verify accepts; larger ones
// are refused before any parsing.
const MaxTokenBytes = 16 << 10

// Leeway limits.
const (
	DefaultLeeway = 30 * time.Second
	MaxLeeway     = 60 * time.Second
)

// Purpose says what kind of token a Verifier accepts.
type Purpose int

const (
	// IDToken is an OpenID Connect ID token (OIDC Core 3.1.3.7).
	IDToken Purpose = iota + 1
	// AccessToken is a JWT access token (RFC 9068).
	AccessToken
	// IntrospectionResponse is a JWT response from an introspection
	// endpoint (RFC 9701 section 5): typ token-introspection+jwt (optionally
	// with the application/ prefix), aud containing the introspecting
	// client's id (Config.Audience), iat required, exp optional, and a
	// token_introspection claim that is a JSON object. Reading that object
	// is the caller's job.
	IntrospectionResponse
)

func (p Purpose) String() string {
	switch p {
	case IDToken:
		return "id_token"
	case AccessToken:
		return "access_token"
	case IntrospectionResponse:
		return "introspection_response"
	}
	return fmt.Sprintf("Purpose(%d)", int(p))
}

// Config configures a Verifier. Zero values take the documented defaults.
type Config struct {
	// Purpose is IDToken, AccessToken or IntrospectionResponse (required).
	Purpose Purpose
	// Issuer must equal iss exactly (required).
	Issuer string
	// Audience must be in aud, a string or an array (required).
	Audience string
	// Algorithms is the alg allow-list; default RS256, PS256, ES256, EdDSA.
	// Allowed values: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA.
	// "none" and HS* are rejected.
	Algorithms []string
	// Leeway applies to exp, nbf and iat; 0 means the default 30s, and
	// New rejects values below 0 or above 60s.
	Leeway time.Duration
	// AcceptUntyped, for AccessToken only, accepts a token whose typ header
	// is missing or not at+jwt; such a token is then refused if it carries a
	// nonce claim (it is an ID token) or is typed token-introspection+jwt
	// (it is an RFC 9701 introspection response).
	AcceptUntyped bool
	// Clock defaults to time.Now.
	Clock func() time.Time
}

// Verifier verifies tokens for one issuer, audience and purpose. It is
// immutable and safe for concurrent use.
type Verifier struct {
	keys          *KeySet
	purpose       Purpose
	issuer        string
	audience      string
	algs          []jose.SignatureAlgorithm
	leeway        time.Duration
	acceptUntyped bool
	clock         func() time.Time
}

// New validates cfg, reporting every problem, and returns a Verifier.
func New(keys *KeySet, cfg Config) (*Verifier, error) {
	var errs []error
	if keys == nil {
		errs = append(errs, errors.New("key set is required"))
	}
	if cfg.Purpose != IDToken && cfg.Purpose != AccessToken && cfg.Purpose != IntrospectionResponse {
		errs = append(errs, fmt.Errorf("purpose %d: must be IDToken, AccessToken or IntrospectionResponse", int(cfg.Purpose)))
	}
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if cfg.Audience == "" {
		errs = append(errs, errors.New("audience is required"))
	}
	if cfg.Leeway < 0 || cfg.Leeway > MaxLeeway {
		errs = append(errs, fmt.Errorf("leeway %s: must be between 0 and %s", cfg.Leeway, MaxLeeway))
	}
	if cfg.AcceptUntyped && cfg.Purpose != AccessToken {
		errs = append(errs, errors.New("accept untyped is for access tokens only"))
	}
	names := cfg.Algorithms
	if len(names) == 0 {
		names = []string{"RS256", "PS256", "ES256", "EdDSA"}
	}
	algs := make([]jose.SignatureAlgorithm, 0, len(names))
	for _, name := range names {
		switch {
		case strings.EqualFold(name, "none"):
			errs = append(errs, errors.New(`algorithm "none" is never allowed`))
		case strings.HasPrefix(strings.ToUpper(name), "HS"):
			errs = append(errs, fmt.Errorf("algorithm %q: HMAC is never allowed", name))
		case !signatureAlgorithm(name):
			errs = append(errs, fmt.Errorf("algorithm %q: unsupported (allowed: RS/PS/ES 256/384/512, EdDSA)", name))
		default:
			algs = append(algs, jose.SignatureAlgorithm(name))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("jwtverify: %w", errors.Join(errs...))
	}
	v := &Verifier{
		keys:          keys,
		purpose:       cfg.Purpose,
		issuer:        cfg.Issuer,
		audience:      cfg.Audience,
		algs:          algs,
		leeway:        cmpOr(cfg.Leeway, DefaultLeeway),
		acceptUntyped: cfg.AcceptUntyped,
		clock:         cfg.Clock,
	}
	if v.clock == nil {
		v.clock = time.Now
	}
	return v, nil
}

// Verify checks raw and returns its claims. Every error wraps one of the
// package's sentinels, except when ctx ends while waiting for the key set
// (then it wraps ctx's error). ErrKeysUnavailable means the token could not
// be checked at all.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if len(raw) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	if strings.Count(raw, ".") != 2 {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	for seg := range strings.SplitSeq(raw, ".") {
		if !canonicalBase64(seg) {
			return nil, fmt.Errorf("%w: segment is not canonical base64url", ErrMalformed)
		}
	}
	// ParseSignedCompact checks alg against the allow-list as soon as the
	// header is decoded, before any header parameter is used.
	jws, err := jose.ParseSignedCompact(raw, v.algs)
	if err != nil {
		var algErr *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &algErr) {
			return nil, fmt.Errorf("%w: %s", ErrAlgorithm, quote(string(algErr.Got)))
		}
		// go-jose's messages can quote header values; keep them out.
		return nil, fmt.Errorf("%w: cannot parse JWS", ErrMalformed)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: not exactly one signature", ErrMalformed)
	}
	h := jws.Signatures[0].Protected
	typed, err := v.checkHeader(h)
	if err != nil {
		return nil, err
	}
	payload, err := v.verifySignature(ctx, jws, h.KeyID, jose.SignatureAlgorithm(h.Algorithm))
	if err != nil {
		return nil, err
	}
	c, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	if err := v.checkClaims(c, typed); err != nil {
		return nil, err
	}
	return c, nil
}

// canonicalBase64 reports whether seg is base64url without padding in its
// one canonical spelling: only alphabet characters, and zero unused bits in
// the last character. The decoder go-jose uses skips \r and \n and ignores
// unused bits, and go-jose re-encodes header and payload to compute the
// signing input; without this check one token would have many spellings
// that all verify, and a deny-list or cache keyed by the token's hash could
// be sidestepped by respelling it.
func canonicalBase64(seg string) bool {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	tail := len(seg) % 4
	if tail == 0 {
		return true
	}
	if tail == 1 {
		return false
	}
	var buf [3]byte
	_, err := base64.RawURLEncoding.Strict().Decode(buf[:], []byte(seg[len(seg)-tail:]))
	return err == nil
}

// checkHeader rejects headers Gatehouse does not understand and checks typ.
// It reports whether the token is explicitly typed as an access token.
func (v *Verifier) checkHeader(h jose.Header) (typedAccess bool, err error) {
	// No JWS extension is understood, so any crit is unknown (RFC 7515
	// 4.1.11). b64 (RFC 7797) changes the signing input and has no place in
	// a JWT; refuse it even outside crit.
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return false, fmt.Errorf("%w: crit header not supported", ErrMalformed)
	}
	if _, ok := h.ExtraHeaders["b64"]; ok {
		return false, fmt.Errorf("%w: b64 header not supported", ErrMalformed)
	}
	typ := ""
	if t, ok := h.ExtraHeaders[jose.HeaderType]; ok {
		s, ok := t.(string)
		if !ok {
			return false, fmt.Errorf("%w: typ is not a string", ErrType)
		}
		typ = strings.ToLower(s)
	}
	typedAccess = typ == "at+jwt" || typ == "application/at+jwt"
	typedIntrospection := typ == "token-introspection+jwt" || typ == "application/token-introspection+jwt"
	switch v.purpose {
	case IDToken:
		// Only a plain JWT can be an ID token: this refuses access tokens
		// (at+jwt) and other explicitly typed JWTs presented as ID tokens.
		if typ != "" && typ != "jwt" && typ != "application/jwt" {
			return false, fmt.Errorf("%w: typ %s is not an ID token", ErrType, quote(typ))
		}
	case AccessToken:
		if !typedAccess && !v.acceptUntyped {
			return false, fmt.Errorf("%w: typ %s, want at+jwt", ErrType, quote(typ))
		}
		// AcceptUntyped must not turn a signed introspection response
		// (whose aud is Gatehouse's client) into an access token.
		if typedIntrospection {
			return false, fmt.Errorf("%w: typ %s is an introspection response", ErrType, quote(typ))
		}
	case IntrospectionResponse:
		// RFC 9701 section 5: the typ header is required, which keeps an
		// access or ID token signed by the same keys from passing as an
		// introspection response (and the other way round).
		if !typedIntrospection {
			return false, fmt.Errorf("%w: typ %s, want token-introspection+jwt", ErrType, quote(typ))
		}
	}
	return typedAccess, nil
}

// verifySignature finds the keys for kid and alg and verifies the signature.
//
//   - kid set and in the key set: only keys with that kid and compatible with
//     alg are tried; failure is ErrSignature and never causes a fetch (a kid
//     whose keys all conflict with alg fails the same way).
//   - kid set and not in the key set: one refetch (rate-limited), then
//     ErrUnknownKey.
//   - no kid: every key compatible (with or without a kid in the JWKS) with alg is tried, without a refetch;
//     failure is ErrSignature. Only when no key is compatible is a refetch
//     made, then ErrUnknownKey.
func (v *Verifier) verifySignature(ctx context.Context, jws *jose.JSONWebSignature, kid string, alg jose.SignatureAlgorithm) ([]byte, error) {
	snap, err := v.keys.current(ctx)
	if err != nil {
		return nil, err
	}
	payload, tried, err := snap.verify(jws, kid, alg)
	if tried {
		return payload, err
	}
	if _, known := snap.byKID[kid]; known && kid != "" {
		return nil, fmt.Errorf("%w: no key with kid %s is usable with %s", ErrSignature, quote(kid), alg)
	}
	next, err := v.keys.refetch(ctx)
	if err != nil {
		return nil, err
	}
	if next != snap {
		if payload, tried, err := next.verify(jws, kid, alg); tried {
			return payload, err
		}
	}
	if kid == "" {
		return nil, fmt.Errorf("%w: no key usable with %s and the token has no kid", ErrUnknownKey, alg)
	}
	return nil, fmt.Errorf("%w: kid %s", ErrUnknownKey, quote(kid))
}

// verify tries the keys of s that fit kid and alg. tried is false when there
// were none.
func (s *keySnapshot) verify(jws *jose.JSONWebSignature, kid string, alg jose.SignatureAlgorithm) (payload []byte, tried bool, err error) {
	keys := s.all
	if kid != "" {
		keys = s.byKID[kid]
	}
	for _, k := range keys {
		if !k.usableFor(alg) {
			continue
		}
		tried = true
		if payload, err := jws.Verify(k.key); err == nil {
			return payload, true, nil
		}
	}
	if !tried {
		return nil, false, nil
	}
	return nil, true, fmt.Errorf("%w: %s signature does not verify", ErrSignature, alg)
}
