package oauthagent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/origin"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/sessioncookie"
)

const (
	fuzzIssuer   = "https://idp.example"
	fuzzOrigin   = "https://www.example.com"
	fuzzState    = "fuzz-state-0123456789abcdefghijklmnopqrstuvw"
	fuzzVerifier = "fuzz-verifier-0123456789abcdefghijklmnopqrst"
)

// invalidGrant is the authorization server's token endpoint, without a
// network: every code is refused.
type invalidGrant struct{}

func (invalidGrant) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusBadRequest, Request: r,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   io.NopCloser(strings.NewReader(`{"error":"invalid_grant","error_description":"https://evil.io"}`)),
	}, nil
}

// refuseAll is an ID token verifier that never gets a token to verify here.
type refuseAll struct{}

func (refuseAll) VerifyIDToken(context.Context, string) (IDToken, error) {
	return IDToken{}, errors.New("no ID token expected")
}

// FuzzLoginEndPageURL stops crafted callback URLs at /login/end from
// crashing the agent, turning into a redirect, or getting reflected: for any
// pageUrl, with or without a login in progress (whose state the fuzzer can
// hit), the answer is never a 5xx or 3xx, is a JSON object with only the
// contract's fields (handled, isLoggedIn, csrf, code, message), never
// carries the PKCE verifier, a URL or control characters, and sets no cookie
// other than clearing -login; a message is short. The provider advertises
// RFC 9207 and refuses every code, so no input logs in.
func FuzzLoginEndPageURL(f *testing.F) {
	key, err := seal.ParseKey("3f7a9c1e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a")
	if err != nil {
		f.Fatal(err)
	}
	ring, err := seal.NewRing([]seal.Key{key}, nil)
	if err != nil {
		f.Fatal(err)
	}
	cookies := sessioncookie.New(sessioncookie.Config{Prefix: "example", Path: "/", BasePath: "/oauth-agent", LoginMaxAge: 10 * time.Minute, Ring: ring})
	provider := oauthclient.NewProvider(oauthclient.ProviderConfig{
		Issuer: fuzzIssuer,
		Overrides: oauthclient.Metadata{
			AuthorizationEndpoint: fuzzIssuer + "/authorize", TokenEndpoint: fuzzIssuer + "/token",
			JWKSURI: fuzzIssuer + "/keys", AuthorizationResponseIssSupport: true,
		},
	})
	client := &oauthclient.Client{Provider: provider, ClientID: "spa-client",
		Auth: oauthclient.SecretBasic{ClientID: "spa-client", Secret: secret.New("s3cret")}, HTTP: &http.Client{Transport: invalidGrant{}}}
	now := time.Now()
	agent, err := New(Config{BasePath: "/oauth-agent", ClientID: "spa-client", RedirectURI: fuzzOrigin + "/", Scope: "openid",
		LoginWindow: 10 * time.Minute, RefreshReuseWindow: time.Minute},
		Deps{Client: client, Cookies: cookies, Origins: origin.New([]string{fuzzOrigin}, true), IDTokens: refuseAll{}, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	tx, _ := json.Marshal(loginTransaction{CodeVerifier: fuzzVerifier, State: fuzzState, Nonce: "fuzz-nonce", Created: now.Unix()})
	login, err := ring.SealString(string(tx))
	if err != nil {
		f.Fatal(err)
	}

	cb := fuzzOrigin + "/?code=abc&state=" + fuzzState
	for _, s := range []string{
		"", fuzzOrigin + "/", cb, cb + "&iss=" + fuzzIssuer, cb + "&iss=https%3A%2F%2Fevil.io", cb + "&state=x",
		fuzzOrigin + "/?error=access_denied&state=" + fuzzState + "&iss=" + fuzzIssuer + "&error_description=https://evil.io",
		fuzzOrigin + "/?error=login_required&state=x", fuzzOrigin + "/?error=%0d%0aLocation:%20https://evil.io&state=s",
		"//evil.io/?code=a&state=b", "/\\evil.io", "https://www.example.com@evil.io/?code=a&state=" + fuzzState,
		"%", "?;", "http://[::1", "\x00", fuzzOrigin + "/#code=a&state=b", fuzzOrigin + "/?code=a&code=b&state=c",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, pageURL string, withLogin bool) {
		body, _ := json.Marshal(map[string]string{"pageUrl": pageURL})
		r := httptest.NewRequest(http.MethodPost, "/oauth-agent/login/end", strings.NewReader(string(body)))
		r.Header.Set("Origin", fuzzOrigin)
		r.Header.Set("Content-Type", "application/json")
		if withLogin {
			r.Header.Set("Cookie", "example-login="+login)
		}
		w := httptest.NewRecorder()
		agent.ServeHTTP(w, r)
		res := w.Result()
		if res.StatusCode >= 500 || res.StatusCode/100 == 3 || res.Header.Get("Location") != "" {
			t.Fatalf("pageUrl %q: status %d, Location %q: %s", pageURL, res.StatusCode, res.Header.Get("Location"), w.Body)
		}
		if res.StatusCode != 200 && res.StatusCode != 400 && res.StatusCode != 401 {
			t.Fatalf("pageUrl %q: status %d", pageURL, res.StatusCode)
		}
		out := w.Body.String()
		if strings.Contains(out, fuzzVerifier) || strings.Contains(out, login) {
			t.Fatalf("pageUrl %q: the answer carries the login transaction: %s", pageURL, out)
		}
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("pageUrl %q: answer is not a JSON object: %q", pageURL, out)
		}
		for k, v := range m {
			switch k {
			case "handled", "isLoggedIn":
				if v != false {
					t.Fatalf("pageUrl %q: %s=%v without a login", pageURL, k, v)
				}
			case "code", "message":
				s, _ := v.(string)
				if len(s) > 256 || strings.ContainsAny(s, "\r\n\x00\"\\") {
					t.Fatalf("pageUrl %q: %s=%q", pageURL, k, s)
				}
				if k == "code" && s != codeAuthorization && s != "invalid_request" && s != codeUnauthorized && !registeredErrors[s] {
					t.Fatalf("pageUrl %q: unregistered code %q", pageURL, s)
				}
			default:
				t.Fatalf("pageUrl %q: the answer carries %s=%v", pageURL, k, v)
			}
		}
		for _, c := range res.Cookies() {
			if c.Name != "example-login" || c.Value != "" || c.MaxAge >= 0 {
				t.Fatalf("pageUrl %q: sets cookie %s=%q", pageURL, c.Name, c.Value)
			}
		}
	})
}
