// Package config defines Gatehouse's configuration file, loads it strictly and
// validates it.
//
// Load reads YAML, expands ${ENV} references inside values, reads *_file
// secrets, applies defaults and validates everything in one pass. Every
// problem is reported with its field path (routes[2].upstream: ...), all at
// once, joined with errors.Join. Validation has no side effects beyond reading
// the files the configuration names.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

// Config is the whole configuration file.
type Config struct {
	Listen              string               `yaml:"listen"`
	PublicURL           string               `yaml:"public_url"`
	TrustedProxies      []string             `yaml:"trusted_proxies"`
	TLS                 TLS                  `yaml:"tls"`
	Log                 Log                  `yaml:"log"`
	Server              Server               `yaml:"server"`
	AuthorizationServer *AuthorizationServer `yaml:"authorization_server"`
	OAuthAgent          *OAuthAgent          `yaml:"oauth_agent"`
	InternalJWT         *InternalJWT         `yaml:"internal_jwt"`
	APIKeys             *APIKeys             `yaml:"api_keys"`
	Routes              []Route              `yaml:"routes"`
	Vault               *Vault               `yaml:"vault"`
}

// InternalJWT configures the JWTs Gatehouse signs for upstreams (forward:
// internal_jwt, and phantom with JSON introspection) and publishes at
// /.well-known/jwks.json.
type InternalJWT struct {
	// KeyFile holds the signing key (PEM, ES256 or EdDSA); generated on first
	// start when the file does not exist.
	KeyFile string `yaml:"key_file"`
	// Algorithm of a generated key: ES256 (default) or EdDSA.
	Algorithm string `yaml:"algorithm"`
	// PreviousKeyFiles stay published (not used to sign) during a rotation.
	PreviousKeyFiles []string `yaml:"previous_key_files"`
	// TTL of minted tokens; default and maximum 5m.
	TTL Duration `yaml:"ttl"`
}

// Introspection configures Gatehouse's own client at the introspection endpoint.
type Introspection struct {
	ClientID         string       `yaml:"client_id"`
	ClientSecret     secret.Value `yaml:"client_secret"`
	ClientSecretFile string       `yaml:"client_secret_file"`
	ClientAuth       ClientAuth   `yaml:"client_auth"`
	// Format: json (RFC 7662, default; Gatehouse mints the upstream JWT),
	// jwt (Curity's Accept: application/jwt; the JWT is forwarded as is) or
	// rfc9701 (a signed introspection response).
	Format      string   `yaml:"format"`
	MaxCacheTTL Duration `yaml:"max_cache_ttl"`
}

// Require lists what a route's caller must have. Scopes come from the
// token's scope claim, roles from RolesClaim.
type Require struct {
	Scopes     []string          `yaml:"scopes"`      // all of these
	AnyScopes  []string          `yaml:"any_scopes"`  // at least one of these
	Roles      []string          `yaml:"roles"`       // all of these
	AnyRoles   []string          `yaml:"any_roles"`   // at least one of these
	RolesClaim string            `yaml:"roles_claim"` // default "roles"; a dotted path such as realm_access.roles
	Claims     map[string]string `yaml:"claims"`      // claim equal to the value (or an array containing it)
}

// TLS configures the listener's certificate. Both files or neither.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile holds the CA certificates (PEM) that issue client
	// certificates. With it the listener asks for a client certificate
	// (without requiring one); routes with the mtls entry verify it.
	ClientCAFile string `yaml:"client_ca_file"`
}

// APIKeys are the keys of the apikey entry. Only hashes are stored: in
// Keys, and in Store for keys created at run time.
type APIKeys struct {
	// Header carries the key; default X-API-Key.
	Header string   `yaml:"header"`
	Keys   []APIKey `yaml:"keys"`
	// Store, when set, holds keys created, listed and revoked with
	// `gatehouse keys api-key create|list|revoke`. A key's id is looked up
	// in Keys first, then in Store, on every request.
	Store *Store `yaml:"store"`
}

// APIKey is one key: its public id, the SHA-256 of the whole key, and the
// client it stands for. `gatehouse keys api-key` creates them.
type APIKey struct {
	ID       string   `yaml:"id"`
	Hash     string   `yaml:"hash"` // sha256:<64 hex>
	ClientID string   `yaml:"client_id"`
	Scopes   []string `yaml:"scopes"`
	// ExpiresAt is an RFC 3339 time after which the key is refused; empty
	// for a key that does not expire.
	ExpiresAt string `yaml:"expires_at"`
	// Revoked keys are refused (like removed ones).
	Revoked bool `yaml:"revoked"`
}

// RouteMTLS configures a route's mtls entry.
type RouteMTLS struct {
	// Clients map verified certificates to client identities (first match wins).
	Clients []MTLSClient `yaml:"clients"`
	// BoundToken requires, besides the certificate, an access token bound to
	// it (RFC 8705: cnf.x5t#S256), checked per the route's token_format;
	// the caller is then the token's.
	BoundToken bool `yaml:"bound_token"`
}

// MTLSClient matches certificates by one of subject CN, a DNS SAN or a URI SAN.
type MTLSClient struct {
	SubjectCN string   `yaml:"subject_cn"`
	SANDNS    string   `yaml:"san_dns"`
	SANURI    string   `yaml:"san_uri"`
	ClientID  string   `yaml:"client_id"`
	Scopes    []string `yaml:"scopes"`
}

// UpstreamTLS configures TLS towards a route's https upstream.
type UpstreamTLS struct {
	// CAFile replaces the system roots with these CA certificates (PEM).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are Gatehouse's client certificate (mTLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the upstream's certificate must have, when it
	// is not the upstream URL's host.
	ServerName string `yaml:"server_name"`
}

// TokenClient is Gatehouse's own client at the token endpoint: token
// exchange (forward: exchange) and client credentials (forward:
// client_credentials, actor tokens).
type TokenClient struct {
	ClientID         string       `yaml:"client_id"`
	ClientSecret     secret.Value `yaml:"client_secret"`
	ClientSecretFile string       `yaml:"client_secret_file"`
	ClientAuth       ClientAuth   `yaml:"client_auth"`
}

// Exchange configures forward: exchange (RFC 8693).
type Exchange struct {
	// Audience and Resource name the target of the new token (at least one).
	Audience string `yaml:"audience"`
	Resource string `yaml:"resource"`
	// Scopes requested for the new token; empty asks for the AS's default.
	Scopes []string `yaml:"scopes"`
	// Actor sends Gatehouse's own client-credentials token as actor_token,
	// so that the new token's act claim names Gatehouse.
	Actor bool `yaml:"actor"`
}

// ClientCredentials configures forward: client_credentials: the upstream
// receives Gatehouse's own token.
type ClientCredentials struct {
	Audience string   `yaml:"audience"` // sent as audience (some servers need it)
	Resource string   `yaml:"resource"` // RFC 8707
	Scopes   []string `yaml:"scopes"`
}

// Log configures logging.
type Log struct {
	Level string `yaml:"level"` // debug | info | warn | error
}

// Server configures the HTTP listener's limits.
type Server struct {
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	MaxHeaderBytes    int      `yaml:"max_header_bytes"`
	ShutdownTimeout   Duration `yaml:"shutdown_timeout"`
}

// AuthorizationServer names the OpenID Provider. Endpoints are discovered from
// the issuer; any of them may be set explicitly instead.
type AuthorizationServer struct {
	Issuer                string   `yaml:"issuer"`
	AuthorizationEndpoint string   `yaml:"authorization_endpoint"`
	TokenEndpoint         string   `yaml:"token_endpoint"`
	UserinfoEndpoint      string   `yaml:"userinfo_endpoint"`
	EndSessionEndpoint    string   `yaml:"end_session_endpoint"`
	RevocationEndpoint    string   `yaml:"revocation_endpoint"`
	JWKSURI               string   `yaml:"jwks_uri"`
	IntrospectionEndpoint string   `yaml:"introspection_endpoint"`
	Timeout               Duration `yaml:"timeout"`
	// Introspection is Gatehouse's client for opaque tokens (token_format: opaque).
	Introspection *Introspection `yaml:"introspection"`
	// TokenClient is Gatehouse's client at the token endpoint (token
	// exchange, client credentials).
	TokenClient *TokenClient `yaml:"token_client"`
	// InsecureAllowHTTP permits http:// URLs for a provider that is not on
	// loopback (development setups only).
	InsecureAllowHTTP bool `yaml:"insecure_allow_http"`
}

// OAuthAgent configures the SPA-facing OAuth Agent.
type OAuthAgent struct {
	BasePath              string       `yaml:"base_path"`
	ClientID              string       `yaml:"client_id"`
	ClientSecret          secret.Value `yaml:"client_secret"`
	ClientSecretFile      string       `yaml:"client_secret_file"`
	ClientAuth            ClientAuth   `yaml:"client_auth"`
	RedirectURI           string       `yaml:"redirect_uri"`
	PostLogoutRedirectURI string       `yaml:"post_logout_redirect_uri"`
	Scope                 string       `yaml:"scope"`
	TrustedWebOrigins     []string     `yaml:"trusted_web_origins"`
	AllowedExtraParams    []string     `yaml:"allowed_extra_params"`
	CORS                  CORS         `yaml:"cors"`
	LoginWindow           Duration     `yaml:"login_window"`
	RefreshReuseWindow    *Duration    `yaml:"refresh_reuse_window"`
	Logout                Logout       `yaml:"logout"`
	Cookie                Cookie       `yaml:"cookie"`
}

// ClientAuth selects how the agent authenticates at the token endpoint.
type ClientAuth struct {
	Method    string `yaml:"method"`    // client_secret_basic (default) | client_secret_post | private_key_jwt
	KeyFile   string `yaml:"key_file"`  // private_key_jwt: PEM private key (RSA, EC P-256/384/521 or Ed25519)
	KeyID     string `yaml:"key_id"`    // private_key_jwt: kid header; default the key's JWK thumbprint
	Algorithm string `yaml:"algorithm"` // private_key_jwt: default RS256 / ES256 / ES384 / ES512 / EdDSA by key type
}

// CORS configures cross-origin access for the trusted web origins.
type CORS struct {
	Enabled *bool `yaml:"enabled"` // default true; false for same-origin deployments
}

// Logout configures the logout endpoint.
type Logout struct {
	SendIDTokenHint bool `yaml:"send_id_token_hint"`
}

// Cookie configures the cookies the agent writes and the proxy reads.
type Cookie struct {
	NamePrefix          string         `yaml:"name_prefix"`
	Domain              string         `yaml:"domain"`
	Path                string         `yaml:"path"`
	InsecureHTTPCookies bool           `yaml:"insecure_http_cookies"`
	EncryptionKeys      []secret.Value `yaml:"encryption_keys"`
	EncryptionKeysFile  string         `yaml:"encryption_keys_file"`
}

// Route publishes an upstream API under a path prefix.
type Route struct {
	Name         string   `yaml:"name"`
	Path         string   `yaml:"path"`
	StripPrefix  bool     `yaml:"strip_prefix"`
	Methods      []string `yaml:"methods"`
	Upstream     string   `yaml:"upstream"`
	Timeout      Duration `yaml:"timeout"`
	MaxBodyBytes *int64   `yaml:"max_body_bytes"`
	Entry        []string `yaml:"entry"`
	// TokenFormat says how the caller's access token is checked: jwt
	// (verified against the provider's JWKS) or opaque (introspected). It is
	// never guessed; without it a cookie route forwards the token unchecked.
	TokenFormat string `yaml:"token_format"`
	// Audience is the aud incoming JWTs must contain and the aud of minted JWTs.
	Audience         string   `yaml:"audience"`
	Algorithms       []string `yaml:"algorithms"`
	AcceptUntypedJWT bool     `yaml:"accept_untyped_jwt"`
	Leeway           Duration `yaml:"leeway"`
	// Introspection overrides authorization_server.introspection for this route.
	Introspection *Introspection `yaml:"introspection"`
	Forward       string         `yaml:"forward"`
	// ForwardClaims are copied from the caller's token into minted JWTs.
	ForwardClaims []string `yaml:"forward_claims"`
	Require       *Require `yaml:"require"`
	Websocket     bool     `yaml:"websocket"`
	// MTLS configures the mtls entry.
	MTLS *RouteMTLS `yaml:"mtls"`
	// UpstreamTLS configures TLS to an https upstream (CA, client certificate).
	UpstreamTLS *UpstreamTLS `yaml:"upstream_tls"`
	// Exchange configures forward: exchange.
	Exchange *Exchange `yaml:"exchange"`
	// ClientCredentials configures forward: client_credentials.
	ClientCredentials *ClientCredentials `yaml:"client_credentials"`
}

// Duration is a time.Duration written as "30s", "10m".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Defaults.
const (
	DefaultListen             = ":8080"
	DefaultBasePath           = "/oauth-agent"
	DefaultScope              = "openid profile"
	DefaultNamePrefix         = "gatehouse"
	DefaultLoginWindow        = 10 * time.Minute
	DefaultRefreshReuseWindow = 30 * time.Second
	DefaultASTimeout          = 10 * time.Second
	DefaultRouteTimeout       = 30 * time.Second
	DefaultMaxBodyBytes       = 10 << 20
	DefaultReadHeaderTimeout  = 10 * time.Second
	DefaultIdleTimeout        = 120 * time.Second
	DefaultMaxHeaderBytes     = 64 << 10
	DefaultShutdownTimeout    = 30 * time.Second
	DefaultInternalJWTTTL     = 5 * time.Minute
	DefaultLeeway             = 30 * time.Second
	DefaultIntrospectionTTL   = 5 * time.Minute
	DefaultAPIKeyHeader       = "X-API-Key"
)

// CORSEnabled reports whether CORS is on (the default).
func (a *OAuthAgent) CORSEnabled() bool { return a.CORS.Enabled == nil || *a.CORS.Enabled }

// ReuseWindow returns the refresh reuse window.
func (a *OAuthAgent) ReuseWindow() time.Duration {
	if a.RefreshReuseWindow == nil {
		return DefaultRefreshReuseWindow
	}
	return a.RefreshReuseWindow.D()
}

// BodyLimit returns the route's body limit in bytes.
func (r *Route) BodyLimit() int64 {
	if r.MaxBodyBytes == nil {
		return DefaultMaxBodyBytes
	}
	return *r.MaxBodyBytes
}

// FieldError is one configuration problem.
type FieldError struct {
	Path string // e.g. routes[2].upstream
	Line int    // line in the file, 0 when unknown
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

// Warning is a problem that does not stop Gatehouse but deserves attention.
type Warning struct {
	Path, Msg string
}

func (w Warning) String() string { return w.Path + ": " + w.Msg }

// Options are the inputs of Load besides the file.
type Options struct {
	// Env looks up environment variables; default os.LookupEnv.
	Env func(string) (string, bool)
}

// Load reads, decodes and validates the configuration file at path. Relative
// *_file paths are resolved against the file's directory.
func Load(path string, opts Options) (*Config, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, filepath.Dir(path), opts)
}

// Parse decodes and validates configuration data. baseDir resolves relative
// *_file paths.
func Parse(data []byte, baseDir string, opts Options) (*Config, []Warning, error) {
	if opts.Env == nil {
		opts.Env = os.LookupEnv
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, fmt.Errorf("config: not valid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, nil, errors.New("config: the file holds more than one YAML document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, nil, errors.New("config: empty file")
	}
	cfg := &Config{}
	d := &decoder{env: opts.Env}
	d.decode("", doc.Content[0], reflect.ValueOf(cfg).Elem())
	v := &validator{baseDir: baseDir}
	v.readFiles(cfg)
	cfg.applyDefaults()
	v.validate(cfg)
	// Report decoding and validation problems together, except validation
	// problems of fields that already failed to decode (they would only repeat
	// them, e.g. "is required" for a value of the wrong type).
	errs := d.errs
	for _, e := range v.errs {
		var fe *FieldError
		if errors.As(e, &fe) && coveredBy(fe.Path, d.errs) {
			continue
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return nil, v.warnings, errors.Join(errs...)
	}
	return cfg, v.warnings, nil
}

// coveredBy reports whether path is, or is inside, the path of one of errs.
func coveredBy(path string, errs []error) bool {
	for _, e := range errs {
		var fe *FieldError
		if errors.As(e, &fe) && (path == fe.Path || strings.HasPrefix(path, fe.Path+".") || strings.HasPrefix(path, fe.Path+"[")) {
			return true
		}
	}
	return false
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Server.ReadHeaderTimeout == 0 {
		c.Server.ReadHeaderTimeout = Duration(DefaultReadHeaderTimeout)
	}
	if c.Server.IdleTimeout == 0 {
		c.Server.IdleTimeout = Duration(DefaultIdleTimeout)
	}
	if c.Server.MaxHeaderBytes == 0 {
		c.Server.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Server.ShutdownTimeout == 0 {
		c.Server.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	}
	if as := c.AuthorizationServer; as != nil && as.Timeout == 0 {
		as.Timeout = Duration(DefaultASTimeout)
	}
	if a := c.OAuthAgent; a != nil {
		if a.BasePath == "" {
			a.BasePath = DefaultBasePath
		}
		if a.Scope == "" {
			a.Scope = DefaultScope
		}
		if a.ClientAuth.Method == "" {
			a.ClientAuth.Method = "client_secret_basic"
		}
		if a.LoginWindow == 0 {
			a.LoginWindow = Duration(DefaultLoginWindow)
		}
		if a.Cookie.NamePrefix == "" {
			a.Cookie.NamePrefix = DefaultNamePrefix
		}
		if a.Cookie.Path == "" {
			a.Cookie.Path = "/"
		}
	}
	if j := c.InternalJWT; j != nil {
		if j.Algorithm == "" {
			j.Algorithm = "ES256"
		}
		if j.TTL == 0 {
			j.TTL = Duration(DefaultInternalJWTTTL)
		}
	}
	if as := c.AuthorizationServer; as != nil && as.Introspection != nil {
		as.Introspection.applyDefaults()
	}
	if as := c.AuthorizationServer; as != nil && as.TokenClient != nil && as.TokenClient.ClientAuth.Method == "" {
		as.TokenClient.ClientAuth.Method = "client_secret_basic"
	}
	if k := c.APIKeys; k != nil && k.Header == "" {
		k.Header = DefaultAPIKeyHeader
	}
	if k := c.APIKeys; k != nil && k.Store != nil {
		k.Store.applyDefaults()
	}
	if c.Vault != nil {
		c.Vault.applyDefaults()
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Introspection != nil {
			r.Introspection.applyDefaults()
		}
		if r.Leeway == 0 {
			r.Leeway = Duration(DefaultLeeway)
		}
		if r.Require != nil && r.Require.RolesClaim == "" {
			r.Require.RolesClaim = "roles"
		}
		if r.Timeout == 0 {
			r.Timeout = Duration(DefaultRouteTimeout)
		}
		if r.Forward == "" {
			r.Forward = "access_token"
		}
		if r.Name == "" {
			r.Name = r.Path
		}
		for j, m := range r.Methods {
			r.Methods[j] = strings.ToUpper(m)
		}
	}
}

func (i *Introspection) applyDefaults() {
	if i.ClientAuth.Method == "" {
		i.ClientAuth.Method = "client_secret_basic"
	}
	if i.Format == "" {
		i.Format = "json"
	}
	if i.MaxCacheTTL == 0 {
		i.MaxCacheTTL = Duration(DefaultIntrospectionTTL)
	}
}

// RouteIntrospection returns the introspection client of route r: its own or
// the global one (nil when neither is configured).
func (c *Config) RouteIntrospection(r *Route) *Introspection {
	if r.Introspection != nil {
		return r.Introspection
	}
	if c.AuthorizationServer != nil {
		return c.AuthorizationServer.Introspection
	}
	return nil
}

// HasEntry reports whether the route accepts entry e.
func (r *Route) HasEntry(e string) bool {
	for _, x := range r.Entry {
		if x == e {
			return true
		}
	}
	return false
}
