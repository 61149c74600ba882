package server_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/devidp/devidptest"
)

// TestProviderDownAtStart pins the start-up rule: with the authorization
// server unreachable Gatehouse serves anyway, /readyz says 503 and the agent
// answers 502 authorization_server_error; once the provider appears,
// discovery retries on its own and the gateway becomes ready.
func TestProviderDownAtStart(t *testing.T) {
	t.Parallel()
	issuer := "http://" + closedPort(t)
	e := newEnv(t, envOptions{issuer: issuer})
	b := e.browser

	if r := e.do(b, "GET", "/healthz", nil); r.StatusCode != 200 {
		t.Errorf("/healthz while the provider is down: %d", r.StatusCode)
	}
	r := e.do(b, "GET", "/readyz", nil)
	expectErr(t, "/readyz", r, 503, "unavailable")
	r = e.do(b, "POST", "/oauth-agent/login/start", nil)
	expectErr(t, "login/start", r, 502, "authorization_server_error")
	checkAgentHeaders(t, "login/start", r)
	checkCORS(t, "login/start", r)
	if n := setCookieNames(r); len(n) > 0 {
		t.Errorf("login/start set cookies %v while the provider is down", n)
	}
	// A callback arriving while the provider is unknown is not a client error.
	b2 := e.newBrowser()
	tx := `{"codeVerifier":"v-0123456789012345678901234567890123456789","state":"s1","nonce":"n1","iat":` + strconv.FormatInt(time.Now().Unix(), 10) + `}`
	e.setJarCookie(b2, "/", "example-login", e.seal(tx))
	r = e.do(b2, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL + "?code=c1&state=s1"})
	expectErr(t, "login/end while the provider is down", r, 502, "authorization_server_error")

	// The provider comes up on the configured issuer.
	cfg := testIDPConfig()
	cfg.Issuer = issuer
	idp := devidptest.Start(t, cfg)
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := e.do(b, "GET", "/readyz", nil)
		if r.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not become ready after the provider appeared: %d %s", r.StatusCode, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !e.srv.Ready() {
		t.Error("Ready() is false while /readyz says ready")
	}
	csrf := e.login(b)
	if r := e.do(b, "POST", "/oauth-agent/refresh", nil, withCSRF(csrf)); r.StatusCode != 204 {
		t.Fatalf("refresh: %d %s", r.StatusCode, r.body)
	}
	if idp.Stats().TokenRefresh != 1 {
		t.Errorf("the refresh did not reach the provider that appeared")
	}
	e.assertNoSecretsAnywhere()
}

// TestAuthorizationServerFaults pins the answers when the token or userinfo
// endpoint fails: 5xx, a garbage body or no answer within
// authorization_server.timeout are 502 authorization_server_error and never
// end the session; a 400 invalid_grant at login is 400 authorization_error.
// The fake is a scriptable proxy in front of the real provider.
func TestAuthorizationServerFaults(t *testing.T) {
	t.Parallel()
	e, fake := newEnvWithFaultyAS(t, "1s")
	b := e.browser
	csrf := e.login(b)
	if fake.count(devidp.PathToken) != 1 {
		t.Fatalf("the login did not use the configured token endpoint")
	}
	refreshes := e.idp.Stats().TokenRefresh

	faults := []string{mode500, modeGarbage, modeHang}
	for _, mode := range faults {
		t.Run("refresh "+mode, func(t *testing.T) {
			e := e.sub(t)
			fake.set(devidp.PathToken, mode)
			start := time.Now()
			r := e.do(b, "POST", "/oauth-agent/refresh", nil, withCSRF(csrf))
			expectErr(t, "refresh", r, 502, "authorization_server_error")
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("refresh took %v with a 1 s AS timeout", d)
			}
			if len(r.Header.Values("Set-Cookie")) > 0 {
				t.Errorf("an AS fault touched the session cookies: %v", r.Header.Values("Set-Cookie"))
			}
			if strings.Contains(string(r.body), "10.0.0.7") {
				t.Errorf("the AS's text reached the browser: %s", r.body)
			}
		})
		t.Run("userInfo "+mode, func(t *testing.T) {
			e := e.sub(t)
			fake.set(devidp.PathUserinfo, mode)
			r := e.do(b, "GET", "/oauth-agent/userInfo", nil)
			expectErr(t, "userInfo", r, 502, "authorization_server_error")
			fake.set(devidp.PathUserinfo, modePass)
		})
	}
	// The session survived every fault.
	fake.set(devidp.PathToken, modePass)
	if r := e.do(b, "POST", "/oauth-agent/refresh", nil, withCSRF(csrf)); r.StatusCode != 204 {
		t.Fatalf("refresh after the faults: %d %s", r.StatusCode, r.body)
	}
	if got := e.idp.Stats().TokenRefresh - refreshes; got != 1 {
		t.Errorf("%d refreshes reached the provider, want 1", got)
	}
	e.collectCookieSecrets(b)
	if r := e.do(b, "GET", "/oauth-agent/userInfo", nil); r.StatusCode != 200 {
		t.Fatalf("userInfo after the faults: %d %s", r.StatusCode, r.body)
	}

	for _, c := range []struct {
		mode   string
		status int
		code   string
	}{
		{mode500, 502, "authorization_server_error"},
		{modeGarbage, 502, "authorization_server_error"},
		{modeHang, 502, "authorization_server_error"},
		{modeInvalidGrant, 400, "authorization_error"},
	} {
		t.Run("login "+c.mode, func(t *testing.T) {
			e := e.sub(t)
			fake.set(devidp.PathToken, modePass)
			b, cb, _ := e.startLogin(nil)
			fake.set(devidp.PathToken, c.mode)
			r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": cb})
			expectErr(t, "login/end", r, c.status, c.code)
			checkAgentHeaders(t, "login/end", r)
			if n := setCookieNames(r); len(n) > 0 {
				t.Errorf("a failed code exchange set cookies %v", n)
			}
			if strings.Contains(string(r.body), "code expired") || strings.Contains(string(r.body), "10.0.0.7") {
				t.Errorf("the AS's text reached the browser: %s", r.body)
			}
		})
	}
	e.assertNoSecretsAnywhere()
}
