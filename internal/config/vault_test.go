package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const vaultKeyHex = "5e0a9b71c3d2f48e6a17b0c9d3e52f8a41c6b7d09e2f3a5c8b1d4e7f60a2c9b3"

// vaultDefaults are the vault's keys unless a test gives its own.
var vaultDefaults = []string{
	"  user: { token_format: jwt, audience: api }",
	`  keys: [{ id: k1, key: "` + vaultKeyHex + `" }]`,
	"  store: { path: vault.db }",
	`  return_url: "https://www.example.com/connections"`,
}

const githubProvider = `    github: { preset: github, client_id: gh, client_secret: s }`

// parseVault parses validYAML with a vault: the default keys, replaced or
// completed by extra (lines of vault keys), and providers.
func parseVault(t *testing.T, extra, providers string) (*Config, []Warning, error) {
	t.Helper()
	if providers == "" {
		providers = githubProvider
	}
	var b strings.Builder
	b.WriteString(validYAML + "\nvault:\n")
	for _, d := range vaultDefaults {
		key, _, _ := strings.Cut(strings.TrimSpace(d), ":")
		if !strings.Contains(extra, "\n  "+key+":") && !strings.HasPrefix(extra, "  "+key+":") {
			b.WriteString(d + "\n")
		}
	}
	b.WriteString(extra + "\n  providers:\n" + providers + "\n")
	return Parse([]byte(b.String()), t.TempDir(), Options{Env: testEnv})
}

func TestVaultValid(t *testing.T) {
	cfg, warnings, err := parseVault(t, `
  audience: gatehouse-vault
  listen: "127.0.0.1:8081"
  refresh_ahead: 2m
  jobs:
    - { client_id: sync, scopes: [vault], providers: [github, ms], users: { all: true } }
    - { client_id: acme, providers: [github], users: { claim: org, values: [acme, "42"] } }`, githubProvider+`
    ms: { preset: microsoft, tenant: contoso.onmicrosoft.com, client_id: m, client_secret: s, scopes: [offline_access, User.Read] }
    google: { preset: google, client_id: g, client_secret_file: "`+writeTemp(t, "google-secret\n")+`" }
    slack: { preset: slack, client_id: sl, client_secret: s, scopes: ["chat:write"] }
    oidc: { issuer: "https://accounts.example.org", api_base_url: "https://api.example.org/v2", client_id: o, client_secret: s, quirks: [], pkce: false }
    dev: { authorization_endpoint: "http://127.0.0.1:9000/authorize", token_endpoint: "http://127.0.0.1:9000/token", api_base_url: "http://127.0.0.1:9001", client_id: d, client_secret: s }`)
	if err != nil {
		t.Fatalf("valid vault refused: %v", err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	v := cfg.Vault
	if v.Store.Driver != "sqlite" || v.Ahead().String() != "2m0s" {
		t.Errorf("defaults: %+v", v.Store)
	}
	gh := v.Providers["github"]
	if gh.TokenEndpoint != "https://github.com/login/oauth/access_token" || gh.APIBaseURL != "https://api.github.com" ||
		gh.ClientAuth.Method != "client_secret_post" || !gh.PKCEEnabled() || gh.Timeout.D().String() != "10s" {
		t.Errorf("github preset not applied: %+v", gh)
	}
	if diff := cmp.Diff([]string{"form_encoded_token_response", "comma_separated_scopes", "non_expiring_tokens"}, gh.Quirks); diff != "" {
		t.Errorf("github quirks (-want +got):\n%s", diff)
	}
	ms := v.Providers["microsoft"]
	if ms != nil {
		t.Error("providers are keyed by their own names")
	}
	if ms := v.Providers["ms"]; !strings.Contains(ms.TokenEndpoint, "{tenant}") || ms.Tenant != "contoso.onmicrosoft.com" {
		t.Errorf("microsoft: %+v", ms)
	}
	if g := v.Providers["google"]; g.ClientSecret.Reveal() != "google-secret" || g.RevocationEndpoint == "" {
		t.Errorf("google: %+v", g)
	}
	if o := v.Providers["oidc"]; o.AuthorizationEndpoint != "" || len(o.Quirks) != 0 || o.Quirks == nil || o.PKCEEnabled() {
		t.Errorf("oidc: %+v", o)
	}
	if got := v.ProviderNames(); !slices.Equal(got, []string{"dev", "github", "google", "ms", "oidc", "slack"}) {
		t.Errorf("names %v", got)
	}
	if r := v.UserRoute(); r.TokenFormat != "jwt" || r.Audience != "api" {
		t.Errorf("user route %+v", r)
	}
	if CallbackPath("github") != "/connections/github/callback" {
		t.Error(CallbackPath("github"))
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVaultErrors(t *testing.T) {
	gh := githubProvider
	tests := []struct {
		name, extra, providers string
		want                   []string
	}{
		{"no user check", `  user: {}`, gh, []string{"vault.user.token_format", "required"}},
		{"jwt without audience", `  user: { token_format: jwt }`, gh, []string{"vault.user.audience"}},
		{"opaque without introspection client", `  user: { token_format: opaque }`, gh, []string{"vault.user.introspection"}},
		{"weak key", `  keys: [{ id: k1, key: "0000000000000000000000000000000000000000000000000000000000000000" }]`, gh, []string{"vault.keys[0].key", "weak"}},
		{"short key", `  keys: [{ id: k1, key: "abcd" }]`, gh, []string{"vault.keys[0].key", "64 hexadecimal"}},
		{"published key", `  keys: [{ id: k1, key: "4e4636356d65563e4c73233847503e3b21436e6f7629724950526f4b5e2e4e50" }]`, gh, []string{"vault.keys[0].key", "published"}},
		{"key without id", `  keys: [{ key: "` + vaultKeyHex + `" }]`, gh, []string{"vault.keys[0].id", "required"}},
		{"bad key id", `  keys: [{ id: "a b", key: "` + vaultKeyHex + `" }]`, gh, []string{"vault.keys[0].id"}},
		{"duplicate key id", `  keys: [{ id: k1, key: "` + vaultKeyHex + `" }, { id: k1, key: "` + testKey + `" }]`, gh, []string{"vault.keys[1].id", "duplicate"}},
		{"no keys", `  keys: []`, gh, []string{"vault.keys", "at least one"}},
		{"unknown driver", `  store: { driver: redis }`, gh, []string{"vault.store.driver"}},
		{"postgres without dsn", `  store: { driver: postgres }`, gh, []string{"vault.store.dsn", "required"}},
		{"sqlite without path", `  store: { driver: sqlite }`, gh, []string{"vault.store.path", "required"}},
		{"no return url", `  return_url: ""`, gh, []string{"vault.return_url", "required"}},
		{"listen equals main listen", `  listen: ":8080"`, gh, []string{"vault.listen", "differ"}},
		{"refresh ahead too long", `  refresh_ahead: 1h`, gh, []string{"vault.refresh_ahead"}},
		{"jobs without audience", `  jobs: [{ client_id: j, providers: [github], users: { all: true } }]`, gh, []string{"vault.audience", "required"}},
		{"unknown job entry", "  audience: v\n  job_entries: [magic]\n  jobs: [{ client_id: j, providers: [github], users: { all: true } }]", gh, []string{"vault.job_entries[0]", "bearer or apikey"}},
		{"apikey jobs without api_keys", "  audience: v\n  job_entries: [apikey]\n  jobs: [{ client_id: j, providers: [github], users: { all: true } }]", gh, []string{"vault.job_entries[0]", "needs api_keys"}},
		{"job entries without jobs", `  job_entries: [bearer]`, gh, []string{"vault.job_entries", "only used with jobs"}},
		{"job for unknown provider", `  audience: v
  jobs: [{ client_id: j, providers: [gitlab], users: { all: true } }]`, gh, []string{"vault.jobs[0].providers[0]", "gitlab"}},
		{"job without users", `  audience: v
  jobs: [{ client_id: j, providers: [github] }]`, gh, []string{"vault.jobs[0].users", "required"}},
		{"job with all and claim", `  audience: v
  jobs: [{ client_id: j, providers: [github], users: { all: true, claim: org, values: [x] } }]`, gh, []string{"vault.jobs[0].users", "not both"}},
		{"claim without values", `  audience: v
  jobs: [{ client_id: j, providers: [github], users: { claim: org } }]`, gh, []string{"vault.jobs[0].users.values"}},
		{"duplicate job", `  audience: v
  jobs: [{ client_id: j, providers: [github], users: { all: true } }, { client_id: j, providers: [github], users: { all: true } }]`, gh, []string{"vault.jobs[1].client_id"}},
		{"unknown preset", "", `    x: { preset: gitlab, client_id: c, client_secret: s }`, []string{`vault.providers["x"].preset`, "gitlab"}},
		{"no endpoints", "", `    x: { client_id: c, client_secret: s, api_base_url: "https://api.x" }`, []string{`vault.providers["x"].issuer`}},
		{"no api base", "", `    x: { issuer: "https://x.example", client_id: c, client_secret: s }`, []string{`vault.providers["x"].api_base_url`, "required"}},
		{"http provider", "", `    x: { issuer: "http://x.example", api_base_url: "https://api.x", client_id: c, client_secret: s }`, []string{`vault.providers["x"].issuer`, "https"}},
		{"api base with trailing slash", "", `    x: { issuer: "https://x.example", api_base_url: "https://api.x/v1/", client_id: c, client_secret: s }`, []string{`vault.providers["x"].api_base_url`, "slash"}},
		{"api base with dot segment", "", `    x: { issuer: "https://x.example", api_base_url: "https://api.x/a/../b", client_id: c, client_secret: s }`, []string{`vault.providers["x"].api_base_url`, "canonical"}},
		{"no client id", "", `    github: { preset: github, client_secret: s }`, []string{`vault.providers["github"].client_id`}},
		{"no client secret", "", `    github: { preset: github, client_id: c }`, []string{`vault.providers["github"].client_secret`}},
		{"unknown quirk", "", `    github: { preset: github, client_id: c, client_secret: s, quirks: [magic] }`, []string{`vault.providers["github"].quirks[0]`, "magic"}},
		{"tenant placeholder without quirk", "", `    ms: { preset: microsoft, client_id: c, client_secret: s, quirks: [] }`, []string{`vault.providers["ms"].quirks`, "tenant_in_url"}},
		{"tenant without placeholder", "", `    github: { preset: github, tenant: t, client_id: c, client_secret: s }`, []string{`vault.providers["github"].tenant`}},
		{"reserved authorization param", "", `    github: { preset: github, client_id: c, client_secret: s, authorization_params: { state: x } }`, []string{`vault.providers["github"].authorization_params["state"]`}},
		{"comma in a comma-separated scope", "", `    github: { preset: github, client_id: c, client_secret: s, scopes: ["a,b"] }`, []string{`vault.providers["github"].scopes[0]`}},
		{"bad provider name", "", `    GitHub: { preset: github, client_id: c, client_secret: s }`, []string{`vault.providers["GitHub"]`, "path segment"}},
		{"timeout", "", `    github: { preset: github, client_id: c, client_secret: s, timeout: 5m }`, []string{`vault.providers["github"].timeout`}},
		{"unknown key", "", `    github: { preset: github, client_id: c, client_secret: s, scope: [x] }`, []string{`vault.providers["github"].scope`, "unknown key", `did you mean "scopes"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseVault(t, tc.extra, tc.providers)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestVaultNeedsAgent(t *testing.T) {
	y := `
public_url: "https://api.example.com"
vault:
  user: { token_format: jwt, audience: api }
  keys: [{ id: k1, key: "` + vaultKeyHex + `" }]
  store: { path: vault.db }
  return_url: "https://www.example.com/connections"
  providers:
` + githubProvider
	_, _, err := Parse([]byte(y), t.TempDir(), Options{Env: testEnv})
	if err == nil || !strings.Contains(err.Error(), "needs oauth_agent") || !strings.Contains(err.Error(), "needs authorization_server") {
		t.Errorf("err = %v", err)
	}
}

func TestVaultWarnings(t *testing.T) {
	_, warnings, err := parseVault(t, `  return_url: "https://elsewhere.example.net/x"`,
		`    dev: { authorization_endpoint: "http://idp.internal/a", token_endpoint: "http://idp.internal/t", api_base_url: "http://api.internal", client_id: c, client_secret: s, insecure_allow_http: true }`)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, w := range warnings {
		paths = append(paths, w.Path)
	}
	if !slices.Contains(paths, "vault.return_url") || !slices.Contains(paths, `vault.providers["dev"].insecure_allow_http`) {
		t.Errorf("warnings %v", warnings)
	}
}

// Secrets of the vault never print: the key, the DSN, client secrets.
func TestVaultSecretsRedacted(t *testing.T) {
	cfg, _, err := parseVault(t, `  store: { driver: postgres, dsn: "postgres://gatehouse:hunter2-password@db/gh" }`, "")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join([]string{
		cfg.Vault.Store.DSN.String(), cfg.Vault.Keys[0].Key.String(), cfg.Vault.Providers["github"].ClientSecret.String(),
	}, " ")
	if strings.Contains(s, "hunter2") || strings.Contains(s, vaultKeyHex) {
		t.Errorf("a secret printed: %s", s)
	}
	if cfg.Vault.Store.DSN.Reveal() != "postgres://gatehouse:hunter2-password@db/gh" {
		t.Error("dsn not read")
	}
}
