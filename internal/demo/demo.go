// Package demo runs Gatehouse end to end in one process, on loopback only,
// for a first look and for the browser tests: an embedded development
// OpenID Provider, an example API that accepts only valid JWTs, the example
// SPA, and Gatehouse configured for them. Everything is reached at
// http://localhost:<port> (one site, so SameSite=Strict cookies flow).
//
// It shows the setup of the phantom token pattern: the provider issues opaque
// access tokens, Gatehouse keeps them in the SPA's cookie, introspects them on
// each API call (cached) and sends the API a short-lived JWT it signs itself;
// the API verifies that JWT with Gatehouse's /.well-known/jwks.json.
//
// The provider, its user and every key are generated for the run and are for
// development only; `gatehouse serve` never starts any of them.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/mint"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/web"
)

// The demo's fixed names.
const (
	Username     = "demouser"
	Password     = "Password1"
	UserID       = "demouser-0001"
	ClientID     = "demo-spa"
	APIAudience  = "demo-api"
	CookiePrefix = "demo"
	// IntrospectionClientID is Gatehouse's own client at the provider.
	IntrospectionClientID = "gatehouse"
	AgentPath             = "/oauth-agent"
	APIPath               = "/api"
)

// Default ports, used unless Options.AutoPorts is set.
const (
	DefaultSPAPort       = 3000
	DefaultGatehousePort = 8080
	DefaultProviderPort  = 8081
	DefaultAPIPort       = 8082
)

// Options configure a demo run.
type Options struct {
	// AutoPorts picks free ports instead of the defaults.
	AutoPorts bool
	// AccessTokenLifetime of the provider's access tokens; default 5 minutes.
	AccessTokenLifetime time.Duration
	// Logger receives every component's logs; nil discards them.
	Logger *slog.Logger
}

// Demo is a running demo.
type Demo struct {
	SPAURL       string // open this in a browser
	GatehouseURL string
	ProviderURL  string
	APIURL       string
	Provider     *devidp.Provider
	API          *API

	logger  *slog.Logger
	servers []*http.Server
	gw      *server.Server
	keyDir  string
	wg      sync.WaitGroup
	errc    chan error
	cancel  context.CancelFunc
}

// Start starts every component and returns once Gatehouse has discovered the
// provider. Stop it with Close or by cancelling ctx.
func Start(ctx context.Context, opts Options) (*Demo, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.AccessTokenLifetime <= 0 {
		opts.AccessTokenLifetime = 5 * time.Minute
	}
	d := &Demo{logger: opts.Logger, errc: make(chan error, 4)}
	ports := []int{DefaultSPAPort, DefaultGatehousePort, DefaultProviderPort, DefaultAPIPort}
	var lns []net.Listener
	for _, p := range ports {
		if opts.AutoPorts {
			p = 0
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("demo: port %d is taken (use --ports auto for free ports): %w", p, err)
		}
		lns = append(lns, ln)
	}
	url := func(ln net.Listener) string {
		return "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	spaLn, gwLn, idpLn, apiLn := lns[0], lns[1], lns[2], lns[3]
	d.SPAURL, d.GatehouseURL, d.ProviderURL = url(spaLn)+"/", url(gwLn), url(idpLn)
	d.APIURL = "http://" + apiLn.Addr().String()
	fail := func(err error) (*Demo, error) {
		for _, l := range lns {
			l.Close()
		}
		if d.keyDir != "" {
			_ = os.RemoveAll(d.keyDir)
		}
		return nil, err
	}

	secret, err := randomHex(24)
	if err != nil {
		return fail(err)
	}
	introspectionSecret, err := randomHex(24)
	if err != nil {
		return fail(err)
	}
	idp, err := devidp.New(devidp.Config{
		Issuer: d.ProviderURL,
		Users: []devidp.User{{
			ID: UserID, Username: Username, Password: Password,
			GivenName: "Demo", FamilyName: "User", Email: "demouser@example.com",
		}},
		Clients: []devidp.Client{{
			ID: ClientID, Secret: secret,
			RedirectURIs:           []string{d.SPAURL},
			PostLogoutRedirectURIs: []string{d.SPAURL},
			Scopes:                 []string{"read", "write"},
			AccessTokenFormat:      devidp.AccessTokenOpaque,
			AccessTokenLifetime:    opts.AccessTokenLifetime,
		}, {
			ID: IntrospectionClientID, Secret: introspectionSecret, CanIntrospect: true,
		}},
		RotateRefreshTokens:   true,
		RefreshReuseDetection: true,
		Logger:                opts.Logger.With("component", "devidp"),
	})
	if err != nil {
		return fail(fmt.Errorf("demo: provider: %w", err))
	}
	d.Provider = idp

	// The API trusts Gatehouse, not the provider: it verifies the JWTs
	// Gatehouse mints with Gatehouse's published keys.
	keys, err := jwtverify.NewKeySet(jwtverify.KeySetConfig{
		URL:    d.GatehouseURL + mint.JWKSPath,
		Client: &http.Client{Timeout: 5 * time.Second},
		Logger: opts.Logger,
	})
	if err != nil {
		return fail(fmt.Errorf("demo: API key set: %w", err))
	}
	verifier, err := jwtverify.New(keys, jwtverify.Config{
		Purpose:  jwtverify.AccessToken,
		Issuer:   d.GatehouseURL,
		Audience: APIAudience,
		// A short leeway lets expired tokens show up quickly in the demo.
		Leeway: time.Second,
	})
	if err != nil {
		return fail(fmt.Errorf("demo: API verifier: %w", err))
	}
	// Gatehouse's signing key lives for this run only.
	if d.keyDir, err = os.MkdirTemp("", "gatehouse-demo-"); err != nil {
		return fail(fmt.Errorf("demo: %w", err))
	}

	key, err := seal.GenerateKey(nil)
	if err != nil {
		return fail(err)
	}
	cfg, err := gatehouseConfig(d, gwLn, secret, introspectionSecret, key.String())
	if err != nil {
		return fail(err)
	}
	d.gw, err = server.New(cfg, server.Options{Logger: opts.Logger.With("component", "gatehouse")})
	if err != nil {
		return fail(fmt.Errorf("demo: gatehouse: %w", err))
	}

	d.API = NewAPI(verifier, opts.Logger.With("component", "example-api"))
	ctx, d.cancel = context.WithCancel(ctx)
	spa := NewSPA(web.SPA(), SPAConfig{GatehouseURL: d.GatehouseURL, AgentPath: AgentPath, APIPath: APIPath, CookiePrefix: CookiePrefix})
	for _, s := range []struct {
		ln net.Listener
		h  http.Handler
	}{
		{idpLn, idp},
		{apiLn, d.API},
		{spaLn, spa},
	} {
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
		d.servers = append(d.servers, srv)
		d.wg.Add(1)
		go func(ln net.Listener) {
			defer d.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.errc <- err
			}
		}(s.ln)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.gw.Serve(ctx, gwLn); err != nil {
			d.errc <- err
		}
	}()

	deadline := time.Now().Add(15 * time.Second)
	for !d.gw.Ready() {
		if time.Now().After(deadline) {
			d.Close()
			return nil, errors.New("demo: gatehouse did not discover the embedded provider")
		}
		time.Sleep(20 * time.Millisecond)
	}
	opts.Logger.Warn("DEVELOPMENT ONLY: the demo's OpenID Provider, user and keys are generated for this run; never use them in production",
		"provider", d.ProviderURL)
	return d, nil
}

// gatehouseConfig writes the demo's configuration and loads it through the
// same validation as `gatehouse serve`.
func gatehouseConfig(d *Demo, gwLn net.Listener, secret, introspectionSecret, cookieKey string) (*config.Config, error) {
	spaOrigin := d.SPAURL[:len(d.SPAURL)-1]
	y := fmt.Sprintf(`
listen: %q
public_url: %q
authorization_server:
  issuer: %q
  introspection:
    client_id: %q
    client_secret: %q
oauth_agent:
  base_path: %q
  client_id: %q
  client_secret: %q
  redirect_uri: %q
  post_logout_redirect_uri: %q
  scope: "openid profile email offline_access read"
  trusted_web_origins: [%q]
  allowed_extra_params: ["prompt", "login_hint"]
  cookie:
    name_prefix: %q
    encryption_keys: [%q]
internal_jwt:
  key_file: %q
routes:
  - name: "example-api"
    path: %q
    upstream: %q
    entry: ["cookie"]
    token_format: "opaque"
    forward: "phantom"
    audience: %q
    require: { scopes: ["read"] }
`, gwLn.Addr().String(), d.GatehouseURL, d.ProviderURL, IntrospectionClientID, introspectionSecret,
		AgentPath, ClientID, secret, d.SPAURL, d.SPAURL, spaOrigin, CookiePrefix, cookieKey,
		filepath.Join(d.keyDir, "signing-key.pem"), APIPath, d.APIURL, APIAudience)
	cfg, _, err := config.Parse([]byte(y), ".", config.Options{Env: func(string) (string, bool) { return "", false }})
	if err != nil {
		return nil, fmt.Errorf("demo: configuration: %w", err)
	}
	return cfg, nil
}

// Wait blocks until ctx ends or a component fails.
func (d *Demo) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-d.errc:
		return err
	}
}

// Close stops every component and waits for them.
func (d *Demo) Close() {
	d.cancel()
	for _, s := range d.servers {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.Shutdown(sctx)
		cancel()
	}
	d.wg.Wait()
	if d.keyDir != "" {
		_ = os.RemoveAll(d.keyDir)
	}
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("demo: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}
