package exchange_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/exchange"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

// tokenServer is a token endpoint whose answer the test scripts.
type tokenServer struct {
	*httptest.Server
	calls   atomic.Int64
	mu      sync.Mutex
	answer  func(form map[string]string) (int, any)
	lastReq map[string]string
	release chan struct{} // when set, requests wait for it
}

func newTokenServer(t *testing.T) *tokenServer {
	s := &tokenServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		_ = r.ParseForm()
		form := map[string]string{}
		for k := range r.PostForm {
			form[k] = r.PostForm.Get(k)
		}
		if u, p, ok := r.BasicAuth(); ok {
			form["basic"] = u + ":" + p
		}
		s.mu.Lock()
		s.lastReq = form
		answer, release := s.answer, s.release
		s.mu.Unlock()
		if release != nil {
			<-release
		}
		status, body := answer(form)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(s.Close)
	s.answer = issue(300)
	return s
}

// issue answers with a new access token living ttl seconds.
func issue(ttl int) func(map[string]string) (int, any) {
	var n atomic.Int64
	return func(form map[string]string) (int, any) {
		return 200, map[string]any{
			"access_token":      fmt.Sprintf("exchanged-%d-for-%s", n.Add(1), form["audience"]),
			"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
			"token_type":        "Bearer",
			"expires_in":        ttl,
		}
	}
}

func refuse(code string) func(map[string]string) (int, any) {
	return func(map[string]string) (int, any) {
		return 400, map[string]any{"error": code, "error_description": "refused"}
	}
}

func (s *tokenServer) set(f func(map[string]string) (int, any)) {
	s.mu.Lock()
	s.answer = f
	s.mu.Unlock()
}

func (s *tokenServer) last() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastReq
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func setup(t *testing.T, actor func(context.Context) (string, error)) (*exchange.Exchanger, *tokenServer, *clock) {
	t.Helper()
	ts := newTokenServer(t)
	p := oauthclient.NewProvider(oauthclient.ProviderConfig{Issuer: ts.URL, Overrides: oauthclient.Metadata{
		AuthorizationEndpoint: ts.URL + "/authorize", TokenEndpoint: ts.URL + "/token", JWKSURI: ts.URL + "/keys",
	}})
	c := &oauthclient.Client{Provider: p, ClientID: "gatehouse", HTTP: &http.Client{Timeout: 5 * time.Second},
		Auth: oauthclient.SecretBasic{ClientID: "gatehouse", Secret: secret.New("s3cret")}}
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	x, err := exchange.New(exchange.Config{Client: c, Actor: actor, Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return x, ts, clk
}

func TestExchangeRequestAndCache(t *testing.T) {
	x, ts, clk := setup(t, nil)
	subject := exchange.Subject{Token: "user-token", Expiry: clk.Now().Add(time.Hour)}
	req := exchange.Request{Audience: "billing-api", Resource: "https://billing.example.com/", Scopes: []string{"write", "read"}}
	tok, err := x.Exchange(context.Background(), subject, req)
	if err != nil || tok != "exchanged-1-for-billing-api" {
		t.Fatalf("exchange: %q %v", tok, err)
	}
	want := map[string]string{
		"grant_type":           "urn:ietf:params:oauth:grant-type:token-exchange",
		"subject_token":        "user-token",
		"subject_token_type":   "urn:ietf:params:oauth:token-type:access_token",
		"requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"audience":             "billing-api",
		"resource":             "https://billing.example.com/",
		"scope":                "write read",
		"basic":                "gatehouse:s3cret",
	}
	got := ts.last()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["actor_token"]; ok {
		t.Error("an actor token was sent without Actor")
	}

	// Same token, same target (scopes in another order): cached.
	req2 := req
	req2.Scopes = []string{"read", "write", "read"}
	if tok2, _ := x.Exchange(context.Background(), subject, req2); tok2 != tok {
		t.Errorf("not reused: %q", tok2)
	}
	// Another target or another token: a new exchange.
	other := req
	other.Audience = "reports-api"
	if tok3, _ := x.Exchange(context.Background(), subject, other); tok3 == tok {
		t.Error("a token for another audience was reused")
	}
	if tok4, _ := x.Exchange(context.Background(), exchange.Subject{Token: "other-user", Expiry: subject.Expiry}, req); tok4 == tok {
		t.Error("another caller's token was reused")
	}
	if n := ts.calls.Load(); n != 3 {
		t.Errorf("%d calls, want 3", n)
	}
	// Lifetime 300 s, reused while more than 60 s are left.
	clk.Add(239 * time.Second)
	if tok5, _ := x.Exchange(context.Background(), subject, req); tok5 != tok {
		t.Error("not reused within the window")
	}
	clk.Add(2 * time.Second)
	if tok6, _ := x.Exchange(context.Background(), subject, req); tok6 == tok {
		t.Error("reused after the window")
	}
}

// The cache never outlives the subject token, and an expired subject token
// is not sent at all.
func TestExchangeBoundBySubjectExpiry(t *testing.T) {
	x, ts, clk := setup(t, nil)
	ts.set(issue(3600))
	subject := exchange.Subject{Token: "short-lived", Expiry: clk.Now().Add(30 * time.Second)}
	req := exchange.Request{Audience: "billing-api"}
	first, err := x.Exchange(context.Background(), subject, req)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(29 * time.Second)
	if again, _ := x.Exchange(context.Background(), subject, req); again != first {
		t.Error("not reused before the subject expires")
	}
	clk.Add(time.Second)
	calls := ts.calls.Load()
	_, err = x.Exchange(context.Background(), subject, req)
	var oe *oauthclient.Error
	if !errors.As(err, &oe) || oe.Code != "invalid_grant" {
		t.Errorf("expired subject: %v, want invalid_grant", err)
	}
	if ts.calls.Load() != calls {
		t.Error("an expired subject token was sent to the server")
	}
}

func TestExchangeRefusals(t *testing.T) {
	for _, code := range []string{"invalid_grant", "invalid_target", "invalid_scope"} {
		t.Run(code+" is remembered briefly", func(t *testing.T) {
			x, ts, clk := setup(t, nil)
			ts.set(refuse(code))
			subject := exchange.Subject{Token: "tok", Expiry: clk.Now().Add(time.Hour)}
			for range 3 {
				_, err := x.Exchange(context.Background(), subject, exchange.Request{Audience: "payroll"})
				var oe *oauthclient.Error
				if !errors.As(err, &oe) || oe.Code != code {
					t.Fatalf("err %v, want %s", err, code)
				}
				if strings.Contains(err.Error(), "refused") {
					t.Errorf("the server's description reached the error text: %v", err)
				}
			}
			if n := ts.calls.Load(); n != 1 {
				t.Errorf("%d calls, want 1", n)
			}
			ts.set(issue(60))
			clk.Add(exchange.NegativeTTL)
			if _, err := x.Exchange(context.Background(), subject, exchange.Request{Audience: "payroll"}); err != nil {
				t.Errorf("after the negative TTL: %v", err)
			}
		})
	}
	t.Run("server errors are not cached", func(t *testing.T) {
		x, ts, clk := setup(t, nil)
		subject := exchange.Subject{Token: "tok", Expiry: clk.Now().Add(time.Hour)}
		for _, a := range []func(map[string]string) (int, any){
			func(map[string]string) (int, any) { return 500, map[string]any{"error": "server_error"} },
			func(map[string]string) (int, any) { return 200, map[string]any{"nothing": true} },
			func(map[string]string) (int, any) {
				return 200, map[string]any{"access_token": "x", "token_type": "Bearer", "issued_token_type": "urn:ietf:params:oauth:token-type:id_token"}
			},
			refuse("unauthorized_client"),
		} {
			ts.set(a)
			if _, err := x.Exchange(context.Background(), subject, exchange.Request{Audience: "a"}); err == nil {
				t.Error("a faulty answer was accepted")
			}
		}
		if n := ts.calls.Load(); n != 4 {
			t.Errorf("%d calls, want 4 (no failure cached)", n)
		}
	})
}

func TestExchangeSingleflight(t *testing.T) {
	x, ts, clk := setup(t, nil)
	release := make(chan struct{})
	ts.mu.Lock()
	ts.release = release
	ts.mu.Unlock()
	subject := exchange.Subject{Token: "tok", Expiry: clk.Now().Add(time.Hour)}
	var wg sync.WaitGroup
	results := make([]string, 50)
	for i := range results {
		wg.Go(func() {
			results[i], _ = x.Exchange(context.Background(), subject, exchange.Request{Audience: "a"})
		})
	}
	for ts.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// A caller that gives up does not end the shared call.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := x.Exchange(ctx, subject, exchange.Request{Audience: "a"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v", err)
	}
	close(release)
	wg.Wait()
	for _, r := range results {
		if r != results[0] || r == "" {
			t.Fatalf("results differ: %v", results)
		}
	}
	if n := ts.calls.Load(); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestExchangeActor(t *testing.T) {
	var actorCalls atomic.Int64
	x, ts, clk := setup(t, func(context.Context) (string, error) { actorCalls.Add(1); return "gatehouse-own-token", nil })
	subject := exchange.Subject{Token: "tok", Expiry: clk.Now().Add(time.Hour)}
	if _, err := x.Exchange(context.Background(), subject, exchange.Request{Audience: "a", Actor: true}); err != nil {
		t.Fatal(err)
	}
	if got := ts.last(); got["actor_token"] != "gatehouse-own-token" || got["actor_token_type"] != "urn:ietf:params:oauth:token-type:access_token" {
		t.Errorf("actor %q %q", got["actor_token"], got["actor_token_type"])
	}
	// Without Actor the request has none, and is cached apart.
	if _, err := x.Exchange(context.Background(), subject, exchange.Request{Audience: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ts.last()["actor_token"]; ok || ts.calls.Load() != 2 {
		t.Error("the request without actor reused or sent an actor")
	}

	noActor, _, _ := setup(t, nil)
	if _, err := noActor.Exchange(context.Background(), subject, exchange.Request{Audience: "a", Actor: true}); !errors.Is(err, exchange.ErrNoActor) {
		t.Errorf("no actor source: %v", err)
	}
	failing, ts2, _ := setup(t, func(context.Context) (string, error) { return "", errors.New("no token") })
	if _, err := failing.Exchange(context.Background(), subject, exchange.Request{Audience: "a", Actor: true}); err == nil || ts2.calls.Load() != 0 {
		t.Errorf("failing actor: %v, %d calls", err, ts2.calls.Load())
	}
}

func TestExchangeCacheBounded(t *testing.T) {
	ts := newTokenServer(t)
	p := oauthclient.NewProvider(oauthclient.ProviderConfig{Issuer: ts.URL, Overrides: oauthclient.Metadata{
		AuthorizationEndpoint: ts.URL + "/a", TokenEndpoint: ts.URL + "/token", JWKSURI: ts.URL + "/k",
	}})
	c := &oauthclient.Client{Provider: p, ClientID: "g", HTTP: &http.Client{Timeout: 5 * time.Second}, Auth: oauthclient.SecretPost{ClientID: "g", Secret: secret.New("s")}}
	x, _ := exchange.New(exchange.Config{Client: c, MaxEntries: 10})
	for i := range 50 {
		if _, err := x.Exchange(context.Background(), exchange.Subject{Token: fmt.Sprint("t", i)}, exchange.Request{Audience: "a"}); err != nil {
			t.Fatal(err)
		}
		if x.Len() > 10 {
			t.Fatalf("cache holds %d entries, max 10", x.Len())
		}
	}
}
