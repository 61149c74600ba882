package jwtverify

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/jsonclaims"
)

// Claims are the verified claims of a token.
type Claims struct {
	Issuer          string // iss
	Subject         string // sub
	Nonce           string // nonce (ID tokens; the caller compares it)
	AuthorizedParty string // azp
	ClientID        string // client_id, or azp when client_id is absent
	Scope           string // scope, or scp (array or string) joined by spaces
	JWTID           string // jti
	Audience        []string
	// Expiry, NotBefore and IssuedAt are zero when absent.
	Expiry, NotBefore, IssuedAt time.Time
	// Raw holds every claim as decoded by encoding/json (numbers are float64).
	Raw map[string]any
}

// parseClaims decodes the payload and checks the JSON types of the
// registered claims Gatehouse reads.
func parseClaims(payload []byte) (*Claims, error) {
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	c := &Claims{Raw: raw}
	var err error
	str := func(name string, dst *string, sentinel error) {
		if err == nil {
			if *dst, err = jsonclaims.String(raw, name); err != nil {
				err = fmt.Errorf("%w: %w", sentinel, err)
			}
		}
	}
	date := func(name string, dst *time.Time) {
		if err == nil {
			if *dst, err = jsonclaims.NumericDate(raw, name); err != nil {
				err = fmt.Errorf("%w: %w", ErrClaims, err)
			}
		}
	}
	str("iss", &c.Issuer, ErrIssuer)
	str("sub", &c.Subject, ErrClaims)
	str("nonce", &c.Nonce, ErrClaims)
	str("azp", &c.AuthorizedParty, ErrClaims)
	str("client_id", &c.ClientID, ErrClaims)
	str("scope", &c.Scope, ErrClaims)
	str("jti", &c.JWTID, ErrClaims)
	date("exp", &c.Expiry)
	date("nbf", &c.NotBefore)
	date("iat", &c.IssuedAt)
	if err != nil {
		return nil, err
	}
	if c.ClientID == "" {
		c.ClientID = c.AuthorizedParty
	}
	if c.Audience, err = jsonclaims.Strings(raw, "aud"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAudience, err)
	}
	if _, ok := raw["scope"]; !ok {
		if c.Scope, err = jsonclaims.Joined(raw, "scp"); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrClaims, err)
		}
	}
	return c, nil
}

// checkClaims applies the issuer, audience and time rules, then the
// purpose's. typedAccess says whether the header typ was at+jwt.
func (v *Verifier) checkClaims(c *Claims, typedAccess bool) error {
	if _, ok := c.Raw["iss"]; !ok {
		return fmt.Errorf("%w: iss is missing", ErrIssuer)
	}
	if c.Issuer != v.issuer {
		return fmt.Errorf("%w: %s", ErrIssuer, quote(c.Issuer))
	}
	if len(c.Audience) == 0 {
		return fmt.Errorf("%w: aud is missing", ErrAudience)
	}
	if !slices.Contains(c.Audience, v.audience) {
		return fmt.Errorf("%w: aud does not contain %s", ErrAudience, quote(v.audience))
	}
	now := v.clock()
	if c.Expiry.IsZero() {
		// An introspection response need not expire (RFC 9701 section 5);
		// every token must.
		if v.purpose != IntrospectionResponse {
			return fmt.Errorf("%w: exp is missing", ErrClaims)
		}
	} else if !now.Before(c.Expiry.Add(v.leeway)) {
		return fmt.Errorf("%w: expired at %s", ErrExpired, c.Expiry.Format(time.RFC3339))
	}
	if !c.NotBefore.IsZero() && now.Add(v.leeway).Before(c.NotBefore) {
		return fmt.Errorf("%w: nbf is %s", ErrNotYetValid, c.NotBefore.Format(time.RFC3339))
	}
	if !c.IssuedAt.IsZero() && now.Add(v.leeway).Before(c.IssuedAt) {
		return fmt.Errorf("%w: iat %s is in the future", ErrNotYetValid, c.IssuedAt.Format(time.RFC3339))
	}
	switch v.purpose {
	case IDToken:
		// OIDC Core 2 and 3.1.3.7.
		if c.Subject == "" {
			return fmt.Errorf("%w: sub is missing", ErrClaims)
		}
		if c.IssuedAt.IsZero() {
			return fmt.Errorf("%w: iat is missing", ErrClaims)
		}
		if _, ok := c.Raw["azp"]; ok && c.AuthorizedParty != v.audience {
			return fmt.Errorf("%w: azp %s is not the audience", ErrClaims, quote(c.AuthorizedParty))
		}
		if len(c.Audience) > 1 && c.AuthorizedParty == "" {
			return fmt.Errorf("%w: azp is required when aud has several values", ErrClaims)
		}
	case AccessToken:
		if !typedAccess {
			// Accepted only because of AcceptUntyped: refuse ID tokens.
			if _, ok := c.Raw["nonce"]; ok {
				return fmt.Errorf("%w: untyped token with a nonce claim is an ID token", ErrClaims)
			}
		}
	case IntrospectionResponse:
		// RFC 9701 section 5.
		if c.IssuedAt.IsZero() {
			return fmt.Errorf("%w: iat is missing", ErrClaims)
		}
		if _, ok := c.Raw["token_introspection"].(map[string]any); !ok {
			return fmt.Errorf("%w: token_introspection is missing or not an object", ErrClaims)
		}
	}
	return nil
}
