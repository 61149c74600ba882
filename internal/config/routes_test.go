package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bearerYAML is a gateway without an agent: bearer routes only.
const bearerYAML = `
public_url: "https://api.example.com"
authorization_server:
  issuer: "https://login.example.com"
  introspection:
    client_id: "gatehouse"
    client_secret: "introspection-secret"
internal_jwt:
  key_file: "signing.pem"
routes:
%s
`

func TestRouteAuthRules(t *testing.T) {
	tests := []struct {
		name    string
		route   string
		wantErr []string // empty: valid
	}{
		{"bearer jwt", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: jwt, audience: api}`, nil},
		{"bearer opaque phantom", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: opaque, forward: phantom, audience: api}`, nil},
		{"internal jwt with require", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: jwt, audience: api, forward: internal_jwt, forward_claims: [roles], require: {scopes: [read], any_roles: [admin], roles_claim: realm_access.roles, claims: {tenant: acme}}}`, nil},
		{"anonymous alone", `  - {path: /pub, upstream: "http://u", entry: [anonymous]}`, nil},
		{"bearer or anonymous", `  - {path: /m, upstream: "http://u", entry: [bearer, anonymous], token_format: jwt, audience: api}`, nil},
		{"bearer without token format", `  - {path: /m, upstream: "http://u", entry: [bearer]}`, []string{"routes[0].token_format", "never guesses"}},
		{"jwt without audience", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: jwt}`, []string{"routes[0].audience", "required"}},
		{"unknown token format", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: magic}`, []string{"routes[0].token_format", "jwt or opaque"}},
		{"phantom needs opaque", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: jwt, audience: a, forward: phantom}`, []string{"routes[0].forward", "opaque"}},
		{"minting needs audience", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: opaque, forward: phantom}`, []string{"routes[0].audience"}},
		{"hmac algorithm", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: jwt, audience: a, algorithms: [HS256]}`, []string{"routes[0].algorithms[0]", "never none or HMAC"}},
		{"none algorithm", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: jwt, audience: a, algorithms: [none]}`, []string{"routes[0].algorithms[0]"}},
		{"leeway too large", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: jwt, audience: a, leeway: 5m}`, []string{"routes[0].leeway"}},
		{"require without token format", `  - {path: /m, upstream: "http://u", entry: [anonymous], require: {scopes: [read]}}`, []string{"routes[0].require", "token_format", "anonymous"}},
		{"empty require", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: jwt, audience: a, require: {}}`, []string{"routes[0].require", "is empty"}},
		{"forward claims without minting", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: jwt, audience: a, forward_claims: [x]}`, []string{"routes[0].forward_claims"}},
		{"duplicate entry", `  - {path: /m, upstream: "http://u", entry: [bearer, bearer], token_format: jwt, audience: a}`, []string{"routes[0].entry[1]", "twice"}},
		{"introspection override needs opaque", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: jwt, audience: a, introspection: {client_id: x, client_secret: y}}`, []string{"routes[0].introspection", "only used"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			y := strings.Replace(bearerYAML, "%s", tc.route, 1)
			_, _, err := Parse([]byte(y), dir, Options{Env: testEnv})
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("valid route refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("invalid route accepted")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestOpaqueNeedsIntrospectionClient(t *testing.T) {
	y := `
public_url: "https://api.example.com"
authorization_server: { issuer: "https://login.example.com" }
routes:
  - {path: /m, upstream: "http://u", entry: [bearer], token_format: opaque}
`
	_, _, err := Parse([]byte(y), t.TempDir(), Options{Env: testEnv})
	if err == nil || !strings.Contains(err.Error(), "routes[0].introspection") {
		t.Fatalf("opaque route without an introspection client: %v", err)
	}
}

func TestMintingNeedsInternalJWT(t *testing.T) {
	y := `
public_url: "https://api.example.com"
authorization_server: { issuer: "https://login.example.com" }
routes:
  - {path: /m, upstream: "http://u", entry: [bearer], token_format: jwt, audience: a, forward: internal_jwt}
`
	_, _, err := Parse([]byte(y), t.TempDir(), Options{Env: testEnv})
	if err == nil || !strings.Contains(err.Error(), "internal_jwt: is required by routes[0].forward internal_jwt") {
		t.Fatalf("minting without keys: %v", err)
	}
}

func TestInternalJWTKeyFile(t *testing.T) {
	dir := t.TempDir()
	rsaPEM := "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.pem"), []byte(rsaPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	base := strings.Replace(bearerYAML, "%s", `  - {path: /m, upstream: "http://u", entry: [bearer], token_format: jwt, audience: a, forward: internal_jwt}`, 1)
	tests := []struct {
		name, from, to, want string
	}{
		{"missing file is created later", `key_file: "signing.pem"`, `key_file: "signing.pem"`, ""},
		{"directory missing", `key_file: "signing.pem"`, `key_file: "nodir/signing.pem"`, "internal_jwt.key_file"},
		{"unparsable key", `key_file: "signing.pem"`, `key_file: "bad.pem"`, "internal_jwt.key_file"},
		{"bad algorithm", `key_file: "signing.pem"`, "key_file: \"signing.pem\"\n  algorithm: RS256", "internal_jwt.algorithm"},
		{"ttl too long", `key_file: "signing.pem"`, "key_file: \"signing.pem\"\n  ttl: 1h", "internal_jwt.ttl"},
		{"previous key missing", `key_file: "signing.pem"`, "key_file: \"signing.pem\"\n  previous_key_files: [\"old.pem\"]", "internal_jwt.previous_key_files[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(strings.Replace(base, tc.from, tc.to, 1)), dir, Options{Env: testEnv})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error at %s, got %v", tc.want, err)
			}
		})
	}
}
