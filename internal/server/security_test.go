package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/devidp/devidptest"
)

// The security suite of issue #6: attacks a token handler must survive that
// the endpoint tests (agent, proxy, bearer, phantom, logout) do not already
// cover. Each test is named after the attack it stops.

const (
	// otherSPA is a second confidential client of the same provider with the
	// same redirect URI as Gatehouse's: the attacker's own application.
	otherSPAID     = "other-spa"
	otherSPASecret = "other-spa-secret-4b1d9e"
	// bob is a second user of the provider.
	bobID       = "bob-0002"
	bobName     = "bob"
	bobPassword = "Builder2-pw"
)

// withAttackerParties adds bob and the attacker's own client (same redirect
// URI as the SPA) to the provider.
func withAttackerParties(c *devidp.Config) {
	c.Users = append(c.Users, devidp.User{ID: bobID, Username: bobName, Password: bobPassword, GivenName: "Bob", Email: "bob@example.com"})
	c.Clients = append(c.Clients, devidp.Client{
		ID: otherSPAID, Secret: otherSPASecret, AuthMethod: devidp.AuthMethodBasic,
		RedirectURIs: []string{spaURL}, PostLogoutRedirectURIs: []string{spaURL},
	})
}

// tokenSwapper is the scriptable fake in front of the real provider's token
// endpoint: it passes every request through over real HTTP and, when told,
// edits the successful JSON answer to one grant type (to substitute the
// id_token a man in the middle or a malicious provider would).
type tokenSwapper struct {
	url    string
	target atomic.Pointer[string]
	mu     sync.Mutex
	edits  map[string]func(map[string]any) // by grant_type
	calls  map[string]int
}

func newTokenSwapper(t *testing.T) *tokenSwapper {
	s := &tokenSwapper{edits: map[string]func(map[string]any){}, calls: map[string]int{}}
	fake := newScriptedServer(t, http.HandlerFunc(s.serve))
	s.url = fake.URL
	return s
}

// edit makes the next answers to grant go through f (nil: pass through).
func (s *tokenSwapper) edit(grant string, f func(map[string]any)) {
	s.mu.Lock()
	s.edits[grant] = f
	s.mu.Unlock()
}

func (s *tokenSwapper) count(grant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[grant]
}

func (s *tokenSwapper) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	grant := form.Get("grant_type")
	s.mu.Lock()
	s.calls[grant]++
	f := s.edits[grant]
	s.mu.Unlock()
	req, err := http.NewRequestWithContext(r.Context(), r.Method, *s.target.Load()+r.URL.Path, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for _, k := range []string{"Authorization", "Content-Type", "Accept"} {
		if v := r.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if f != nil && resp.StatusCode == http.StatusOK {
		var m map[string]any
		if json.Unmarshal(out, &m) == nil {
			f(m)
			out, _ = json.Marshal(m)
		}
	}
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

// newSwapEnv is an env whose token endpoint is a tokenSwapper in front of
// the provider, which also knows bob and the attacker's client.
func newSwapEnv(t *testing.T, idp ...func(*devidp.Config)) (*env, *tokenSwapper) {
	t.Helper()
	s := newTokenSwapper(t)
	e := newEnv(t, envOptions{
		idp: func(c *devidp.Config) {
			withAttackerParties(c)
			for _, f := range idp {
				f(c)
			}
		},
		yaml: func(y string) string {
			return insertAfter(t, y, "authorization_server:", "  token_endpoint: \""+s.url+devidp.PathToken+"\"\n")
		},
	})
	iss := e.idp.Issuer()
	s.target.Store(&iss)
	e.secrets["other client's secret"] = otherSPASecret
	e.secrets["bob's password"] = bobPassword
	return e, s
}

// secPKCE returns a new code verifier and its S256 challenge.
func secPKCE() (verifier, challenge string) {
	verifier = rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// secAuthCode runs an authorization request at idp with params (client_id,
// redirect_uri spaURL, state, nonce, code_challenge ...) as the user and
// returns the authorization code: what an attacker obtains by logging in to
// their own client.
func secAuthCode(t *testing.T, idp *devidp.Provider, params url.Values, user, password string) string {
	t.Helper()
	params.Set("response_type", "code")
	params.Set("redirect_uri", spaURL)
	params.Set("code_challenge_method", "S256")
	if params.Get("scope") == "" {
		params.Set("scope", "openid profile offline_access")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cb, err := devidp.Login(ctx, &http.Client{}, idp.Issuer()+devidp.PathAuthorize+"?"+params.Encode(), user, password)
	if err != nil {
		t.Fatalf("login at %s: %v", idp.Issuer(), err)
	}
	u, _ := url.Parse(cb)
	code := u.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in the callback %s", cb)
	}
	return code
}

// secTokens logs user in at idp with client clientID (secret, basic auth),
// with the given nonce, and returns the token response.
func secTokens(t *testing.T, idp *devidp.Provider, clientID, secret, nonce, user, password string) map[string]any {
	t.Helper()
	verifier, challenge := secPKCE()
	code := secAuthCode(t, idp, url.Values{"client_id": {clientID}, "state": {rand.Text()}, "nonce": {nonce}, "code_challenge": {challenge}}, user, password)
	return (&env{t: t, idp: idp}).tokenEndpoint(url.Values{
		"grant_type": {devidp.GrantAuthorizationCode}, "code": {code}, "redirect_uri": {spaURL}, "code_verifier": {verifier},
	}, clientID, secret)
}

// secAuthParams are the parameters of an authorization request URL.
func secAuthParams(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// secNoSession checks that browser b has no session after a refused
// login: the refusal set no cookie, a page load says logged out, the API
// refuses.
func (e *env) secNoSession(what string, b *http.Client, r *response) {
	e.t.Helper()
	if n := setCookieNames(r); len(n) > 0 {
		e.t.Errorf("%s: the refusal set cookies %v", what, n)
	}
	checkAgentHeaders(e.t, what, r)
	p := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": spaURL})
	if p.StatusCode != 200 || p.json(e.t)["isLoggedIn"] != false {
		e.t.Errorf("%s: page load afterwards: %d %s", what, p.StatusCode, p.body)
	}
	if a := e.do(b, "GET", "/api/orders", nil); a.StatusCode != 401 {
		e.t.Errorf("%s: the API afterwards: %d", what, a.StatusCode)
	}
}

// TestLoginRefusesCodeIssuedToAnotherClient stops authorization code
// injection across clients: an attacker logs in to their own client of the
// same provider (same redirect URI, and even the victim's PKCE challenge and
// nonce, read from the victim's authorization request) and plants the code
// in the victim's callback. The code is bound to the client it was issued
// to, so the provider refuses Gatehouse's exchange: 400
// authorization_error, no session.
func TestLoginRefusesCodeIssuedToAnotherClient(t *testing.T) {
	t.Parallel()
	e, _ := newSwapEnv(t)
	b := e.newBrowser()
	victim := secAuthParams(t, e.loginStart(b, nil))
	code := secAuthCode(t, e.idp, url.Values{
		"client_id": {otherSPAID}, "state": {rand.Text()}, "nonce": {victim.Get("nonce")},
		"code_challenge": {victim.Get("code_challenge")},
	}, userName, userPassword)
	e.secrets["the other client's code"] = code
	e.secrets["state"] = victim.Get("state")
	exchanges := e.idp.Stats().TokenAuthorizationCode
	page := spaURL + "?" + url.Values{"code": {code}, "state": {victim.Get("state")}}.Encode()
	r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": page})
	expectErr(t, "code of another client", r, 400, "authorization_error")
	if cause := e.secLogCause(r); !strings.Contains(cause, "invalid_grant") {
		t.Errorf("logged cause %q, want the provider's invalid_grant", cause)
	}
	if got := e.idp.Stats().TokenAuthorizationCode - exchanges; got != 1 {
		t.Errorf("%d exchanges at the provider, want 1 (the refused one)", got)
	}
	e.secNoSession("code of another client", b, r)
	e.assertNoSecretsAnywhere()
}

// TestLoginRefusesSubstitutedIDToken stops ID token substitution at login:
// the token endpoint's answer (a man in the middle, a mixed-up or
// malicious provider) carries an ID token issued to another client (aud),
// by another provider (iss, mix-up), with a forged signature or changed
// claims, or one that has expired by the time Gatehouse checks it. The
// substitutes carry the login's nonce, so only the check under test stands
// in the way. /login/end answers 400 invalid_request and sets no cookie.
func TestLoginRefusesSubstitutedIDToken(t *testing.T) {
	t.Parallel()
	e, swap := newSwapEnv(t)
	second := devidptest.Start(t, testIDPConfig())
	tests := []struct {
		name string
		// replacement returns the ID token to answer with (run by the test).
		replacement func(t *testing.T, nonce string) string
		// transform edits the genuine ID token (run by the fake).
		transform func(genuine string) string
		// expire moves Gatehouse's clock past the genuine ID token's exp
		// while the token endpoint answers.
		expire bool
		// ok: the control case, a genuine answer logs in.
		ok bool
		// cause is what Gatehouse logs as the reason for the refusal.
		cause string
	}{
		{name: "genuine (control)", ok: true},
		{name: "issued to another client of the provider", replacement: func(t *testing.T, nonce string) string {
			tok, _ := secTokens(t, e.idp, otherSPAID, otherSPASecret, nonce, userName, userPassword)["id_token"].(string)
			if c := jwtClaims(t, tok); fmt.Sprint(c["aud"]) != "["+otherSPAID+"]" || c["nonce"] != nonce || c["iss"] != e.idp.Issuer() {
				t.Fatalf("the other client's ID token: %v", c)
			}
			return tok
		}, cause: "wrong audience"},
		{name: "issued by another provider (mix-up)", replacement: func(t *testing.T, nonce string) string {
			tok, _ := secTokens(t, second, "spa-client", clientSecret, nonce, userName, userPassword)["id_token"].(string)
			if c := jwtClaims(t, tok); c["iss"] != second.Issuer() || c["sub"] != userID || c["nonce"] != nonce {
				t.Fatalf("the second provider's ID token: %v", c)
			}
			return tok
		}, cause: "unknown signing key"},
		{name: "forged signature", transform: func(genuine string) string {
			i := strings.LastIndex(genuine, ".")
			sig, err := base64.RawURLEncoding.DecodeString(genuine[i+1:])
			if err != nil || len(sig) == 0 {
				return "not-a-jwt"
			}
			sig[len(sig)/2] ^= 0x20
			return genuine[:i+1] + b64(sig)
		}, cause: "invalid signature"},
		{name: "claims changed under the provider's signature", transform: func(genuine string) string {
			parts := strings.Split(genuine, ".")
			c := secClaims(genuine)
			if len(parts) != 3 || c == nil {
				return "not-a-jwt"
			}
			c["sub"] = bobID
			js, _ := json.Marshal(c)
			return parts[0] + "." + b64(js) + "." + parts[2]
		}, cause: "invalid signature"},
		{name: "expired", expire: true, cause: "token expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			defer e.clock.set(0)
			b := e.newBrowser()
			authURL := e.loginStart(b, nil)
			nonce := secAuthParams(t, authURL).Get("nonce")
			var replacement string
			if tc.replacement != nil {
				replacement = tc.replacement(t, nonce)
				e.secrets["substituted ID token"] = replacement
			}
			var seen atomic.Bool
			swap.edit(devidp.GrantAuthorizationCode, func(m map[string]any) {
				genuine, _ := m["id_token"].(string)
				seen.Store(genuine != "")
				switch {
				case replacement != "":
					m["id_token"] = replacement
				case tc.transform != nil:
					m["id_token"] = tc.transform(genuine)
				case tc.expire:
					exp, _ := secClaims(genuine)["exp"].(float64)
					e.clock.set(time.Until(time.Unix(int64(exp), 0)) + 2*time.Minute)
				}
			})
			defer swap.edit(devidp.GrantAuthorizationCode, nil)
			cb := e.authorize(authURL)
			r := e.do(b, "POST", "/oauth-agent/login/end", map[string]string{"pageUrl": cb})
			if !seen.Load() {
				t.Fatal("the token endpoint's answer did not pass the fake with an id_token")
			}
			if tc.ok {
				if r.StatusCode != 200 || r.json(t)["isLoggedIn"] != true {
					t.Fatalf("genuine answer: %d %s", r.StatusCode, r.body)
				}
				e.collectCookieSecrets(b)
				return
			}
			expectErr(t, tc.name, r, 400, "invalid_request")
			if msg := r.json(t)["message"]; msg != "ID Token missing or invalid" {
				t.Errorf("message %q: refused for another reason than the ID token", msg)
			}
			if cause := e.secLogCause(r); !strings.Contains(cause, tc.cause) {
				t.Errorf("logged cause %q, want %q", cause, tc.cause)
			}
			e.clock.set(0)
			e.secNoSession(tc.name, b, r)
		})
	}
	e.assertNoSecretsAnywhere()
}

// secLogCause returns the cause Gatehouse logged for the refused request r.
func (e *env) secLogCause(r *response) string {
	id := r.Header.Get("X-Request-Id")
	for line := range strings.SplitSeq(e.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["request_id"] == id && m["cause"] != nil {
			return fmt.Sprint(m["cause"])
		}
	}
	return ""
}

// secClaims decodes the payload of a compact JWS without verifying it; nil
// when it is not one.
func secClaims(tok string) map[string]any {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// TestRefreshRefusesIDTokenForAnotherSubject stops a session swap through
// refresh: the token endpoint's answer to alice's refresh carries a genuine
// ID token of the same client and provider, but for bob (a mix-up at the
// provider, or a man in the middle replaying bob's answer). Gatehouse
// verifies a refreshed ID token as at login and requires the session's sub:
// the refresh is refused and alice's cookies stay exactly as they were.
func TestRefreshRefusesIDTokenForAnotherSubject(t *testing.T) {
	t.Parallel()
	e, swap := newSwapEnv(t)
	bobs, _ := secTokens(t, e.idp, "spa-client", clientSecret, rand.Text(), bobName, bobPassword)["id_token"].(string)
	if c := jwtClaims(t, bobs); c["sub"] != bobID || fmt.Sprint(c["aud"]) != "[spa-client]" || c["iss"] != e.idp.Issuer() {
		t.Fatalf("bob's ID token: %v", c)
	}
	e.secrets["bob's ID token"] = bobs
	b := e.browser
	csrf := e.login(b)
	// A genuine refresh works through the fake.
	if r := e.do(b, "POST", "/oauth-agent/refresh", nil, withCSRF(csrf)); r.StatusCode != 204 {
		t.Fatalf("genuine refresh: %d %s", r.StatusCode, r.body)
	}
	e.collectCookieSecrets(b)
	before := e.session(b)

	swap.edit(devidp.GrantRefreshToken, func(m map[string]any) { m["id_token"] = bobs })
	refreshes := swap.count(devidp.GrantRefreshToken)
	r := e.do(b, "POST", "/oauth-agent/refresh", nil, withCSRF(csrf))
	expectErr(t, "refresh answered with bob's ID token", r, 400, "invalid_request")
	checkAgentHeaders(t, "refused refresh", r)
	if cause := e.secLogCause(r); !strings.Contains(cause, "another subject") {
		t.Errorf("logged cause %q, want the subject check", cause)
	}
	if got := swap.count(devidp.GrantRefreshToken) - refreshes; got != 1 {
		t.Fatalf("%d refresh calls reached the fake, want 1", got)
	}
	if sc := r.Header.Values("Set-Cookie"); len(sc) > 0 {
		t.Errorf("the refused refresh set or cleared cookies: %v", sc)
	}
	if after := e.session(b); after != before {
		t.Error("the session's cookies changed")
	}
	r = e.do(b, "GET", "/oauth-agent/claims", nil)
	if r.StatusCode != 200 || r.json(t)["sub"] != userID {
		t.Errorf("claims after the refused refresh: %d %s", r.StatusCode, r.body)
	}
	e.assertNoSecretsAnywhere()
}

// secActive asks the provider's introspection endpoint (as Gatehouse's
// introspection client) whether token is active: what an upstream that
// validates tokens itself would learn.
func (e *env) secActive(token string) bool {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.idp.Issuer()+devidp.PathIntrospect, strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(introClientID, introSecret)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Active bool `json:"active"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&m) != nil {
		e.t.Fatalf("introspection: %d", resp.StatusCode)
	}
	return m.Active
}

// TestSessionReplayAfterLogout pins what SECURITY.md says about a session
// cookie copied before logout and replayed afterwards (a stolen cookie jar,
// a shared computer). Logout revokes the grant at the provider, so:
//   - on a route that introspects (token_format: opaque) the replay is
//     refused as soon as Gatehouse asks the provider again: at once for a
//     token it holds no cached result for, and for a token checked just
//     before logout once that cached result ends (max_cache_ttl);
//   - on a route without token_format the token is forwarded and the
//     upstream decides (the provider says the token is inactive); with
//     token_format: jwt it is accepted until it expires;
//   - the agent refuses it at /userInfo (the provider's answer), and the
//     copied -auth cookie no longer refreshes.
func TestSessionReplayAfterLogout(t *testing.T) {
	t.Parallel()
	api := newUpstream(t)
	e := newGateway(t, gateway{introspection: "json", routes: []string{
		gwRoute("checked", "/checked", api.URL, "[cookie]", "token_format: opaque"),
		gwRoute("unchecked", "/unchecked", api.URL, "[cookie]"),
	}}, func(c *devidp.Config) {
		c.Clients[0].AccessTokenFormat = devidp.AccessTokenOpaque
		c.Clients[0].AccessTokenLifetime = time.Hour // outlives the cache
	})
	e.api = api
	// stealSession logs a browser in and returns its cookies (-at and -csrf;
	// with -auth), the CSRF value and the access token.
	type stolenSession struct{ cookies, withAuth, csrf, at string }
	steal := func() (*http.Client, stolenSession) {
		b := e.newBrowser()
		csrf := e.login(b)
		s := e.session(b)
		return b, stolenSession{
			cookies:  cookieLine("example-at", s.at, "example-csrf", s.csrf),
			withAuth: cookieLine("example-at", s.at, "example-csrf", s.csrf, "example-auth", s.auth),
			csrf:     csrf, at: e.open(s.at),
		}
	}
	replay := func(s stolenSession, method, path string) *response {
		return e.do(e.raw(), method, path, `{}`, withCookies(s.cookies), withCSRF(s.csrf))
	}
	logout := func(b *http.Client, s stolenSession) {
		if r := e.do(b, "POST", "/oauth-agent/logout", nil, withCSRF(s.csrf)); r.StatusCode != 200 {
			t.Fatalf("logout: %d %s", r.StatusCode, r.body)
		}
		if e.secActive(s.at) {
			t.Fatal("the provider still says the access token is active after logout revoked the grant")
		}
	}
	refused := func(what string, r *response, calls int) {
		t.Helper()
		expectErr(t, what, r, 401, "unauthorized")
		if api.count() != calls {
			t.Errorf("%s: the upstream was called", what)
		}
	}
	forwarded := func(what string, s stolenSession, r *response) {
		t.Helper()
		if r.StatusCode != 200 {
			t.Errorf("%s: %d %s, want the request forwarded", what, r.StatusCode, r.body)
		} else if got := api.last(t).Header.Get("Authorization"); got != "Bearer "+s.at {
			t.Errorf("%s: the upstream received %q, want the replayed token", what, got)
		}
	}

	// A session whose token Gatehouse never introspected: after logout the
	// first check asks the provider, which has revoked it.
	b1, s1 := steal()
	logout(b1, s1)
	for _, m := range []string{"GET", "POST"} {
		refused(m+" /checked replayed after logout", replay(s1, m, "/checked/a"), api.count())
		forwarded(m+" /unchecked replayed after logout", s1, replay(s1, m, "/unchecked/a"))
	}

	// A session used on the checked route just before logout: its cached
	// active result admits the replay until the result ends (max_cache_ttl,
	// 5m by default; the token itself lives an hour).
	b2, s2 := steal()
	for _, p := range []string{"/checked/a", "/unchecked/a"} {
		forwarded(p+" before logout", s2, replay(s2, "GET", p))
	}
	logout(b2, s2)
	for _, m := range []string{"GET", "POST"} {
		forwarded(m+" /checked replayed inside the introspection cache", s2, replay(s2, m, "/checked/a"))
	}
	e.clock.Advance(5*time.Minute + time.Second)
	for _, m := range []string{"GET", "POST"} {
		refused(m+" /checked replayed after the cached result ended", replay(s2, m, "/checked/a"), api.count())
		forwarded(m+" /unchecked replayed after the cached result ended", s2, replay(s2, m, "/unchecked/a"))
	}

	// The agent: userInfo asks the provider; the copied -auth is revoked.
	r := e.do(e.raw(), "GET", "/oauth-agent/userInfo", nil, withCookies(s2.cookies))
	expectErr(t, "userInfo replayed after logout", r, 401, "token_expired")
	r = e.do(e.raw(), "POST", "/oauth-agent/refresh", nil, withCookies(s2.withAuth), withCSRF(s2.csrf))
	expectErr(t, "refresh replayed after logout", r, 401, "session_expired")
	e.assertNoSecretsAnywhere()

	// A route that verifies JWT access tokens itself accepts the replay
	// until the token expires: a signed token cannot be recalled.
	jwtAPI := newUpstream(t)
	j := newGateway(t, gateway{routes: []string{
		gwRoute("jwt", "/jwt", jwtAPI.URL, "[cookie]", "token_format: jwt", "audience: "+ordersAudience),
	}})
	jb := j.browser
	jcsrf := j.login(jb)
	js := j.session(jb)
	if r := j.do(jb, "POST", "/oauth-agent/logout", nil, withCSRF(jcsrf)); r.StatusCode != 200 {
		t.Fatalf("logout: %d %s", r.StatusCode, r.body)
	}
	r = j.do(j.raw(), "POST", "/jwt/a", `{}`, withCookies(cookieLine("example-at", js.at, "example-csrf", js.csrf)), withCSRF(jcsrf))
	if r.StatusCode != 200 || jwtAPI.last(t).Header.Get("Authorization") != "Bearer "+j.open(js.at) {
		t.Errorf("JWT route replayed after logout: %d %s, want forwarded", r.StatusCode, r.body)
	}
	j.clock.Advance(devidp.DefaultAccessTokenLifetime + time.Minute)
	r = j.do(j.raw(), "POST", "/jwt/a", `{}`, withCookies(cookieLine("example-at", js.at, "example-csrf", js.csrf)), withCSRF(jcsrf))
	expectErr(t, "JWT route replayed after the token expired", r, 401, "unauthorized")
	j.assertNoSecretsAnywhere()
}
