package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testKey = "9d3a6b1c2e4f5a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d"

const validYAML = `
listen: ":8080"
public_url: "https://api.example.com"
trusted_proxies: ["10.0.0.0/8", "192.168.1.1"]
authorization_server:
  issuer: "https://login.example.com"
oauth_agent:
  client_id: "spa-client"
  client_secret: "${SPA_SECRET}"
  redirect_uri: "https://www.example.com/"
  post_logout_redirect_uri: "https://www.example.com/"
  scope: "openid profile offline_access"
  trusted_web_origins: ["https://www.example.com"]
  allowed_extra_params: ["prompt", "login_hint"]
  cookie:
    name_prefix: "example"
    encryption_keys: ["${COOKIE_KEY}"]
routes:
  - name: "business-api"
    path: "/api"
    upstream: "http://127.0.0.1:3002"
    entry: ["cookie"]
`

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var testEnv = env(map[string]string{"SPA_SECRET": "s3cret", "COOKIE_KEY": testKey})

func TestParseValid(t *testing.T) {
	cfg, warnings, err := Parse([]byte(validYAML), t.TempDir(), Options{Env: testEnv})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(warnings) != 0 {
		t.Errorf("unexpected warnings: %v", warnings)
	}
	a := cfg.OAuthAgent
	if a.ClientSecret.Reveal() != "s3cret" {
		t.Errorf("client_secret not expanded from env")
	}
	if a.BasePath != "/oauth-agent" || a.LoginWindow.D() != 10*time.Minute || a.ReuseWindow() != 30*time.Second ||
		a.Cookie.Path != "/" || !a.CORSEnabled() || a.ClientAuth.Method != "client_secret_basic" {
		t.Errorf("defaults not applied: %+v", a)
	}
	r := cfg.Routes[0]
	if r.Timeout.D() != 30*time.Second || r.BodyLimit() != 10<<20 || r.Forward != "access_token" {
		t.Errorf("route defaults not applied: %+v", r)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		env     map[string]string
		wantErr []string // substrings, each must appear
	}{
		{"unknown top-level key", func(s string) string { return s + "listn: x\n" }, nil, []string{"listn (line", "unknown key", `did you mean "listen"`}},
		{"unknown nested key", func(s string) string {
			return strings.Replace(s, `    name_prefix: "example"`, `    nme_prefix: "example"`, 1)
		}, nil, []string{"oauth_agent.cookie.nme_prefix", "unknown key"}},
		{"unset env var", nil, map[string]string{"COOKIE_KEY": testKey}, []string{"oauth_agent.client_secret", "SPA_SECRET is not set"}},
		{"bad upstream URL", func(s string) string { return strings.Replace(s, "http://127.0.0.1:3002", "ftp://x", 1) }, nil, []string{"routes[0].upstream", "http or https"}},
		{"missing upstream", func(s string) string { return strings.Replace(s, `    upstream: "http://127.0.0.1:3002"`+"\n", "", 1) }, nil, []string{"routes[0].upstream: is required"}},
		{"malformed key", nil, map[string]string{"SPA_SECRET": "x", "COOKIE_KEY": "abc"}, []string{"oauth_agent.cookie.encryption_keys[0]", "64 hexadecimal"}},
		{"weak key", nil, map[string]string{"SPA_SECRET": "x", "COOKIE_KEY": strings.Repeat("00", 32)}, []string{"encryption_keys[0]", "weak key"}},
		{"published key", nil, map[string]string{"SPA_SECRET": "x", "COOKIE_KEY": publishedKeys[0]}, []string{"encryption_keys[0]", "published"}},
		{"route shadows agent", func(s string) string { return strings.Replace(s, `path: "/api"`, `path: "/oauth-agent/x"`, 1) }, nil, []string{"routes[0].path", "inside Gatehouse's own path"}},
		{"route shadows healthz", func(s string) string { return strings.Replace(s, `path: "/api"`, `path: "/healthz"`, 1) }, nil, []string{"routes[0].path", `"/healthz"`}},
		{"non canonical route path", func(s string) string { return strings.Replace(s, `path: "/api"`, `path: "/api/../x"`, 1) }, nil, []string{"routes[0].path", "canonical"}},
		{"cookie path does not cover route", func(s string) string {
			return strings.Replace(s, `    name_prefix: "example"`, "    name_prefix: \"example\"\n    path: \"/oauth-agent\"", 1)
		}, nil, []string{"oauth_agent.cookie.path", `routes[0].path "/api"`}},
		{"cookie path does not cover base path", func(s string) string {
			return strings.Replace(s, `    name_prefix: "example"`, "    name_prefix: \"example\"\n    path: \"/api\"", 1)
		}, nil, []string{"oauth_agent.cookie.path", "does not cover base_path"}},
		{"origin not same-site", func(s string) string {
			return strings.Replace(s, `trusted_web_origins: ["https://www.example.com"]`, `trusted_web_origins: ["https://www.other.com"]`, 1)
		}, nil, []string{"oauth_agent.trusted_web_origins[0]", "not same-site"}},
		{"origin other scheme is cross-site", func(s string) string {
			return strings.Replace(s, `trusted_web_origins: ["https://www.example.com"]`, `trusted_web_origins: ["http://www.example.com"]`, 1)
		}, nil, []string{"trusted_web_origins[0]", "not same-site"}},
		{"origin with trailing slash", func(s string) string {
			return strings.Replace(s, `trusted_web_origins: ["https://www.example.com"]`, `trusted_web_origins: ["https://www.example.com/"]`, 1)
		}, nil, []string{"trusted_web_origins[0]", "without path"}},
		{"wildcard origin", func(s string) string {
			return strings.Replace(s, `trusted_web_origins: ["https://www.example.com"]`, `trusted_web_origins: ["*"]`, 1)
		}, nil, []string{"trusted_web_origins[0]", "not allowed"}},
		{"reserved extra param", func(s string) string {
			return strings.Replace(s, `["prompt", "login_hint"]`, `["prompt", "redirect_uri", "code_challenge_method"]`, 1)
		}, nil, []string{"allowed_extra_params[1]", "allowed_extra_params[2]", "set by Gatehouse"}},
		{"scope without openid", func(s string) string {
			return strings.Replace(s, `scope: "openid profile offline_access"`, `scope: "profile"`, 1)
		}, nil, []string{"oauth_agent.scope", "openid"}},
		{"unsupported entry", func(s string) string { return strings.Replace(s, `entry: ["cookie"]`, `entry: ["magic"]`, 1) }, nil, []string{"routes[0].entry[0]", `"magic"`}},
		{"bad duration", func(s string) string {
			return strings.Replace(s, `    entry: ["cookie"]`, "    entry: [\"cookie\"]\n    timeout: \"soon\"", 1)
		}, nil, []string{"routes[0].timeout (line", "not a duration"}},
		{"wrong type", func(s string) string { return strings.Replace(s, `    entry: ["cookie"]`, "    entry: \"cookie\"", 1) }, nil, []string{"routes[0].entry (line", "must be a list"}},
		{"http public url", func(s string) string {
			return strings.Replace(s, "https://api.example.com", "http://api.example.com", 1)
		}, nil, []string{"public_url", "https"}},
		{"http issuer", func(s string) string {
			return strings.Replace(s, "https://login.example.com", "http://login.example.com", 1)
		}, nil, []string{"authorization_server.issuer", "https"}},
		{"bad trusted proxy", func(s string) string { return strings.Replace(s, `"192.168.1.1"`, `"proxy.local"`, 1) }, nil, []string{"trusted_proxies[1]"}},
		{"duplicate key", func(s string) string { return s + "listen: \":9\"\n" }, nil, []string{"listen (line", "duplicate key"}},
		{"host prefix with domain", func(s string) string {
			return strings.Replace(s, `    name_prefix: "example"`, "    name_prefix: \"__Host-example\"\n    domain: \"api.example.com\"", 1)
		}, nil, []string{"oauth_agent.cookie.domain", "__Host-"}},
		{"cookie domain not covering host", func(s string) string {
			return strings.Replace(s, `    name_prefix: "example"`, "    name_prefix: \"example\"\n    domain: \"other.com\"", 1)
		}, nil, []string{"oauth_agent.cookie.domain", "does not cover"}},
		{"private_key_jwt without key", func(s string) string {
			return strings.Replace(s, `  client_secret: "${SPA_SECRET}"`, "  client_auth: { method: private_key_jwt }", 1)
		}, nil, []string{"oauth_agent.client_auth.key_file: is required"}},
		{"unknown client auth method", func(s string) string {
			return strings.Replace(s, `  client_secret: "${SPA_SECRET}"`, "  client_secret: x\n  client_auth: { method: tls_client_auth }", 1)
		}, nil, []string{"oauth_agent.client_auth.method"}},
		{"cookie entry without agent", func(s string) string {
			i := strings.Index(s, "oauth_agent:")
			j := strings.Index(s, "routes:")
			return s[:i] + s[j:]
		}, nil, []string{"routes[0].entry[0]", "needs oauth_agent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y := validYAML
			if tc.edit != nil {
				y = tc.edit(y)
			}
			e := testEnv
			if tc.env != nil {
				e = env(tc.env)
			}
			_, _, err := Parse([]byte(y), t.TempDir(), Options{Env: e})
			if err == nil {
				t.Fatal("Parse accepted an invalid configuration")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q:\n%v", want, err)
				}
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), testKey) {
				t.Errorf("error message leaks a secret:\n%v", err)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	y := strings.NewReplacer(
		"http://127.0.0.1:3002", "nope",
		`scope: "openid profile offline_access"`, `scope: "profile"`,
		`path: "/api"`, `path: "api"`,
	).Replace(validYAML)
	_, _, err := Parse([]byte(y), t.TempDir(), Options{Env: testEnv})
	var fieldErrs []*FieldError
	for _, e := range unwrapAll(err) {
		var fe *FieldError
		if errors.As(e, &fe) {
			fieldErrs = append(fieldErrs, fe)
		}
	}
	got := map[string]bool{}
	for _, fe := range fieldErrs {
		got[fe.Path] = true
	}
	for _, p := range []string{"routes[0].upstream", "oauth_agent.scope", "routes[0].path"} {
		if !got[p] {
			t.Errorf("problem at %s not reported; got %v", p, err)
		}
	}
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := "1f2e3d4c5b6a79881726354453627180a9b8c7d6e5f4031201f2e3d4c5b6a798"
	if err := os.WriteFile(filepath.Join(dir, "keys"), []byte("# current\n"+testKey+"\n\n"+other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := strings.NewReplacer(
		`  client_secret: "${SPA_SECRET}"`, `  client_secret_file: "secret"`,
		`    encryption_keys: ["${COOKIE_KEY}"]`, `    encryption_keys_file: "keys"`,
	).Replace(validYAML)
	cfg, _, err := Parse([]byte(y), dir, Options{Env: testEnv})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := cfg.OAuthAgent.ClientSecret.Reveal(); got != "from-file" {
		t.Errorf("client_secret_file: got %q", got)
	}
	if n := len(cfg.OAuthAgent.Cookie.EncryptionKeys); n != 2 || cfg.OAuthAgent.Cookie.EncryptionKeys[0].Reveal() != testKey {
		t.Errorf("encryption_keys_file: got %d keys", n)
	}
}

func TestExpandEnv(t *testing.T) {
	e := env(map[string]string{"A": "1", "B": "two"})
	tests := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "1", ""},
		{"x-${A}-${B}-y", "x-1-two-y", ""},
		{"$${A}", "${A}", ""},
		{"${C}", "", "C is not set"},
		{"${A", "", "unterminated"},
		{"${A-B}", "", "invalid environment variable name"},
	}
	for _, tc := range tests {
		got, err := expandEnv(tc.in, e)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("expandEnv(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("expandEnv(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// An environment value must not be able to inject YAML structure.
func TestEnvCannotInjectStructure(t *testing.T) {
	evil := env(map[string]string{"SPA_SECRET": "x\n  insecure_http_cookies: true", "COOKIE_KEY": testKey})
	cfg, _, err := Parse([]byte(validYAML), t.TempDir(), Options{Env: evil})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.OAuthAgent.Cookie.InsecureHTTPCookies {
		t.Fatal("environment value changed the configuration structure")
	}
}

func TestPathCovers(t *testing.T) {
	tests := []struct {
		prefix, p string
		want      bool
	}{
		{"/", "/anything", true},
		{"/api", "/api", true},
		{"/api", "/api/x", true},
		{"/api", "/apix", false},
		{"/api/", "/api/x", true},
		{"/oauth-agent", "/oauth", false},
	}
	for _, tc := range tests {
		if got := PathCovers(tc.prefix, tc.p); got != tc.want {
			t.Errorf("PathCovers(%q, %q) = %v", tc.prefix, tc.p, got)
		}
	}
}

func TestSameSite(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"https://www.example.com", "https://api.example.com", true},
		{"https://www.example.co.uk", "https://api.example.co.uk", true},
		{"https://a.example.co.uk", "https://b.other.co.uk", false},
		{"http://localhost:3000", "http://localhost:8080", true},
		{"http://127.0.0.1:3000", "http://localhost:8080", false},
		{"https://www.example.com.evil.io", "https://api.example.com", false},
		{"http://www.example.com", "https://api.example.com", false},
	}
	for _, tc := range tests {
		a, b := mustURL(t, tc.a), mustURL(t, tc.b)
		if got := sameSite(a, b); got != tc.want {
			t.Errorf("sameSite(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(validYAML))
	f.Add([]byte("routes: [{path: /x}]"))
	f.Add([]byte("a: &x [*x]"))
	f.Add([]byte("routes: &x [*x]\ntrusted_proxies: &y [*y]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = Parse(data, t.TempDir(), Options{Env: testEnv})
	})
}
