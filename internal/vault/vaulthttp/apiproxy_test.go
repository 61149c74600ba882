package vaulthttp

import (
	"net/url"
	"path"
	"strings"
	"testing"
	"time"
)

func proxyFor(t testing.TB, base string) *apiProxy {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return &apiProxy{name: "p", api: API{BaseURL: u, Timeout: time.Second, MaxBody: 1 << 20}}
}

// Regression tests for path escapes: the escaped path after .../proxy must
// land under the API base path, on the configured host.
func TestTargetURL(t *testing.T) {
	p := proxyFor(t, "https://api.example.com/v1")
	for _, tc := range []struct {
		rest, query, want string
	}{
		{"", "", "https://api.example.com/v1"},
		{"/", "", "https://api.example.com/v1/"},
		{"/user/repos", "per_page=5", "https://api.example.com/v1/user/repos?per_page=5"},
		{"/files/a%20b.txt", "", "https://api.example.com/v1/files/a%20b.txt"},
		{"/a/", "", "https://api.example.com/v1/a/"},
		{"/repos/o/r/contents/%40x", "", "https://api.example.com/v1/repos/o/r/contents/%40x"}, // the caller's encoding is kept
	} {
		u, err := p.targetURL(tc.rest, tc.query)
		if err != nil {
			t.Errorf("%q: %v", tc.rest, err)
			continue
		}
		if u.String() != tc.want {
			t.Errorf("%q: %s, want %s", tc.rest, u, tc.want)
		}
	}
	for _, rest := range []string{
		"/..", "/../admin", "/a/../../admin", "/..;/admin", "/a/..%3b/..%3b/admin", "/%2e%2e/admin", "/%2E%2e", "/a/%2e%2e/%2e%2e/x", "/./a", "/a/.",
		"/a%2fb", "/a%2F..%2F..%2Fadmin", "/a%5c..", "/a\\b", "//evil.example/x", "/a//b", "/a%00b", "/a%0d%0aHost:x",
		"noslash", "/%zz",
	} {
		if u, err := p.targetURL(rest, ""); err == nil {
			t.Errorf("%q accepted as %s", rest, u)
		}
	}
	root := proxyFor(t, "https://slack.com")
	if u, err := root.targetURL("/api/chat.postMessage", ""); err != nil || u.String() != "https://slack.com/api/chat.postMessage" {
		t.Errorf("root base: %v %v", u, err)
	}
}

// FuzzTargetURL: whatever the browser sends, the target stays on the
// configured scheme and host, under the base path, without dot segments.
func FuzzTargetURL(f *testing.F) {
	for _, s := range []string{"", "/", "/a/b", "/..", "/%2e%2e", "/a%2fb", "/a/./b", "//x", "/a%25%32%66b", "/ü", "/a?b"} {
		f.Add(s)
	}
	p := proxyFor(f, "https://api.example.com/v1")
	f.Fuzz(func(t *testing.T, rest string) {
		u, err := p.targetURL(rest, "q=1")
		if err != nil {
			return
		}
		if u.Scheme != "https" || u.Host != "api.example.com" || u.User != nil {
			t.Fatalf("%q: left the API: %s", rest, u)
		}
		if u.Path != "/v1" && !strings.HasPrefix(u.Path, "/v1/") {
			t.Fatalf("%q: left the base path: %q", rest, u.Path)
		}
		if c := path.Clean(u.Path); c != strings.TrimSuffix(u.Path, "/") && c != u.Path {
			t.Fatalf("%q: not canonical: %q", rest, u.Path)
		}
		// What goes on the wire must mean the same path to the API.
		back, err := url.Parse(u.String())
		if err != nil || back.Path != u.Path || back.Host != u.Host {
			t.Fatalf("%q: %s reparses as %v (%v)", rest, u, back, err)
		}
	})
}

func TestClaimMatches(t *testing.T) {
	for _, tc := range []struct {
		claim any
		ok    bool
	}{
		{"acme", true}, {"other", false}, {[]any{"x", "acme"}, true}, {[]any{"x"}, false},
		{float64(42), true}, {true, false}, {map[string]any{"acme": true}, false}, {nil, false},
	} {
		if got := claimMatches(tc.claim, []string{"acme", "42"}); got != tc.ok {
			t.Errorf("%v: %v", tc.claim, got)
		}
	}
}

// Browsers refuse __Host- cookies on any path but /, and the binding cookie
// is scoped to one provider's callback: it becomes __Secure-.
func TestBindingCookie(t *testing.T) {
	for _, tc := range []struct {
		prefix   string
		insecure bool
		want     string
	}{
		{"example", false, "example-vault=v; Path=/connections/gh/callback; Max-Age=600; HttpOnly; Secure; SameSite=Lax"},
		{"__Host-example", false, "__Secure-example-vault=v; Path=/connections/gh/callback; Max-Age=600; HttpOnly; Secure; SameSite=Lax"},
		{"dev", true, "dev-vault=v; Path=/connections/gh/callback; Max-Age=600; HttpOnly; SameSite=Lax"},
	} {
		h := &Handler{cfg: Config{CookiePrefix: tc.prefix, InsecureCookies: tc.insecure}}
		if got := h.bindingCookie("gh", "v", 600); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.prefix, got, tc.want)
		}
	}
	h := &Handler{cfg: Config{CookiePrefix: "example"}}
	if got := h.bindingCookie("gh", "", -1); !strings.Contains(got, "Max-Age=0") || !strings.Contains(got, "Path=/connections/gh/callback") {
		t.Errorf("clearing: %s", got)
	}
}
