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
	knownEntries  = []string{"cookie"}
	knownForwards = []string{"access_token"}
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
	v.validateRoutes(c)
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
	} {
		if u != "" {
			v.asURL("authorization_server."+p, u, false, allowHTTP)
		}
	}
	if as.Timeout.D() < time.Second || as.Timeout.D() > time.Minute {
		v.fail("authorization_server.timeout", "must be between 1s and 1m")
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
	switch a.ClientAuth.Method {
	case "client_secret_basic", "client_secret_post":
		if a.ClientSecret.IsZero() {
			v.fail(pre+"client_secret", "is required for client_auth.method %s (or use client_secret_file)", a.ClientAuth.Method)
		}
		if a.ClientAuth.KeyFile != "" {
			v.fail(pre+"client_auth.key_file", "is only used with method private_key_jwt")
		}
	case "private_key_jwt":
		if !a.ClientSecret.IsZero() {
			v.fail(pre+"client_secret", "must not be set with client_auth.method private_key_jwt")
		}
		if a.ClientAuth.KeyFile == "" {
			v.fail(pre+"client_auth.key_file", "is required for method private_key_jwt")
		} else if b, err := os.ReadFile(v.file(a.ClientAuth.KeyFile)); err != nil {
			v.fail(pre+"client_auth.key_file", "cannot read: %v", err)
		} else if k, err := keyfile.ParsePrivateKey(b); err != nil {
			v.fail(pre+"client_auth.key_file", "%v", err)
		} else if _, err := keyfile.CheckAlgorithm(k, a.ClientAuth.Algorithm); err != nil {
			v.fail(pre+"client_auth.algorithm", "%v", err)
		}
	default:
		v.fail(pre+"client_auth.method", "must be client_secret_basic, client_secret_post or private_key_jwt, got %q", a.ClientAuth.Method)
	}
	redirect := v.url(pre+"redirect_uri", a.RedirectURI, true, true)
	v.url(pre+"post_logout_redirect_uri", a.PostLogoutRedirectURI, false, true)
	if !slices.Contains(strings.Fields(a.Scope), "openid") {
		v.fail(pre+"scope", "must include openid (the agent verifies ID tokens), got %q", a.Scope)
	}
	cors := a.CORSEnabled()
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
	_ = cors
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
		if len(r.Entry) == 0 {
			v.fail(pre+"entry", "at least one entry is required (one of %s)", strings.Join(knownEntries, ", "))
		}
		for j, e := range r.Entry {
			p := fmt.Sprintf("%sentry[%d]", pre, j)
			if !slices.Contains(knownEntries, e) {
				v.fail(p, "%q is not a supported entry (supported: %s)", e, strings.Join(knownEntries, ", "))
				continue
			}
			if e == "cookie" {
				if c.OAuthAgent == nil {
					v.fail(p, "the cookie entry needs oauth_agent (its cookie settings and trusted origins)")
				} else if validPathPrefix(r.Path) && validPathPrefix(c.OAuthAgent.Cookie.Path) && !PathCovers(c.OAuthAgent.Cookie.Path, r.Path) {
					v.fail("oauth_agent.cookie.path", "%q does not cover %s %q; the browser would not send the cookies there", c.OAuthAgent.Cookie.Path, pre+"path", r.Path)
				}
			}
		}
		if !slices.Contains(knownForwards, r.Forward) {
			v.fail(pre+"forward", "%q is not supported (supported: %s)", r.Forward, strings.Join(knownForwards, ", "))
		}
	}
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
