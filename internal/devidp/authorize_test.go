package devidp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

func TestIssParameter(t *testing.T) {
	t.Parallel()
	for _, enabled := range []bool{true, false} {
		name := map[bool]string{true: "on", false: "off"}[enabled]
		t.Run(name, func(t *testing.T) {
			f := start(t, func(c *devidp.Config) { c.IssParameter = enabled })
			want := ""
			if enabled {
				want = f.idp.Issuer()
			}
			cases := []struct {
				name      string
				client    string
				extra     url.Values
				wantError string
			}{
				{"success", basicClient.id, nil, ""},
				{"success in fragment mode", basicClient.id, url.Values{"response_mode": {"fragment"}}, ""},
				{"error: PKCE missing for a public client", publicClient.id, url.Values{"code_challenge": {""}, "code_challenge_method": {""}}, "invalid_request"},
				{"error: prompt=none", basicClient.id, url.Values{"prompt": {"none"}}, "login_required"},
				{"error: scope missing", basicClient.id, url.Values{"scope": {""}}, "invalid_request"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					fl := f.newFlow(tc.client, tc.extra)
					q := f.login(t, fl, alice.Username, alicePassword)
					if q.Get("error") != tc.wantError {
						t.Fatalf("error = %q (%s), want %q", q.Get("error"), q.Get("error_description"), tc.wantError)
					}
					if q.Get("state") != fl.state {
						t.Errorf("state = %q, want %q", q.Get("state"), fl.state)
					}
					if got := q.Get("iss"); got != want || (!enabled && q.Has("iss")) {
						t.Errorf("iss = %q (present %t), want %q", got, q.Has("iss"), want)
					}
				})
			}

			t.Run("form_post", func(t *testing.T) {
				fl := f.newFlow(basicClient.id, url.Values{"response_mode": {"form_post"}})
				// Login stops at the form_post page: drive it by hand.
				r := f.get(t, fl.authURL, nil)
				loginURL := resolve(t, f.idp.Issuer(), r.header.Get("Location"))
				r = f.postForm(t, loginURL, url.Values{"username": {alice.Username}, "password": {alicePassword}})
				r = f.get(t, resolve(t, f.idp.Issuer(), r.header.Get("Location")), nil)
				body := string(r.body)
				if r.status != http.StatusOK || !strings.Contains(body, `action="`+redirectURI+`"`) {
					t.Fatalf("form_post page: %d %s", r.status, body)
				}
				hasIss := strings.Contains(body, `name="iss"`) && strings.Contains(body, `value="`+f.idp.Issuer()+`"`)
				if hasIss != enabled {
					t.Errorf("form_post page has iss: %t, want %t: %s", hasIss, enabled, body)
				}
			})

			t.Run("discovery", func(t *testing.T) {
				var doc map[string]any
				f.get(t, f.idp.Issuer()+devidp.PathDiscovery, nil).json(t, &doc)
				got, present := doc["authorization_response_iss_parameter_supported"]
				if enabled && got != true || !enabled && present {
					t.Errorf("authorization_response_iss_parameter_supported = %v (present %t)", got, present)
				}
			})
		})
	}
}

func (f *fixture) postForm(t testing.TB, rawURL string, form url.Values) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return f.do(t, req)
}

func resolve(t testing.TB, base, ref string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u, err := b.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

// TestAuthorizeRefusals pins which bad requests go back to the client and
// which stop at the provider: an unverified redirect_uri never receives a
// redirect (no open redirector).
func TestAuthorizeRefusals(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	tests := []struct {
		name      string
		client    string
		extra     url.Values
		redirect  bool   // answered with a redirect to redirect_uri
		wantError string // error parameter of the redirect
	}{
		{"unknown client", "nobody", nil, false, ""},
		{"unregistered redirect_uri", basicClient.id, url.Values{"redirect_uri": {"https://attacker.example/cb"}}, false, ""},
		{"redirect_uri differing in path", basicClient.id, url.Values{"redirect_uri": {redirectURI + "/x"}}, false, ""},
		{"public client without PKCE", publicClient.id, url.Values{"code_challenge": {""}, "code_challenge_method": {""}}, true, "invalid_request"},
		{"plain PKCE", basicClient.id, url.Values{"code_challenge_method": {"plain"}}, true, "invalid_request"},
		{"PKCE method defaulting to plain", basicClient.id, url.Values{"code_challenge_method": {""}}, true, "invalid_request"},
		{"implicit flow", basicClient.id, url.Values{"response_type": {"id_token"}}, true, "unauthorized_client"},
		{"prompt=none", basicClient.id, url.Values{"prompt": {"none"}}, true, "login_required"},
		{"client without authorization_code", serviceClient.id, url.Values{"redirect_uri": {redirectURI}}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := f.newFlow(tt.client, tt.extra)
			r := f.get(t, fl.authURL, nil)
			loc := r.header.Get("Location")
			if !tt.redirect {
				if loc != "" {
					t.Fatalf("redirected to %q, want an error page", loc)
				}
				if r.status != http.StatusBadRequest {
					t.Errorf("status = %d, want 400", r.status)
				}
				return
			}
			u, err := url.Parse(loc)
			if err != nil || r.status != http.StatusFound || u.Scheme+"://"+u.Host+u.Path != redirectURI {
				t.Fatalf("status %d, Location %q, want a redirect to %s", r.status, loc, redirectURI)
			}
			q := u.Query()
			if u.Fragment != "" { // op answers a requested implicit flow in the fragment
				q, _ = url.ParseQuery(u.Fragment)
			}
			if got := q.Get("error"); got != tt.wantError {
				t.Errorf("error = %q (%s), want %q", got, q.Get("error_description"), tt.wantError)
			}
			if q.Get("state") != fl.state {
				t.Errorf("state = %q, want %q", q.Get("state"), fl.state)
			}
		})
	}
	t.Run("unknown parameters are ignored", func(t *testing.T) {
		code, fl := f.code(t, basicClient.id, url.Values{"foo": {"bar"}, "resource": {"https://api.example.com"}})
		f.exchange(t, basicClient, code, fl)
	})
}

func TestCodeExchangeRules(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	exchange := func(a auth, code string, fl flow, mutate func(url.Values)) (tokenResponse, int) {
		form := url.Values{
			"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {redirectURI}, "code_verifier": {fl.verifier},
		}
		if mutate != nil {
			mutate(form)
		}
		return f.token(t, a, form)
	}

	tests := []struct {
		name       string
		client     auth
		redeemedBy auth
		mutate     func(url.Values)
		wantStatus int
		wantError  string
	}{
		{"wrong code_verifier", basicClient, basicClient, func(v url.Values) { v.Set("code_verifier", randomString()+randomString()) }, 400, "invalid_grant"},
		// Regression: op skips the PKCE check for a confidential client that
		// omits code_verifier; an intercepted code must not be redeemable
		// without the verifier.
		{"PKCE downgrade: verifier omitted", basicClient, basicClient, func(v url.Values) { v.Del("code_verifier") }, 400, "invalid_request"},
		{"public client without verifier", publicClient, publicClient, func(v url.Values) { v.Del("code_verifier") }, 400, "invalid_request"},
		{"redirect_uri differs", basicClient, basicClient, func(v url.Values) { v.Set("redirect_uri", redirectURI+"?x=1") }, 400, "invalid_grant"},
		{"code of another client", basicClient, postClient, nil, 400, "invalid_grant"},
		{"wrong secret", basicClient, auth{id: basicClient.id, secret: "nope", method: devidp.AuthMethodBasic}, nil, 401, "invalid_client"},
		{"basic client authenticating by post", basicClient, auth{id: basicClient.id, secret: basicClient.secret, method: devidp.AuthMethodPost}, nil, 401, "invalid_client"},
		{"post client authenticating by basic", postClient, auth{id: postClient.id, secret: postClient.secret, method: devidp.AuthMethodBasic}, nil, 401, "invalid_client"},
		{"jwt client sending a secret", rsaJWTClient, auth{id: rsaJWTClient.id, secret: "x", method: devidp.AuthMethodPost}, nil, 401, "invalid_client"},
		{"public client sending a secret", publicClient, auth{id: publicClient.id, secret: "x", method: devidp.AuthMethodPost}, nil, 401, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, fl := f.code(t, tt.client.id, nil)
			got, status := exchange(tt.redeemedBy.withKey(t), code, fl, tt.mutate)
			if status != tt.wantStatus || got.Error != tt.wantError {
				t.Errorf("got %d %q (%s), want %d %q", status, got.Error, got.Description, tt.wantStatus, tt.wantError)
			}
			if got.AccessToken != "" {
				t.Error("tokens issued")
			}
		})
	}

	// Regression: a code is single use, and replaying it revokes what the
	// first exchange issued (RFC 6749 4.1.2).
	t.Run("code replay revokes the grant", func(t *testing.T) {
		code, fl := f.code(t, basicClient.id, nil)
		first := f.exchange(t, basicClient, code, fl)
		got, status := exchange(basicClient, code, fl, nil)
		if status != http.StatusBadRequest || got.Error != "invalid_grant" {
			t.Fatalf("replayed code: %d %q", status, got.Error)
		}
		if in := f.introspect(t, apiClient, first.AccessToken); in["active"] != false {
			t.Error("access token of a replayed code is still active")
		}
		if _, status := f.refresh(t, basicClient, first.RefreshToken); status != http.StatusBadRequest {
			t.Errorf("refresh token of a replayed code: %d", status)
		}
	})

	// Regression: a client assertion is single use (its jti), so a captured
	// assertion cannot authenticate a second request.
	t.Run("client assertion replay", func(t *testing.T) {
		c := rsaJWTClient.withKey(t)
		assertion := clientAssertion(t, c, f.idp.Issuer(), randomString())
		form := func(code string, fl flow) url.Values {
			return url.Values{
				"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
				"code_verifier": {fl.verifier}, "client_assertion": {assertion},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			}
		}
		code, fl := f.code(t, c.id, nil)
		if got, status := f.token(t, auth{}, form(code, fl)); status != http.StatusOK {
			t.Fatalf("first use: %d %s %s", status, got.Error, got.Description)
		}
		code, fl = f.code(t, c.id, nil)
		if got, status := f.token(t, auth{}, form(code, fl)); status != http.StatusUnauthorized || got.Error != "invalid_client" {
			t.Errorf("replayed assertion: %d %q", status, got.Error)
		}
	})

	t.Run("client assertion with the wrong audience", func(t *testing.T) {
		c := rsaJWTClient.withKey(t)
		code, fl := f.code(t, c.id, nil)
		got, status := f.token(t, auth{}, url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
			"code_verifier":         {fl.verifier},
			"client_assertion":      {clientAssertion(t, c, "https://other.example", randomString())},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		})
		if status != http.StatusUnauthorized || got.Error != "invalid_client" {
			t.Errorf("got %d %q", status, got.Error)
		}
	})

	t.Run("client assertion signed by another key", func(t *testing.T) {
		wrong := rsaJWTClient.withKey(t)
		_, wrong.key = clientKeys(t) // the EC key, not registered for this client
		code, fl := f.code(t, wrong.id, nil)
		got, status := exchange(wrong, code, fl, nil)
		if status != http.StatusUnauthorized || got.Error != "invalid_client" {
			t.Errorf("got %d %q", status, got.Error)
		}
	})
}

func TestUnsupportedGrants(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	for _, gt := range []string{
		"password", "implicit",
		"urn:ietf:params:oauth:grant-type:jwt-bearer",
		"urn:ietf:params:oauth:grant-type:device_code",
	} {
		t.Run(gt, func(t *testing.T) {
			got, status := f.token(t, basicClient, url.Values{"grant_type": {gt}, "assertion": {"x"}})
			if status != http.StatusBadRequest || got.Error != "unsupported_grant_type" {
				t.Errorf("got %d %q", status, got.Error)
			}
		})
	}
}

func TestLoginPage(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	loginURL := func(t *testing.T, extra url.Values) string {
		r := f.get(t, f.newFlow(basicClient.id, extra).authURL, nil)
		if r.status != http.StatusFound {
			t.Fatalf("authorize: %d %s", r.status, r.body)
		}
		return resolve(t, f.idp.Issuer(), r.header.Get("Location"))
	}

	t.Run("page", func(t *testing.T) {
		r := f.get(t, loginURL(t, nil), nil)
		body := string(r.body)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("status %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
		}
		for _, want := range []string{devidp.Banner, `name="username"`, `name="password"`, `type="password"`, basicClient.id} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		for _, bad := range []string{"<script", "src=", "http://", "https://fonts"} {
			if strings.Contains(strings.ReplaceAll(body, f.idp.Issuer(), ""), bad) {
				t.Errorf("page contains %q (must be self-contained)", bad)
			}
		}
		if r.header.Get("Set-Cookie") != "" {
			t.Errorf("page sets a cookie: %q", r.header.Get("Set-Cookie"))
		}
		for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "Cache-Control"} {
			if r.header.Get(h) == "" {
				t.Errorf("no %s header", h)
			}
		}
	})

	// Regression: login_hint is attacker-controlled input rendered into the
	// page; it must be HTML-escaped.
	t.Run("login_hint prefills the username, escaped", func(t *testing.T) {
		hint := `alice"><script>alert(1)</script>`
		body := string(f.get(t, loginURL(t, url.Values{"login_hint": {hint}}), nil).body)
		if strings.Contains(body, "<script>") {
			t.Fatal("login_hint reflected unescaped")
		}
		if !strings.Contains(body, `value="alice&#34;&gt;&lt;script&gt;`) {
			t.Errorf("login_hint not prefilled: %s", body)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		before := f.idp.Stats().LoginFailed
		u := loginURL(t, nil)
		r := f.postForm(t, u, url.Values{"username": {"alice"}, "password": {"wrong"}})
		body := string(r.body)
		if r.status != http.StatusOK || !strings.Contains(body, "Invalid username or password.") || !strings.Contains(body, `name="password"`) {
			t.Errorf("status %d, body %s", r.status, body)
		}
		if !strings.Contains(body, `value="alice"`) {
			t.Error("username not kept after a failed login")
		}
		// The same request can still be completed with the right password.
		r = f.postForm(t, u, url.Values{"username": {"alice"}, "password": {alicePassword}})
		if r.status != http.StatusSeeOther || !strings.Contains(r.header.Get("Location"), devidp.PathCallback) {
			t.Errorf("login after a failure: %d %q", r.status, r.header.Get("Location"))
		}
		if got := f.idp.Stats().LoginFailed - before; got != 1 {
			t.Errorf("LoginFailed grew by %d, want 1", got)
		}
	})

	t.Run("Login reports a wrong password", func(t *testing.T) {
		for _, creds := range [][2]string{{"alice", "wrong"}, {"nobody", alicePassword}, {"bob", alicePassword}} {
			_, err := devidp.Login(context.Background(), nil, f.newFlow(basicClient.id, nil).authURL, creds[0], creds[1])
			if !errors.Is(err, devidp.ErrLoginFailed) || !strings.Contains(err.Error(), "Invalid username or password") {
				t.Errorf("Login(%s): %v, want ErrLoginFailed", creds[0], err)
			}
		}
	})

	t.Run("unknown request", func(t *testing.T) {
		r := f.get(t, f.idp.Issuer()+devidp.PathLogin+"?authRequestID=nope", nil)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), devidp.Banner) {
			t.Errorf("status %d", r.status)
		}
	})

	t.Run("every login asks for the password", func(t *testing.T) {
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Jar: jar}
		for i := range 2 {
			fl := f.newFlow(basicClient.id, nil)
			if _, err := devidp.Login(context.Background(), hc, fl.authURL, "alice", "wrong"); !errors.Is(err, devidp.ErrLoginFailed) {
				t.Fatalf("login %d without the password: %v", i, err)
			}
			if _, err := devidp.Login(context.Background(), hc, fl.authURL, "bob", bobPassword); err != nil {
				t.Fatalf("login %d: %v", i, err)
			}
		}
		u, _ := url.Parse(f.idp.Issuer())
		if c := jar.Cookies(u); len(c) > 0 {
			t.Errorf("provider set cookies: %v", c)
		}
	})

	t.Run("prompt=login", func(t *testing.T) {
		code, fl := f.code(t, basicClient.id, url.Values{"prompt": {"login"}, "max_age": {"0"}})
		f.exchange(t, basicClient, code, fl)
	})

	t.Run("callback works once", func(t *testing.T) {
		u := loginURL(t, nil)
		r := f.postForm(t, u, url.Values{"username": {"alice"}, "password": {alicePassword}})
		cb := resolve(t, f.idp.Issuer(), r.header.Get("Location"))
		if r := f.get(t, cb, nil); r.status != http.StatusFound {
			t.Fatalf("callback: %d", r.status)
		}
		if r := f.get(t, cb, nil); r.status != http.StatusBadRequest || r.header.Get("Location") != "" {
			t.Errorf("second callback: %d %q, want 400 without redirect", r.status, r.header.Get("Location"))
		}
		// The login form of a finished request is gone too.
		if r := f.get(t, u, nil); r.status != http.StatusBadRequest {
			t.Errorf("login page of a finished request: %d", r.status)
		}
	})

	t.Run("callback before login", func(t *testing.T) {
		u := loginURL(t, nil)
		id := regexp.MustCompile(`authRequestID=([^&]+)`).FindStringSubmatch(u)[1]
		r := f.get(t, f.idp.Issuer()+devidp.PathCallback+"?id="+id, nil)
		loc, _ := url.Parse(r.header.Get("Location"))
		if r.status != http.StatusFound || loc.Query().Get("error") != "interaction_required" {
			t.Errorf("status %d, Location %q", r.status, r.header.Get("Location"))
		}
	})
}
