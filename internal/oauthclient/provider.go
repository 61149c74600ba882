// Package oauthclient talks to the authorization server: OpenID Connect
// discovery, the token endpoint (authorization code and refresh grants) with
// confidential client authentication, userinfo and revocation.
//
// Errors are classified for the caller: *Error is an OAuth error response
// from the server (a 4xx with an "error" code); ErrUnavailable wraps network
// failures, timeouts, 5xx answers and unparsable bodies; ErrNotReady means
// discovery has not succeeded yet. Response bodies never reach error texts,
// because they may hold tokens.
package oauthclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrNotReady reports that discovery has not completed yet.
	ErrNotReady = errors.New("oauthclient: authorization server metadata not yet discovered")
	// ErrUnavailable reports that the authorization server could not be
	// reached or answered with a server error or an unusable body.
	ErrUnavailable = errors.New("oauthclient: authorization server unavailable")
)

// maxBody caps every response body read from the authorization server.
const maxBody = 1 << 20

// Metadata is the part of the server's discovery document Gatehouse uses.
type Metadata struct {
	Issuer                          string   `json:"issuer"`
	AuthorizationEndpoint           string   `json:"authorization_endpoint"`
	TokenEndpoint                   string   `json:"token_endpoint"`
	UserinfoEndpoint                string   `json:"userinfo_endpoint"`
	EndSessionEndpoint              string   `json:"end_session_endpoint"`
	RevocationEndpoint              string   `json:"revocation_endpoint"`
	IntrospectionEndpoint           string   `json:"introspection_endpoint"`
	JWKSURI                         string   `json:"jwks_uri"`
	CodeChallengeMethodsSupported   []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseIssSupport bool     `json:"authorization_response_iss_parameter_supported"`
}

// ProviderConfig configures a Provider.
type ProviderConfig struct {
	Issuer string
	// Overrides replace discovered endpoints one by one. When the
	// authorization, token and JWKS endpoints are all given, discovery is skipped.
	Overrides Metadata
	// HTTPClient makes every call; its Timeout bounds each call.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Provider holds the authorization server's metadata, discovered once.
type Provider struct {
	cfg   ProviderConfig
	md    atomic.Pointer[Metadata]
	ready chan struct{}
	once  sync.Once
}

// NewProvider returns a Provider; call Run (or Discover) to fill its metadata.
func NewProvider(cfg ProviderConfig) *Provider {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	p := &Provider{cfg: cfg, ready: make(chan struct{})}
	o := cfg.Overrides
	if o.AuthorizationEndpoint != "" && o.TokenEndpoint != "" && o.JWKSURI != "" {
		md := o
		md.Issuer = cfg.Issuer
		p.set(&md)
	}
	return p
}

func (p *Provider) set(md *Metadata) {
	p.md.Store(md)
	p.once.Do(func() { close(p.ready) })
}

// Metadata returns the discovered metadata or ErrNotReady.
func (p *Provider) Metadata() (*Metadata, error) {
	if md := p.md.Load(); md != nil {
		return md, nil
	}
	return nil, ErrNotReady
}

// Ready is closed once metadata is available.
func (p *Provider) Ready() <-chan struct{} { return p.ready }

// Issuer returns the configured issuer.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// Run discovers the metadata, retrying with exponential backoff (1 s up to
// 30 s, with jitter) until it succeeds or ctx ends.
func (p *Provider) Run(ctx context.Context) {
	delay := time.Second
	for {
		if _, err := p.Metadata(); err == nil {
			return
		}
		err := p.Discover(ctx)
		if err == nil {
			p.cfg.Logger.Info("authorization server discovered", "issuer", p.cfg.Issuer)
			return
		}
		p.cfg.Logger.Warn("authorization server discovery failed; retrying", "issuer", p.cfg.Issuer, "error", err.Error(), "retry_in", delay.String())
		t := time.NewTimer(delay + rand.N(delay/4+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// Discover fetches the discovery document once.
func (p *Provider) Discover(ctx context.Context) error {
	u := p.cfg.Issuer + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("oauthclient: discovery request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: discovery: %w", ErrUnavailable, err)
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: discovery answered HTTP %d", ErrUnavailable, resp.StatusCode)
	}
	var md Metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&md); err != nil {
		return fmt.Errorf("%w: discovery document is not JSON: %w", ErrUnavailable, err)
	}
	if md.Issuer != p.cfg.Issuer {
		return fmt.Errorf("oauthclient: discovery document names issuer %q, configured issuer is %q", md.Issuer, p.cfg.Issuer)
	}
	o := p.cfg.Overrides
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&md.AuthorizationEndpoint, o.AuthorizationEndpoint},
		{&md.TokenEndpoint, o.TokenEndpoint},
		{&md.UserinfoEndpoint, o.UserinfoEndpoint},
		{&md.EndSessionEndpoint, o.EndSessionEndpoint},
		{&md.RevocationEndpoint, o.RevocationEndpoint},
		{&md.IntrospectionEndpoint, o.IntrospectionEndpoint},
		{&md.JWKSURI, o.JWKSURI},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	if md.AuthorizationEndpoint == "" || md.TokenEndpoint == "" || md.JWKSURI == "" {
		return errors.New("oauthclient: discovery document lacks authorization_endpoint, token_endpoint or jwks_uri")
	}
	if len(md.CodeChallengeMethodsSupported) > 0 && !contains(md.CodeChallengeMethodsSupported, "S256") {
		p.cfg.Logger.Warn("authorization server does not advertise PKCE S256; Gatehouse sends it anyway", "issuer", p.cfg.Issuer)
	}
	p.set(&md)
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// drain reads a little of body and closes it, so the connection can be reused.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

// NewHTTPClient returns an HTTP client for calls to the authorization server:
// bounded by timeout, never following redirects (a token endpoint that
// redirects is misconfigured or hostile).
func NewHTTPClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	tr.ResponseHeaderTimeout = timeout
	return &http.Client{
		Timeout:   timeout,
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
