package introspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/jsonclaims"
)

// parseJSONResponse reads an RFC 7662 JSON response.
func parseJSONResponse(body []byte, issuer string) (*Result, error) {
	obj, err := jsonObject(body)
	if err != nil {
		return nil, fmt.Errorf("introspection response: %w", err)
	}
	return parseIntrospection(obj, issuer)
}

// jsonObject decodes a JSON object; anything else (null, an array, trailing
// data) is an error.
func jsonObject(b []byte) (map[string]any, error) {
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return nil, errors.New("not a JSON object")
	}
	return obj, nil
}

// parseIntrospection reads an introspection result object: active must be
// a JSON boolean; for an active token the registered members must have
// their JSON types. A token_type of refresh_token is not an access token and
// reads as inactive: a refresh token must not pass as a bearer credential.
func parseIntrospection(obj map[string]any, issuer string) (*Result, error) {
	active, ok := obj["active"].(bool)
	if !ok {
		return nil, errors.New("active is missing or not a boolean")
	}
	if !active {
		return &Result{Active: false, Claims: obj}, nil
	}
	res, err := fill(obj, issuer)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(res.TokenType, "refresh_token") {
		return &Result{Active: false, Claims: obj}, nil
	}
	return res, nil
}

// fill reads the members Gatehouse uses into an active Result.
func fill(obj map[string]any, issuer string) (*Result, error) {
	res := &Result{Active: true, Claims: obj}
	var err error
	str := func(name string, dst *string) {
		if err == nil {
			*dst, err = jsonclaims.String(obj, name)
		}
	}
	date := func(name string, dst *time.Time) {
		if err == nil {
			*dst, err = jsonclaims.NumericDate(obj, name)
		}
	}
	str("iss", &res.Issuer)
	str("sub", &res.Subject)
	str("client_id", &res.ClientID)
	str("token_type", &res.TokenType)
	date("exp", &res.Expiry)
	date("iat", &res.IssuedAt)
	date("nbf", &res.NotBefore)
	if err != nil {
		return nil, err
	}
	if _, ok := obj["iss"]; !ok {
		res.Issuer = issuer
	}
	// Some servers send scope as an array.
	if res.Scope, err = jsonclaims.Joined(obj, "scope"); err != nil {
		return nil, err
	}
	if res.Audience, err = jsonclaims.Strings(obj, "aud"); err != nil {
		return nil, err
	}
	return res, nil
}

// jwtAlgorithms are the algorithms a FormatJWT body may name. Gatehouse does
// not verify that JWT (the upstream does), but go-jose parses only with an
// allow-list; none is never on it.
var jwtAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512,
}

// parseJWTResponse reads a 200 answer to Accept: application/jwt: the JWT to
// forward (the token is active), or a JSON {"active":false}. The JWT's
// signature is not checked (see the package doc); its shape is, strictly,
// because it goes into the upstream request's Authorization header.
func parseJWTResponse(body []byte, issuer string) (*Result, error) {
	b := bytes.TrimSpace(body)
	if len(b) > 0 && b[0] == '{' {
		obj, err := jsonObject(b)
		if err != nil {
			return nil, fmt.Errorf("introspection response: %w", err)
		}
		if active, ok := obj["active"].(bool); ok && !active {
			return &Result{Active: false, Claims: obj}, nil
		}
		return nil, errors.New("introspection response is JSON but not an inactive result; a JWT was asked for")
	}
	if !compactJWS(b) {
		return nil, errors.New("introspection response is not a compact JWT")
	}
	raw := string(b)
	jws, err := jose.ParseSignedCompact(raw, jwtAlgorithms)
	if err != nil {
		// go-jose's messages can quote header values; keep them out.
		return nil, errors.New("introspection response is not a valid JWS")
	}
	obj, err := jsonObject(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		return nil, fmt.Errorf("introspection response JWT payload: %w", err)
	}
	res, err := fill(obj, issuer)
	if err != nil {
		return nil, fmt.Errorf("introspection response JWT payload: %w", err)
	}
	res.JWT = raw
	return res, nil
}

// compactJWS reports whether b is three non-empty base64url segments
// separated by dots, and nothing else: no whitespace, line breaks or padding
// (go-jose's decoder would skip \r and \n, which must never reach a header).
func compactJWS(b []byte) bool {
	dots, seg := 0, 0
	for _, c := range b {
		switch {
		case c == '.':
			if seg == 0 {
				return false
			}
			dots++
			seg = 0
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			seg++
		default:
			return false
		}
	}
	return dots == 2 && seg > 0
}

// maxAgeOf returns the Cache-Control max-age of a response, or -1 when it
// has none. A malformed max-age counts as 0 (do not cache) and of several the
// smallest wins (RFC 9111 section 4.2.1 and 1.2.2). Other directives are
// ignored (see the package doc).
func maxAgeOf(h http.Header) time.Duration {
	age := time.Duration(-1)
	for _, line := range h.Values("Cache-Control") {
		for dir := range strings.SplitSeq(line, ",") {
			name, val, hasVal := strings.Cut(strings.TrimSpace(dir), "=")
			if !strings.EqualFold(strings.TrimSpace(name), "max-age") {
				continue
			}
			const maxDelta = 1 << 31 // RFC 9111 section 1.2.2
			n, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
			var d time.Duration
			switch {
			case !hasVal || err != nil && !errors.Is(err, strconv.ErrRange):
				d = 0
			case err != nil || n > maxDelta:
				d = maxDelta * time.Second
			default:
				d = time.Duration(n) * time.Second
			}
			if age < 0 || d < age {
				age = d
			}
		}
	}
	return age
}
