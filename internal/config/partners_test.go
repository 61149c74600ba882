package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
)

// writePKI writes ca.pem, a certificate with its key (cert.pem, key.pem)
// and a file that is not PEM (junk.pem) into dir.
func writePKI(t *testing.T, dir string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	for name, data := range map[string][]byte{"ca.pem": certPEM, "cert.pem": certPEM, "key.pem": keyPEM, "junk.pem": []byte("not pem"), "keyonly.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// partnersYAML has TLS with a client CA, API keys, a token client and
// internal JWT keys; %s takes the routes, %t the tls block, %k the keys.
const partnersYAML = `
public_url: "https://api.example.com"
tls: %t
authorization_server:
  issuer: "https://login.example.com"
  introspection: {client_id: gatehouse, client_secret: introspection-secret}
  token_client: %c
internal_jwt:
  key_file: "signing.pem"
api_keys: %k
routes:
%s
`

func TestPartnerConfig(t *testing.T) {
	key, _ := apikey.Generate(nil)
	key2, _ := apikey.Generate(nil)
	goodTLS := `{cert_file: cert.pem, key_file: key.pem, client_ca_file: ca.pem}`
	goodKeys := `{keys: [{id: "` + key.ID + `", hash: "` + key.Hash + `", client_id: job, scopes: [read], expires_at: "2030-01-01T00:00:00Z"}]}`
	goodClient := `{client_id: gatehouse-tx, client_secret: tx-secret}`
	const up = `upstream: "http://u"`
	tests := []struct {
		name                     string
		tls, keys, client, route string
		wantErr                  []string // empty: valid
	}{
		// API keys.
		{"apikey route", goodTLS, goodKeys, goodClient, `  - {path: /k, ` + up + `, entry: [apikey], forward: internal_jwt, audience: a, require: {scopes: [read]}}`, nil},
		{"apikey with client credentials", goodTLS, goodKeys, goodClient, `  - {path: /k, ` + up + `, entry: [apikey], forward: client_credentials, client_credentials: {scopes: [read], audience: reports, resource: "https://r.example.com/"}}`, nil},
		{"apikey without api_keys", goodTLS, "", goodClient, `  - {path: /k, ` + up + `, entry: [apikey], forward: internal_jwt, audience: a}`, []string{"routes[0].entry[0]", "api_keys"}},
		{"apikey forwards no token", goodTLS, goodKeys, goodClient, `  - {path: /k, ` + up + `, entry: [apikey]}`, []string{"routes[0].forward", "have none"}},
		{"apikey token_format has no effect", goodTLS, goodKeys, goodClient, `  - {path: /k, ` + up + `, entry: [apikey], token_format: jwt, audience: a, forward: internal_jwt}`, []string{"routes[0].token_format", "no effect"}},
		{"apikey cannot be exchanged", goodTLS, goodKeys, goodClient, `  - {path: /k, ` + up + `, entry: [apikey], forward: exchange, exchange: {audience: b}}`, []string{"routes[0].forward", "exchange needs token_format"}},
		{"key header reserved", goodTLS, `{header: Authorization, keys: []}`, goodClient, `  - {path: /k, ` + up + `, entry: [apikey], forward: internal_jwt, audience: a}`, []string{"api_keys.header"}},
		{"key header forwarded", goodTLS, `{header: X-Forwarded-Key, keys: []}`, goodClient, `  - {path: /k, ` + up + `, entry: [apikey], forward: internal_jwt, audience: a}`, []string{"api_keys.header"}},
		{"key id", goodTLS, `{keys: [{id: short, hash: "` + key.Hash + `", client_id: j}]}`, goodClient, "", []string{"api_keys.keys[0].id"}},
		{"key hash holds the key", goodTLS, `{keys: [{id: "` + key.ID + `", hash: "` + key.Value + `", client_id: j}]}`, goodClient, "", []string{"api_keys.keys[0].hash", "store only its hash"}},
		{"key hash malformed", goodTLS, `{keys: [{id: "` + key.ID + `", hash: "sha256:abc", client_id: j}]}`, goodClient, "", []string{"api_keys.keys[0].hash"}},
		{"key without client", goodTLS, `{keys: [{id: "` + key.ID + `", hash: "` + key.Hash + `"}]}`, goodClient, "", []string{"api_keys.keys[0].client_id"}},
		{"key expiry", goodTLS, `{keys: [{id: "` + key.ID + `", hash: "` + key.Hash + `", client_id: j, expires_at: tomorrow}]}`, goodClient, "", []string{"api_keys.keys[0].expires_at"}},
		{"key scope", goodTLS, `{keys: [{id: "` + key.ID + `", hash: "` + key.Hash + `", client_id: j, scopes: ["a b"]}]}`, goodClient, "", []string{"api_keys.keys[0].scopes[0]"}},
		{"duplicate key", goodTLS, `{keys: [{id: "` + key.ID + `", hash: "` + key.Hash + `", client_id: j}, {id: "` + key.ID + `", hash: "` + key.Hash + `", client_id: k}]}`, goodClient, "", []string{"api_keys.keys[1].id", "api_keys.keys[1].hash"}},
		{"second key", goodTLS, `{keys: [{id: "` + key.ID + `", hash: "` + key.Hash + `", client_id: j}, {id: "` + key2.ID + `", hash: "` + key2.Hash + `", client_id: k, revoked: true}]}`, goodClient, "", nil},
		{"unknown key field", goodTLS, `{keys: [{id: "` + key.ID + `", hash: "` + key.Hash + `", client_id: j, secret: x}]}`, goodClient, "", []string{"api_keys.keys[0].secret", "unknown key"}},

		// API keys in a store.
		{"store only", goodTLS, `{store: {path: keys.db}}`, goodClient, `  - {path: /k, ` + up + `, entry: [apikey], forward: internal_jwt, audience: a}`, nil},
		{"store and keys", goodTLS, `{keys: [{id: "` + key.ID + `", hash: "` + key.Hash + `", client_id: j}], store: {driver: sqlite, path: /var/lib/gatehouse/keys.db}}`, goodClient, "", nil},
		{"store postgres", goodTLS, `{store: {driver: postgres, dsn: "postgres://gatehouse@db:5432/gatehouse?sslmode=verify-full"}}`, goodClient, "", nil},
		{"store postgres dsn_file", goodTLS, `{store: {driver: postgres, dsn_file: ca.pem}}`, goodClient, "", nil},
		{"store driver", goodTLS, `{store: {driver: redis, path: k.db}}`, goodClient, "", []string{"api_keys.store.driver", "sqlite or postgres"}},
		{"store sqlite without path", goodTLS, `{store: {driver: sqlite}}`, goodClient, "", []string{"api_keys.store.path", "required"}},
		{"store empty", goodTLS, `{store: {}}`, goodClient, "", []string{"api_keys.store.path", "required"}},
		{"store sqlite with dsn", goodTLS, `{store: {path: k.db, dsn: "postgres://db"}}`, goodClient, "", []string{"api_keys.store.dsn", "only used with driver postgres"}},
		{"store postgres without dsn", goodTLS, `{store: {driver: postgres}}`, goodClient, "", []string{"api_keys.store.dsn", "required"}},
		{"store postgres with path", goodTLS, `{store: {driver: postgres, dsn: "postgres://db", path: k.db}}`, goodClient, "", []string{"api_keys.store.path", "only used with driver sqlite"}},
		{"store dsn and dsn_file", goodTLS, `{store: {driver: postgres, dsn: "postgres://db", dsn_file: ca.pem}}`, goodClient, "", []string{"api_keys.store.dsn_file", "not both"}},
		{"store dsn_file missing", goodTLS, `{store: {driver: postgres, dsn_file: nope.txt}}`, goodClient, "", []string{"api_keys.store.dsn_file", "cannot read"}},
		{"store unknown field", goodTLS, `{store: {path: k.db, file: k.db}}`, goodClient, "", []string{"api_keys.store.file", "unknown key"}},

		// mTLS.
		{"mtls route", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls], mtls: {clients: [{subject_cn: p, client_id: p, scopes: [read]}, {san_dns: p.example.com, client_id: q}, {san_uri: "spiffe://x/y", client_id: r}]}, forward: internal_jwt, audience: a}`, nil},
		{"mtls bound token", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls], mtls: {bound_token: true}, token_format: opaque, forward: phantom, audience: a}`, nil},
		{"mtls without client CA", `{cert_file: cert.pem, key_file: key.pem}`, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls], mtls: {clients: [{subject_cn: p, client_id: p}]}, forward: internal_jwt, audience: a}`, []string{"routes[0].entry[0]", "tls.client_ca_file"}},
		{"mtls block missing", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls], forward: internal_jwt, audience: a}`, []string{"routes[0].mtls", "is required"}},
		{"mtls block without the entry", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [anonymous], mtls: {clients: [{subject_cn: p, client_id: p}]}}`, []string{"routes[0].mtls", "only used"}},
		{"mtls without clients", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls], mtls: {}, forward: internal_jwt, audience: a}`, []string{"routes[0].mtls.clients"}},
		{"mtls two matchers", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls], mtls: {clients: [{subject_cn: p, san_dns: p, client_id: p}]}, forward: internal_jwt, audience: a}`, []string{"routes[0].mtls.clients[0]", "exactly one"}},
		{"mtls same matcher twice", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls], mtls: {clients: [{subject_cn: p, client_id: p}, {subject_cn: p, client_id: q}]}, forward: internal_jwt, audience: a}`, []string{"routes[0].mtls.clients[1]"}},
		{"mtls client id", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls], mtls: {clients: [{subject_cn: p}]}, forward: internal_jwt, audience: a}`, []string{"routes[0].mtls.clients[0].client_id"}},
		{"mtls san_uri", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls], mtls: {clients: [{san_uri: "not a uri", client_id: p}]}, forward: internal_jwt, audience: a}`, []string{"routes[0].mtls.clients[0].san_uri"}},
		{"mtls forwards no token", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls], mtls: {clients: [{subject_cn: p, client_id: p}]}}`, []string{"routes[0].forward"}},
		{"bound token needs token_format", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls], mtls: {bound_token: true}}`, []string{"routes[0].token_format", "bound_token"}},
		{"bound token with bearer", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls, bearer], mtls: {bound_token: true}, token_format: opaque}`, []string{"routes[0].mtls.bound_token", "two routes"}},
		{"bound token scopes", goodTLS, goodKeys, goodClient, `  - {path: /b2b, ` + up + `, entry: [mtls], mtls: {bound_token: true, clients: [{subject_cn: p, client_id: p, scopes: [x]}]}, token_format: opaque}`, []string{"routes[0].mtls.clients[0].scopes"}},
		{"client CA without listener TLS", `{client_ca_file: ca.pem}`, goodKeys, goodClient, "", []string{"tls.client_ca_file", "tls.cert_file"}},
		{"client CA not PEM", `{cert_file: cert.pem, key_file: key.pem, client_ca_file: junk.pem}`, goodKeys, goodClient, "", []string{"tls.client_ca_file", "no PEM certificate"}},
		{"client CA holds a key", `{cert_file: cert.pem, key_file: key.pem, client_ca_file: keyonly.pem}`, goodKeys, goodClient, "", []string{"tls.client_ca_file", "PRIVATE KEY"}},
		{"client CA missing", `{cert_file: cert.pem, key_file: key.pem, client_ca_file: nope.pem}`, goodKeys, goodClient, "", []string{"tls.client_ca_file", "cannot read"}},

		// Upstream TLS.
		{"upstream mTLS", goodTLS, goodKeys, goodClient, `  - {path: /u, upstream: "https://orders.internal", entry: [anonymous], upstream_tls: {ca_file: ca.pem, cert_file: cert.pem, key_file: key.pem, server_name: orders.internal}}`, nil},
		{"upstream TLS over http", goodTLS, goodKeys, goodClient, `  - {path: /u, ` + up + `, entry: [anonymous], upstream_tls: {ca_file: ca.pem}}`, []string{"routes[0].upstream_tls", "https"}},
		{"upstream cert without key", goodTLS, goodKeys, goodClient, `  - {path: /u, upstream: "https://o", entry: [anonymous], upstream_tls: {cert_file: cert.pem}}`, []string{"routes[0].upstream_tls", "both cert_file and key_file"}},
		{"upstream cert mismatch", goodTLS, goodKeys, goodClient, `  - {path: /u, upstream: "https://o", entry: [anonymous], upstream_tls: {cert_file: cert.pem, key_file: junk.pem}}`, []string{"routes[0].upstream_tls.cert_file"}},
		{"upstream CA junk", goodTLS, goodKeys, goodClient, `  - {path: /u, upstream: "https://o", entry: [anonymous], upstream_tls: {ca_file: junk.pem}}`, []string{"routes[0].upstream_tls.ca_file"}},
		{"upstream TLS empty", goodTLS, goodKeys, goodClient, `  - {path: /u, upstream: "https://o", entry: [anonymous], upstream_tls: {}}`, []string{"routes[0].upstream_tls", "is empty"}},

		// Token exchange and client credentials.
		{"exchange from a cookie needs the agent", goodTLS, goodKeys, goodClient, `  - {path: /x, ` + up + `, entry: [bearer, cookie], token_format: jwt, audience: a, forward: exchange, exchange: {audience: billing, resource: "https://billing.example.com/", scopes: [read], actor: true}}`, []string{"oauth_agent"}},
		{"exchange bearer", goodTLS, goodKeys, goodClient, `  - {path: /x, ` + up + `, entry: [bearer], token_format: jwt, audience: a, forward: exchange, exchange: {audience: billing, scopes: [read], actor: true}}`, nil},
		{"exchange mtls bound", goodTLS, goodKeys, goodClient, `  - {path: /x, ` + up + `, entry: [mtls], mtls: {bound_token: true}, token_format: opaque, forward: exchange, exchange: {resource: "urn:billing"}}`, nil},
		{"exchange without block", goodTLS, goodKeys, goodClient, `  - {path: /x, ` + up + `, entry: [bearer], token_format: jwt, audience: a, forward: exchange}`, []string{"routes[0].exchange", "is required"}},
		{"exchange without target", goodTLS, goodKeys, goodClient, `  - {path: /x, ` + up + `, entry: [bearer], token_format: jwt, audience: a, forward: exchange, exchange: {scopes: [read]}}`, []string{"routes[0].exchange", "audience or resource"}},
		{"exchange resource", goodTLS, goodKeys, goodClient, `  - {path: /x, ` + up + `, entry: [bearer], token_format: jwt, audience: a, forward: exchange, exchange: {resource: "billing#x"}}`, []string{"routes[0].exchange.resource"}},
		{"exchange scope", goodTLS, goodKeys, goodClient, `  - {path: /x, ` + up + `, entry: [bearer], token_format: jwt, audience: a, forward: exchange, exchange: {audience: b, scopes: ["a\"b"]}}`, []string{"routes[0].exchange.scopes[0]"}},
		{"exchange without token client", goodTLS, goodKeys, "", `  - {path: /x, ` + up + `, entry: [bearer], token_format: jwt, audience: a, forward: exchange, exchange: {audience: b}}`, []string{"authorization_server.token_client", "routes[0].forward exchange"}},
		{"exchange block without the forward", goodTLS, goodKeys, goodClient, `  - {path: /x, ` + up + `, entry: [bearer], token_format: jwt, audience: a, exchange: {audience: b}}`, []string{"routes[0].exchange", "only used"}},
		{"client credentials block without the forward", goodTLS, goodKeys, goodClient, `  - {path: /x, ` + up + `, entry: [bearer], token_format: jwt, audience: a, client_credentials: {scopes: [x]}}`, []string{"routes[0].client_credentials", "only used"}},
		{"client credentials for anonymous callers", goodTLS, goodKeys, goodClient, `  - {path: /x, ` + up + `, entry: [anonymous], forward: client_credentials}`, []string{"routes[0].forward", "anonymous"}},
		{"client credentials without token client", goodTLS, goodKeys, "", `  - {path: /x, ` + up + `, entry: [apikey], forward: client_credentials}`, []string{"authorization_server.token_client"}},
		{"token client without id", goodTLS, goodKeys, `{client_secret: s}`, "", []string{"authorization_server.token_client.client_id"}},
		{"token client without secret", goodTLS, goodKeys, `{client_id: g}`, "", []string{"authorization_server.token_client.client_secret"}},
		{"token client method", goodTLS, goodKeys, `{client_id: g, client_secret: s, client_auth: {method: magic}}`, "", []string{"authorization_server.token_client.client_auth.method"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writePKI(t, dir)
			y := partnersYAML
			for _, r := range []struct{ key, val string }{{"%t", tc.tls}, {"%k", tc.keys}, {"%c", tc.client}} {
				if r.val == "" {
					// Drop the whole line.
					lines := strings.Split(y, "\n")
					for i, l := range lines {
						if strings.Contains(l, r.key) {
							lines = append(lines[:i], lines[i+1:]...)
							break
						}
					}
					y = strings.Join(lines, "\n")
					continue
				}
				y = strings.Replace(y, r.key, r.val, 1)
			}
			if tc.route == "" {
				tc.route = `  - {path: /pub, ` + up + `, entry: [anonymous]}`
			}
			y = strings.Replace(y, "%s", tc.route, 1)
			_, _, err := Parse([]byte(y), dir, Options{Env: testEnv})
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("valid configuration refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("invalid configuration accepted")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestAPIKeyDefaults(t *testing.T) {
	key, _ := apikey.Generate(nil)
	y := `
public_url: "https://api.example.com"
api_keys:
  keys: [{id: "` + key.ID + `", hash: "` + key.Hash + `", client_id: job, expires_at: "2030-01-02T03:04:05Z"}]
routes: [{path: /k, upstream: "http://u", entry: [apikey], forward: internal_jwt, audience: a}]
internal_jwt: {key_file: k.pem}
`
	cfg, _, err := Parse([]byte(y), t.TempDir(), Options{Env: testEnv})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIKeys.Header != "X-API-Key" {
		t.Errorf("header %q", cfg.APIKeys.Header)
	}
	if got := cfg.APIKeys.Keys[0].ExpiryTime(); !got.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("expiry %v", got)
	}
	_, warnings, err := Parse([]byte(strings.Replace(y, `keys: [{id: "`+key.ID+`", hash: "`+key.Hash+`", client_id: job, expires_at: "2030-01-02T03:04:05Z"}]`, "keys: []", 1)), t.TempDir(), Options{Env: testEnv})
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0].String(), "api_keys.keys") {
		t.Errorf("no keys: %v %v", warnings, err)
	}
	// With a store, no keys in the file is the normal case; the driver
	// defaults to sqlite.
	cfg, warnings, err = Parse([]byte(strings.Replace(y, `keys: [{id: "`+key.ID+`", hash: "`+key.Hash+`", client_id: job, expires_at: "2030-01-02T03:04:05Z"}]`, "store: {path: keys.db}", 1)), t.TempDir(), Options{Env: testEnv})
	if err != nil || len(warnings) != 0 {
		t.Fatalf("store without keys: %v %v", warnings, err)
	}
	if s := cfg.APIKeys.Store; s == nil || s.Driver != "sqlite" || s.Path != "keys.db" {
		t.Errorf("store %+v", s)
	}
}
