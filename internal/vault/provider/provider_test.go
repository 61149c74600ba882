package provider_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/vault/provider"
)

const redirectURI = "https://gatehouse.example/connections/test/callback"

// quirkServer is a small OAuth server that behaves the way one provider
// does: each quirk test scripts it. It records the forms it receives.
type quirkServer struct {
	*httptest.Server
	mu    sync.Mutex
	forms []url.Values
	paths []string
}

func newQuirkServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, form url.Values)) *quirkServer {
	s := &quirkServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		s.mu.Lock()
		s.forms = append(s.forms, r.PostForm)
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
		h(w, r, r.PostForm)
	}))
	t.Cleanup(s.Close)
	return s
}

func newProvider(t *testing.T, base string, mod func(*provider.Config)) *provider.Provider {
	t.Helper()
	cfg := provider.Config{
		Name:                  "test",
		AuthorizationEndpoint: base + "/authorize",
		TokenEndpoint:         base + "/token",
		ClientID:              "gatehouse",
		Auth:                  oauthclient.SecretPost{ClientID: "gatehouse", Secret: secret.New("s3cret")},
		Scopes:                []string{"repo", "read:user"},
		PKCE:                  true,
		RedirectURI:           redirectURI,
		HTTP:                  oauthclient.NewHTTPClient(2 * time.Second),
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := provider.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func authQuery(t *testing.T, p *provider.Provider) url.Values {
	t.Helper()
	raw, err := p.AuthorizationURL("the-state", "the-challenge")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// GitHub answers its token endpoint form-encoded (without Accept: JSON) and
// reports errors with HTTP 200.
func TestQuirkFormEncodedTokenResponse(t *testing.T) {
	srv := newQuirkServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		if form.Get("code") != "good" {
			fmt.Fprint(w, "error=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired.")
			return
		}
		fmt.Fprint(w, "access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cread%3Auser&token_type=bearer")
	})
	quirky := newProvider(t, srv.URL, func(c *provider.Config) {
		c.Quirks = []provider.Quirk{provider.FormEncodedTokenResponse, provider.CommaSeparatedScopes}
	})
	tok, err := quirky.Exchange(t.Context(), "good", "verifier")
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken.Reveal() != "gho_16C7e42F292c6912E7710c838347Ae178B4a" || !tok.RefreshToken.IsZero() || tok.ExpiresIn != 0 {
		t.Errorf("token = %+v", tok)
	}
	if diff := cmp.Diff([]string{"read:user", "repo"}, tok.Scopes); diff != "" {
		t.Errorf("scopes (-want +got):\n%s", diff)
	}
	_, err = quirky.Exchange(t.Context(), "bad", "verifier")
	var oe *oauthclient.Error
	if !errors.As(err, &oe) || oe.Code != "bad_verification_code" {
		t.Errorf("error with HTTP 200 = %v, want bad_verification_code", err)
	}

	plain := newProvider(t, srv.URL, nil)
	if _, err := plain.Exchange(t.Context(), "good", "verifier"); !errors.Is(err, provider.ErrUnavailable) {
		t.Errorf("without the quirk a form-encoded answer = %v, want ErrUnavailable", err)
	}
}

// Slack's OAuth v2 nests the user's token under authed_user beside the app's
// own token, takes user scopes as user_scope, and answers errors with
// {"ok":false} and HTTP 200.
func TestQuirkNestedUserToken(t *testing.T) {
	srv := newQuirkServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if form.Get("code") != "good" && form.Get("refresh_token") != "xoxe-1-refresh" {
			fmt.Fprint(w, `{"ok":false,"error":"invalid_code"}`)
			return
		}
		fmt.Fprint(w, `{"ok":true,"app_id":"A1","access_token":"xoxb-app-token","token_type":"bot","scope":"commands",
			"authed_user":{"id":"U1","scope":"chat:write,users:read","access_token":"xoxe.xoxp-user-token","token_type":"user",
			"refresh_token":"xoxe-1-refresh","expires_in":43200},"team":{"id":"T1"}}`)
	})
	p := newProvider(t, srv.URL, func(c *provider.Config) {
		c.Scopes = []string{"chat:write", "users:read"}
		c.Quirks = []provider.Quirk{provider.NestedUserToken, provider.CommaSeparatedScopes}
	})
	q := authQuery(t, p)
	if q.Get("user_scope") != "chat:write,users:read" || q.Has("scope") {
		t.Errorf("authorization request: user_scope=%q scope=%q, want the user scopes comma-separated in user_scope", q.Get("user_scope"), q.Get("scope"))
	}
	tok, err := p.Exchange(t.Context(), "good", "v")
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken.Reveal() != "xoxe.xoxp-user-token" || tok.RefreshToken.Reveal() != "xoxe-1-refresh" || tok.ExpiresIn != 43200 {
		t.Errorf("token = %q %q %d, want the user's token", tok.AccessToken.Reveal(), tok.RefreshToken.Reveal(), tok.ExpiresIn)
	}
	if diff := cmp.Diff([]string{"chat:write", "users:read"}, tok.Scopes); diff != "" {
		t.Errorf("scopes (-want +got):\n%s", diff)
	}
	if _, err := p.Refresh(t.Context(), "xoxe-1-refresh"); err != nil {
		t.Errorf("refresh: %v", err)
	}
	_, err = p.Exchange(t.Context(), "bad", "v")
	var oe *oauthclient.Error
	if !errors.As(err, &oe) || oe.Code != "invalid_code" {
		t.Errorf(`{"ok":false} = %v, want invalid_code`, err)
	}
}

// Google issues a refresh token only when the authorization request asked
// for offline access with consent.
func TestQuirkOfflineAccessParams(t *testing.T) {
	var mu sync.Mutex
	offline := map[string]bool{}
	srv := newQuirkServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/authorize":
			q := r.URL.Query()
			code := "code-" + q.Get("state")
			offline[code] = q.Get("access_type") == "offline" && q.Get("prompt") == "consent"
			http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+q.Get("state"), http.StatusFound)
		case "/token":
			w.Header().Set("Content-Type", "application/json")
			body := `{"access_token":"ya29.token","expires_in":3599,"token_type":"Bearer","scope":"https://www.googleapis.com/auth/drive.readonly"`
			if offline[form.Get("code")] {
				body += `,"refresh_token":"1//refresh"`
			}
			fmt.Fprint(w, body+"}")
		}
	})
	for _, tc := range []struct {
		name    string
		quirks  []provider.Quirk
		refresh bool
	}{
		{"with the quirk", []provider.Quirk{provider.OfflineAccessParams}, true},
		{"without", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, srv.URL, func(c *provider.Config) { c.Quirks = tc.quirks })
			authURL, err := p.AuthorizationURL(tc.name[:4], "challenge")
			if err != nil {
				t.Fatal(err)
			}
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := c.Get(authURL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			tok, err := p.Exchange(t.Context(), loc.Query().Get("code"), "v")
			if err != nil {
				t.Fatal(err)
			}
			if got := !tok.RefreshToken.IsZero(); got != tc.refresh {
				t.Errorf("refresh token issued = %v, want %v", got, tc.refresh)
			}
		})
	}
}

// Microsoft's endpoints carry the tenant in their path.
func TestQuirkTenantInURL(t *testing.T) {
	srv := newQuirkServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		if r.URL.Path != "/contoso.onmicrosoft.com/oauth2/v2.0/token" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_tenant"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"token_type":"Bearer","scope":"User.Read offline_access","expires_in":3600,"ext_expires_in":3600,"access_token":"eyJ0eXAi.ms","refresh_token":"M.R3_BAY"}`)
	})
	p := newProvider(t, srv.URL, func(c *provider.Config) {
		c.AuthorizationEndpoint = srv.URL + "/{tenant}/oauth2/v2.0/authorize"
		c.TokenEndpoint = srv.URL + "/{tenant}/oauth2/v2.0/token"
		c.Tenant = "contoso.onmicrosoft.com"
		c.Quirks = []provider.Quirk{provider.TenantInURL}
	})
	raw, _ := p.AuthorizationURL("s", "c")
	if !strings.HasPrefix(raw, srv.URL+"/contoso.onmicrosoft.com/oauth2/v2.0/authorize?") {
		t.Errorf("authorization URL %s lacks the tenant", raw)
	}
	tok, err := p.Exchange(t.Context(), "code", "v")
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken.Reveal() != "M.R3_BAY" {
		t.Errorf("refresh token %q", tok.RefreshToken.Reveal())
	}
	if _, err := provider.New(provider.Config{Name: "x", ClientID: "c", Auth: oauthclient.SecretPost{}, HTTP: http.DefaultClient, RedirectURI: redirectURI,
		AuthorizationEndpoint: "https://a/{tenant}/x", TokenEndpoint: "https://a/{tenant}/y", Quirks: []provider.Quirk{provider.TenantInURL}}); err == nil {
		t.Error("tenant_in_url without a tenant was accepted")
	}
}

// GitHub and Slack join and grant scopes with commas.
func TestQuirkCommaSeparatedScopes(t *testing.T) {
	srv := newQuirkServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"t","token_type":"bearer","expires_in":60,"scope":"repo,read:user"}`)
	})
	p := newProvider(t, srv.URL, func(c *provider.Config) { c.Quirks = []provider.Quirk{provider.CommaSeparatedScopes} })
	if got := authQuery(t, p).Get("scope"); got != "repo,read:user" {
		t.Errorf("scope parameter %q", got)
	}
	tok, err := p.Exchange(t.Context(), "c", "v")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"read:user", "repo"}, tok.Scopes); diff != "" {
		t.Errorf("scopes (-want +got):\n%s", diff)
	}
	plain := newProvider(t, srv.URL, nil)
	if got := authQuery(t, plain).Get("scope"); got != "repo read:user" {
		t.Errorf("without the quirk the scope parameter is %q", got)
	}
}

func TestAuthorizationURL(t *testing.T) {
	p := newProvider(t, "https://idp.example/oauth?tenant=x", func(c *provider.Config) {
		c.AuthorizationEndpoint = "https://idp.example/authorize?audience=api"
		c.AuthorizationParams = map[string]string{"login_hint": "alice"}
	})
	q := authQuery(t, p)
	want := url.Values{
		"audience": {"api"}, "login_hint": {"alice"}, "response_type": {"code"}, "client_id": {"gatehouse"},
		"redirect_uri": {redirectURI}, "state": {"the-state"}, "scope": {"repo read:user"},
		"code_challenge": {"the-challenge"}, "code_challenge_method": {"S256"},
	}
	if diff := cmp.Diff(want, q); diff != "" {
		t.Errorf("authorization request (-want +got):\n%s", diff)
	}
	noPKCE := newProvider(t, "https://idp.example", func(c *provider.Config) { c.PKCE = false })
	if q := authQuery(t, noPKCE); q.Has("code_challenge") {
		t.Error("code_challenge sent with PKCE off")
	}
}

// The refresh discipline depends on telling a lost answer (the provider may
// have rotated the refresh token) from a request that never left.
func TestErrorClassification(t *testing.T) {
	hang := make(chan struct{})
	srv := newQuirkServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		switch form.Get("refresh_token") {
		case "reset":
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		case "hang":
			<-hang
		case "half":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, `{"access_token":`)
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		case "500":
			w.WriteHeader(http.StatusInternalServerError)
		case "garbage":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, "<html>")
		case "revoked":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid_grant","error_description":"refresh token revoked"}`)
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"access_token":"new","token_type":"Bearer","expires_in":"3600","refresh_token":"rotated"}`)
		}
	})
	t.Cleanup(func() { close(hang) }) // before the server's Close, which waits for the handler
	p := newProvider(t, srv.URL, func(c *provider.Config) { c.HTTP = oauthclient.NewHTTPClient(300 * time.Millisecond) })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()
	down := newProvider(t, closed, nil)

	var oe *oauthclient.Error
	for _, tc := range []struct {
		name  string
		p     *provider.Provider
		rt    string
		check func(error) bool
	}{
		{"ok", p, "fine", func(err error) bool { return err == nil }},
		{"reset after sending is lost", p, "reset", func(err error) bool { return errors.Is(err, provider.ErrLost) }},
		{"timeout after sending is lost", p, "hang", func(err error) bool { return errors.Is(err, provider.ErrLost) }},
		{"cut body is lost", p, "half", func(err error) bool { return errors.Is(err, provider.ErrLost) }},
		{"refused connection is not lost", down, "fine", func(err error) bool {
			return errors.Is(err, provider.ErrUnavailable) && !errors.Is(err, provider.ErrLost)
		}},
		{"server error", p, "500", func(err error) bool { return errors.Is(err, provider.ErrUnavailable) }},
		{"garbage", p, "garbage", func(err error) bool { return errors.Is(err, provider.ErrUnavailable) }},
		{"invalid_grant", p, "revoked", func(err error) bool { return errors.As(err, &oe) && oe.Code == "invalid_grant" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			tok, err := tc.p.Refresh(ctx, tc.rt)
			if !tc.check(err) {
				t.Fatalf("error %v", err)
			}
			if err == nil && (tok.AccessToken.Reveal() != "new" || tok.RefreshToken.Reveal() != "rotated" || tok.ExpiresIn != 3600) {
				t.Errorf("token %+v", tok)
			}
			if err != nil && strings.Contains(err.Error(), tc.rt+"\"") {
				t.Errorf("the error text %q carries the refresh token", err)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	srv := newQuirkServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		if r.URL.Path != "/revoke" || form.Get("token") != "rt" || form.Get("token_type_hint") != "refresh_token" || form.Get("client_secret") != "s3cret" {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	p := newProvider(t, srv.URL, func(c *provider.Config) { c.RevocationEndpoint = srv.URL + "/revoke" })
	if !p.CanRevoke() {
		t.Fatal("CanRevoke = false")
	}
	if err := p.Revoke(t.Context(), "rt", "refresh_token"); err != nil {
		t.Fatal(err)
	}
	none := newProvider(t, srv.URL, nil)
	if none.CanRevoke() || none.Revoke(t.Context(), "rt", "") != nil {
		t.Error("a provider without a revocation endpoint revokes")
	}
	if n := len(srv.forms); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestPresets(t *testing.T) {
	for _, name := range provider.PresetNames {
		p, ok := provider.LookupPreset(name)
		if !ok || p.AuthorizationEndpoint == "" || p.TokenEndpoint == "" || p.APIBaseURL == "" {
			t.Errorf("preset %s incomplete: %+v", name, p)
		}
		for _, q := range p.Quirks {
			if !provider.KnownQuirk(string(q)) {
				t.Errorf("preset %s: unknown quirk %s", name, q)
			}
		}
	}
	if _, ok := provider.LookupPreset("gitlab"); ok {
		t.Error("gitlab is not a preset")
	}
}
