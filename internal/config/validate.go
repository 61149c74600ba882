package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"

	"github.com/gatehouse-dev/gatehouse/internal/keyfile"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

type validator struct {
	baseDir  string
	errs     []error
	warnings []Warning
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) warn(path, format string, args ...any) {
	v.warnings = append(v.warnings, Warning{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// ReservedPaths are Gatehouse's own path prefixes besides the agent's base path.
var ReservedPaths = []string{"/.well-known", "/connections", "/vault", "/healthz", "/readyz"}

// Entries and forwards implemented by this version.
var (
	knownEntries      = []string{"cookie", "bearer", "apikey", "mtls", "anonymous"}
	knownForwards     = []string{"access_token", "phantom", "internal_jwt", "exchange", "client_credentials"}
	knownTokenFormats = []string{"jwt", "opaque"}
	knownIntroFormats = []string{"json", "jwt", "rfc9701"}
	allowedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	mintAlgorithms    = []string{"ES256", "EdDSA"}
	maxInternalJWTTTL = 5 * time.Minute
	maxRouteLeeway    = 60 * time.Second
)

// Parameters the agent sets itself; allowed_extra_params may not name them.
var reservedAuthParams = []string{"redirect_uri", "state", "nonce", "code_challenge", "code_challenge_method", "response_type", "response_mode", "scope", "client_id", "request", "request_uri"}

func reservedAuthParam(p string) bool {
	return slices.Contains(reservedAuthParams, p) || strings.HasPrefix(p, "code_challenge") ||
		strings.HasPrefix(p, "response_") || strings.HasPrefix(p, "request")
}

// Keys published in documentation and test suites; never accept them.
var publishedKeys = []string{
	"4e4636356d65563e4c73233847503e3b21436e6f7629724950526f4b5e2e4e50",
	"7b99279ab87533d3c238db874a842a91ee26a76027f3c03c317504963d2c9926",
}

func (v *validator) file(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(v.baseDir, p)
}

// readFiles fills secrets from their *_file forms before defaults and checks.
func (v *validator) readFiles(c *Config) {
	if as := c.AuthorizationServer; as != nil && as.Introspection != nil {
		v.readSecret("authorization_server.introspection", &as.Introspection.ClientSecret, as.Introspection.ClientSecretFile)
	}
	for i := range c.Routes {
		if in := c.Routes[i].Introspection; in != nil {
			v.readSecret(fmt.Sprintf("routes[%d].introspection", i), &in.ClientSecret, in.ClientSecretFile)
		}
	}
	if as := c.AuthorizationServer; as != nil && as.TokenClient != nil {
		v.readSecret("authorization_server.token_client", &as.TokenClient.ClientSecret, as.TokenClient.ClientSecretFile)
	}
	v.readVaultFiles(c)
	if k := c.APIKeys; k != nil && k.Store != nil {
		v.readStoreFiles("api_keys.store.", k.Store)
	}
	a := c.OAuthAgent
	if a == nil {
		return
	}
	if a.ClientSecretFile != "" {
		if !a.ClientSecret.IsZero() {
			v.fail("oauth_agent.client_secret_file", "set either client_secret or client_secret_file, not both")
		} else if b, err := os.ReadFile(v.file(a.ClientSecretFile)); err != nil {
			v.fail("oauth_agent.client_secret_file", "cannot read: %v", err)
		} else {
			a.ClientSecret = secret.New(strings.TrimRight(string(b), "\r\n"))
		}
	}
	if f := a.Cookie.EncryptionKeysFile; f != "" {
		if len(a.Cookie.EncryptionKeys) > 0 {
			v.fail("oauth_agent.cookie.encryption_keys_file", "set either encryption_keys or encryption_keys_file, not both")
		} else if b, err := os.ReadFile(v.file(f)); err != nil {
			v.fail("oauth_agent.cookie.encryption_keys_file", "cannot read: %v", err)
		} else {
			for _, line := range strings.Split(string(b), "\n") {
				line = strings.TrimSpace(line)
				if line != "" && !strings.HasPrefix(line, "#") {
					a.Cookie.EncryptionKeys = append(a.Cookie.EncryptionKeys, secret.New(line))
				}
			}
		}
	}
}

// readSecret fills dst from file (the *_file form of a client secret).
func (v *validator) readSecret(pre string, dst *secret.Value, file string) {
	if file == "" {
		return
	}
	if !dst.IsZero() {
		v.fail(pre+".client_secret_file", "set either client_secret or client_secret_file, not both")
		return
	}
	b, err := os.ReadFile(v.file(file))
	if err != nil {
		v.fail(pre+".client_secret_file", "cannot read: %v", err)
		return
	}
	*dst = secret.New(strings.TrimRight(string(b), "\r\n"))
}

func (v *validator) validate(c *Config) {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		v.fail("listen", "must be host:port or :port, got %q", c.Listen)
	}
	public := v.url("public_url", c.PublicURL, true, false)
	if public != nil {
		if public.Path != "" && public.Path != "/" {
			v.fail("public_url", "must not have a path (Gatehouse serves from the root of its host)")
		}
		if public.Scheme == "http" {
			if isLoopback(public.Hostname()) {
				v.warn("public_url", "plain http is only for local development")
			} else {
				v.fail("public_url", "must use https (plain http is accepted only for localhost)")
			}
		}
	}
	for i, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				v.fail(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not an IP address or CIDR prefix", p)
			}
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		v.fail("tls", "set both cert_file and key_file, or neither")
	}
	for p, f := range map[string]string{"tls.cert_file": c.TLS.CertFile, "tls.key_file": c.TLS.KeyFile} {
		if f != "" {
			if _, err := os.Stat(v.file(f)); err != nil {
				v.fail(p, "cannot read: %v", err)
			}
		}
	}
	v.validateClientCA(c.TLS)
	if c.APIKeys != nil {
		v.validateAPIKeys(c.APIKeys, c.OAuthAgent)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		v.fail("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Server.MaxHeaderBytes < 8<<10 || c.Server.MaxHeaderBytes > 1<<20 {
		v.fail("server.max_header_bytes", "must be between 8192 and 1048576")
	}
	if c.AuthorizationServer != nil {
		v.validateAS(c.AuthorizationServer)
	}
	if c.OAuthAgent != nil {
		if c.AuthorizationServer == nil {
			v.fail("authorization_server", "is required when oauth_agent is configured")
		}
		v.validateAgent(c.OAuthAgent, public)
	}
	if c.InternalJWT != nil {
		v.validateInternalJWT(c.InternalJWT)
	}
	v.validateRoutes(c)
	if c.Vault != nil {
		v.validateVault(c)
	}
}

func (v *validator) validateAS(as *AuthorizationServer) {
	allowHTTP := as.InsecureAllowHTTP
	if v.asURL("authorization_server.issuer", as.Issuer, true, allowHTTP) != nil && as.InsecureAllowHTTP {
		v.warn("authorization_server.insecure_allow_http", "plain http to the authorization server exposes codes and tokens on the network")
	}
	for p, u := range map[string]string{
		"authorization_endpoint": as.AuthorizationEndpoint,
		"token_endpoint":         as.TokenEndpoint,
		"userinfo_endpoint":      as.UserinfoEndpoint,
		"end_session_endpoint":   as.EndSessionEndpoint,
		"revocation_endpoint":    as.RevocationEndpoint,
		"jwks_uri":               as.JWKSURI,
		"introspection_endpoint": as.IntrospectionEndpoint,
	} {
		if u != "" {
			v.asURL("authorization_server."+p, u, false, allowHTTP)
		}
	}
	if as.Timeout.D() < time.Second || as.Timeout.D() > time.Minute {
		v.fail("authorization_server.timeout", "must be between 1s and 1m")
	}
	if as.Introspection != nil {
		v.validateIntrospection("authorization_server.introspection", as.Introspection)
	}
	if tc := as.TokenClient; tc != nil {
		if tc.ClientID == "" {
			v.fail("authorization_server.token_client.client_id", "is required (Gatehouse's own client at the token endpoint)")
		}
		v.validateClientAuth("authorization_server.token_client", tc.ClientAuth, tc.ClientSecret)
	}
}

func (v *validator) validateIntrospection(pre string, in *Introspection) {
	if in.ClientID == "" {
		v.fail(pre+".client_id", "is required (Gatehouse's own client at the introspection endpoint)")
	}
	v.validateClientAuth(pre, in.ClientAuth, in.ClientSecret)
	if !slices.Contains(knownIntroFormats, in.Format) {
		v.fail(pre+".format", "must be json, jwt or rfc9701, got %q", in.Format)
	}
	if t := in.MaxCacheTTL.D(); t < time.Second || t > time.Hour {
		v.fail(pre+".max_cache_ttl", "must be between 1s and 1h")
	}
}

// validateClientAuth checks a client authentication block whose secret is
// held next to it (pre.client_secret).
func (v *validator) validateClientAuth(pre string, ca ClientAuth, sec secret.Value) {
	switch ca.Method {
	case "client_secret_basic", "client_secret_post":
		if sec.IsZero() {
			v.fail(pre+".client_secret", "is required for client_auth.method %s (or use client_secret_file)", ca.Method)
		}
		if ca.KeyFile != "" {
			v.fail(pre+".client_auth.key_file", "is only used with method private_key_jwt")
		}
	case "private_key_jwt":
		if !sec.IsZero() {
			v.fail(pre+".client_secret", "must not be set with client_auth.method private_key_jwt")
		}
		if ca.KeyFile == "" {
			v.fail(pre+".client_auth.key_file", "is required for method private_key_jwt")
		} else if b, err := os.ReadFile(v.file(ca.KeyFile)); err != nil {
			v.fail(pre+".client_auth.key_file", "cannot read: %v", err)
		} else if k, err := keyfile.ParsePrivateKey(b); err != nil {
			v.fail(pre+".client_auth.key_file", "%v", err)
		} else if _, err := keyfile.CheckAlgorithm(k, ca.Algorithm); err != nil {
			v.fail(pre+".client_auth.algorithm", "%v", err)
		}
	default:
		v.fail(pre+".client_auth.method", "must be client_secret_basic, client_secret_post or private_key_jwt, got %q", ca.Method)
	}
}

func (v *validator) validateInternalJWT(j *InternalJWT) {
	const pre = "internal_jwt."
	if !slices.Contains(mintAlgorithms, j.Algorithm) {
		v.fail(pre+"algorithm", "must be ES256 or EdDSA, got %q", j.Algorithm)
	}
	if t := j.TTL.D(); t < time.Second || t > maxInternalJWTTTL {
		v.fail(pre+"ttl", "must be between 1s and 5m")
	}
	if j.KeyFile == "" {
		v.fail(pre+"key_file", "is required (the file is created with a new key when it does not exist)")
	} else if b, err := os.ReadFile(v.file(j.KeyFile)); err == nil {
		v.checkMintKey(pre+"key_file", b)
	} else if !os.IsNotExist(err) {
		v.fail(pre+"key_file", "cannot read: %v", err)
	} else if st, err := os.Stat(filepath.Dir(v.file(j.KeyFile))); err != nil || !st.IsDir() {
		v.fail(pre+"key_file", "does not exist and its directory %s cannot hold a new key", filepath.Dir(v.file(j.KeyFile)))
	}
	for i, f := range j.PreviousKeyFiles {
		p := fmt.Sprintf("%sprevious_key_files[%d]", pre, i)
		if b, err := os.ReadFile(v.file(f)); err != nil {
			v.fail(p, "cannot read: %v", err)
		} else {
			v.checkMintKey(p, b)
		}
	}
}

func (v *validator) checkMintKey(p string, pemData []byte) {
	k, err := keyfile.ParsePrivateKey(pemData)
	if err != nil {
		v.fail(p, "%v", err)
		return
	}
	algs, _ := keyfile.Algorithms(k)
	if len(algs) == 0 || !slices.Contains(mintAlgorithms, algs[0]) {
		v.fail(p, "must be an EC P-256 (ES256) or Ed25519 (EdDSA) key")
	}
}

// asURL checks a URL of the authorization server: https, or http for loopback
// hosts or when explicitly allowed.
func (v *validator) asURL(p, raw string, required, allowHTTP bool) *url.URL {
	u := v.url(p, raw, required, true)
	if u != nil && u.Scheme == "http" && !allowHTTP && !isLoopback(u.Hostname()) {
		v.fail(p, "must use https (set authorization_server.insecure_allow_http for a development provider)")
		return nil
	}
	return u
}

// url checks an absolute http(s) URL without userinfo or fragment.
func (v *validator) url(p, raw string, required, allowQuery bool) *url.URL {
	if raw == "" {
		if required {
			v.fail(p, "is required")
		}
		return nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.fail(p, "is not a valid URL: %v", err)
	case u.Scheme != "https" && u.Scheme != "http":
		v.fail(p, "must be an absolute http or https URL, got %q", raw)
	case u.Host == "" || u.Hostname() == "":
		v.fail(p, "must include a host, got %q", raw)
	case u.User != nil:
		v.fail(p, "must not contain user information")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		v.fail(p, "must not contain a fragment")
	case !allowQuery && (u.RawQuery != "" || u.ForceQuery):
		v.fail(p, "must not contain a query")
	default:
		return u
	}
	return nil
}

func (v *validator) validateAgent(a *OAuthAgent, public *url.URL) {
	const pre = "oauth_agent."
	if !validPathPrefix(a.BasePath) || a.BasePath == "/" {
		v.fail(pre+"base_path", "must be a canonical path like /oauth-agent (leading slash, no trailing slash, no . or .. segments), got %q", a.BasePath)
	}
	if a.ClientID == "" {
		v.fail(pre+"client_id", "is required")
	}
	v.validateClientAuth("oauth_agent", a.ClientAuth, a.ClientSecret)
	redirect := v.url(pre+"redirect_uri", a.RedirectURI, true, true)
	v.url(pre+"post_logout_redirect_uri", a.PostLogoutRedirectURI, false, true)
	if !slices.Contains(strings.Fields(a.Scope), "openid") {
		v.fail(pre+"scope", "must include openid (the agent verifies ID tokens), got %q", a.Scope)
	}
	if len(a.TrustedWebOrigins) == 0 {
		v.fail(pre+"trusted_web_origins", "at least one origin is required (the origin of the SPA)")
	}
	for i, o := range a.TrustedWebOrigins {
		p := fmt.Sprintf("%strusted_web_origins[%d]", pre, i)
		u, err := url.Parse(o)
		switch {
		case o == "*" || o == "null":
			v.fail(p, "%q is not allowed; list the exact origins of your SPA", o)
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil:
			v.fail(p, "%q is not an origin like https://www.example.com", o)
		case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "/"):
			v.fail(p, "%q must be an origin without path or trailing slash, like https://www.example.com", o)
		case o != strings.ToLower(o):
			v.fail(p, "%q must be lower case (browsers send origins in lower case)", o)
		case public != nil && !sameSite(u, public):
			v.fail(p, "%q is not same-site with public_url %q: the browser would not send SameSite=Strict cookies", o, public.String())
		}
	}
	if redirect != nil && !slices.Contains(a.TrustedWebOrigins, origin(redirect)) {
		v.warn(pre+"redirect_uri", "its origin %s is not in trusted_web_origins; the SPA at the redirect URI calls /login/end", origin(redirect))
	}
	seenParam := map[string]bool{}
	for i, p := range a.AllowedExtraParams {
		fp := fmt.Sprintf("%sallowed_extra_params[%d]", pre, i)
		switch {
		case !isToken(p):
			v.fail(fp, "%q is not a valid parameter name", p)
		case reservedAuthParam(p):
			v.fail(fp, "%q is set by Gatehouse itself and cannot be an extra parameter", p)
		case seenParam[p]:
			v.fail(fp, "%q is listed twice", p)
		}
		seenParam[p] = true
	}
	if w := a.LoginWindow.D(); w < time.Minute || w > time.Hour {
		v.fail(pre+"login_window", "must be between 1m and 1h")
	}
	if w := a.ReuseWindow(); w < 0 || w > 5*time.Minute {
		v.fail(pre+"refresh_reuse_window", "must be between 0s and 5m")
	}
	v.validateCookie(a, public)
}

func (v *validator) validateCookie(a *OAuthAgent, public *url.URL) {
	const pre = "oauth_agent.cookie."
	c := a.Cookie
	if !isToken(c.NamePrefix) || len(c.NamePrefix) > 64 {
		v.fail(pre+"name_prefix", "must be 1 to 64 cookie-name characters (letters, digits, - _ .), got %q", c.NamePrefix)
	}
	hostPrefix := strings.HasPrefix(c.NamePrefix, "__Host-")
	if hostPrefix {
		if c.Domain != "" {
			v.fail(pre+"domain", "must be empty with a __Host- name prefix")
		}
		if c.Path != "/" {
			v.fail(pre+"path", "must be / with a __Host- name prefix")
		}
	}
	if (hostPrefix || strings.HasPrefix(c.NamePrefix, "__Secure-")) && c.InsecureHTTPCookies {
		v.fail(pre+"insecure_http_cookies", "cannot be true with a __Host- or __Secure- name prefix")
	}
	if c.InsecureHTTPCookies {
		v.warn(pre+"insecure_http_cookies", "cookies without Secure can leak over plain http; only for local development")
	} else if public != nil && public.Scheme == "http" && !isLoopback(public.Hostname()) {
		v.fail(pre+"insecure_http_cookies", "browsers drop Secure cookies on http; use https or set insecure_http_cookies for development")
	}
	if c.Domain != "" {
		v.warn(pre+"domain", "a Domain cookie is sent to every subdomain of %s; host-only cookies (empty domain) are safer", c.Domain)
		if public != nil {
			host := strings.ToLower(public.Hostname())
			d := strings.TrimPrefix(strings.ToLower(c.Domain), ".")
			if host != d && !strings.HasSuffix(host, "."+d) {
				v.fail(pre+"domain", "%q does not cover the public_url host %q", c.Domain, host)
			}
		}
	}
	if !validPathPrefix(c.Path) {
		v.fail(pre+"path", "must be a canonical path starting with /, got %q", c.Path)
	} else if validPathPrefix(a.BasePath) && !PathCovers(c.Path, a.BasePath) {
		v.fail(pre+"path", "%q does not cover base_path %q; the browser would not send the cookies to the agent", c.Path, a.BasePath)
	}
	if len(c.EncryptionKeys) == 0 {
		v.fail(pre+"encryption_keys", "at least one key is required (64 hex characters; create one with `gatehouse keys generate`)")
	}
	seen := map[seal.Key]bool{}
	for i, s := range c.EncryptionKeys {
		p := fmt.Sprintf("%sencryption_keys[%d]", pre, i)
		k, err := seal.ParseKey(s.Reveal())
		if err != nil {
			v.fail(p, "must be 64 hexadecimal characters (%d characters given)", s.Len())
			continue
		}
		if w := k.Weak(); w != "" {
			v.fail(p, "weak key: %s", w)
		}
		if slices.Contains(publishedKeys, k.String()) {
			v.fail(p, "this key is published in public documentation or test suites; generate your own")
		}
		if seen[k] {
			v.fail(p, "duplicate key")
		}
		seen[k] = true
	}
}

func (v *validator) validateRoutes(c *Config) {
	reserved := slices.Clone(ReservedPaths)
	if c.OAuthAgent != nil {
		reserved = append(reserved, c.OAuthAgent.BasePath)
	}
	names := map[string]int{}
	paths := map[string]int{}
	for i := range c.Routes {
		r := &c.Routes[i]
		pre := fmt.Sprintf("routes[%d].", i)
		if j, ok := names[r.Name]; ok {
			v.fail(pre+"name", "%q is also the name of routes[%d]", r.Name, j)
		}
		names[r.Name] = i
		if !validPathPrefix(r.Path) {
			v.fail(pre+"path", "must be a canonical path prefix like /api (leading slash, no trailing slash, no . or .. segments, no query), got %q", r.Path)
		} else {
			if j, ok := paths[r.Path]; ok {
				v.fail(pre+"path", "%q is also the path of routes[%d]", r.Path, j)
			}
			paths[r.Path] = i
			for _, res := range reserved {
				if PathCovers(res, r.Path) {
					v.fail(pre+"path", "%q is inside Gatehouse's own path %q", r.Path, res)
				}
			}
		}
		if u := v.url(pre+"upstream", r.Upstream, true, false); u != nil && strings.HasSuffix(u.Path, "/") && u.Path != "/" {
			v.fail(pre+"upstream", "must not end with a slash")
		}
		for j, m := range r.Methods {
			if !isToken(m) {
				v.fail(fmt.Sprintf("%smethods[%d]", pre, j), "%q is not an HTTP method", m)
			}
		}
		if r.Timeout.D() <= 0 || r.Timeout.D() > time.Hour {
			v.fail(pre+"timeout", "must be between 1ms and 1h")
		}
		if r.BodyLimit() < 0 {
			v.fail(pre+"max_body_bytes", "must not be negative")
		}
		v.validateRouteAuth(c, i, r)
	}
}

// validateRouteAuth checks how a route authenticates, authorizes and forwards.
func (v *validator) validateRouteAuth(c *Config, i int, r *Route) {
	pre := fmt.Sprintf("routes[%d].", i)
	if len(r.Entry) == 0 {
		v.fail(pre+"entry", "at least one entry is required (one of %s)", strings.Join(knownEntries, ", "))
	}
	seen := map[string]bool{}
	for j, e := range r.Entry {
		p := fmt.Sprintf("%sentry[%d]", pre, j)
		switch {
		case !slices.Contains(knownEntries, e):
			v.fail(p, "%q is not a supported entry (supported: %s)", e, strings.Join(knownEntries, ", "))
			continue
		case seen[e]:
			v.fail(p, "%q is listed twice", e)
		}
		seen[e] = true
		switch e {
		case "cookie":
			if c.OAuthAgent == nil {
				v.fail(p, "the cookie entry needs oauth_agent (its cookie settings and trusted origins)")
			} else if validPathPrefix(r.Path) && validPathPrefix(c.OAuthAgent.Cookie.Path) && !PathCovers(c.OAuthAgent.Cookie.Path, r.Path) {
				v.fail("oauth_agent.cookie.path", "%q does not cover %s %q; the browser would not send the cookies there", c.OAuthAgent.Cookie.Path, pre+"path", r.Path)
			}
		case "apikey":
			if c.APIKeys == nil {
				v.fail(p, "the apikey entry needs api_keys (the hashes of the keys)")
			}
		case "mtls":
			if c.TLS.ClientCAFile == "" {
				v.fail(p, "the mtls entry needs tls.client_ca_file (with tls.cert_file and tls.key_file): Gatehouse verifies client certificates on its own TLS listener")
			}
		}
	}
	if !slices.Contains(knownForwards, r.Forward) {
		v.fail(pre+"forward", "%q is not supported (supported: %s)", r.Forward, strings.Join(knownForwards, ", "))
	}
	v.validateRouteMTLS(pre, r, seen)
	bound := seen["mtls"] && r.MTLS != nil && r.MTLS.BoundToken
	checked := r.TokenFormat != ""
	// Entries whose callers present an access token, checked per token_format.
	presentsToken := seen["cookie"] || seen["bearer"] || bound
	// Entries whose callers have no access token at all.
	noToken := seen["apikey"] || (seen["mtls"] && !bound)
	// The Principal is verified unless it comes from an unchecked cookie;
	// an anonymous-only route has no Principal to speak of.
	verifies := checked || seen["apikey"] || seen["mtls"]
	unverified := !verifies || (seen["cookie"] && !checked)
	switch {
	case r.TokenFormat != "" && !slices.Contains(knownTokenFormats, r.TokenFormat):
		v.fail(pre+"token_format", "must be jwt or opaque, got %q", r.TokenFormat)
		return
	case seen["bearer"] && !checked:
		v.fail(pre+"token_format", "is required with the bearer entry (jwt or opaque; Gatehouse never guesses)")
	case bound && !checked:
		v.fail(pre+"token_format", "is required with mtls.bound_token (the bound access token is checked as jwt or opaque)")
	case seen["anonymous"] && len(r.Entry) == 1 && checked:
		v.fail(pre+"token_format", "has no effect on a route whose only entry is anonymous")
	case checked && !presentsToken && len(r.Entry) > 0:
		v.fail(pre+"token_format", "has no effect: none of the route's entries presents an access token (it applies to cookie, bearer and mtls with bound_token)")
	}
	if r.TokenFormat == "jwt" {
		if r.Audience == "" {
			v.fail(pre+"audience", "is required with token_format jwt (the aud incoming tokens must contain)")
		}
		if c.AuthorizationServer == nil {
			v.fail(pre+"token_format", "jwt needs authorization_server (the issuer and its keys)")
		}
	}
	if r.TokenFormat == "opaque" {
		if c.AuthorizationServer == nil {
			v.fail(pre+"token_format", "opaque needs authorization_server (its introspection endpoint)")
		} else if c.RouteIntrospection(r) == nil {
			v.fail(pre+"introspection", "token_format opaque needs an introspection client: set authorization_server.introspection or routes[].introspection")
		}
	}
	if r.Introspection != nil {
		v.validateIntrospection(pre+"introspection", r.Introspection)
		if r.TokenFormat != "opaque" {
			v.fail(pre+"introspection", "is only used with token_format opaque")
		}
	}
	for j, a := range r.Algorithms {
		if !slices.Contains(allowedAlgorithms, a) {
			v.fail(fmt.Sprintf("%salgorithms[%d]", pre, j), "%q is not allowed (allowed: %s; never none or HMAC)", a, strings.Join(allowedAlgorithms, ", "))
		}
	}
	if (len(r.Algorithms) > 0 || r.AcceptUntypedJWT) && r.TokenFormat != "jwt" {
		v.fail(pre+"token_format", "algorithms and accept_untyped_jwt apply only to token_format jwt")
	}
	if l := r.Leeway.D(); l < 0 || l > maxRouteLeeway {
		v.fail(pre+"leeway", "must be between 0s and 60s")
	}
	mints := false
	needsTokenClient := false
	switch r.Forward {
	case "access_token":
		if noToken {
			v.fail(pre+"forward", "access_token forwards the caller's access token, and callers of the apikey entry or of the mtls entry without bound_token have none: use internal_jwt or client_credentials")
		}
	case "phantom":
		if r.TokenFormat != "opaque" {
			v.fail(pre+"forward", "phantom needs token_format opaque (it introspects opaque tokens)")
		} else if in := c.RouteIntrospection(r); in != nil && in.Format != "jwt" {
			mints = true
		}
	case "internal_jwt":
		if unverified {
			v.fail(pre+"forward", "internal_jwt needs token_format (Gatehouse mints only from a verified token)")
		}
		mints = true
	case "exchange":
		switch {
		case !checked:
			v.fail(pre+"forward", "exchange needs token_format (Gatehouse exchanges only a verified access token)")
		case noToken:
			v.fail(pre+"forward", "exchange needs the caller's access token, and callers of the apikey entry or of the mtls entry without bound_token have none")
		}
		if r.Exchange == nil {
			v.fail(pre+"exchange", "is required with forward exchange (audience or resource, and scopes)")
		}
		needsTokenClient = true
	case "client_credentials":
		if seen["anonymous"] {
			v.fail(pre+"forward", "client_credentials cannot be combined with the anonymous entry: anyone could call the upstream as Gatehouse")
		}
		needsTokenClient = true
	}
	if x := r.Exchange; x != nil {
		if r.Forward != "exchange" {
			v.fail(pre+"exchange", "is only used with forward exchange")
		}
		v.validateTokenTarget(pre+"exchange", x.Audience, x.Resource, x.Scopes, true)
	}
	if cc := r.ClientCredentials; cc != nil {
		if r.Forward != "client_credentials" {
			v.fail(pre+"client_credentials", "is only used with forward client_credentials")
		}
		v.validateTokenTarget(pre+"client_credentials", cc.Audience, cc.Resource, cc.Scopes, false)
	}
	if needsTokenClient && (c.AuthorizationServer == nil || c.AuthorizationServer.TokenClient == nil) {
		v.fail("authorization_server.token_client", "is required by %sforward %s (Gatehouse's own client at the token endpoint)", pre, r.Forward)
	}
	if mints {
		if r.Audience == "" {
			v.fail(pre+"audience", "is required with forward %s (the aud of the JWT Gatehouse mints)", r.Forward)
		}
		if c.InternalJWT == nil {
			v.fail("internal_jwt", "is required by %sforward %s (the key Gatehouse signs with)", pre, r.Forward)
		}
	}
	if len(r.ForwardClaims) > 0 && !mints {
		v.fail(pre+"forward_claims", "only applies when Gatehouse mints the upstream JWT (forward internal_jwt, or phantom with json or rfc9701 introspection)")
	}
	if q := r.Require; q != nil {
		if unverified {
			v.fail(pre+"require", "needs token_format: requirements are checked against a verified token")
		}
		if seen["anonymous"] {
			v.fail(pre+"require", "cannot be combined with the anonymous entry")
		}
		if len(q.Scopes)+len(q.AnyScopes)+len(q.Roles)+len(q.AnyRoles)+len(q.Claims) == 0 {
			v.fail(pre+"require", "is empty; list scopes, any_scopes, roles, any_roles or claims")
		}
		for name, vals := range map[string][]string{"scopes": q.Scopes, "any_scopes": q.AnyScopes, "roles": q.Roles, "any_roles": q.AnyRoles} {
			for j, x := range vals {
				if x == "" || strings.ContainsAny(x, " \t\"\\") {
					v.fail(fmt.Sprintf("%srequire.%s[%d]", pre, name, j), "%q is not a valid value", x)
				}
			}
		}
		for k := range q.Claims {
			if k == "" {
				v.fail(pre+"require.claims", "claim names must not be empty")
			}
		}
	}
	v.validateUpstreamTLS(pre, r)
}

// PathCovers reports whether a cookie or route path prefix covers p: p equals
// prefix or continues it at a segment boundary (RFC 6265 path-match).
func PathCovers(prefix, p string) bool {
	if prefix == "/" || p == prefix {
		return true
	}
	return strings.HasPrefix(p, prefix) && (strings.HasSuffix(prefix, "/") || p[len(prefix)] == '/')
}

// validPathPrefix accepts canonical absolute paths made of URL path characters.
func validPathPrefix(p string) bool {
	if p == "" || p[0] != '/' || path.Clean(p) != p {
		return false
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/-._~!$&'()*+,;=:@", c)) {
			return false
		}
	}
	return true
}

// isToken reports whether s is a non-empty RFC 7230 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return true
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func origin(u *url.URL) string {
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// sameSite reports whether two URLs are schemefully same-site: same scheme and
// same registrable domain (or the same host, for IP addresses and hosts
// without a public suffix such as localhost).
func sameSite(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && site(a.Hostname()) == site(b.Hostname())
}

func site(host string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if _, err := netip.ParseAddr(host); err == nil {
		return host
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		// Browsers treat each *.localhost host as its own site.
		return host
	}
	s, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return host
	}
	return s
}
