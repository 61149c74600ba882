package server

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	good := []string{"/", "/api", "/api/orders/42", "/api/a.b/c..d", "/oauth-agent/login/start", "/api/%20x"}
	bad := []string{"", "api", "/api/../x", "/api/./x", "/..", "/api/..", "//api", "/api//x", "/api/%2e%2e/x", "/api/%2E%2E", "/api%2fx", "/api%2Fx", "/api%5cx", "/api\\x", "/api/\x00", "/api/%00", "/api/..;/admin", "/api/..;x/admin", "/api/..%3b/admin", "/api/.;/x", "/api/..%3B"}
	for _, raw := range good {
		if err := checkRaw(raw); err != nil {
			t.Errorf("checkPath refused %q: %v", raw, err)
		}
	}
	for _, raw := range bad {
		if err := checkRaw(raw); err == nil {
			t.Errorf("checkPath accepted %q", raw)
		}
	}
}

func checkRaw(raw string) error {
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		return err
	}
	return checkPath(u.Path, u.EscapedPath())
}

// FuzzCheckPath: an accepted path is canonical, so a prefix match on it means
// the same to Gatehouse and to the upstream.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"/api/x", "/api/../x", "/api/%2e%2e/", "//x", "/a%2fb", "/a/./b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		if checkPath(u.Path, u.EscapedPath()) != nil {
			return
		}
		if path.Clean(u.Path) != u.Path && !(strings.HasSuffix(u.Path, "/") && path.Clean(u.Path)+"/" == u.Path) {
			t.Fatalf("accepted non-canonical path %q (clean %q)", u.Path, path.Clean(u.Path))
		}
		if l := strings.ToLower(u.EscapedPath()); strings.Contains(l, "%2f") || strings.Contains(l, "%5c") || strings.Contains(u.Path, "\\") {
			t.Fatalf("accepted an encoded separator in %q", raw)
		}
	})
}
