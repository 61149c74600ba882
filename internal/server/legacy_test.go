package server_test

import (
	"encoding/json"
	"testing"
)

// A refresh cookie written by Curity's agent holds the bare refresh token,
// without the session's subject. A refreshed ID token cannot be checked
// against an unknown subject (a substituted token for another user would be
// accepted), so the session ends and the user logs in again once.
func TestLegacyRefreshCookieWithIDTokenEndsTheSession(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := e.browser
	csrf := e.login(b)
	var rc struct {
		RefreshToken string `json:"refreshToken"`
		Sub          string `json:"sub"`
	}
	if err := json.Unmarshal([]byte(e.open(e.cookie(b, "/oauth-agent", "example-auth"))), &rc); err != nil || rc.RefreshToken == "" || rc.Sub != userID {
		t.Fatalf("the -auth cookie does not hold the refresh token and subject: %+v %v", rc, err)
	}
	e.setJarCookie(b, "/oauth-agent", "example-auth", e.seal(rc.RefreshToken))

	r := e.do(b, "POST", "/oauth-agent/refresh", nil, withCSRF(csrf))
	e.expectError(r, 401, "session_expired")
	cleared := map[string]bool{}
	for _, c := range r.Cookies() {
		if c.MaxAge < 0 && c.Value == "" {
			cleared[c.Name] = true
		}
	}
	for _, name := range []string{"example-at", "example-auth", "example-id", "example-csrf"} {
		if !cleared[name] {
			t.Errorf("%s not cleared: %v", name, r.Header.Values("Set-Cookie"))
		}
	}
}
