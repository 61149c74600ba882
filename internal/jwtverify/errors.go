package jwtverify

import (
	"errors"
	"strconv"
)

// Sentinel errors. Verify wraps exactly one of them (or a context error when
// the caller's context ends while waiting for the key set), so callers can
// classify a failure with errors.Is. Messages never contain the token.
var (
	// ErrMalformed: not a compact JWS, bad base64 or JSON, larger than
	// MaxTokenBytes, or a header Gatehouse does not support (crit, b64).
	ErrMalformed = errors.New("jwtverify: malformed token")
	// ErrAlgorithm: the header's alg is not in the verifier's allow-list
	// (none and HS* never are).
	ErrAlgorithm = errors.New("jwtverify: algorithm not allowed")
	// ErrSignature: a key that matches the token was found and the signature
	// does not verify with it.
	ErrSignature = errors.New("jwtverify: invalid signature")
	// ErrUnknownKey: no usable key matches the token, even after the allowed
	// refetch of the key set.
	ErrUnknownKey = errors.New("jwtverify: unknown signing key")
	// ErrKeysUnavailable: no key set could be fetched yet. Callers answer 502,
	// not 401: the token may be fine.
	ErrKeysUnavailable = errors.New("jwtverify: signing keys unavailable")
	// ErrIssuer: iss is missing or not the configured issuer.
	ErrIssuer = errors.New("jwtverify: wrong issuer")
	// ErrAudience: aud is missing or does not contain the configured audience.
	ErrAudience = errors.New("jwtverify: wrong audience")
	// ErrExpired: exp is in the past, beyond the leeway.
	ErrExpired = errors.New("jwtverify: token expired")
	// ErrNotYetValid: nbf or iat is in the future, beyond the leeway.
	ErrNotYetValid = errors.New("jwtverify: token not yet valid")
	// ErrType: the typ header does not fit the verifier's purpose.
	ErrType = errors.New("jwtverify: wrong token type")
	// ErrClaims: a required claim is missing or has the wrong JSON type, an
	// ID token is used as an access token, azp does not fit, or an
	// introspection response lacks iat or its token_introspection object.
	ErrClaims = errors.New("jwtverify: invalid claims")
)

// quote returns s quoted for an error message or log line, cut to a short
// length: header values are chosen by whoever sent the token.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
