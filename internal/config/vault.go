package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/vault/provider"
)

// Vault configures the token vault: users' connections to third-party
// providers (/connections/...) and offline access for backend jobs (/vault/...).
type Vault struct {
	// Listen, when set, serves /vault/* on its own listener (and no longer
	// on the main one).
	Listen string `yaml:"listen"`
	// User says how the signed-in user is identified: the cookie session's
	// access token, checked like a route's.
	User VaultUser `yaml:"user"`
	// Keys seal tokens at rest; the first seals, all open.
	Keys  []VaultKey `yaml:"keys"`
	Store Store      `yaml:"store"`
	// ReturnURL is the SPA page the connect callback redirects to, with
	// ?connection=<provider>&result=connected|denied|failed.
	ReturnURL string `yaml:"return_url"`
	// RefreshAhead refreshes access tokens this long before they expire.
	RefreshAhead *Duration `yaml:"refresh_ahead"`
	// Audience is the aud jobs' client-credentials JWTs must contain.
	Audience  string                    `yaml:"audience"`
	Providers map[string]*VaultProvider `yaml:"providers"`
	Jobs      []VaultJob                `yaml:"jobs"`
	// JobEntries are how jobs authenticate: bearer (a client-credentials JWT
	// for Audience; the default) and/or apikey (an API key of api_keys whose
	// client_id names the job).
	JobEntries []string `yaml:"job_entries"`
}

// JobEntryNames returns the job entries, defaulting to bearer.
func (vc *Vault) JobEntryNames() []string {
	if len(vc.JobEntries) == 0 {
		return []string{"bearer"}
	}
	return vc.JobEntries
}

// VaultUser selects how the cookie session's access token is checked.
type VaultUser struct {
	TokenFormat      string         `yaml:"token_format"` // jwt | opaque
	Audience         string         `yaml:"audience"`
	Algorithms       []string       `yaml:"algorithms"`
	AcceptUntypedJWT bool           `yaml:"accept_untyped_jwt"`
	Leeway           Duration       `yaml:"leeway"`
	Introspection    *Introspection `yaml:"introspection"`
}

// VaultKey is one sealing key with its id (stored with every sealed value).
type VaultKey struct {
	ID      string       `yaml:"id"`
	Key     secret.Value `yaml:"key"`
	KeyFile string       `yaml:"key_file"`
}

// Store selects a database: vault.store (the vault's connections) and
// api_keys.store (keys created at run time). Both may name one database.
type Store struct {
	Driver  string       `yaml:"driver"` // sqlite (default) | postgres
	Path    string       `yaml:"path"`   // sqlite: the database file
	DSN     secret.Value `yaml:"dsn"`    // postgres: connection string
	DSNFile string       `yaml:"dsn_file"`
}

// VaultProvider is a third-party OAuth provider users connect to.
type VaultProvider struct {
	// Preset fills the endpoints, API base URL, client authentication and
	// quirks of a well-known provider: github, google, microsoft or slack.
	Preset                string       `yaml:"preset"`
	Issuer                string       `yaml:"issuer"`
	AuthorizationEndpoint string       `yaml:"authorization_endpoint"`
	TokenEndpoint         string       `yaml:"token_endpoint"`
	RevocationEndpoint    string       `yaml:"revocation_endpoint"`
	APIBaseURL            string       `yaml:"api_base_url"`
	Tenant                string       `yaml:"tenant"`
	ClientID              string       `yaml:"client_id"`
	ClientSecret          secret.Value `yaml:"client_secret"`
	ClientSecretFile      string       `yaml:"client_secret_file"`
	ClientAuth            ClientAuth   `yaml:"client_auth"`
	Scopes                []string     `yaml:"scopes"`
	PKCE                  *bool        `yaml:"pkce"`
	// Quirks replace the preset's list when given.
	Quirks              []string          `yaml:"quirks"`
	AuthorizationParams map[string]string `yaml:"authorization_params"`
	Timeout             Duration          `yaml:"timeout"`
	MaxBodyBytes        *int64            `yaml:"max_body_bytes"`
	InsecureAllowHTTP   bool              `yaml:"insecure_allow_http"`
}

// VaultJob entitles a backend job (an OAuth client of the authorization
// server) to users' connections.
type VaultJob struct {
	ClientID string `yaml:"client_id"`
	// Scopes the job's access token must carry (all of them).
	Scopes    []string      `yaml:"scopes"`
	Providers []string      `yaml:"providers"`
	Users     VaultJobUsers `yaml:"users"`
}

// VaultJobUsers selects the users whose connections a job may use: all of
// them, or those whose Claim (recorded when they connected) has one of Values.
type VaultJobUsers struct {
	All    bool     `yaml:"all"`
	Claim  string   `yaml:"claim"`
	Values []string `yaml:"values"`
}

// Vault defaults and limits.
const (
	DefaultVaultRefreshAhead  = 60 * time.Second
	DefaultVaultTimeout       = 10 * time.Second
	DefaultVaultMaxBodyBytes  = 10 << 20
	MaxVaultRefreshAhead      = 10 * time.Minute
	VaultConnectionsPath      = "/connections"
	VaultJobsPath             = "/vault"
	vaultKeyIDMaxLen          = 64
	vaultProviderNameMaxLen   = 64
	defaultVaultClientAuthHow = "client_secret_basic"
)

// PKCEEnabled reports whether PKCE is on (the default).
func (p *VaultProvider) PKCEEnabled() bool { return p.PKCE == nil || *p.PKCE }

// BodyLimit returns the largest request body proxied to the provider.
func (p *VaultProvider) BodyLimit() int64 {
	if p.MaxBodyBytes == nil {
		return DefaultVaultMaxBodyBytes
	}
	return *p.MaxBodyBytes
}

// Ahead returns how long before expiry access tokens are refreshed.
func (v *Vault) Ahead() time.Duration {
	if v.RefreshAhead == nil {
		return DefaultVaultRefreshAhead
	}
	return v.RefreshAhead.D()
}

// UserRoute returns the vault's user check in the shape of a route, so that
// it is built exactly like a route's token check.
func (v *Vault) UserRoute() *Route {
	return &Route{
		Name: "vault.user", TokenFormat: v.User.TokenFormat, Audience: v.User.Audience,
		Algorithms: v.User.Algorithms, AcceptUntypedJWT: v.User.AcceptUntypedJWT,
		Leeway: v.User.Leeway, Introspection: v.User.Introspection,
	}
}

// JobRoute returns the check of jobs' access tokens in the shape of a route.
func (v *Vault) JobRoute() *Route {
	return &Route{Name: "vault.jobs", TokenFormat: "jwt", Audience: v.Audience, Leeway: Duration(DefaultLeeway)}
}

// ProviderNames returns the providers' names, sorted.
func (v *Vault) ProviderNames() []string {
	names := make([]string, 0, len(v.Providers))
	for n := range v.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CallbackPath returns the connect callback path of provider name.
func CallbackPath(name string) string { return VaultConnectionsPath + "/" + name + "/callback" }

func (v *validator) readVaultFiles(c *Config) {
	vc := c.Vault
	if vc == nil {
		return
	}
	for i := range vc.Keys {
		k := &vc.Keys[i]
		if k.KeyFile == "" {
			continue
		}
		p := fmt.Sprintf("vault.keys[%d].key_file", i)
		if !k.Key.IsZero() {
			v.fail(p, "set either key or key_file, not both")
		} else if b, err := os.ReadFile(v.file(k.KeyFile)); err != nil {
			v.fail(p, "cannot read: %v", err)
		} else {
			k.Key = secret.New(strings.TrimSpace(string(b)))
		}
	}
	v.readStoreFiles("vault.store.", &vc.Store)
	if vc.User.Introspection != nil {
		v.readSecret("vault.user.introspection", &vc.User.Introspection.ClientSecret, vc.User.Introspection.ClientSecretFile)
	}
	for _, name := range vc.ProviderNames() {
		if p := vc.Providers[name]; p != nil {
			v.readSecret(fmt.Sprintf("vault.providers[%q]", name), &p.ClientSecret, p.ClientSecretFile)
		}
	}
}

// readStoreFiles fills the DSN of a store from dsn_file; pre is the
// store's field path with a trailing dot.
func (v *validator) readStoreFiles(pre string, sc *Store) {
	f := sc.DSNFile
	if f == "" {
		return
	}
	if !sc.DSN.IsZero() {
		v.fail(pre+"dsn_file", "set either dsn or dsn_file, not both")
	} else if b, err := os.ReadFile(v.file(f)); err != nil {
		v.fail(pre+"dsn_file", "cannot read: %v", err)
	} else {
		sc.DSN = secret.New(strings.TrimSpace(string(b)))
	}
}

func (sc *Store) applyDefaults() {
	if sc.Driver == "" {
		sc.Driver = "sqlite"
	}
}

func (vc *Vault) applyDefaults() {
	vc.Store.applyDefaults()
	if vc.User.Leeway == 0 {
		vc.User.Leeway = Duration(DefaultLeeway)
	}
	if vc.User.Introspection != nil {
		vc.User.Introspection.applyDefaults()
	}
	for _, p := range vc.Providers {
		if p == nil {
			continue
		}
		if ps, ok := provider.LookupPreset(p.Preset); ok {
			fill := func(dst *string, src string) {
				if *dst == "" {
					*dst = src
				}
			}
			// With an issuer the endpoints are discovered; a preset's own
			// endpoints would hide the discovered ones.
			if p.Issuer == "" {
				fill(&p.AuthorizationEndpoint, ps.AuthorizationEndpoint)
				fill(&p.TokenEndpoint, ps.TokenEndpoint)
				fill(&p.RevocationEndpoint, ps.RevocationEndpoint)
			}
			fill(&p.APIBaseURL, ps.APIBaseURL)
			fill(&p.ClientAuth.Method, ps.AuthMethod)
			fill(&p.Tenant, ps.Tenant)
			if p.Quirks == nil {
				for _, q := range ps.Quirks {
					p.Quirks = append(p.Quirks, string(q))
				}
			}
		}
		if p.ClientAuth.Method == "" {
			p.ClientAuth.Method = defaultVaultClientAuthHow
		}
		if p.Timeout == 0 {
			p.Timeout = Duration(DefaultVaultTimeout)
		}
	}
}

var (
	providerNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	keyIDRE        = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

// Authorization request parameters Gatehouse sets itself.
var reservedVaultParams = []string{"response_type", "client_id", "redirect_uri", "state", "scope", "user_scope",
	"code_challenge", "code_challenge_method", "access_type", "prompt", "request", "request_uri", "response_mode"}

func (v *validator) validateVault(c *Config) {
	vc := c.Vault
	const pre = "vault."
	if c.OAuthAgent == nil {
		v.fail("vault", "needs oauth_agent: users are identified by the cookie session")
	}
	if c.AuthorizationServer == nil {
		v.fail("vault", "needs authorization_server: the session's and jobs' access tokens are checked against it")
	}
	if vc.Listen != "" {
		if _, _, err := net.SplitHostPort(vc.Listen); err != nil {
			v.fail(pre+"listen", "must be host:port or :port, got %q", vc.Listen)
		} else if vc.Listen == c.Listen {
			v.fail(pre+"listen", "must differ from listen (leave it empty to serve /vault on the main listener)")
		}
	}
	v.validateVaultUser(c, vc)
	v.validateVaultKeys(vc.Keys)
	v.validateStore("vault.store.", vc.Store)
	if u := v.url(pre+"return_url", vc.ReturnURL, true, true); u != nil && c.OAuthAgent != nil &&
		!slices.Contains(c.OAuthAgent.TrustedWebOrigins, origin(u)) {
		v.warn(pre+"return_url", "its origin %s is not in oauth_agent.trusted_web_origins; it should be a page of the SPA", origin(u))
	}
	if a := vc.Ahead(); a < 0 || a > MaxVaultRefreshAhead {
		v.fail(pre+"refresh_ahead", "must be between 0s and 10m")
	}
	if len(vc.Providers) == 0 {
		v.fail(pre+"providers", "at least one provider is required")
	}
	for _, name := range vc.ProviderNames() {
		v.validateVaultProvider(name, vc.Providers[name])
	}
	bearerJobs := false
	for i, e := range vc.JobEntries {
		p := fmt.Sprintf("%sjob_entries[%d]", pre, i)
		switch {
		case e == "bearer":
			bearerJobs = true
		case e == "apikey":
			if c.APIKeys == nil {
				v.fail(p, "apikey needs api_keys (the keys jobs present)")
			}
		default:
			v.fail(p, "must be bearer or apikey, got %q", e)
		}
	}
	if len(vc.JobEntries) == 0 {
		bearerJobs = true
	}
	if len(vc.JobEntries) > 0 && len(vc.Jobs) == 0 {
		v.fail(pre+"job_entries", "is only used with jobs")
	}
	if len(vc.Jobs) > 0 && bearerJobs && vc.Audience == "" {
		v.fail(pre+"audience", "is required with jobs (the aud of the jobs' access tokens)")
	}
	if vc.Audience != "" && len(vc.Jobs) == 0 {
		v.fail(pre+"audience", "is only used with jobs")
	}
	seen := map[string]int{}
	for i, j := range vc.Jobs {
		p := fmt.Sprintf("%sjobs[%d].", pre, i)
		if j.ClientID == "" {
			v.fail(p+"client_id", "is required (the job's client id at the authorization server)")
		} else if k, ok := seen[j.ClientID]; ok {
			v.fail(p+"client_id", "%q is also the client_id of vault.jobs[%d]", j.ClientID, k)
		}
		seen[j.ClientID] = i
		for k, s := range j.Scopes {
			if !validScope(s) {
				v.fail(fmt.Sprintf("%sscopes[%d]", p, k), "%q is not a valid scope", s)
			}
		}
		if len(j.Providers) == 0 {
			v.fail(p+"providers", "at least one provider is required")
		}
		for k, name := range j.Providers {
			if _, ok := vc.Providers[name]; !ok {
				v.fail(fmt.Sprintf("%sproviders[%d]", p, k), "%q is not one of vault.providers", name)
			}
		}
		switch u := j.Users; {
		case u.All && (u.Claim != "" || len(u.Values) > 0):
			v.fail(p+"users", "set either all: true or claim and values, not both")
		case !u.All && u.Claim == "":
			v.fail(p+"users", "is required: all: true, or a claim and its values")
		case !u.All && len(u.Values) == 0:
			v.fail(p+"users.values", "at least one value is required")
		}
	}
}

func (v *validator) validateVaultUser(c *Config, vc *Vault) {
	const pre = "vault.user."
	u := vc.User
	switch u.TokenFormat {
	case "jwt":
		if u.Audience == "" {
			v.fail(pre+"audience", "is required with token_format jwt (the aud of the session's access tokens)")
		}
		if u.Introspection != nil {
			v.fail(pre+"introspection", "is only used with token_format opaque")
		}
	case "opaque":
		if u.Audience != "" || len(u.Algorithms) > 0 || u.AcceptUntypedJWT {
			v.fail(pre+"token_format", "audience, algorithms and accept_untyped_jwt apply only to token_format jwt")
		}
		if u.Introspection != nil {
			v.validateIntrospection(pre+"introspection", u.Introspection)
		} else if c.AuthorizationServer != nil && c.AuthorizationServer.Introspection == nil {
			v.fail(pre+"introspection", "token_format opaque needs an introspection client: set authorization_server.introspection or vault.user.introspection")
		}
	case "":
		v.fail(pre+"token_format", "is required: jwt or opaque (the user is identified from a validated access token)")
	default:
		v.fail(pre+"token_format", "must be jwt or opaque, got %q", u.TokenFormat)
	}
	for j, a := range u.Algorithms {
		if !slices.Contains(allowedAlgorithms, a) {
			v.fail(fmt.Sprintf("%salgorithms[%d]", pre, j), "%q is not allowed (allowed: %s; never none or HMAC)", a, strings.Join(allowedAlgorithms, ", "))
		}
	}
	if l := u.Leeway.D(); l < 0 || l > maxRouteLeeway {
		v.fail(pre+"leeway", "must be between 0s and 60s")
	}
}

func (v *validator) validateVaultKeys(keys []VaultKey) {
	if len(keys) == 0 {
		v.fail("vault.keys", "at least one key is required ({id, key}; the key as 64 hex characters from `gatehouse keys generate`)")
	}
	ids := map[string]bool{}
	seen := map[seal.Key]bool{}
	for i, k := range keys {
		p := fmt.Sprintf("vault.keys[%d]", i)
		switch {
		case k.ID == "":
			v.fail(p+".id", "is required (stored with every value the key seals)")
		case len(k.ID) > vaultKeyIDMaxLen || !keyIDRE.MatchString(k.ID):
			v.fail(p+".id", "must be 1 to 64 characters of letters, digits, '.', '_' and '-', got %q", k.ID)
		case ids[k.ID]:
			v.fail(p+".id", "duplicate id %q", k.ID)
		}
		ids[k.ID] = true
		if k.Key.IsZero() {
			if k.KeyFile == "" {
				v.fail(p+".key", "is required (or key_file)")
			}
			continue
		}
		key, err := seal.ParseKey(k.Key.Reveal())
		if err != nil {
			v.fail(p+".key", "must be 64 hexadecimal characters (%d characters given)", k.Key.Len())
			continue
		}
		if w := key.Weak(); w != "" {
			v.fail(p+".key", "weak key: %s", w)
		}
		if slices.Contains(publishedKeys, key.String()) {
			v.fail(p+".key", "this key is published in public documentation or test suites; generate your own")
		}
		if seen[key] {
			v.fail(p+".key", "duplicate key")
		}
		seen[key] = true
	}
}

// validateStore checks a store's settings; pre is its field path with a
// trailing dot.
func (v *validator) validateStore(pre string, s Store) {
	switch s.Driver {
	case "sqlite":
		if s.Path == "" {
			v.fail(pre+"path", "is required with driver sqlite (the database file)")
		}
		if !s.DSN.IsZero() {
			v.fail(pre+"dsn", "is only used with driver postgres")
		}
	case "postgres":
		if s.DSN.IsZero() {
			v.fail(pre+"dsn", "is required with driver postgres (or dsn_file), e.g. \"${DATABASE_URL}\"")
		}
		if s.Path != "" {
			v.fail(pre+"path", "is only used with driver sqlite")
		}
	default:
		v.fail(pre+"driver", "must be sqlite or postgres, got %q", s.Driver)
	}
}

func (v *validator) validateVaultProvider(name string, p *VaultProvider) {
	pre := fmt.Sprintf("vault.providers[%q].", name)
	if len(name) > vaultProviderNameMaxLen || !providerNameRE.MatchString(name) {
		v.fail(strings.TrimSuffix(pre, "."), "the name must be 1 to 64 lower-case letters, digits, '-' and '_' (it is a path segment), got %q", name)
	}
	if p == nil {
		v.fail(strings.TrimSuffix(pre, "."), "must be a mapping of the provider's settings")
		return
	}
	if p.Preset != "" {
		if _, ok := provider.LookupPreset(p.Preset); !ok {
			v.fail(pre+"preset", "%q is not a preset (presets: %s)", p.Preset, strings.Join(provider.PresetNames, ", "))
		}
	}
	check := func(field, raw string, required bool) *url.URL {
		u := v.url(pre+field, raw, required, true)
		if u != nil && u.Scheme == "http" && !p.InsecureAllowHTTP && !isLoopback(u.Hostname()) {
			v.fail(pre+field, "must use https (set insecure_allow_http for a development provider)")
			return nil
		}
		return u
	}
	if p.Issuer != "" {
		check("issuer", p.Issuer, true)
	} else {
		if p.AuthorizationEndpoint == "" || p.TokenEndpoint == "" {
			v.fail(pre+"issuer", "set issuer (OIDC discovery), or authorization_endpoint and token_endpoint, or a preset")
		}
	}
	for field, raw := range map[string]string{
		"authorization_endpoint": p.AuthorizationEndpoint,
		"token_endpoint":         p.TokenEndpoint,
		"revocation_endpoint":    p.RevocationEndpoint,
	} {
		if raw != "" {
			check(field, strings.ReplaceAll(raw, provider.TenantPlaceholder, "tenant"), false)
		}
	}
	if api := check("api_base_url", p.APIBaseURL, true); api != nil {
		if api.RawQuery != "" || api.ForceQuery {
			v.fail(pre+"api_base_url", "must not contain a query")
		} else if strings.HasSuffix(api.Path, "/") && api.Path != "/" {
			v.fail(pre+"api_base_url", "must not end with a slash")
		} else if api.Path != "" && !validPathPrefix(api.Path) {
			v.fail(pre+"api_base_url", "must have a canonical path, got %q", api.Path)
		}
	}
	if p.ClientID == "" {
		v.fail(pre+"client_id", "is required (Gatehouse's client at the provider)")
	}
	v.validateClientAuth(strings.TrimSuffix(pre, "."), p.ClientAuth, p.ClientSecret)
	quirks := map[string]bool{}
	for i, q := range p.Quirks {
		fp := fmt.Sprintf("%squirks[%d]", pre, i)
		switch {
		case !provider.KnownQuirk(q):
			names := make([]string, len(provider.Quirks))
			for j, k := range provider.Quirks {
				names[j] = string(k)
			}
			v.fail(fp, "%q is not a known quirk (known: %s)", q, strings.Join(names, ", "))
		case quirks[q]:
			v.fail(fp, "%q is listed twice", q)
		}
		quirks[q] = true
	}
	tenantURL := strings.Contains(p.AuthorizationEndpoint+p.TokenEndpoint+p.RevocationEndpoint, provider.TenantPlaceholder)
	switch {
	case quirks[string(provider.TenantInURL)] && p.Tenant == "":
		v.fail(pre+"tenant", "is required with the tenant_in_url quirk")
	case quirks[string(provider.TenantInURL)] && p.Tenant != "" && !isToken(p.Tenant):
		v.fail(pre+"tenant", "%q is not a valid tenant (a domain name or a GUID, or common, organizations, consumers)", p.Tenant)
	case tenantURL && !quirks[string(provider.TenantInURL)]:
		v.fail(pre+"quirks", "the endpoints contain {tenant}; add the tenant_in_url quirk")
	case !tenantURL && p.Tenant != "":
		v.fail(pre+"tenant", "is only used with endpoints that contain {tenant} (tenant_in_url)")
	}
	for i, s := range p.Scopes {
		if !validScope(s) || (quirks[string(provider.CommaSeparatedScopes)] && strings.Contains(s, ",")) {
			v.fail(fmt.Sprintf("%sscopes[%d]", pre, i), "%q is not a valid scope", s)
		}
	}
	for k := range p.AuthorizationParams {
		if !isToken(k) || slices.Contains(reservedVaultParams, k) || strings.HasPrefix(k, "code_challenge") {
			v.fail(fmt.Sprintf("%sauthorization_params[%q]", pre, k), "cannot be set: Gatehouse sets it itself, or it is not a parameter name")
		}
	}
	if t := p.Timeout.D(); t < time.Second || t > time.Minute {
		v.fail(pre+"timeout", "must be between 1s and 1m")
	}
	if p.BodyLimit() < 0 {
		v.fail(pre+"max_body_bytes", "must not be negative")
	}
	if p.InsecureAllowHTTP {
		v.warn(pre+"insecure_allow_http", "plain http to a provider exposes codes and tokens on the network")
	}
}

func validScope(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\r\n\"\\")
}
