package origin

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzCheck stops look-alike origins: whatever Origin header values a
// request carries (suffix and prefix look-alikes, case, ports, trailing
// slashes, "null", several headers), Check, CheckStrict and AddHeaders
// accept or grant CORS only to a request with exactly one Origin equal,
// byte for byte, to a trusted origin; a request without Origin passes only
// as a GET or HEAD with CORS off.
func FuzzCheck(f *testing.F) {
	const trusted = "https://www.example.com"
	for _, s := range []string{
		trusted, "https://www.example.com.evil.io", "https://www.example.com/", "HTTPS://WWW.EXAMPLE.COM",
		"https://www.example.com:443", "http://www.example.com", "null", "", " https://www.example.com",
		"https://www.example.com\x00", "https://evil.io#https://www.example.com", "https://www.example.co",
	} {
		f.Add(s, "", uint8(1), "POST", true)
		f.Add(s, trusted, uint8(2), "GET", false)
	}
	f.Add("", "", uint8(0), "GET", false)
	f.Add("", "", uint8(0), "HEAD", true)
	f.Fuzz(func(t *testing.T, first, second string, n uint8, method string, cors bool) {
		p := New([]string{trusted}, cors)
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Method = method
		var vals []string
		switch n % 3 {
		case 1:
			vals = []string{first}
		case 2:
			vals = []string{first, second}
		}
		if vals != nil {
			r.Header["Origin"] = vals
		}
		exact := len(vals) == 1 && vals[0] == trusted
		safeWithout := len(vals) == 0 && !cors && (method == http.MethodGet || method == http.MethodHead)
		if err := p.Check(r); (err == nil) != (exact || safeWithout) {
			t.Fatalf("Check(%q, %s, cors=%v) = %v", vals, method, cors, err)
		}
		if err := p.CheckStrict(r); (err == nil) != exact {
			t.Fatalf("CheckStrict(%q) = %v", vals, err)
		}
		h := http.Header{}
		p.AddHeaders(h, r)
		if acao := h.Get("Access-Control-Allow-Origin"); (acao != "") != (exact && cors) || acao != "" && acao != trusted {
			t.Fatalf("AddHeaders(%q, cors=%v) granted %q", vals, cors, acao)
		}
	})
}
