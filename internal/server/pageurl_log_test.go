package server_test

import (
	"strings"
	"testing"
)

// A malformed pageUrl at /login/end is refused without its text reaching the
// logs: it carries the authorization code and state (invariant 1: the
// callback page's ?code= is never logged). url's parse errors quote the URL.
func TestMalformedPageURLIsNotLogged(t *testing.T) {
	e := newEnv(t, envOptions{})
	const code, state = "SECRETCODE-0123456789", "SECRETSTATE-0123456789"
	for _, page := range []string{
		"https://127.0.0.1:5173/%zz?code=" + code + "&state=" + state,
		"https://127.0.0.1:5173/?code=" + code + "&state=" + state + "&x=%zz",
		"http://[::1%zz]/?code=" + code + "&state=" + state,
	} {
		r := e.do(e.browser, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": page})
		e.expectError(r, 400, "invalid_request")
		if strings.Contains(string(r.body), code) || strings.Contains(string(r.body), state) {
			t.Errorf("the response reflects the code or state: %s", r.body)
		}
	}
	if logs := e.logs.String(); strings.Contains(logs, code) || strings.Contains(logs, state) {
		t.Fatalf("the logs contain the code or state of a malformed pageUrl")
	}
}
