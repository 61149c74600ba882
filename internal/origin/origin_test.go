package origin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	p := New([]string{"https://www.example.com"}, true)
	same := New([]string{"https://www.example.com"}, false)
	tests := []struct {
		name    string
		pol     *Policy
		method  string
		origins []string
		ok      bool
	}{
		{"trusted", p, "POST", []string{"https://www.example.com"}, true},
		{"missing on POST", p, "POST", nil, false},
		{"missing on GET with CORS", p, "GET", nil, false},
		{"missing on GET same-origin mode", same, "GET", nil, true},
		{"missing on POST same-origin mode", same, "POST", nil, false},
		{"null", p, "POST", []string{"null"}, false},
		{"look-alike suffix", p, "POST", []string{"https://www.example.com.evil.io"}, false},
		{"trailing slash", p, "POST", []string{"https://www.example.com/"}, false},
		{"upper case", p, "POST", []string{"HTTPS://WWW.EXAMPLE.COM"}, false},
		{"other port", p, "POST", []string{"https://www.example.com:444"}, false},
		{"other scheme", p, "POST", []string{"http://www.example.com"}, false},
		{"two headers", p, "POST", []string{"https://www.example.com", "https://www.example.com"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/", nil)
			for _, o := range tc.origins {
				r.Header.Add("Origin", o)
			}
			if err := tc.pol.Check(r); (err == nil) != tc.ok {
				t.Fatalf("Check = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// FuzzPreflight: whatever a preflight asks for, the answer never carries a
// header value with a line break, and grants CORS only to the trusted origin.
func FuzzPreflight(f *testing.F) {
	f.Add("https://www.example.com", "content-type, x-example-csrf")
	f.Add("https://evil.io", "x\r\nSet-Cookie: a=b")
	f.Fuzz(func(t *testing.T, origin, reqHeaders string) {
		p := New([]string{"https://www.example.com"}, true)
		r := httptest.NewRequest(http.MethodOptions, "/", nil)
		r.Header["Origin"] = []string{origin}
		r.Header["Access-Control-Request-Method"] = []string{"POST"}
		r.Header["Access-Control-Request-Headers"] = []string{reqHeaders}
		w := httptest.NewRecorder()
		p.Preflight(w, r, "GET, POST")
		for k, vs := range w.Header() {
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n") {
					t.Fatalf("header %s has a line break: %q", k, v)
				}
			}
		}
		if acao := w.Header().Get("Access-Control-Allow-Origin"); acao != "" && acao != "https://www.example.com" {
			t.Fatalf("CORS granted to %q", acao)
		}
	})
}
