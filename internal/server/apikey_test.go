package server_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
)

// apiKeyEntry is one api_keys.keys entry of a test.
type apiKeyEntry struct {
	key      apikey.Key
	clientID string
	scopes   string // YAML flow list
	extra    string // more keys ("revoked: true")
}

func newAPIKey(t *testing.T, clientID, scopes, extra string) apiKeyEntry {
	t.Helper()
	k, err := apikey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return apiKeyEntry{key: k, clientID: clientID, scopes: scopes, extra: extra}
}

// apiKeysYAML is the api_keys block with keys.
func apiKeysYAML(header string, keys ...apiKeyEntry) string {
	var b strings.Builder
	b.WriteString("api_keys:\n")
	if header != "" {
		fmt.Fprintf(&b, "  header: %q\n", header)
	}
	b.WriteString("  keys:\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "    - {id: %q, hash: %q, client_id: %q, scopes: %s", k.key.ID, k.key.Hash, k.clientID, k.scopes)
		if k.extra != "" {
			b.WriteString(", " + k.extra)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// TestAPIKeys: the apikey entry (seed 004's API users) admits a key from the
// configured header whose hash is configured, maps it to its client and
// scopes, and the upstream receives a JWT Gatehouse mints for that client,
// never the key. Unknown, malformed, wrong, expired and revoked keys all get
// the same 401. A key revoked in the configuration is refused once Gatehouse
// restarts with it.
func TestAPIKeys(t *testing.T) {
	t.Parallel()
	reports, echo := newExampleAPI(t), newUpstream(t)
	good := newAPIKey(t, "reporting-job", "[reports, read]", "")
	other := newAPIKey(t, "intern-script", "[read]", "")
	expired := newAPIKey(t, "old-job", "[reports]", `expires_at: "2020-01-01T00:00:00Z"`)
	soon := newAPIKey(t, "short-job", "[reports]", fmt.Sprintf("expires_at: %q", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)))
	revoked := newAPIKey(t, "leaked-job", "[reports]", "revoked: true")
	keys := []apiKeyEntry{good, other, expired, soon, revoked}
	keyFile := filepath.Join(t.TempDir(), "internal-jwt.pem")
	p := newPartnerEnv(t, partnerSetup{
		top: []string{apiKeysYAML("X-Partner-Key", keys...)},
		g: gateway{keyFile: keyFile, routes: []string{
			gwRoute("reports", "/api/reports", reports.URL+"/reports", "[apikey]", "strip_prefix: true",
				"forward: internal_jwt", "audience: reports-api", "require: {scopes: [reports]}"),
			gwRoute("echo", "/api/echo", echo.URL, "[apikey, bearer]", "token_format: jwt", "audience: "+ordersAudience,
				"forward: internal_jwt"),
			gwRoute("mobile", "/api/orders", echo.URL, "[bearer]", "token_format: jwt", "audience: "+ordersAudience),
		}},
	})
	e := p.env
	reports.trustGatehouse(e, "reports-api")
	for i, k := range keys {
		e.secrets[fmt.Sprintf("API key %d", i)] = k.key.Value
	}
	key := func(k string) reqOpt { return withHeader("X-Partner-Key", k) }
	get := func(path string, opts ...reqOpt) *response {
		return e.do(e.raw(), "GET", path, nil, append([]reqOpt{withoutOrigin()}, opts...)...)
	}

	r := get("/api/reports/daily", key(good.key.Value))
	if r.StatusCode != 200 {
		t.Fatalf("valid key: %d %s", r.StatusCode, r.body)
	}
	st := reports.last(t)
	if st.err != nil || st.path != "/reports/daily" || st.raw == good.key.Value {
		t.Fatalf("the API got %q: %v", st.path, st.err)
	}
	if c := st.claims; c.Subject != "reporting-job" || c.ClientID != "reporting-job" || c.Scope != "read reports" ||
		!slices.Equal(c.Audience, []string{"reports-api"}) || c.Issuer != e.base {
		t.Errorf("minted for the key: sub=%q client_id=%q scope=%q aud=%v iss=%q", c.Subject, c.ClientID, c.Scope, c.Audience, c.Issuer)
	}
	if r := get("/api/reports/daily", key(soon.key.Value)); r.StatusCode != 200 {
		t.Errorf("key with an expiry ahead: %d %s", r.StatusCode, r.body)
	} else if exp := reports.last(t).claims.Expiry; exp.After(time.Now().Add(time.Hour + time.Second)) {
		t.Errorf("the minted token (exp %v) outlives the key", exp)
	}
	expectErr(t, "key without the route's scope", get("/api/reports/daily", key(other.key.Value)), 403, "forbidden")

	wrongSecret := good.key.Value[:len(good.key.Value)-4] + "AAAA"
	if wrongSecret == good.key.Value {
		wrongSecret = good.key.Value[:len(good.key.Value)-4] + "BBBB"
	}
	unknown := newAPIKey(t, "x", "[]", "").key.Value
	refused := []struct {
		name string
		opts []reqOpt
	}{
		{"no key", nil},
		{"unknown key", []reqOpt{key(unknown)}},
		{"known id, wrong secret", []reqOpt{key(wrongSecret)}},
		{"malformed", []reqOpt{key("gkey.short")}},
		{"the hash instead of the key", []reqOpt{key(good.key.Hash)}},
		{"expired", []reqOpt{key(expired.key.Value)}},
		{"revoked", []reqOpt{key(revoked.key.Value)}},
		{"key in the Authorization header", []reqOpt{withHeader("Authorization", "Bearer "+good.key.Value)}},
		{"key in another header", []reqOpt{withHeader("X-API-Key", good.key.Value)}},
		{"two key headers", []reqOpt{func(r *http.Request) {
			r.Header.Add("X-Partner-Key", good.key.Value)
			r.Header.Add("X-Partner-Key", other.key.Value)
		}}},
	}
	var bodies []string
	for _, tc := range refused {
		r := get("/api/reports/daily", tc.opts...)
		if expectErr(t, tc.name, r, 401, "unauthorized") {
			bodies = append(bodies, string(r.body))
		}
	}
	for _, b := range bodies {
		if b != bodies[0] {
			t.Errorf("refused keys are told apart: %q", bodies)
			break
		}
	}

	t.Run("the key never reaches an upstream", func(t *testing.T) {
		e := e.sub(t)
		if r := get("/api/echo/x", key(good.key.Value)); r.StatusCode != 200 {
			t.Fatalf("echo: %d %s", r.StatusCode, r.body)
		}
		got := echo.last(t)
		if v := got.Header.Get("X-Partner-Key"); v != "" {
			t.Error("the upstream received the API key header")
		}
		if strings.Contains(got.Header.Get("Authorization"), good.key.Value) {
			t.Error("the upstream received the API key")
		}
		// A bearer caller's stray key header is dropped too.
		tok := e.mobileLogin(mobileClientID, "read").access
		if r := e.bearer("GET", "/api/orders/1", tok, key(good.key.Value)); r.StatusCode != 200 {
			t.Fatalf("bearer with a key header: %d %s", r.StatusCode, r.body)
		}
		if echo.last(t).Header.Get("X-Partner-Key") != "" {
			t.Error("the upstream of a bearer route received the API key header")
		}
		// A request with a key and a token carries two credentials.
		expectErr(t, "key and token", e.bearer("GET", "/api/echo/x", tok, key(good.key.Value)), 401, "unauthorized")
	})

	t.Run("revocation takes effect on restart", func(t *testing.T) {
		e := e.sub(t)
		good.extra = "revoked: true"
		ps := p.setup
		ps.top = []string{apiKeysYAML("X-Partner-Key", good, other)}
		e.restart(p.edit(ps))
		expectErr(t, "revoked key after restart", e.do(e.raw(), "GET", "/api/reports/daily", nil, withoutOrigin(), key(good.key.Value)), 401, "unauthorized")
	})
	e.assertNoSecretsAnywhere()
}
