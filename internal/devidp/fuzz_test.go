package devidp_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

// FuzzAuthorizeRedirects pins that the authorization endpoint never
// redirects anywhere but to the provider's login page or to a redirect_uri
// registered for the client (no open redirector), and never fails with a
// server error, whatever the parameters.
func FuzzAuthorizeRedirects(f *testing.F) {
	idp, err := devidp.New(fuzzConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(basicClient.id, redirectURI, "code", "", "openid", "", "S256", "x")
	f.Add(publicClient.id, redirectURI, "code", "fragment", "openid profile", "none", "", "")
	f.Add(basicClient.id, "https://attacker.example/cb", "code", "form_post", "openid", "login", "plain", "x")
	f.Add("nobody", redirectURI, "id_token token", "query", "", "", "", "")
	f.Add(basicClient.id, redirectURI+"/../evil", "code", "", "openid read", "", "S256", "x")
	f.Add(basicClient.id, "http://localhost:8080/callback?x=1", "code", "web_message", "phone", "", "S256", "x")
	f.Fuzz(func(t *testing.T, clientID, redirect, responseType, responseMode, scope, prompt, method, challenge string) {
		q := url.Values{
			"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {responseType},
			"response_mode": {responseMode}, "scope": {scope}, "prompt": {prompt}, "state": {"st"},
			"code_challenge_method": {method}, "code_challenge": {challenge},
		}
		rec := httptest.NewRecorder()
		idp.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, idp.Issuer()+devidp.PathAuthorize+"?"+q.Encode(), nil))
		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		loc := rec.Header().Get("Location")
		if loc == "" {
			return
		}
		if strings.HasPrefix(loc, idp.Issuer()+devidp.PathLogin+"?") {
			return
		}
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("unparsable Location %q", loc)
		}
		if target := u.Scheme + "://" + u.Host + u.Path; target != redirectURI || clientID == apiClient.id || clientID == serviceClient.id {
			t.Fatalf("redirected to %q for client %q", loc, clientID)
		}
	})
}

// FuzzEndSessionRedirects pins that end session redirects only to the
// provider's signed-out page or a registered post_logout_redirect_uri.
func FuzzEndSessionRedirects(f *testing.F) {
	idp, err := devidp.New(fuzzConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(basicClient.id, postLogoutURI, "s", "")
	f.Add("", "https://attacker.example/", "", "")
	f.Add(basicClient.id, "https://attacker.example/", "", "not-a-jwt")
	f.Add(publicClient.id, postLogoutURI+"?x=1", "a b", "e30.e30.e30")
	f.Fuzz(func(t *testing.T, clientID, postLogout, state, hint string) {
		q := url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {postLogout}, "state": {state}, "id_token_hint": {hint}}
		rec := httptest.NewRecorder()
		idp.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, idp.Issuer()+devidp.PathEndSession+"?"+q.Encode(), nil))
		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		loc := rec.Header().Get("Location")
		if loc == "" {
			return
		}
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("unparsable Location %q", loc)
		}
		target := u.Scheme + "://" + u.Host + u.Path
		if target != idp.Issuer()+devidp.PathLoggedOut && target != postLogoutURI {
			t.Fatalf("redirected to %q", loc)
		}
	})
}

// fuzzConfig is testConfig with a fixed issuer; the provider is served
// in-process through ServeHTTP.
func fuzzConfig() devidp.Config {
	cfg := testConfig(nil)
	cfg.Issuer = "http://127.0.0.1:1"
	return cfg
}
