package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/origin"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/sessioncookie"
	"github.com/gatehouse-dev/gatehouse/internal/telemetry"
	"github.com/gatehouse-dev/gatehouse/internal/vault"
	"github.com/gatehouse-dev/gatehouse/internal/vault/provider"
	"github.com/gatehouse-dev/gatehouse/internal/vault/sealer"
	"github.com/gatehouse-dev/gatehouse/internal/vault/sqlstore"
	"github.com/gatehouse-dev/gatehouse/internal/vault/vaulthttp"
)

// vaultService is the token vault as the server runs it.
type vaultService struct {
	vault   *vault.Vault
	http    *vaulthttp.Handler
	store   vault.Store
	handler http.Handler // the separate vault.listen listener's pipeline, or nil
}

// storeOpenTimeout bounds connecting to (and migrating) the vault's database at start.
const storeOpenTimeout = 30 * time.Second

// buildVault opens the vault's store and builds its providers and handlers.
func (s *Server) buildVault(vc *config.Vault, cookies *sessioncookie.Codec, origins *origin.Policy) (*vaultService, error) {
	if s.as == nil || cookies == nil {
		return nil, errors.New("server: vault needs authorization_server and oauth_agent")
	}
	public, err := url.Parse(s.cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("server: public_url: %w", err)
	}
	sealer, err := newVaultSealer(vc.Keys)
	if err != nil {
		return nil, err
	}
	providers := map[string]*provider.Provider{}
	apis := map[string]vaulthttp.API{}
	leaseTTL := 30 * time.Second
	for _, name := range vc.ProviderNames() {
		pc := vc.Providers[name]
		p, err := s.buildVaultProvider(name, pc, public)
		if err != nil {
			return nil, err
		}
		providers[name] = p
		api, err := url.Parse(pc.APIBaseURL)
		if err != nil {
			return nil, fmt.Errorf("server: vault.providers[%q].api_base_url: %w", name, err)
		}
		apis[name] = vaulthttp.API{BaseURL: api, Timeout: pc.Timeout.D(), MaxBody: pc.BodyLimit()}
		// A lease outlives the provider's answer, or another instance could
		// take it while the refreshed tokens are still on their way.
		leaseTTL = max(leaseTTL, pc.Timeout.D()+20*time.Second)
	}
	var claims []string
	for _, j := range vc.Jobs {
		if j.Users.Claim != "" && !slices.Contains(claims, j.Users.Claim) {
			claims = append(claims, j.Users.Claim)
		}
	}
	store, err := s.openVaultStore(vc.Store)
	if err != nil {
		return nil, err
	}
	v, err := vault.New(vault.Config{
		Store: store, Sealer: sealer, Providers: providers,
		RefreshAhead: vc.Ahead(), ClaimNames: claims, ReturnURL: vc.ReturnURL,
		LeaseTTL: leaseTTL, Now: s.opts.Now, Logger: s.logger,
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	hc := vaulthttp.Config{
		Vault:           v,
		User:            &authn.Cookie{Cookies: cookies, Origins: origins, Checker: s.as.checker(vc.UserRoute(), s.cfg)},
		Origins:         origins,
		CookiePrefix:    s.cfg.OAuthAgent.Cookie.NamePrefix,
		InsecureCookies: s.cfg.OAuthAgent.Cookie.InsecureHTTPCookies,
		DefaultIssuer:   s.provider.Issuer(),
		DropHeaders:     s.dropHeaders(),
		ReturnURL:       vc.ReturnURL,
		APIs:            apis,
		Logger:          s.logger,
		Now:             s.opts.Now,
	}
	if len(vc.Jobs) > 0 {
		for _, e := range vc.JobEntryNames() {
			switch e {
			case "bearer":
				hc.Jobs = append(hc.Jobs, &authn.Bearer{Checker: s.as.checker(vc.JobRoute(), s.cfg), Realm: authn.Realm})
			case "apikey":
				if s.apiKeys == nil {
					return nil, fmt.Errorf("server: vault.job_entries: apikey needs api_keys")
				}
				hc.Jobs = append(hc.Jobs, s.apiKeys)
			}
		}
		for _, j := range vc.Jobs {
			hc.Entitlement = append(hc.Entitlement, vaulthttp.Job{
				ClientID: j.ClientID, Scopes: j.Scopes, Providers: j.Providers,
				AllUsers: j.Users.All, Claim: j.Users.Claim, Values: j.Users.Values,
			})
		}
	}
	h, err := vaulthttp.New(hc)
	if err != nil {
		store.Close()
		return nil, err
	}
	vs := &vaultService{vault: v, http: h, store: store}
	if vc.Listen != "" {
		jobs := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch p := r.URL.Path; {
			case p == "/healthz":
				s.health(w, r)
			case config.PathCovers(vaulthttp.JobsPath, p):
				h.ServeJobs(w, r)
			default:
				httperr.Write(w, r, telemetry.Logger(r.Context(), s.logger), httperr.ErrNotFound)
			}
		})
		vs.handler = s.accessLog(s.recoverer(canonicalPath(jobs, s)))
	}
	return vs, nil
}

// newVaultSealer builds the key ring of vault.keys; the first key seals.
func newVaultSealer(keys []config.VaultKey) (*sealer.Sealer, error) {
	ring := make([]sealer.Key, 0, len(keys))
	for i, k := range keys {
		secret, err := seal.ParseKey(k.Key.Reveal())
		if err != nil {
			return nil, fmt.Errorf("server: vault.keys[%d].key: %w", i, err)
		}
		ring = append(ring, sealer.Key{ID: k.ID, Secret: secret})
	}
	s, err := sealer.New(ring)
	if err != nil {
		return nil, fmt.Errorf("server: vault.keys: %w", err)
	}
	return s, nil
}

// serveVault dispatches the vault's paths of the main listener; it reports
// false for other paths.
func (s *Server) serveVault(w http.ResponseWriter, r *http.Request) bool {
	if s.vault == nil {
		return false
	}
	switch p := r.URL.Path; {
	case config.PathCovers(vaulthttp.ConnectionsPath, p):
		s.vault.http.ServeConnections(w, r)
	case config.PathCovers(vaulthttp.JobsPath, p) && s.vault.handler == nil:
		s.vault.http.ServeJobs(w, r)
	default:
		return false
	}
	return true
}

func (s *Server) openVaultStore(sc config.Store) (vault.Store, error) {
	st, err := openStore("vault.store", sc, s.opts.ConfigDir)
	if err != nil {
		return nil, err
	}
	st.Now = s.opts.Now
	return st, nil
}

// openStore connects to the database of a store (field names it in
// errors), migrates it and returns it. Relative SQLite paths are resolved
// against configDir.
func openStore(field string, sc config.Store, configDir string) (*sqlstore.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
	defer cancel()
	var (
		st  *sqlstore.Store
		err error
	)
	switch sc.Driver {
	case "postgres":
		st, err = sqlstore.Open(ctx, sqlstore.DriverPostgres, sc.DSN.Reveal())
	default:
		p := sc.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(configDir, p)
		}
		st, err = sqlstore.Open(ctx, sqlstore.DriverSQLite, p)
	}
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w", field, err)
	}
	return st, nil
}

// OpenAPIKeyStore opens cfg's api_keys.store for the command line (keys
// api-key create, revoke, list); relative paths are resolved against
// configDir, as by serve. The caller closes it.
func OpenAPIKeyStore(cfg *config.Config, configDir string) (*sqlstore.Store, error) {
	if cfg.APIKeys == nil || cfg.APIKeys.Store == nil {
		return nil, errors.New("server: the configuration has no api_keys.store")
	}
	return openStore("api_keys.store", *cfg.APIKeys.Store, configDir)
}

// buildVaultProvider builds one third-party provider.
func (s *Server) buildVaultProvider(name string, pc *config.VaultProvider, public *url.URL) (*provider.Provider, error) {
	field := fmt.Sprintf("vault.providers[%q]", name)
	var auth oauthclient.ClientAuth
	switch pc.ClientAuth.Method {
	case "client_secret_post":
		auth = oauthclient.SecretPost{ClientID: pc.ClientID, Secret: pc.ClientSecret}
	case "private_key_jwt":
		key, alg, err := s.readClientKey(field, pc.ClientAuth)
		if err != nil {
			return nil, err
		}
		// The assertion's audience: the issuer when there is one, else the
		// token endpoint (RFC 7523 section 3).
		aud := pc.Issuer
		if aud == "" {
			aud = pc.TokenEndpoint
		}
		if auth, err = oauthclient.NewPrivateKeyJWT(pc.ClientID, aud, key, alg, pc.ClientAuth.KeyID, s.opts.Now); err != nil {
			return nil, fmt.Errorf("server: %s: %w", field, err)
		}
	default:
		auth = oauthclient.SecretBasic{ClientID: pc.ClientID, Secret: pc.ClientSecret}
	}
	var quirks []provider.Quirk
	for _, q := range pc.Quirks {
		quirks = append(quirks, provider.Quirk(q))
	}
	callback := *public
	callback.Path = config.CallbackPath(name)
	p, err := provider.New(provider.Config{
		Name:                  name,
		Issuer:                pc.Issuer,
		AuthorizationEndpoint: pc.AuthorizationEndpoint,
		TokenEndpoint:         pc.TokenEndpoint,
		RevocationEndpoint:    pc.RevocationEndpoint,
		Tenant:                pc.Tenant,
		ClientID:              pc.ClientID,
		Auth:                  auth,
		Scopes:                pc.Scopes,
		PKCE:                  pc.PKCEEnabled(),
		Quirks:                quirks,
		AuthorizationParams:   pc.AuthorizationParams,
		RedirectURI:           callback.String(),
		HTTP:                  oauthclient.NewHTTPClient(pc.Timeout.D()),
		Logger:                s.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w", field, err)
	}
	return p, nil
}

// startVault runs the vault's background work (provider discovery, expired
// connect states) until ctx ends.
func (s *Server) startVault(ctx context.Context) {
	if s.vault == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.vault.vault.Run(ctx)
	}()
}

// stopVault releases the vault's store and connections, after startVault's
// work has ended.
func (s *Server) stopVault() {
	if s.vault == nil {
		return
	}
	s.vault.http.Close()
	if err := s.vault.store.Close(); err != nil {
		s.logger.Warn("vault: closing the store failed", "error", err.Error())
	}
}

// listenVault opens the separate vault.listen listener, when configured.
func (s *Server) listenVault(tlsConfig *tls.Config) (*http.Server, net.Listener, error) {
	if s.vault == nil || s.vault.handler == nil {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.Vault.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("server: vault.listen %s: %w", s.cfg.Vault.Listen, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	sc := s.cfg.Server
	srv := &http.Server{
		Handler:           s.vault.handler,
		ReadHeaderTimeout: sc.ReadHeaderTimeout.D(),
		IdleTimeout:       sc.IdleTimeout.D(),
		MaxHeaderBytes:    sc.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	return srv, ln, nil
}

// VaultHandler returns the pipeline of the separate vault.listen listener
// (nil without one).
func (s *Server) VaultHandler() http.Handler {
	if s.vault == nil {
		return nil
	}
	return s.vault.handler
}
