package proxy

import (
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
)

func testRouter(t testing.TB, paths ...string) *Router {
	t.Helper()
	up, _ := url.Parse("http://127.0.0.1:1")
	var routes []Route
	for _, p := range paths {
		routes = append(routes, Route{Name: p, Path: p, Upstream: up, Timeout: 1, MaxBody: 1, Entries: []authn.Entry{authn.Anonymous{}}})
	}
	rt, err := NewRouter(routes, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestMatch(t *testing.T) {
	rt := testRouter(t, "/api", "/api/web/orders", "/api/orders")
	tests := map[string]string{
		"/api":              "/api",
		"/api/":             "/api",
		"/api/x":            "/api",
		"/apix":             "",
		"/api/orders":       "/api/orders",
		"/api/orders/1":     "/api/orders",
		"/api/ordersx":      "/api",
		"/api/web/orders/7": "/api/web/orders",
		"/api/web":          "/api",
		"/other":            "",
	}
	for p, want := range tests {
		got := ""
		if r := rt.Match(p); r != nil {
			got = r.Path
		}
		if got != want {
			t.Errorf("Match(%q) = %q, want %q", p, got, want)
		}
	}
	if r := testRouter(t, "/").Match("/anything/at/all"); r == nil {
		t.Error("a / route matches everything")
	}
}

// FuzzMatch: a matched route covers the path at a segment boundary, and the
// longest such route wins.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{"/api", "/apix", "/api/orders/1", "/api/web/orders", "/"} {
		f.Add(s)
	}
	paths := []string{"/api", "/api/orders", "/api/web/orders", "/b"}
	rt := testRouter(f, paths...)
	f.Fuzz(func(t *testing.T, p string) {
		r := rt.Match(p)
		covers := func(prefix string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }
		longest := ""
		for _, rp := range paths {
			if covers(rp) && len(rp) > len(longest) {
				longest = rp
			}
		}
		got := ""
		if r != nil {
			got = r.Path
		}
		if got != longest {
			t.Fatalf("Match(%q) = %q, want %q", p, got, longest)
		}
	})
}
