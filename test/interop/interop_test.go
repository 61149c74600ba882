// Package interop proves Gatehouse works with an authorization server it was
// not written with: panva's oidc-provider (npm, OpenID Certified), started on
// loopback by provider.mjs, with `gatehouse serve` pointed at it and the demo
// SPA driven in headless Chromium.
package interop_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/cli"
	"github.com/gatehouse-dev/gatehouse/internal/demo"
	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/mint"
	"github.com/gatehouse-dev/gatehouse/test/browser"
	"github.com/gatehouse-dev/gatehouse/web"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// requireNode skips (or fails on CI) without node and the npm packages.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		if _, err = os.Stat(filepath.Join("node_modules", "oidc-provider")); err == nil {
			return node
		}
	}
	msg := "interop tests need node and `npm ci` in test/interop (bash .ci/run does both)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

type provider struct {
	issuer               string
	apiClient, apiSecret string // Gatehouse's introspection client
}

// startProvider runs provider.mjs until the test ends; extra holds more
// NAME=value environment entries.
func startProvider(t *testing.T, clientID, clientSecret, redirectURI string, extra ...string) *provider {
	t.Helper()
	node := requireNode(t)
	port := freePort(t)
	p := &provider{issuer: fmt.Sprintf("http://localhost:%d", port), apiClient: "interop-api", apiSecret: randomHex(t, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "provider.mjs")
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("INTEROP_PORT=%d", port),
		"INTEROP_ISSUER="+p.issuer,
		"INTEROP_CLIENT_ID="+clientID,
		"INTEROP_CLIENT_SECRET="+clientSecret,
		"INTEROP_REDIRECT_URI="+redirectURI,
		"INTEROP_API_CLIENT_ID="+p.apiClient,
		"INTEROP_API_CLIENT_SECRET="+p.apiSecret,
		"INTEROP_COOKIE_KEY="+randomHex(t, 16),
	)
	cmd.Env = append(cmd.Env, extra...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start oidc-provider: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("oidc-provider stderr:\n%s", stderr.String())
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY ") {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("oidc-provider exited: %s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("oidc-provider did not start: %s", stderr.String())
	}
	return p
}

func serve(t *testing.T, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func TestBrowserFlowAgainstOIDCProvider(t *testing.T) {
	browser.Path(t)
	requireNode(t)
	const clientID = "interop-spa"
	clientSecret := randomHex(t, 24)

	spaLn, _ := net.Listen("tcp", "127.0.0.1:0")
	apiLn, _ := net.Listen("tcp", "127.0.0.1:0")
	gwPort := freePort(t)
	spaURL := fmt.Sprintf("http://localhost:%d/", spaLn.Addr().(*net.TCPAddr).Port)
	gwURL := fmt.Sprintf("http://localhost:%d", gwPort)

	p := startProvider(t, clientID, clientSecret, spaURL)
	// The phantom token pattern: Gatehouse introspects the provider's opaque
	// tokens and the API receives a JWT signed by Gatehouse, which it verifies
	// with Gatehouse's JWKS.
	keys, err := jwtverify.NewKeySet(jwtverify.KeySetConfig{URL: gwURL + mint.JWKSPath, Client: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := jwtverify.New(keys, jwtverify.Config{Purpose: jwtverify.AccessToken, Issuer: gwURL, Audience: "interop-api"})
	if err != nil {
		t.Fatal(err)
	}
	api := demo.NewAPI(verifier, nil)
	serve(t, apiLn, api)
	serve(t, spaLn, demo.NewSPA(web.SPA(), demo.SPAConfig{GatehouseURL: gwURL, AgentPath: "/oauth-agent", APIPath: "/api", CookiePrefix: "interop"}))

	// `gatehouse serve` with a configuration file, as a user runs it.
	cfgPath := filepath.Join(t.TempDir(), "gatehouse.yaml")
	cfg := fmt.Sprintf(`
listen: "127.0.0.1:%d"
public_url: %q
authorization_server:
  issuer: %q
  introspection:
    client_id: %q
    client_secret: "${INTEROP_API_SECRET}"
oauth_agent:
  client_id: %q
  client_secret: "${INTEROP_SECRET}"
  redirect_uri: %q
  post_logout_redirect_uri: %q
  scope: "openid profile email offline_access"
  trusted_web_origins: [%q]
  cookie:
    name_prefix: "interop"
    encryption_keys: ["${INTEROP_COOKIE_KEY}"]
internal_jwt:
  key_file: "signing-key.pem"
routes:
  - name: "api"
    path: "/api"
    upstream: "http://%s"
    entry: ["cookie"]
    token_format: "opaque"
    forward: "phantom"
    audience: "interop-api"
`, gwPort, gwURL, p.issuer, p.apiClient, clientID, spaURL, spaURL, strings.TrimSuffix(spaURL, "/"), apiLn.Addr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"INTEROP_SECRET": clientSecret, "INTEROP_COOKIE_KEY": randomHex(t, 32), "INTEROP_API_SECRET": p.apiSecret}
	ctx, cancel := context.WithCancel(context.Background())
	var logs strings.Builder
	var logMu sync.Mutex
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

	tab := browser.New(t)
	browser.Run(t, tab,
		chromedp.Navigate(spaURL),
		chromedp.WaitVisible(chromedp.ID("sign-in")),
		chromedp.Click(chromedp.ID("sign-in")),
	)
	browser.WaitLocation(t, tab, p.issuer)
	browser.Run(t, tab,
		chromedp.WaitVisible(chromedp.CSS(`input[name=login]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=login]`), "demouser"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "any-password"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	)
	// The consent page (wait for its form, not the login page's button).
	browser.Run(t, tab,
		chromedp.WaitReady(chromedp.CSS(`input[name=prompt][value=consent]`)),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	)
	browser.WaitLocation(t, tab, spaURL)
	browser.Run(t, tab, chromedp.WaitVisible(chromedp.ID("signed-in")))
	browser.WaitText(t, tab, "claims", `"sub": "demouser"`)

	browser.Run(t, tab, chromedp.Click(chromedp.ID("get-data")))
	browser.WaitText(t, tab, "status", "GET succeeded")
	got := browser.Text(t, tab, "api-result")
	for _, want := range []string{`"iss": "` + gwURL + `"`, `"client_id": "` + clientID + `"`, `"sub": "demouser"`, `"aud": "interop-api"`} {
		if !strings.Contains(got, want) {
			t.Errorf("the API's view lacks %s: %s", want, got)
		}
	}
	browser.Run(t, tab, chromedp.Click(chromedp.ID("post-data")))
	browser.WaitText(t, tab, "status", "POST succeeded")

	// Three concurrent refreshes with the same rotating refresh token, then
	// one more: with reuse detection at the provider, a second use of a
	// rotated token would have revoked the grant and the last one would fail.
	statuses := browser.Eval[string](t, tab, fmt.Sprintf(`(async () => {
	  const gw = %q;
	  const le = await (await fetch(gw + '/oauth-agent/login/end', {method: 'POST', credentials: 'include',
	    headers: {'content-type': 'application/json'}, body: JSON.stringify({pageUrl: location.href})})).json();
	  const h = {'x-interop-csrf': le.csrf};
	  const refresh = () => fetch(gw + '/oauth-agent/refresh', {method: 'POST', credentials: 'include', headers: h}).then(r => r.status);
	  const first = await Promise.all([refresh(), refresh(), refresh()]);
	  const second = await refresh();
	  return first.join(',') + ';' + second;
	})()`, gwURL))
	if statuses != "204,204,204;204" {
		t.Fatalf("refresh statuses %s, want 204,204,204;204", statuses)
	}
	browser.Run(t, tab, chromedp.Click(chromedp.ID("refresh")))
	browser.WaitText(t, tab, "status", "Tokens refreshed")
	browser.Run(t, tab, chromedp.Click(chromedp.ID("get-data")))
	browser.WaitText(t, tab, "status", "GET succeeded")

	// Sign out: the provider asks for confirmation, then returns to the SPA.
	browser.Run(t, tab, chromedp.Click(chromedp.ID("sign-out")))
	browser.WaitLocation(t, tab, p.issuer)
	browser.Run(t, tab,
		chromedp.WaitVisible(chromedp.CSS(`button[name=logout]`)),
		chromedp.Click(chromedp.CSS(`button[name=logout]`)),
	)
	browser.WaitLocation(t, tab, spaURL)
	browser.Run(t, tab, chromedp.WaitVisible(chromedp.ID("signed-out")))

	// After logout the refresh token is revoked at the provider: the old
	// session cannot come back.
	before := api.Requests()
	code := browser.Eval[int](t, tab, fmt.Sprintf(`fetch(%q + '/api/data', {credentials: 'include'}).then(r => r.status)`, gwURL))
	if code != 401 {
		t.Errorf("API after logout: %d, want 401", code)
	}
	if api.Requests() != before {
		t.Error("a request reached the API after logout")
	}

	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(logs.String(), clientSecret) || strings.Contains(logs.String(), "code=") {
		t.Error("gatehouse logs contain a secret or a query string")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("gatehouse serve did not become ready")
}
