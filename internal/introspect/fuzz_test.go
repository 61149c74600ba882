package introspect

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzIntrospectResponse feeds arbitrary bodies to the response parsers of
// the JSON and the JWT (Curity) formats. Nothing may panic; an active result
// needs the JSON boolean true, or a strict compact JWT whose payload is a
// JSON object; errors never repeat the body.
func FuzzIntrospectResponse(f *testing.F) {
	enc := base64.RawURLEncoding.EncodeToString
	jwt := enc([]byte(`{"alg":"RS256","kid":"k"}`)) + "." + enc([]byte(`{"sub":"u1","exp":4102444800,"scope":"a b","aud":["x"]}`)) + "." + enc([]byte("signature"))
	for _, s := range []string{
		`{"active":true,"sub":"u1","exp":1700000000,"aud":"api","scope":"read"}`,
		`{"active":true,"scope":["a","b"],"aud":["x","y"],"iat":1.5,"nbf":0}`,
		`{"active":true,"token_type":"refresh_token"}`,
		`{"active":false}`, `{"active":"true"}`, `{"active":1}`, `{}`, `null`, `[]`, `{"active":true}{}`,
		`{"active":true,"exp":1e400}`, `{"active":true,"exp":-1}`, `{"active":true,"iss":7}`,
		jwt, jwt + "\n", " " + jwt, jwt + ".", strings.Replace(jwt, ".", ".\r\n", 1),
		enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{}`)) + ".",
		"a.b.c", "..", "",
	} {
		f.Add([]byte(s))
	}
	active := regexp.MustCompile(`"active"\s*:\s*true`)
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(name string, res *Result, err error) {
			if err != nil {
				if res != nil {
					t.Fatalf("%s: result with an error", name)
				}
				if len(body) >= 12 && strings.Contains(err.Error(), string(body)) {
					t.Fatalf("%s: error repeats the body: %v", name, err)
				}
				return
			}
			if res == nil {
				t.Fatalf("%s: nil result without error", name)
			}
			if !res.Active && (res.JWT != "" || res.Subject != "") {
				t.Fatalf("%s: inactive result with fields: %+v", name, res)
			}
		}
		res, err := parseJSONResponse(body, "https://as.example.com")
		check("json", res, err)
		if err == nil && res.Active {
			if res.Claims["active"] != true || !active.Match(body) {
				t.Fatalf("json: active without \"active\": true in %q", body)
			}
			if res.Issuer == "" && res.Claims["iss"] == nil {
				t.Fatal("json: no issuer")
			}
		}
		res, err = parseJWTResponse(body, "https://as.example.com")
		check("jwt", res, err)
		if err == nil && res.Active {
			if !compactJWS([]byte(res.JWT)) || strings.ContainsAny(res.JWT, " \t\r\n=") {
				t.Fatalf("jwt: forwarding %q", res.JWT)
			}
			if res.JWT != string(bytes.TrimSpace(body)) {
				t.Fatalf("jwt: forwarding something else than the body")
			}
		}
	})
}

// FuzzCheckToken pins the token filter to the RFC 6750 b64token grammar.
func FuzzCheckToken(f *testing.F) {
	for _, s := range []string{"abc", "a=", "a==", "=", "a=b", "a b", "AZaz09-._~+/", "tök", "", "a\r\n"} {
		f.Add(s)
	}
	b64token := regexp.MustCompile(`^[A-Za-z0-9\-._~+/]+=*$`)
	f.Fuzz(func(t *testing.T, token string) {
		err := checkToken(token)
		want := b64token.MatchString(token) && len(token) <= MaxTokenBytes
		if (err == nil) != want {
			t.Fatalf("checkToken(%q) = %v, want ok=%t", token, err, want)
		}
		if err != nil && !errors.Is(err, ErrMalformedToken) {
			t.Fatalf("error without sentinel: %v", err)
		}
	})
}

// FuzzMaxAge: any Cache-Control value gives -1 (none) or an age between 0
// and 2^31 seconds, and a well-formed directive is read as written.
func FuzzMaxAge(f *testing.F) {
	for _, s := range []string{"max-age=30", "no-store", "max-age=", "max-age=-1", "MAX-AGE=5, max-age=3", `max-age="7"`, "max-age=99999999999999999999"} {
		f.Add(s, uint32(30))
	}
	f.Fuzz(func(t *testing.T, v string, n uint32) {
		h := http.Header{}
		h.Set("Cache-Control", v)
		if got := maxAgeOf(h); got < -1 || got > (1<<31)*time.Second {
			t.Fatalf("maxAgeOf(%q) = %v", v, got)
		}
		h.Set("Cache-Control", "private, max-age="+strconv.FormatUint(uint64(n), 10))
		want := min(time.Duration(n), 1<<31) * time.Second
		if got := maxAgeOf(h); got != want {
			t.Fatalf("max-age=%d read as %v", n, got)
		}
	})
}
