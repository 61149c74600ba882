package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
	"github.com/gatehouse-dev/gatehouse/internal/vault/sqlstore"
)

var keyRE = regexp.MustCompile(`gkey\.[A-Za-z0-9_-]{12}\.[A-Za-z0-9_-]{43}`)

// storeConfig writes a configuration with an apikey route, a configured key
// and api_keys.store on a SQLite file (relative to the configuration's
// directory) and returns its path and the database's.
func storeConfig(t *testing.T, configured apikey.Key) (cfgPath, dbPath string) {
	t.Helper()
	dir := t.TempDir()
	cfg := `public_url: "https://api.example.com"
internal_jwt: {key_file: k.pem}
api_keys:
  header: X-Partner-Key
  keys:
    - {id: "` + configured.ID + `", hash: "` + configured.Hash + `", client_id: config-job, scopes: [read]}
  store: {driver: sqlite, path: keys.db}
routes: [{path: /k, upstream: "http://u", entry: [apikey], forward: internal_jwt, audience: a}]
`
	cfgPath = filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, filepath.Join(dir, "keys.db")
}

// TestKeysAPIKeyStore: create stores the key's hash (never the key) in
// api_keys.store and prints the key once; list shows ids, clients, scopes,
// expiry and revocation, never a key or hash; revoke marks the key revoked.
func TestKeysAPIKeyStore(t *testing.T) {
	configured, _ := apikey.Generate(nil)
	cfgPath, dbPath := storeConfig(t, configured)

	code, out, errOut := run(t, nil, "keys", "api-key", "create", "--config", cfgPath,
		"--client-id", "reporting-job", "--scopes", "reports, read", "--expires", "720h")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errOut)
	}
	key := keyRE.FindString(out)
	if key == "" || strings.Count(out, key) != 1 {
		t.Fatalf("the key is not printed exactly once:\n%s", out)
	}
	id, _ := apikey.Parse(key)
	if strings.Contains(out, apikey.Hash(key)) || strings.Contains(out, strings.TrimPrefix(apikey.Hash(key), "sha256:")) {
		t.Errorf("create prints the hash:\n%s", out)
	}
	for _, want := range []string{"id " + id, "client reporting-job", "scopes [reports read]", "X-Partner-Key", "revoke --config " + cfgPath + " --id " + id} {
		if !strings.Contains(out, want) {
			t.Errorf("create's output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(dbPath); err != nil {
		t.Fatalf("the store's file is not next to the configuration: %v", err)
	}

	// The store holds the hash, the client, the scopes and the expiry.
	st, err := sqlstore.Open(t.Context(), sqlstore.DriverSQLite, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := st.APIKeys().Lookup(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Sum != apikey.Sum(key) || rec.ClientID != "reporting-job" || strings.Join(rec.Scopes, " ") != "reports read" ||
		!rec.RevokedAt.IsZero() || rec.ExpiresAt.Sub(time.Now()) < 719*time.Hour || rec.ExpiresAt.Sub(time.Now()) > 721*time.Hour {
		t.Errorf("stored record %+v", rec)
	}
	if b, err := os.ReadFile(dbPath); err == nil && strings.Contains(string(b), key) {
		t.Error("the database file holds the key")
	}

	// A second key, without scopes or expiry.
	code, out2, errOut := run(t, nil, "keys", "api-key", "create", "--config", cfgPath, "--client-id", "sync job")
	if code != 0 {
		t.Fatalf("second create: exit %d: %s", code, errOut)
	}
	key2 := keyRE.FindString(out2)
	id2, _ := apikey.Parse(key2)

	code, list, errOut := run(t, nil, "keys", "api-key", "list", "--config", cfgPath)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	for _, secret := range []string{key, key2, configured.Value, apikey.Hash(key), apikey.Hash(key2), configured.Hash, strings.TrimPrefix(configured.Hash, "sha256:")} {
		if strings.Contains(list, secret) {
			t.Errorf("list shows a key or a hash:\n%s", list)
		}
	}
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("list: want a header and 3 keys:\n%s", list)
	}
	for i, want := range [][]string{
		{configured.ID, "config", "config-job", "read", "active"},
		{id, "store", "reporting-job", "reports,read", "active", rec.ExpiresAt.UTC().Format(time.RFC3339)},
		{id2, "store", `"sync job"`, "-", "active"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("list line %d lacks %q: %s", i+1, w, lines[i+1])
			}
		}
	}

	code, out, errOut = run(t, nil, "keys", "api-key", "revoke", "--config", cfgPath, "--id", id)
	if code != 0 || !strings.Contains(out, "revoked at") || !strings.Contains(out, id) {
		t.Fatalf("revoke: exit %d: %s %s", code, out, errOut)
	}
	if rec, err := st.APIKeys().Lookup(t.Context(), id); err != nil || rec.RevokedAt.IsZero() {
		t.Errorf("after revoke: %+v, %v", rec, err)
	}
	// Revoking again keeps the first time and succeeds.
	if code, again, _ := run(t, nil, "keys", "api-key", "revoke", "--config", cfgPath, "--id", id); code != 0 || again != out {
		t.Errorf("second revoke: exit %d: %s, want %s", code, again, out)
	}
	_, list, _ = run(t, nil, "keys", "api-key", "list", "--config", cfgPath)
	if l := strings.Split(list, "\n")[2]; !strings.Contains(l, id) || !strings.Contains(l, "revoked") {
		t.Errorf("list after revoke: %s", list)
	}
	if rec, _ := st.APIKeys().Lookup(t.Context(), id2); !rec.RevokedAt.IsZero() {
		t.Error("revoke revoked another key")
	}
}

func TestKeysAPIKeyStoreRefusals(t *testing.T) {
	configured, _ := apikey.Generate(nil)
	cfgPath, _ := storeConfig(t, configured)
	other, _ := apikey.Generate(nil)
	noStore := filepath.Join(t.TempDir(), "g.yaml")
	if err := os.WriteFile(noStore, []byte(`public_url: "https://api.example.com"
internal_jwt: {key_file: k.pem}
api_keys: {keys: [{id: "`+configured.ID+`", hash: "`+configured.Hash+`", client_id: j}]}
routes: [{path: /k, upstream: "http://u", entry: [apikey], forward: internal_jwt, audience: a}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	invalid := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(invalid, []byte("public_url: 1\napi_keys: {store: {driver: redis}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"create without client", []string{"create", "--config", cfgPath}, 2, "usage"},
		{"create expired", []string{"create", "--config", cfgPath, "--client-id", "a", "--expires-at", "2020-01-01T00:00:00Z"}, 2, "in the past"},
		{"create bad scope", []string{"create", "--config", cfgPath, "--client-id", "a", "--scopes", "a\"b"}, 2, "not a valid scope"},
		{"create without store", []string{"create", "--config", noStore, "--client-id", "a"}, 1, "no api_keys.store"},
		{"create with an invalid configuration", []string{"create", "--config", invalid, "--client-id", "a"}, 1, "api_keys.store.driver"},
		{"revoke without id", []string{"revoke", "--config", cfgPath}, 2, "usage"},
		{"revoke without config", []string{"revoke", "--id", other.ID}, 2, "usage"},
		{"revoke the key itself", []string{"revoke", "--config", cfgPath, "--id", other.Value}, 2, "not the key"},
		{"revoke a bad id", []string{"revoke", "--config", cfgPath, "--id", "x"}, 2, "not a key id"},
		{"revoke an unknown key", []string{"revoke", "--config", cfgPath, "--id", other.ID}, 1, "has no key " + other.ID},
		{"revoke a configured key", []string{"revoke", "--config", cfgPath, "--id", configured.ID}, 1, "api_keys.keys[0]"},
		{"revoke without store", []string{"revoke", "--config", noStore, "--id", other.ID}, 1, "no api_keys.store"},
		{"list without config", []string{"list"}, 2, "usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, nil, append([]string{"keys", "api-key"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.msg)
			}
			if keyRE.MatchString(out) {
				t.Errorf("a refused command printed a key: %s", out)
			}
		})
	}
	// list without a store lists the configuration's keys.
	code, out, errOut := run(t, nil, "keys", "api-key", "list", "--config", noStore)
	if code != 0 || !strings.Contains(out, configured.ID) || !strings.Contains(errOut, "no api_keys.store") {
		t.Errorf("list without store: exit %d: %s %s", code, out, errOut)
	}
}

// TestKeysAPIKeyCreateWithoutConfig: create without --config is the
// original command: the key and the api_keys.keys entry for the file.
func TestKeysAPIKeyCreateWithoutConfig(t *testing.T) {
	code, out, errOut := run(t, nil, "keys", "api-key", "create", "--client-id", "partner-a", "--expires", "12h")
	key := keyRE.FindString(out)
	if code != 0 || key == "" || !strings.Contains(out, `hash: "`+apikey.Hash(key)+`"`) || !strings.Contains(out, "expires_at: ") {
		t.Errorf("exit %d: %s %s", code, out, errOut)
	}
}
