// Package server is Gatehouse's composition root: it builds every component
// from a validated configuration, composes the request pipeline and owns the
// listener, the background discovery and the shutdown.
//
// One request reads top to bottom: recover → request id and access log →
// canonical path check → Gatehouse's own endpoints (health, OAuth Agent) or a
// route (entry → forward → upstream).
package server

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/introspect"
	"github.com/gatehouse-dev/gatehouse/internal/keyfile"
	"github.com/gatehouse-dev/gatehouse/internal/mint"
	"github.com/gatehouse-dev/gatehouse/internal/oauthagent"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/origin"
	"github.com/gatehouse-dev/gatehouse/internal/proxy"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/sessioncookie"
)

// Options carry what the configuration file does not.
type Options struct {
	Logger *slog.Logger
	// ConfigDir resolves relative file paths (private_key_jwt key file, TLS files).
	ConfigDir string
	// ASClient makes the calls to the authorization server; default
	// oauthclient.NewHTTPClient with the configured timeout.
	ASClient *http.Client
	Now      func() time.Time
}

// Server is a running Gatehouse.
type Server struct {
	cfg      *config.Config
	opts     Options
	logger   *slog.Logger
	provider *oauthclient.Provider
	as       *asDeps
	minter   *mint.Minter
	router   *proxy.Router
	vault    *vaultService
	handler  http.Handler
	partners

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// New builds a Server from a validated configuration.
func New(cfg *config.Config, opts Options) (_ *Server, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{cfg: cfg, opts: opts, logger: opts.Logger}
	defer func() {
		// A failed build releases the databases it opened.
		if err != nil {
			s.stopVault()
			s.closePartners()
		}
	}()

	var (
		agent   *oauthagent.Agent
		cookies *sessioncookie.Codec
		origins *origin.Policy
	)
	if as := cfg.AuthorizationServer; as != nil {
		hc := opts.ASClient
		if hc == nil {
			hc = oauthclient.NewHTTPClient(as.Timeout.D())
		}
		s.provider = oauthclient.NewProvider(oauthclient.ProviderConfig{
			Issuer: as.Issuer,
			Overrides: oauthclient.Metadata{
				AuthorizationEndpoint: as.AuthorizationEndpoint,
				TokenEndpoint:         as.TokenEndpoint,
				UserinfoEndpoint:      as.UserinfoEndpoint,
				EndSessionEndpoint:    as.EndSessionEndpoint,
				RevocationEndpoint:    as.RevocationEndpoint,
				JWKSURI:               as.JWKSURI,
				IntrospectionEndpoint: as.IntrospectionEndpoint,
			},
			HTTPClient: hc,
			Logger:     s.logger,
		})
		s.as = &asDeps{
			provider: s.provider, hc: hc, now: opts.Now, logger: s.logger, allowHTTP: as.InsecureAllowHTTP,
			intros: map[*config.Introspection]*introspect.Introspector{},
			build: func(c *config.Introspection) (oauthclient.ClientAuth, error) {
				return s.clientAuth("introspection", c.ClientAuth, c.ClientID, c.ClientSecret)
			},
		}
		if a := cfg.OAuthAgent; a != nil {
			var err error
			cookies, origins, agent, err = s.buildAgent(a, hc)
			if err != nil {
				return nil, err
			}
		}
	}

	if j := cfg.InternalJWT; j != nil {
		m, err := s.buildMinter(j)
		if err != nil {
			return nil, err
		}
		s.minter = m
	}
	// Partners (API keys, client certificates) before the vault: jobs may
	// authenticate with an API key.
	if err := s.buildPartners(); err != nil {
		return nil, err
	}
	if vc := cfg.Vault; vc != nil {
		v, err := s.buildVault(vc, cookies, origins)
		if err != nil {
			return nil, err
		}
		s.vault = v
	}
	var routes []proxy.Route
	for i := range cfg.Routes {
		r, err := s.buildRoute(i, cookies, origins)
		if err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	var trusted []netip.Prefix
	for _, p := range cfg.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			addr, err := netip.ParseAddr(p)
			if err != nil {
				return nil, fmt.Errorf("server: trusted_proxies: %w", err)
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		trusted = append(trusted, pfx)
	}
	public, err := url.Parse(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("server: public_url: %w", err)
	}
	s.router, err = proxy.NewRouter(routes, proxy.Options{
		PublicHost:     public.Host,
		TrustedProxies: trusted,
		Cookies:        cookies,
		Origins:        origins,
		DropHeaders:    s.dropHeaders(),
		Logger:         s.logger,
	})
	if err != nil {
		return nil, err
	}
	s.handler = s.compose(agent)
	return s, nil
}

func (s *Server) buildAgent(a *config.OAuthAgent, hc *http.Client) (*sessioncookie.Codec, *origin.Policy, *oauthagent.Agent, error) {
	var keys []seal.Key
	for i, k := range a.Cookie.EncryptionKeys {
		key, err := seal.ParseKey(k.Reveal())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("server: oauth_agent.cookie.encryption_keys[%d]: %w", i, err)
		}
		keys = append(keys, key)
	}
	ring, err := seal.NewRing(keys, nil)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("server: %w", err)
	}
	cookies := sessioncookie.New(sessioncookie.Config{
		Prefix:       a.Cookie.NamePrefix,
		Domain:       a.Cookie.Domain,
		Path:         a.Cookie.Path,
		BasePath:     a.BasePath,
		IDAtBasePath: a.Logout.SendIDTokenHint,
		Insecure:     a.Cookie.InsecureHTTPCookies,
		LoginMaxAge:  a.LoginWindow.D(),
		Ring:         ring,
	})
	origins := origin.New(a.TrustedWebOrigins, a.CORSEnabled())

	auth, err := s.clientAuth("oauth_agent", a.ClientAuth, a.ClientID, a.ClientSecret)
	if err != nil {
		return nil, nil, nil, err
	}
	client := &oauthclient.Client{Provider: s.provider, ClientID: a.ClientID, Auth: auth, HTTP: hc}
	agent, err := oauthagent.New(oauthagent.Config{
		BasePath:              a.BasePath,
		ClientID:              a.ClientID,
		RedirectURI:           a.RedirectURI,
		PostLogoutRedirectURI: a.PostLogoutRedirectURI,
		Scope:                 a.Scope,
		AllowedExtraParams:    a.AllowedExtraParams,
		LoginWindow:           a.LoginWindow.D(),
		RefreshReuseWindow:    a.ReuseWindow(),
		SendIDTokenHint:       a.Logout.SendIDTokenHint,
	}, oauthagent.Deps{
		Client:   client,
		Cookies:  cookies,
		Origins:  origins,
		IDTokens: &idTokenVerifier{as: s.as, clientID: a.ClientID},
		Logger:   s.logger,
		Now:      s.opts.Now,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return cookies, origins, agent, nil
}

// clientAuth builds a client authentication at the authorization server.
func (s *Server) clientAuth(field string, ca config.ClientAuth, clientID string, sec secret.Value) (oauthclient.ClientAuth, error) {
	switch ca.Method {
	case "client_secret_post":
		return oauthclient.SecretPost{ClientID: clientID, Secret: sec}, nil
	case "private_key_jwt":
		key, alg, err := s.readClientKey(field, ca)
		if err != nil {
			return nil, err
		}
		return oauthclient.NewPrivateKeyJWT(clientID, s.provider.Issuer(), key, alg, ca.KeyID, s.opts.Now)
	}
	return oauthclient.SecretBasic{ClientID: clientID, Secret: sec}, nil
}

func (s *Server) readClientKey(field string, ca config.ClientAuth) (key crypto.Signer, alg string, err error) {
	data, err := readFile(s.abs(ca.KeyFile))
	if err != nil {
		return nil, "", fmt.Errorf("server: %s.client_auth.key_file: %w", field, err)
	}
	signer, err := keyfile.ParsePrivateKey(data)
	if err != nil {
		return nil, "", fmt.Errorf("server: %s.client_auth.key_file: %w", field, err)
	}
	alg, err = keyfile.CheckAlgorithm(signer, ca.Algorithm)
	if err != nil {
		return nil, "", fmt.Errorf("server: %s.client_auth.algorithm: %w", field, err)
	}
	return signer, alg, nil
}

// Handler returns the request pipeline.
func (s *Server) Handler() http.Handler { return s.handler }

// Ready reports whether the authorization server is discovered (or not needed).
func (s *Server) Ready() bool {
	if s.provider == nil {
		return true
	}
	_, err := s.provider.Metadata()
	return err == nil
}

// Start begins background work (discovery with retries). Stop ends it.
func (s *Server) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	if s.provider != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.provider.Run(ctx)
		}()
	}
	s.startVault(ctx)
}

// Stop ends background work and waits for it, and closes idle upstream connections.
func (s *Server) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.router.Close()
	s.stopVault()
	s.closePartners()
}

// Serve serves on ln until ctx ends, then shuts down gracefully: the listener
// closes, in-flight requests get up to server.shutdown_timeout to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.Start(ctx)
	defer s.Stop()
	sc := s.cfg.Server
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: sc.ReadHeaderTimeout.D(),
		IdleTimeout:       sc.IdleTimeout.D(),
		MaxHeaderBytes:    sc.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	tc, err := s.TLSConfig()
	if err != nil {
		return err
	}
	if tc != nil {
		srv.TLSConfig = tc
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	vsrv, vln, err := s.listenVault(srv.TLSConfig)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	s.logger.Info("gatehouse listening", "address", ln.Addr().String(), "public_url", s.cfg.PublicURL, "tls", s.cfg.TLS.CertFile != "")
	if vsrv != nil {
		go func() { errc <- vsrv.Serve(vln) }()
		s.logger.Info("vault API listening", "address", vln.Addr().String())
	}
	select {
	case err := <-errc:
		if vsrv != nil {
			vsrv.Close()
		}
		srv.Close()
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.logger.Info("shutting down; waiting for in-flight requests", "timeout", sc.ShutdownTimeout.D().String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sc.ShutdownTimeout.D())
	defer cancel()
	if vsrv != nil {
		if err := vsrv.Shutdown(sctx); err != nil {
			return fmt.Errorf("server: vault listener shutdown: %w", err)
		}
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("server: %w", err)
		}
	}
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: %w", err)
	}
	s.logger.Info("stopped")
	return nil
}

// TLSConfig returns the listener's TLS configuration (nil without tls
// files): TLS 1.2 or later, and, with tls.client_ca_file, a request (not a
// requirement) for a client certificate from those CAs.
func (s *Server) TLSConfig() (*tls.Config, error) {
	if s.cfg.TLS.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.abs(s.cfg.TLS.CertFile), s.abs(s.cfg.TLS.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("server: tls: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.requestClientCerts(c)
	return c, nil
}

// ListenAndServe listens on the configured address and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

func (s *Server) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.opts.ConfigDir, p)
}

var errNotReady = httperr.New(http.StatusServiceUnavailable, "unavailable", "The authorization server has not been discovered yet")
