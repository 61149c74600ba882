package sessioncookie

import (
	"net/http"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		value   string
		count   int
	}{
		{"absent", []string{"a=1; b=2"}, "", 0},
		{"one", []string{"a=1; example-at=v1; b=2"}, "v1", 1},
		{"quoted", []string{`example-at="v1"`}, "v1", 1},
		{"two headers (HTTP/2) merged", []string{"a=1", "example-at=v1"}, "v1", 1},
		{"duplicate in one header", []string{"example-at=v1; example-at=v2"}, "v2", 2},
		{"duplicate across headers", []string{"example-at=v1", "example-at=v2"}, "v2", 2},
		{"name is exact", []string{"xexample-at=v1; example-at-x=v2; EXAMPLE-AT=v3"}, "", 0},
		{"no spaces", []string{"a=1;example-at=v1;b=2"}, "v1", 1},
		{"empty value", []string{"example-at="}, "", 1},
		{"value with =", []string{"example-at=a=b"}, "a=b", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, n := Lookup(tc.headers, "example-at")
			if v != tc.value || n != tc.count {
				t.Fatalf("Lookup = %q, %d; want %q, %d", v, n, tc.value, tc.count)
			}
		})
	}
}

func TestLookupAllocations(t *testing.T) {
	h := []string{"a=1; example-csrf=abc; example-at=" + strings.Repeat("x", 500)}
	if n := testing.AllocsPerRun(100, func() { Lookup(h, "example-at") }); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
}

// FuzzLookup: any Cookie header is parsed without panicking, a value found is
// part of the header, and a found name really occurs as a cookie name.
func FuzzLookup(f *testing.F) {
	for _, s := range []string{"", "example-at=v", "a=1; example-at=v; example-at=w", `example-at="`, ";;=;", "example-at"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		v, n := Lookup([]string{header}, "example-at")
		if n == 0 && v != "" {
			t.Fatalf("value %q without a match", v)
		}
		if n > 0 && !strings.Contains(header, "example-at=") {
			t.Fatalf("match in %q without the name", header)
		}
		if !strings.Contains(header, v) {
			t.Fatalf("value %q not in header %q", v, header)
		}
	})
}

// An upstream must not be able to set any of Gatehouse's cookies, including
// the __Secure- named vault binding cookie of a __Host- prefix.
func TestOwns(t *testing.T) {
	plain := New(Config{Prefix: "example", Path: "/", BasePath: "/oauth-agent"})
	host := New(Config{Prefix: "__Host-example", Path: "/", BasePath: "/oauth-agent"})
	tests := []struct {
		c    *Codec
		name string
		want bool
	}{
		{plain, "example-at", true},
		{plain, "EXAMPLE-CSRF", true},
		{plain, "example-vault", true},
		{plain, "examplex", false},
		{plain, "theme", false},
		{host, "__Host-example-at", true},
		{host, "__Secure-example-vault", true},
		{host, "__secure-EXAMPLE-vault", true},
		{host, "example-at", false},
		{host, "__Secure-other-vault", false},
	}
	for _, tc := range tests {
		if got := tc.c.Owns(tc.name); got != tc.want {
			t.Errorf("Owns(%q) with prefix %q = %v", tc.name, tc.c.cfg.Prefix, got)
		}
	}
}

// The codec reads all its names in one pass of the Cookie headers, with the
// semantics of Lookup, and without allocating.
func TestScanMatchesLookup(t *testing.T) {
	c := New(Config{Prefix: "example", Path: "/", BasePath: "/oauth-agent"})
	r := &http.Request{Header: http.Header{"Cookie": {
		`a=1; example-at="v1"; example-csrf=c`, "example-at=v2; example-id=; xexample-auth=z; example-login",
	}}}
	f := c.scan(r)
	for k := range numKinds {
		v, n := Lookup(r.Header["Cookie"], c.names[k])
		if f[k].value != v || f[k].count != n {
			t.Errorf("%s: scan %+v, Lookup %q %d", c.names[k], f[k], v, n)
		}
	}
	if !c.Duplicates(r) {
		t.Error("the duplicated -at cookie was not seen")
	}
	if n := testing.AllocsPerRun(100, func() { c.scan(r) }); n != 0 {
		t.Errorf("scan allocates %v times", n)
	}
}
