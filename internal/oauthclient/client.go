package oauthclient

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

// Error is an OAuth error response (RFC 6749 section 5.2) from the server.
type Error struct {
	Status      int    // HTTP status of the response
	Code        string // the "error" member, e.g. invalid_grant
	Description string // the "error_description" member, unfiltered: do not pass it to clients as is
}

func (e *Error) Error() string {
	return fmt.Sprintf("oauthclient: authorization server answered HTTP %d %s", e.Status, e.Code)
}

// TokenResponse is a successful token endpoint response.
type TokenResponse struct {
	AccessToken  secret.Value
	RefreshToken secret.Value // zero when none was issued
	IDToken      secret.Value // zero when none was issued
	TokenType    string
	ExpiresIn    int64 // seconds; 0 when not given
	Scope        string
	// IssuedTokenType is RFC 8693's issued_token_type ("" when absent).
	IssuedTokenType string
}

// ClientAuth authenticates a client at the token and revocation endpoints.
type ClientAuth interface {
	// Apply adds credentials to the form or the headers of a request to endpoint.
	Apply(form url.Values, h http.Header) error
}

// SecretBasic is client_secret_basic (RFC 6749 section 2.3.1): the id and
// secret are form-encoded, then sent with HTTP Basic.
type SecretBasic struct {
	ClientID string
	Secret   secret.Value
}

func (a SecretBasic) Apply(_ url.Values, h http.Header) error {
	cred := url.QueryEscape(a.ClientID) + ":" + url.QueryEscape(a.Secret.Reveal())
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cred)))
	return nil
}

// SecretPost is client_secret_post: the id and secret travel in the form.
type SecretPost struct {
	ClientID string
	Secret   secret.Value
}

func (a SecretPost) Apply(form url.Values, _ http.Header) error {
	form.Set("client_id", a.ClientID)
	form.Set("client_secret", a.Secret.Reveal())
	return nil
}

// PrivateKeyJWT is private_key_jwt (OpenID Connect Core section 9, RFC 7523):
// a fresh assertion per request with aud = the issuer, a 60 s lifetime and a
// unique jti.
type PrivateKeyJWT struct {
	ClientID string
	Issuer   string
	signer   jose.Signer
	now      func() time.Time
}

// NewPrivateKeyJWT returns a PrivateKeyJWT signing with key and alg; kid may be
// empty (the key's RFC 7638 thumbprint is used then).
func NewPrivateKeyJWT(clientID, issuer string, key crypto.Signer, alg, kid string, now func() time.Time) (*PrivateKeyJWT, error) {
	if now == nil {
		now = time.Now
	}
	jwk := jose.JSONWebKey{Key: key}
	if kid == "" {
		pub := jose.JSONWebKey{Key: key.Public()}
		tp, err := pub.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("oauthclient: key thumbprint: %w", err)
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	jwk.KeyID = kid
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jwk},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("oauthclient: private_key_jwt signer: %w", err)
	}
	return &PrivateKeyJWT{ClientID: clientID, Issuer: issuer, signer: signer, now: now}, nil
}

func (a *PrivateKeyJWT) Apply(form url.Values, _ http.Header) error {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return fmt.Errorf("oauthclient: jti: %w", err)
	}
	now := a.now()
	claims := jwt.Claims{
		Issuer:   a.ClientID,
		Subject:  a.ClientID,
		Audience: jwt.Audience{a.Issuer},
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(60 * time.Second)),
		ID:       hex.EncodeToString(jti[:]),
	}
	assertion, err := jwt.Signed(a.signer).Claims(claims).Serialize()
	if err != nil {
		return fmt.Errorf("oauthclient: sign client assertion: %w", err)
	}
	form.Set("client_id", a.ClientID)
	form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	form.Set("client_assertion", assertion)
	return nil
}

// Client is a confidential OAuth client of the provider.
type Client struct {
	Provider *Provider
	ClientID string
	Auth     ClientAuth
	HTTP     *http.Client
}

// Exchange redeems an authorization code (with its PKCE verifier).
func (c *Client) Exchange(ctx context.Context, code, redirectURI, verifier string) (*TokenResponse, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {verifier},
	}
	return c.token(ctx, form)
}

// Refresh uses a refresh token.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*TokenResponse, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	return c.token(ctx, form)
}

// Token types of RFC 8693 section 3.
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	GrantTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// TokenExchangeRequest is an RFC 8693 request for an access token.
type TokenExchangeRequest struct {
	// SubjectToken is the access token to exchange (subject_token_type
	// access_token).
	SubjectToken string
	// ActorToken, when set, is an access token of the party acting for the
	// subject (actor_token_type access_token); the new token's act claim
	// names it.
	ActorToken string
	Audience   string
	Resource   string
	Scopes     []string
}

// TokenExchange exchanges an access token for another (RFC 8693), asking
// for an access token (requested_token_type). The response must say it
// issued one.
func (c *Client) TokenExchange(ctx context.Context, req TokenExchangeRequest) (*TokenResponse, error) {
	form := url.Values{
		"grant_type":           {GrantTokenExchange},
		"subject_token":        {req.SubjectToken},
		"subject_token_type":   {TokenTypeAccessToken},
		"requested_token_type": {TokenTypeAccessToken},
	}
	if req.ActorToken != "" {
		form.Set("actor_token", req.ActorToken)
		form.Set("actor_token_type", TokenTypeAccessToken)
	}
	setTarget(form, req.Audience, req.Resource, req.Scopes)
	tr, err := c.token(ctx, form)
	if err != nil {
		return nil, err
	}
	if tr.IssuedTokenType != TokenTypeAccessToken {
		return nil, fmt.Errorf("%w: token exchange issued %q, want an access token", ErrUnavailable, tr.IssuedTokenType)
	}
	return tr, nil
}

// ClientCredentials obtains an access token for the client itself. Audience
// (a common extension) and resource (RFC 8707) are sent when set.
func (c *Client) ClientCredentials(ctx context.Context, audience, resource string, scopes []string) (*TokenResponse, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	setTarget(form, audience, resource, scopes)
	return c.token(ctx, form)
}

func setTarget(form url.Values, audience, resource string, scopes []string) {
	if audience != "" {
		form.Set("audience", audience)
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
}

func (c *Client) token(ctx context.Context, form url.Values) (*TokenResponse, error) {
	md, err := c.Provider.Metadata()
	if err != nil {
		return nil, err
	}
	resp, err := c.post(ctx, md.TokenEndpoint, form, "application/json")
	if err != nil {
		return nil, err
	}
	defer drain(resp.Body)
	if err := classify(resp); err != nil {
		return nil, err
	}
	var body struct {
		AccessToken  string          `json:"access_token"`
		RefreshToken string          `json:"refresh_token"`
		IDToken      string          `json:"id_token"`
		TokenType    string          `json:"token_type"`
		ExpiresIn    json.RawMessage `json:"expires_in"`
		Scope        string          `json:"scope"`
		IssuedType   string          `json:"issued_token_type"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&body); err != nil {
		return nil, fmt.Errorf("%w: token response is not JSON", ErrUnavailable)
	}
	if body.AccessToken == "" {
		return nil, fmt.Errorf("%w: token response has no access_token", ErrUnavailable)
	}
	if !strings.EqualFold(body.TokenType, "bearer") {
		return nil, fmt.Errorf("%w: token response has token_type %q, want Bearer", ErrUnavailable, body.TokenType)
	}
	tr := &TokenResponse{
		AccessToken:  secret.New(body.AccessToken),
		RefreshToken: secret.New(body.RefreshToken),
		IDToken:      secret.New(body.IDToken),
		TokenType:    body.TokenType,
		Scope:        body.Scope,

		IssuedTokenType: body.IssuedType,
	}
	// expires_in is a number, but some servers send a string.
	if s := strings.Trim(string(body.ExpiresIn), `"`); s != "" {
		var n json.Number = json.Number(s)
		if v, err := n.Int64(); err == nil && v > 0 {
			tr.ExpiresIn = v
		}
	}
	return tr, nil
}

// Userinfo calls the userinfo endpoint with the access token and returns the
// JSON object it answers.
func (c *Client) Userinfo(ctx context.Context, accessToken string) (json.RawMessage, error) {
	md, err := c.Provider.Metadata()
	if err != nil {
		return nil, err
	}
	if md.UserinfoEndpoint == "" {
		return nil, errors.New("oauthclient: the authorization server has no userinfo endpoint")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, md.UserinfoEndpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("oauthclient: userinfo request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: userinfo: %w", ErrUnavailable, err)
	}
	defer drain(resp.Body)
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, &Error{Status: resp.StatusCode, Code: "invalid_token"}
	}
	if err := classify(resp); err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, fmt.Errorf("%w: userinfo answered %q, Gatehouse supports JSON userinfo only", ErrUnavailable, mt)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: userinfo: %w", ErrUnavailable, err)
	}
	var obj map[string]json.RawMessage
	if len(raw) > maxBody || json.Unmarshal(raw, &obj) != nil {
		return nil, fmt.Errorf("%w: userinfo body is not a JSON object", ErrUnavailable)
	}
	return raw, nil
}

// Revoke revokes a token (RFC 7009). A server without a revocation endpoint
// is not an error: there is nothing to do.
func (c *Client) Revoke(ctx context.Context, token, hint string) error {
	md, err := c.Provider.Metadata()
	if err != nil {
		return err
	}
	if md.RevocationEndpoint == "" {
		return nil
	}
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	resp, err := c.post(ctx, md.RevocationEndpoint, form, "application/json")
	if err != nil {
		return err
	}
	defer drain(resp.Body)
	return classify(resp)
}

func (c *Client) post(ctx context.Context, endpoint string, form url.Values, accept string) (*http.Response, error) {
	h := http.Header{}
	if err := c.Auth.Apply(form, h); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("oauthclient: request: %w", err)
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", accept)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return resp, nil
}

// classify maps a non-2xx response to *Error (4xx with an OAuth error body)
// or ErrUnavailable (anything else).
func classify(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
		return &Error{Status: resp.StatusCode, Code: body.Error, Description: body.Description}
	}
	return fmt.Errorf("%w: HTTP %d", ErrUnavailable, resp.StatusCode)
}
