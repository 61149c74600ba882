package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
	"github.com/gatehouse-dev/gatehouse/internal/cli"
)

// API keys in api_keys.store, end to end: keys created, listed and revoked
// with the command line against the database of a running Gatehouse.

// storedKeyEnv is a Gatehouse whose api_keys has one configured key and a
// store, with its configuration file on disk for the command line.
type storedKeyEnv struct {
	*env
	cfgPath    string
	reports    *exampleAPI
	configured apiKeyEntry
	// dropTable makes the store unusable under the running Gatehouse.
	dropTable func()
}

// newStoredKeyEnv starts Gatehouse with api_keys.store on store ("sqlite":
// a file in the test's directory; "postgres": a schema of its own).
func newStoredKeyEnv(t *testing.T, store string) *storedKeyEnv {
	t.Helper()
	dir := t.TempDir()
	s := &storedKeyEnv{cfgPath: filepath.Join(dir, "gatehouse.yaml"), reports: newExampleAPI(t)}
	s.configured = newAPIKey(t, "config-job", "[reports]", "")
	var storeYAML, driver, dsn string
	switch store {
	case "sqlite":
		path := filepath.Join(dir, "keys.db")
		storeYAML = fmt.Sprintf("{driver: sqlite, path: %q}", path)
		driver, dsn = "sqlite", path
	case "postgres":
		dsn = vaultPostgresSchema(t)
		storeYAML = fmt.Sprintf("{driver: postgres, dsn: %q}", dsn)
		driver = "pgx"
	}
	g := gateway{keyFile: filepath.Join(dir, "internal-jwt.pem"), routes: []string{
		gwRoute("reports", "/api/reports", s.reports.URL+"/reports", "[apikey]", "strip_prefix: true",
			"forward: internal_jwt", "audience: reports-api", "require: {scopes: [reports]}"),
	}}
	edit := g.edit(t)
	s.env = newEnv(t, envOptions{yaml: func(y string) string {
		y = edit(y)
		keys := apiKeysYAML("X-Partner-Key", s.configured) + "  store: " + storeYAML + "\n"
		y = strings.Replace(y, "\nroutes:\n", "\n"+keys+"routes:\n", 1)
		if err := os.WriteFile(s.cfgPath, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return y
	}})
	s.reports.trustGatehouse(s.env, "reports-api")
	s.secrets["configured API key"] = s.configured.key.Value
	if store == "postgres" {
		s.secrets["store DSN"] = dsn
	}
	s.dropTable = func() {
		db, err := sql.Open(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`DROP TABLE api_keys`); err != nil {
			t.Fatalf("drop the api_keys table: %v", err)
		}
	}
	return s
}

// gatehouse runs the command line; it fails the test unless the command
// succeeds, and checks its output holds no secret of the test.
func (s *storedKeyEnv) gatehouse(args ...string) string {
	s.t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errOut,
		Getenv: func(string) (string, bool) { return "", false }})
	if code != 0 {
		s.t.Fatalf("gatehouse %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
	}
	s.assertNoSecrets("the command line's errors", errOut.String())
	return out.String()
}

var storedKeyRE = regexp.MustCompile(`gkey\.[A-Za-z0-9_-]{12}\.[A-Za-z0-9_-]{43}`)

// create makes a key with the command line and returns it (recorded as a
// secret: it must appear nowhere else).
func (s *storedKeyEnv) create(args ...string) string {
	s.t.Helper()
	out := s.gatehouse(append([]string{"keys", "api-key", "create", "--config", s.cfgPath}, args...)...)
	key := storedKeyRE.FindString(out)
	if key == "" || strings.Count(out, key) != 1 {
		s.t.Fatalf("create did not print the key once:\n%s", out)
	}
	s.assertNoSecrets("create's output", strings.ReplaceAll(out, key, ""))
	s.secrets[fmt.Sprintf("stored API key %d", len(s.secrets))] = key
	return key
}

func (s *storedKeyEnv) get(key string) *response {
	return s.do(s.raw(), "GET", "/api/reports/daily", nil, withoutOrigin(), withHeader("X-Partner-Key", key))
}

func forEachKeyStore(t *testing.T, f func(t *testing.T, store string)) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			if store == "postgres" && os.Getenv(vtPostgresEnv) == "" {
				t.Skip("PostgreSQL API key store tests skipped: set " + vtPostgresEnv +
					"='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' (.ci/run does); each test works in its own schema, dropped afterwards")
			}
			t.Parallel()
			f(t, store)
		})
	}
}

// TestAPIKeysStore: a key created with `gatehouse keys api-key create
// --config` is accepted by the running Gatehouse at once (no restart), next
// to the configuration's keys; the API receives a JWT for the key's client,
// never the key; `list` shows it without key or hash; revoked with
// `gatehouse keys api-key revoke` while Gatehouse runs, the very next
// request is refused with the 401 of an unknown key; a key past its expiry
// (by Gatehouse's clock) gets that 401 too. The key appears in no log line,
// response body or output but create's.
func TestAPIKeysStore(t *testing.T) {
	t.Parallel()
	forEachKeyStore(t, func(t *testing.T, store string) {
		s := newStoredKeyEnv(t, store)
		key := s.create("--client-id", "reporting-job", "--scopes", "reports,read")
		id, _ := apikey.Parse(key)

		r := s.get(key)
		if r.StatusCode != 200 {
			t.Fatalf("a key created while Gatehouse runs: %d %s", r.StatusCode, r.body)
		}
		st := s.reports.last(t)
		if c := st.claims; st.err != nil || c.Subject != "reporting-job" || c.ClientID != "reporting-job" || c.Scope != "read reports" {
			t.Fatalf("the API got %+v: %v", st.claims, st.err)
		}
		if st.raw == key || strings.Contains(st.raw, key) {
			t.Fatal("the API received the key")
		}
		if r := s.get(s.configured.key.Value); r.StatusCode != 200 {
			t.Errorf("a configured key next to the store: %d %s", r.StatusCode, r.body)
		}

		list := s.gatehouse("keys", "api-key", "list", "--config", s.cfgPath)
		if !strings.Contains(list, id) || !strings.Contains(list, "reporting-job") || !strings.Contains(list, s.configured.key.ID) {
			t.Errorf("list:\n%s", list)
		}
		for _, secret := range []string{key, apikey.Hash(key), strings.TrimPrefix(apikey.Hash(key), "sha256:"), s.configured.key.Hash} {
			if strings.Contains(list, secret) {
				t.Errorf("list shows a key or hash:\n%s", list)
			}
		}

		unknown := newAPIKey(t, "x", "[]", "").key.Value
		wrongSecret := key[:len(key)-4] + "AAAA"
		if wrongSecret == key {
			wrongSecret = key[:len(key)-4] + "BBBB"
		}
		var bodies []string
		refuse := func(what, k string) {
			t.Helper()
			r := s.get(k)
			if expectErr(t, what, r, 401, "unauthorized") {
				bodies = append(bodies, string(r.body))
			}
		}
		refuse("unknown key", unknown)
		refuse("stored id, wrong secret", wrongSecret)
		refuse("the stored hash as the key", apikey.Hash(key))

		// Revoked while Gatehouse runs: the very next request is refused.
		if r := s.get(key); r.StatusCode != 200 {
			t.Fatalf("before the revocation: %d %s", r.StatusCode, r.body)
		}
		out := s.gatehouse("keys", "api-key", "revoke", "--config", s.cfgPath, "--id", id)
		if !strings.Contains(out, "revoked") {
			t.Errorf("revoke: %s", out)
		}
		refuse("the request right after the revocation", key)
		if r := s.get(s.configured.key.Value); r.StatusCode != 200 {
			t.Errorf("revoking a stored key refused the configured one: %d", r.StatusCode)
		}

		// Expired by Gatehouse's clock.
		short := s.create("--client-id", "short-job", "--scopes", "reports", "--expires-in", "1h")
		if r := s.get(short); r.StatusCode != 200 {
			t.Fatalf("a key with an hour to live: %d %s", r.StatusCode, r.body)
		} else if exp := s.reports.last(t).claims.Expiry; exp.After(s.clock.Now().Add(time.Hour + time.Second)) {
			t.Errorf("the minted token (exp %v) outlives the key", exp)
		}
		s.clock.Advance(time.Hour + time.Minute)
		refuse("a key past its expiry", short)

		for _, b := range bodies {
			if b != bodies[0] {
				t.Errorf("refused keys are told apart: %q", bodies)
				break
			}
		}
		if logs := s.logs.String(); !strings.Contains(logs, id) || !strings.Contains(logs, "is revoked") {
			t.Error("the log does not name the refused key's id and why")
		}
		s.assertNoSecretsAnywhere()
	})
}

// TestAPIKeysStoreDown: when the store cannot answer (its table dropped
// under the running Gatehouse), a key that is not in the configuration gets
// 502 key_store_error as JSON, never 200 and never a 401 that would tell
// its client the key is bad; configured keys still work and malformed keys
// still get 401, without asking the store.
func TestAPIKeysStoreDown(t *testing.T) {
	t.Parallel()
	forEachKeyStore(t, func(t *testing.T, store string) {
		s := newStoredKeyEnv(t, store)
		key := s.create("--client-id", "reporting-job", "--scopes", "reports")
		if r := s.get(key); r.StatusCode != 200 {
			t.Fatalf("stored key: %d %s", r.StatusCode, r.body)
		}
		calls := s.reports.count()
		s.dropTable()
		for _, k := range []string{key, newAPIKey(t, "x", "[]", "").key.Value} {
			r := s.get(k)
			expectErr(t, "a key while the store is down", r, 502, "key_store_error")
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if r.Header.Get("WWW-Authenticate") != "" {
				t.Error("a store failure challenges the client")
			}
		}
		if n := s.reports.count(); n != calls {
			t.Errorf("the API received %d requests while the store was down", n-calls)
		}
		if r := s.get(s.configured.key.Value); r.StatusCode != 200 {
			t.Errorf("a configured key while the store is down: %d %s", r.StatusCode, r.body)
		}
		expectErr(t, "a malformed key while the store is down", s.get("gkey.nope"), 401, "unauthorized")
		if !strings.Contains(s.logs.String(), "key_store_error") {
			t.Error("the store failure is not logged")
		}
		s.assertNoSecretsAnywhere()
	})
}
