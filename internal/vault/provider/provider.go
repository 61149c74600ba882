// Package provider is Gatehouse's OAuth 2.0 client of third-party providers
// (GitHub, Google, Microsoft, Slack, any RFC 6749 provider) for the token
// vault: it builds authorization URLs, redeems codes, refreshes and revokes
// tokens, and knows each provider's departures from the RFC as named quirks.
//
// Errors are classified for the vault's refresh discipline:
// *oauthclient.Error is an OAuth error answer (invalid_grant...);
// ErrLost means the request was sent but its answer was lost (a timeout or
// a reset after writing it), so the provider may have acted on it;
// ErrUnavailable is everything else (unreachable, not yet discovered, a
// server error, an unusable body). Response bodies never reach error texts.
package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

var (
	// ErrUnavailable: the provider could not be reached, is not discovered
	// yet, or answered with a server error or an unusable body.
	ErrUnavailable = errors.New("provider: unavailable")
	// ErrLost: the request was written but no answer arrived (timeout,
	// connection reset). The provider may have acted on it.
	ErrLost = errors.New("provider: request sent but its answer was lost")
)

// maxBody caps every response body read from a provider.
const maxBody = 1 << 20

// Config describes one provider. Endpoints come from the configuration (with
// a preset's defaults already applied) or from OIDC discovery at Issuer.
type Config struct {
	// Name is the provider's name in Gatehouse's paths (/connections/{name}/...).
	Name string
	// Issuer, when set, is discovered (<issuer>/.well-known/openid-configuration);
	// the endpoints below override discovered ones.
	Issuer                string
	AuthorizationEndpoint string
	TokenEndpoint         string
	RevocationEndpoint    string
	// Tenant replaces {tenant} in the endpoints (TenantInURL).
	Tenant   string
	ClientID string
	// Auth authenticates Gatehouse at the token and revocation endpoints.
	Auth   oauthclient.ClientAuth
	Scopes []string
	// PKCE sends an S256 code challenge.
	PKCE   bool
	Quirks []Quirk
	// AuthorizationParams are added to every authorization request.
	AuthorizationParams map[string]string
	// RedirectURI is public_url + /connections/{name}/callback.
	RedirectURI string
	// HTTP makes every call; its Timeout bounds each one. It must not follow redirects.
	HTTP   *http.Client
	Logger *slog.Logger
}

// Token is a successful token response.
type Token struct {
	AccessToken  secret.Value
	RefreshToken secret.Value // zero when none was issued
	// ExpiresIn in seconds; 0 when the provider did not say.
	ExpiresIn int64
	// Scopes granted; nil when the response did not say.
	Scopes []string
}

// Provider is a configured third-party provider.
type Provider struct {
	cfg    Config
	quirks map[Quirk]bool
	disc   *oauthclient.Provider // nil without discovery
}

// New returns a Provider for cfg. With an Issuer, call Run (or Discover)
// before use.
func New(cfg Config) (*Provider, error) {
	if cfg.Name == "" || cfg.ClientID == "" || cfg.Auth == nil || cfg.HTTP == nil || cfg.RedirectURI == "" {
		return nil, errors.New("provider: name, client id, client authentication, HTTP client and redirect URI are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Provider{cfg: cfg, quirks: map[Quirk]bool{}}
	for _, q := range cfg.Quirks {
		p.quirks[q] = true
	}
	if p.quirks[TenantInURL] {
		if cfg.Tenant == "" {
			return nil, fmt.Errorf("provider %s: the tenant_in_url quirk needs a tenant", cfg.Name)
		}
		t := url.PathEscape(cfg.Tenant)
		for _, e := range []*string{&p.cfg.AuthorizationEndpoint, &p.cfg.TokenEndpoint, &p.cfg.RevocationEndpoint} {
			*e = strings.ReplaceAll(*e, TenantPlaceholder, t)
		}
	}
	if cfg.Issuer != "" {
		p.disc = oauthclient.NewProvider(oauthclient.ProviderConfig{
			Issuer: cfg.Issuer,
			Overrides: oauthclient.Metadata{
				AuthorizationEndpoint: p.cfg.AuthorizationEndpoint,
				TokenEndpoint:         p.cfg.TokenEndpoint,
				RevocationEndpoint:    p.cfg.RevocationEndpoint,
			},
			HTTPClient: cfg.HTTP,
			Logger:     cfg.Logger.With("provider", cfg.Name),
		})
	} else if p.cfg.AuthorizationEndpoint == "" || p.cfg.TokenEndpoint == "" {
		return nil, fmt.Errorf("provider %s: authorization and token endpoints are required without an issuer", cfg.Name)
	}
	return p, nil
}

// Name returns the provider's name.
func (p *Provider) Name() string { return p.cfg.Name }

// Scopes returns the scopes requested when connecting.
func (p *Provider) Scopes() []string { return p.cfg.Scopes }

// Has reports whether the provider has quirk q.
func (p *Provider) Has(q Quirk) bool { return p.quirks[q] }

// Run discovers the provider's metadata with retries until it succeeds or
// ctx ends; it returns at once for a provider without an issuer.
func (p *Provider) Run(ctx context.Context) {
	if p.disc != nil {
		p.disc.Run(ctx)
	}
}

// Ready reports whether the endpoints are known.
func (p *Provider) Ready() bool {
	_, err := p.endpoints()
	return err == nil
}

type endpoints struct {
	authorization, token, revocation string
	issSupported                     bool
}

func (p *Provider) endpoints() (endpoints, error) {
	if p.disc == nil {
		return endpoints{p.cfg.AuthorizationEndpoint, p.cfg.TokenEndpoint, p.cfg.RevocationEndpoint, false}, nil
	}
	md, err := p.disc.Metadata()
	if err != nil {
		return endpoints{}, fmt.Errorf("%w: %s: %w", ErrUnavailable, p.cfg.Name, err)
	}
	return endpoints{md.AuthorizationEndpoint, md.TokenEndpoint, md.RevocationEndpoint, md.AuthorizationResponseIssSupport}, nil
}

// CanRevoke reports whether the provider has a revocation endpoint.
func (p *Provider) CanRevoke() bool {
	e, err := p.endpoints()
	return err == nil && e.revocation != ""
}

// AuthorizationURL returns the URL that starts a connect flow: the
// authorization code flow with state, the S256 challenge (with PKCE) and the
// provider's quirks.
func (p *Provider) AuthorizationURL(state, challenge string) (string, error) {
	e, err := p.endpoints()
	if err != nil {
		return "", err
	}
	u, err := url.Parse(e.authorization)
	if err != nil {
		return "", fmt.Errorf("provider %s: authorization endpoint: %w", p.cfg.Name, err)
	}
	q := u.Query()
	for k, v := range p.cfg.AuthorizationParams {
		q.Set(k, v)
	}
	q.Set("response_type", "code")
	q.Set("client_id", p.cfg.ClientID)
	q.Set("redirect_uri", p.cfg.RedirectURI)
	q.Set("state", state)
	if len(p.cfg.Scopes) > 0 {
		sep := " "
		if p.quirks[CommaSeparatedScopes] {
			sep = ","
		}
		name := "scope"
		if p.quirks[NestedUserToken] {
			name = "user_scope"
		}
		q.Set(name, strings.Join(p.cfg.Scopes, sep))
	}
	if p.cfg.PKCE {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	if p.quirks[OfflineAccessParams] {
		q.Set("access_type", "offline")
		q.Set("prompt", "consent")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// CheckIssuer applies RFC 9207 to the iss parameter of a callback: when the
// provider advertises it, iss must be present and equal its issuer; when
// present, it must equal the issuer of a discovered provider.
func (p *Provider) CheckIssuer(iss string, present bool) error {
	e, err := p.endpoints()
	if err != nil {
		return err
	}
	switch {
	case e.issSupported && !present:
		return errors.New("provider: the callback lacks the iss parameter the provider advertises")
	case present && p.disc != nil && iss != p.disc.Issuer():
		return errors.New("provider: the callback's iss parameter names another issuer")
	}
	return nil
}

// Exchange redeems an authorization code with its PKCE verifier.
func (p *Provider) Exchange(ctx context.Context, code, verifier string) (*Token, error) {
	form := url.Values{
		"grant_type":   {"authorization_code"},
		"code":         {code},
		"redirect_uri": {p.cfg.RedirectURI},
	}
	if p.cfg.PKCE {
		form.Set("code_verifier", verifier)
	}
	return p.token(ctx, form)
}

// Refresh uses a refresh token.
func (p *Provider) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	return p.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
}

// Revoke revokes a token (RFC 7009); hint is refresh_token or access_token.
// A provider without a revocation endpoint is not an error.
func (p *Provider) Revoke(ctx context.Context, token, hint string) error {
	e, err := p.endpoints()
	if err != nil {
		return err
	}
	if e.revocation == "" {
		return nil
	}
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	resp, err := p.post(ctx, e.revocation, form)
	if err != nil {
		return err
	}
	defer drain(resp.Body)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return fmt.Errorf("%w: %s: revocation answered HTTP %d", ErrUnavailable, p.cfg.Name, resp.StatusCode)
}

// post sends form to endpoint with client authentication. An error after
// the request was written is ErrLost, any other ErrUnavailable.
func (p *Provider) post(ctx context.Context, endpoint string, form url.Values) (*http.Response, error) {
	h := http.Header{}
	if err := p.cfg.Auth.Apply(form, h); err != nil {
		return nil, err
	}
	var sent atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				sent.Store(true)
			}
		},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("provider %s: request: %w", p.cfg.Name, err)
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := p.cfg.HTTP.Do(req)
	if err != nil {
		if sent.Load() {
			return nil, fmt.Errorf("%w: %s: %w", ErrLost, p.cfg.Name, err)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, p.cfg.Name, err)
	}
	return resp, nil
}

func (p *Provider) token(ctx context.Context, form url.Values) (*Token, error) {
	e, err := p.endpoints()
	if err != nil {
		return nil, err
	}
	resp, err := p.post(ctx, e.token, form)
	if err != nil {
		return nil, err
	}
	defer drain(resp.Body)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		// The provider started answering: it has acted on the request.
		return nil, fmt.Errorf("%w: %s: reading the token response: %w", ErrLost, p.cfg.Name, err)
	}
	if resp.StatusCode >= 500 || len(raw) > maxBody {
		return nil, fmt.Errorf("%w: %s: token endpoint answered HTTP %d", ErrUnavailable, p.cfg.Name, resp.StatusCode)
	}
	fields, err := p.parse(resp.Header.Get("Content-Type"), raw)
	if err != nil {
		if resp.StatusCode >= 400 {
			return nil, &oauthclient.Error{Status: resp.StatusCode}
		}
		return nil, err
	}
	if p.quirks[NestedUserToken] {
		if ok, isBool := fields["ok"].(bool); isBool && !ok {
			return nil, &oauthclient.Error{Status: resp.StatusCode, Code: str(fields["error"])}
		}
	}
	if code := str(fields["error"]); code != "" || resp.StatusCode >= 400 {
		return nil, &oauthclient.Error{Status: resp.StatusCode, Code: code, Description: str(fields["error_description"])}
	}
	if p.quirks[NestedUserToken] {
		user, _ := fields["authed_user"].(map[string]any)
		if user == nil {
			return nil, fmt.Errorf("%w: %s: token response has no authed_user", ErrUnavailable, p.cfg.Name)
		}
		fields = user
	}
	at := str(fields["access_token"])
	if at == "" {
		return nil, fmt.Errorf("%w: %s: token response has no access_token", ErrUnavailable, p.cfg.Name)
	}
	if tt := str(fields["token_type"]); tt != "" && !strings.EqualFold(tt, "bearer") && !p.quirks[NestedUserToken] {
		return nil, fmt.Errorf("%w: %s: token response has token_type %q, want Bearer", ErrUnavailable, p.cfg.Name, tt)
	}
	t := &Token{AccessToken: secret.New(at), RefreshToken: secret.New(str(fields["refresh_token"]))}
	if n, err := strconv.ParseInt(str(fields["expires_in"]), 10, 64); err == nil && n > 0 {
		t.ExpiresIn = n
	}
	if s, ok := fields["scope"]; ok {
		t.Scopes = p.splitScopes(str(s))
	}
	return t, nil
}

// parse reads a token endpoint body as JSON, or as a form with the
// FormEncodedTokenResponse quirk, into a map of its members.
func (p *Provider) parse(contentType string, raw []byte) (map[string]any, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" && p.quirks[FormEncodedTokenResponse] {
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: token response is not a valid form", ErrUnavailable, p.cfg.Name)
		}
		m := make(map[string]any, len(vals))
		for k, v := range vals {
			if len(v) != 1 {
				return nil, fmt.Errorf("%w: %s: token response repeats %q", ErrUnavailable, p.cfg.Name, k)
			}
			m[k] = v[0]
		}
		return m, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, fmt.Errorf("%w: %s: token response is not a JSON object", ErrUnavailable, p.cfg.Name)
	}
	return m, nil
}

func (p *Provider) splitScopes(s string) []string {
	f := func(r rune) bool { return r == ' ' || (r == ',' && p.quirks[CommaSeparatedScopes]) }
	out := strings.FieldsFunc(s, f)
	slices.Sort(out)
	return slices.Compact(out)
}

// str returns a JSON member or form value as a string: strings as they are,
// numbers in their decimal form, anything else empty.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

// drain reads a little of body and closes it, so the connection can be reused.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}
