package vault_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/vault"
	"github.com/gatehouse-dev/gatehouse/internal/vault/memstore"
	"github.com/gatehouse-dev/gatehouse/internal/vault/provider"
	"github.com/gatehouse-dev/gatehouse/internal/vault/sealer"
)

// These tests drive the vault service against memstore and small token
// endpoints scripted for one behaviour each (the end-to-end tests in
// internal/server use real providers and the SQL stores).

var alice = vault.User{Issuer: "https://login.example", Subject: "alice"}

// tokenServer answers the token endpoint with answer(form), counting
// refresh requests; gate, when set, holds refreshes until closed.
type tokenServer struct {
	*httptest.Server
	refreshes atomic.Int32
	gate      chan struct{}
}

func newTokenServer(t *testing.T, answer func(w http.ResponseWriter, form url.Values)) *tokenServer {
	ts := &tokenServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.PostForm.Get("grant_type") == "refresh_token" {
			ts.refreshes.Add(1)
			if ts.gate != nil {
				<-ts.gate
			}
		}
		answer(w, r.PostForm)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// rotating issues a new access and refresh token on every call.
func rotating(n *atomic.Int32) func(http.ResponseWriter, url.Values) {
	return func(w http.ResponseWriter, form url.Values) {
		i := n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"at-%d","refresh_token":"rt-%d","token_type":"Bearer","expires_in":600}`, i, i)
	}
}

func newSealer(t *testing.T, ids ...string) *sealer.Sealer {
	t.Helper()
	hexes := map[string]string{
		"k1": "9a2c0640603bc347e0d5a005f8c363e0c58ad3fa22ce1c5daf270c51a108f097",
		"k2": "f2fd8847c942b586d50ce90bedd8d26941e1459eeb0308ec694067e1da57f0bd",
	}
	var keys []sealer.Key
	for _, id := range ids {
		k, err := seal.ParseKey(hexes[id])
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, sealer.Key{ID: id, Secret: k})
	}
	s, err := sealer.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type fixture struct {
	store *memstore.Store
	now   *atomic.Int64 // unix nanoseconds
	ts    *tokenServer
}

func (f *fixture) clock() time.Time { return time.Unix(0, f.now.Load()) }
func (f *fixture) advance(d time.Duration) {
	f.now.Add(int64(d))
}

func newFixture(t *testing.T, answer func(http.ResponseWriter, url.Values)) *fixture {
	f := &fixture{store: memstore.New(), now: &atomic.Int64{}, ts: newTokenServer(t, answer)}
	f.now.Store(time.Now().UnixNano())
	return f
}

func (f *fixture) vault(t *testing.T, s vault.Sealer, mod func(*vault.Config, *provider.Config)) *vault.Vault {
	t.Helper()
	pc := provider.Config{
		Name: "gh", AuthorizationEndpoint: f.ts.URL + "/authorize", TokenEndpoint: f.ts.URL + "/token",
		ClientID: "c", Auth: oauthclient.SecretPost{ClientID: "c", Secret: secret.New("s")}, PKCE: true,
		RedirectURI: "https://gatehouse.example/connections/gh/callback", HTTP: oauthclient.NewHTTPClient(2 * time.Second),
	}
	vc := vault.Config{Store: f.store, Sealer: s, RefreshAhead: time.Minute, ReturnURL: "https://spa.example/", Now: f.clock, ClaimNames: []string{"org"},
		LeaseTTL: 2 * time.Second, PollInterval: 5 * time.Millisecond}
	if mod != nil {
		mod(&vc, &pc)
	}
	p, err := provider.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	vc.Providers = map[string]*provider.Provider{"gh": p}
	v, err := vault.New(vc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// connect runs a connect flow for alice through StartConnect and FinishConnect.
func connect(t *testing.T, v *vault.Vault, claims map[string]any) (vault.Result, error) {
	t.Helper()
	st, err := v.StartConnect(t.Context(), alice, claims, "gh")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(st.AuthorizationURL)
	q := url.Values{"code": {"the-code"}, "state": {u.Query().Get("state")}}
	return v.FinishConnect(t.Context(), "gh", q, st.Binding.Reveal())
}

// GitHub OAuth apps issue tokens that never expire, without refresh token.
func TestNonExpiringTokensQuirk(t *testing.T) {
	github := func(w http.ResponseWriter, _ url.Values) {
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		fmt.Fprint(w, "access_token=gho_forever&scope=repo&token_type=bearer")
	}
	quirks := []provider.Quirk{provider.FormEncodedTokenResponse}
	f := newFixture(t, github)
	plain := f.vault(t, newSealer(t, "k1"), func(_ *vault.Config, p *provider.Config) { p.Quirks = quirks })
	if res, err := connect(t, plain, nil); res != vault.ResultFailed || err == nil {
		t.Fatalf("without the quirk: %s %v, want failed", res, err)
	}
	f = newFixture(t, github)
	v := f.vault(t, newSealer(t, "k1"), func(_ *vault.Config, p *provider.Config) {
		p.Quirks = append(quirks, provider.NonExpiringTokens)
	})
	if res, err := connect(t, v, nil); res != vault.ResultConnected {
		t.Fatalf("with the quirk: %s %v", res, err)
	}
	f.advance(365 * 24 * time.Hour)
	tok, err := v.Token(t.Context(), alice, "gh", "")
	if err != nil || tok.Value.Reveal() != "gho_forever" || !tok.ExpiresAt.IsZero() {
		t.Fatalf("a year later: %v %v", tok, err)
	}
	// The API refused it: nothing can renew it, the user must connect again.
	if _, err := v.Token(t.Context(), alice, "gh", "gho_forever"); !errors.Is(err, vault.ErrNeedsReauth) {
		t.Fatalf("after a 401: %v", err)
	}
	infos, _ := v.List(t.Context(), alice)
	if len(infos) != 1 || infos[0].Status != vault.StatusNeedsReauth {
		t.Errorf("list %+v", infos)
	}
}

// A caller that finds another instance's lease waits for its result
// (re-reading the store) instead of refreshing again.
func TestWaitsForAnotherInstancesLease(t *testing.T) {
	var n atomic.Int32
	f := newFixture(t, rotating(&n))
	f.ts.gate = make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(f.ts.gate) }) }
	t.Cleanup(open) // before the server's Close, which waits for the handler
	a := f.vault(t, newSealer(t, "k1"), nil)
	// Another instance on the same store; it reports when it finds the lease held.
	held := make(chan struct{}, 100)
	b := f.vault(t, newSealer(t, "k1"), func(c *vault.Config, _ *provider.Config) {
		c.Store = &leaseWatcher{Store: f.store, held: held}
	})
	if res, err := connect(t, a, nil); res != vault.ResultConnected {
		t.Fatal(res, err)
	}
	f.advance(11 * time.Minute)
	results := make(chan string, 2)
	var wg sync.WaitGroup
	get := func(v *vault.Vault) {
		defer wg.Done()
		tok, err := v.Token(context.Background(), alice, "gh", "")
		if err != nil {
			results <- "error: " + err.Error()
			return
		}
		results <- tok.Value.Reveal()
	}
	wg.Add(2)
	go get(a)
	// a holds the lease once its refresh reached the provider (held at the gate).
	for deadline := time.Now().Add(5 * time.Second); f.ts.refreshes.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first instance did not refresh")
		}
	}
	go get(b)
	// b finds a's lease, and keeps re-reading the store.
	for range 2 {
		select {
		case <-held:
		case <-time.After(5 * time.Second):
			t.Fatal("the second instance never found the lease held")
		}
	}
	open()
	wg.Wait()
	close(results)
	for r := range results {
		if r != "at-2" {
			t.Errorf("got %q, want at-2 (the one refresh's token)", r)
		}
	}
	if got := f.ts.refreshes.Load(); got != 1 {
		t.Errorf("%d refreshes, want 1", got)
	}
}

// A lease that is never released bounds the wait; a token that is still
// valid is used without waiting at all.
func TestLeaseWaitIsBounded(t *testing.T) {
	var n atomic.Int32
	f := newFixture(t, rotating(&n))
	v := f.vault(t, newSealer(t, "k1"), func(c *vault.Config, _ *provider.Config) { c.LeaseTTL = 150 * time.Millisecond })
	if res, err := connect(t, v, nil); res != vault.ResultConnected {
		t.Fatal(res, err)
	}
	// Another instance claimed the lease and went silent.
	f.advance(10*time.Minute - 30*time.Second) // inside refresh_ahead, still valid
	if _, _, err := f.store.ClaimRefresh(t.Context(), alice, "gh", "other", f.clock(), f.clock().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tok, err := v.Token(t.Context(), alice, "gh", "")
	if err != nil || tok.Value.Reveal() != "at-1" || time.Since(start) > 100*time.Millisecond {
		t.Errorf("valid token during another's lease: %v %v after %v", tok, err, time.Since(start))
	}
	f.advance(time.Minute) // now expired
	start = time.Now()
	if _, err := v.Token(t.Context(), alice, "gh", ""); !errors.Is(err, vault.ErrBusy) {
		t.Errorf("expired token during another's lease: %v, want ErrBusy", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("waited %v, want about the lease TTL", d)
	}
	if f.ts.refreshes.Load() != 0 {
		t.Error("refreshed while another instance holds the lease")
	}
}

// A failed refresh records the failure and backs off, and never replaces
// the refresh token; a success resets both.
func TestFailedRefreshKeepsRefreshToken(t *testing.T) {
	var fail atomic.Bool
	var n atomic.Int32
	ok := rotating(&n)
	f := newFixture(t, func(w http.ResponseWriter, form url.Values) {
		if fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ok(w, form)
	})
	v := f.vault(t, newSealer(t, "k1"), nil)
	if res, err := connect(t, v, map[string]any{"org": "acme", "ignored": 1}); res != vault.ResultConnected {
		t.Fatal(res, err)
	}
	before, _ := f.store.GetConnection(t.Context(), alice, "gh")
	fail.Store(true)
	f.advance(11 * time.Minute)
	var be *vault.BackoffError
	if _, err := v.Token(t.Context(), alice, "gh", ""); !errors.Is(err, vault.ErrProvider) {
		t.Fatalf("err %v", err)
	}
	after, _ := f.store.GetConnection(t.Context(), alice, "gh")
	if string(after.RefreshToken.Data) != string(before.RefreshToken.Data) || after.Failures != 1 || !after.NextAttempt.After(f.clock()) || after.Status != vault.StatusConnected {
		t.Errorf("after a failure: %+v", after)
	}
	if _, err := v.Token(t.Context(), alice, "gh", ""); !errors.As(err, &be) || f.ts.refreshes.Load() != 1 {
		t.Errorf("during backoff: %v (%d refreshes)", err, f.ts.refreshes.Load())
	}
	fail.Store(false)
	f.advance(5 * time.Second)
	tok, err := v.Token(t.Context(), alice, "gh", "")
	if err != nil || tok.Value.Reveal() != "at-2" {
		t.Fatalf("after recovery: %v %v", tok, err)
	}
	final, _ := f.store.GetConnection(t.Context(), alice, "gh")
	if final.Failures != 0 || !final.NextAttempt.IsZero() {
		t.Errorf("after success: %+v", final)
	}
	// The claims recorded at connect time survive refreshes, and only the
	// configured ones are kept.
	claims, err := v.Claims(t.Context(), alice, "gh")
	if err != nil || claims["org"] != "acme" || claims["ignored"] != nil {
		t.Errorf("claims %v %v", claims, err)
	}
}

// Rows sealed with an old key are re-sealed with the current one on read.
func TestLazyReseal(t *testing.T) {
	var n atomic.Int32
	f := newFixture(t, rotating(&n))
	old := f.vault(t, newSealer(t, "k1"), nil)
	if res, err := connect(t, old, nil); res != vault.ResultConnected {
		t.Fatal(res, err)
	}
	rotated := f.vault(t, newSealer(t, "k2", "k1"), nil)
	tok, err := rotated.Token(t.Context(), alice, "gh", "")
	if err != nil || tok.Value.Reveal() != "at-1" {
		t.Fatal(tok, err)
	}
	c, _ := f.store.GetConnection(t.Context(), alice, "gh")
	if c.AccessToken.KeyID != "k2" || c.RefreshToken.KeyID != "k2" {
		t.Errorf("key ids %s/%s, want k2", c.AccessToken.KeyID, c.RefreshToken.KeyID)
	}
	if _, err := old.Token(t.Context(), alice, "gh", ""); err == nil {
		t.Error("the old ring opened a row sealed with the new key")
	}
}

// Sealed values are bound to their row: copying one user's sealed tokens
// into another user's row does not give the other user those tokens.
func TestSealedValuesBoundToTheirRow(t *testing.T) {
	var n atomic.Int32
	f := newFixture(t, rotating(&n))
	v := f.vault(t, newSealer(t, "k1"), nil)
	if res, err := connect(t, v, nil); res != vault.ResultConnected {
		t.Fatal(res, err)
	}
	c, _ := f.store.GetConnection(t.Context(), alice, "gh")
	mallory := vault.User{Issuer: alice.Issuer, Subject: "mallory"}
	stolen := *c
	stolen.User = mallory
	if err := f.store.SaveConnection(t.Context(), &stolen); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Token(t.Context(), mallory, "gh", ""); err == nil {
		t.Error("a sealed token copied to another user's row opened")
	}
}

// leaseWatcher reports every ErrLeaseHeld its store answers.
type leaseWatcher struct {
	*memstore.Store
	held chan struct{}
}

func (w *leaseWatcher) ClaimRefresh(ctx context.Context, u vault.User, p, id string, now, until time.Time) (*vault.Lease, *vault.Connection, error) {
	l, c, err := w.Store.ClaimRefresh(ctx, u, p, id, now, until)
	if errors.Is(err, vault.ErrLeaseHeld) {
		select {
		case w.held <- struct{}{}:
		default:
		}
	}
	return l, c, err
}
