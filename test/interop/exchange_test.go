package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/cli"
	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
)

// TestTokenExchangeAgainstOIDCProvider runs `gatehouse serve` with forward:
// exchange against panva's oidc-provider, whose token exchange grant
// provider.mjs registers: a service's opaque token is introspected, then
// exchanged (Gatehouse's client_secret_basic, audience, scope, actor token
// from Gatehouse's own client credentials) for a JWT the billing API
// verifies with the provider's keys: aud, scope, sub and act. The provider's
// refusals map to 403 (invalid_target) and 401 (invalid_grant).
func TestTokenExchangeAgainstOIDCProvider(t *testing.T) {
	requireNode(t)
	const (
		txClient, callerClient = "interop-gatehouse", "interop-service"
		billingAudience        = "interop-billing"
	)
	txSecret, callerSecret := randomHex(t, 24), randomHex(t, 24)
	p := startProvider(t, "interop-spa", randomHex(t, 24), "http://localhost:1/",
		"INTEROP_TX_CLIENT_ID="+txClient, "INTEROP_TX_CLIENT_SECRET="+txSecret,
		"INTEROP_CALLER_CLIENT_ID="+callerClient, "INTEROP_CALLER_CLIENT_SECRET="+callerSecret,
		"INTEROP_TX_AUDIENCES="+billingAudience)

	// The billing API verifies the provider's JWTs for its audience.
	keys, err := jwtverify.NewKeySet(jwtverify.KeySetConfig{URL: p.issuer + "/jwks", Client: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := jwtverify.New(keys, jwtverify.Config{Purpose: jwtverify.AccessToken, Issuer: p.issuer, Audience: billingAudience})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []*jwtverify.Claims
	var raws []string
	apiLn, _ := net.Listen("tcp", "127.0.0.1:0")
	serve(t, apiLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		c, err := verifier.Verify(r.Context(), raw)
		if err != nil {
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
			return
		}
		mu.Lock()
		seen, raws = append(seen, c), append(raws, raw)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))

	gwPort := freePort(t)
	gwURL := fmt.Sprintf("http://localhost:%d", gwPort)
	route := func(name, path, exchange string) string {
		return fmt.Sprintf(`  - name: %q
    path: %q
    upstream: "http://%s"
    entry: ["bearer"]
    token_format: "opaque"
    forward: "exchange"
    exchange: %s
`, name, path, apiLn.Addr(), exchange)
	}
	cfg := fmt.Sprintf(`
listen: "127.0.0.1:%d"
public_url: %q
authorization_server:
  issuer: %q
  introspection:
    client_id: %q
    client_secret: "${INTEROP_API_SECRET}"
  token_client:
    client_id: %q
    client_secret: "${INTEROP_TX_SECRET}"
routes:
`, gwPort, gwURL, p.issuer, p.apiClient, txClient) +
		route("billing", "/billing", `{audience: "`+billingAudience+`", scopes: [read], actor: true}`) +
		route("billing-write", "/billing-write", `{audience: "`+billingAudience+`", scopes: [write]}`) +
		route("payroll", "/payroll", `{audience: "interop-payroll"}`)
	cfgPath := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"INTEROP_API_SECRET": p.apiSecret, "INTEROP_TX_SECRET": txSecret}
	var logs strings.Builder
	var logMu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, []string{"serve", "--config", cfgPath}, cli.Env{
			Stdout: io.Discard,
			Stderr: writerFunc(func(b []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(b) }),
			Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("gatehouse serve exited with %d", code)
		}
	})
	waitReady(t, gwURL)

	token := func(t *testing.T) string {
		t.Helper()
		req, _ := http.NewRequest("POST", p.issuer+"/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"read write"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(callerClient, callerSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		tok, _ := m["access_token"].(string)
		if tok == "" {
			t.Fatalf("client credentials: %v", m)
		}
		return tok
	}
	call := func(t *testing.T, path, tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", gwURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	tok := token(t)
	if status, body := call(t, "/billing/invoices", tok); status != 200 {
		t.Fatalf("exchange route: %d %s", status, body)
	}
	mu.Lock()
	c, first := seen[len(seen)-1], raws[len(raws)-1]
	mu.Unlock()
	act, _ := c.Raw["act"].(map[string]any)
	if !slices.Equal(c.Audience, []string{billingAudience}) || c.Scope != "read" || c.Subject != callerClient || c.ClientID != txClient || act["sub"] != txClient {
		t.Errorf("exchanged token aud=%v scope=%q sub=%q client_id=%q act=%v", c.Audience, c.Scope, c.Subject, c.ClientID, c.Raw["act"])
	}
	if status, _ := call(t, "/billing/invoices", tok); status != 200 {
		t.Fatalf("second request: %d", status)
	}
	mu.Lock()
	if raws[len(raws)-1] != first {
		t.Error("the exchanged token was not reused")
	}
	mu.Unlock()
	if status, body := call(t, "/payroll/x", tok); status != 403 || !strings.Contains(body, `"forbidden"`) {
		t.Errorf("audience the provider refuses: %d %s", status, body)
	}
	// Revoked at the provider after Gatehouse introspected it: the next
	// exchange (another target) is refused with invalid_grant.
	req, _ := http.NewRequest("POST", p.issuer+"/token/revocation", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(callerClient, callerSecret)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revocation: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if status, body := call(t, "/billing-write/x", tok); status != 401 || !strings.Contains(body, `"unauthorized"`) {
		t.Errorf("revoked subject token: %d %s", status, body)
	}

	logMu.Lock()
	defer logMu.Unlock()
	for _, s := range []string{tok, first, txSecret, p.apiSecret} {
		if strings.Contains(logs.String(), s) {
			t.Error("gatehouse logs contain a token or secret")
		}
	}
}
