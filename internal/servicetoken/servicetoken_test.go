package servicetoken_test

import (
	"context"
	"encoding/json"
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
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/servicetoken"
)

func TestSource(t *testing.T) {
	var calls atomic.Int64
	var status atomic.Int64
	status.Store(200)
	release := make(chan struct{})
	var forms sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		_ = r.ParseForm()
		forms.Store(n, r.PostForm)
		<-release
		w.Header().Set("Content-Type", "application/json")
		if s := int(status.Load()); s != 200 {
			w.WriteHeader(s)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": "invalid_client"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprint("service-", n), "token_type": "Bearer", "expires_in": 600})
	}))
	defer srv.Close()
	p := oauthclient.NewProvider(oauthclient.ProviderConfig{Issuer: srv.URL, Overrides: oauthclient.Metadata{
		AuthorizationEndpoint: srv.URL + "/a", TokenEndpoint: srv.URL + "/token", JWKSURI: srv.URL + "/k",
	}})
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	src, err := servicetoken.New(servicetoken.Config{
		Client:   &oauthclient.Client{Provider: p, ClientID: "gatehouse", HTTP: &http.Client{Timeout: 5 * time.Second}, Auth: oauthclient.SecretBasic{ClientID: "gatehouse", Secret: secret.New("s")}},
		Audience: "reports-api", Resource: "https://reports.example.com/", Scopes: []string{"read", "write"}, Clock: clock,
	})
	if err != nil {
		t.Fatal(err)
	}

	// Concurrent first callers share one request.
	var wg sync.WaitGroup
	got := make([]string, 20)
	for i := range got {
		wg.Go(func() { got[i], _ = src.Token(context.Background()) })
	}
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	for _, g := range got {
		if g != "service-1" {
			t.Fatalf("tokens %v, want service-1 for all", got)
		}
	}
	f, _ := forms.Load(int64(1))
	form := f.(url.Values)
	for k, v := range map[string]string{"grant_type": "client_credentials", "audience": "reports-api", "resource": "https://reports.example.com/", "scope": "read write"} {
		if form[k][0] != v {
			t.Errorf("%s = %v, want %s", k, form[k], v)
		}
	}
	// Reused until 2 minutes (a fifth of 10) before it expires, then renewed.
	advance(8*time.Minute - time.Second)
	if tok, _ := src.Token(context.Background()); tok != "service-1" || calls.Load() != 1 {
		t.Errorf("before renewal: %s after %d calls", tok, calls.Load())
	}
	advance(time.Second)
	if tok, _ := src.Token(context.Background()); tok != "service-2" {
		t.Errorf("renewal: %s", tok)
	}
	// Failures are not cached.
	advance(10 * time.Minute)
	status.Store(401)
	var oe *oauthclient.Error
	if _, err := src.Token(context.Background()); !errors.As(err, &oe) || oe.Code != "invalid_client" {
		t.Errorf("refused client: %v", err)
	}
	status.Store(200)
	if tok, err := src.Token(context.Background()); err != nil || tok != "service-4" {
		t.Errorf("after the failure: %q %v", tok, err)
	}
	if src.Calls() != 4 {
		t.Errorf("%d calls, want 4", src.Calls())
	}
}
