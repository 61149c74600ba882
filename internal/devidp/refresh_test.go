package devidp_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

func TestRefreshWithoutRotation(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	tr, _ := f.tokens(t, basicClient, nil)
	_, firstID := f.verify(t, tr.IDToken)

	for i := range 2 {
		got, status := f.refresh(t, basicClient, tr.RefreshToken)
		if status != http.StatusOK {
			t.Fatalf("refresh %d: %d %s: %s", i, status, got.Error, got.Description)
		}
		if got.RefreshToken != "" {
			t.Errorf("refresh %d returned a refresh token although rotation is off", i)
		}
		if got.AccessToken == "" || got.AccessToken == tr.AccessToken {
			t.Errorf("refresh %d did not return a new access token", i)
		}
		_, id := f.verify(t, got.IDToken)
		if id["sub"] != alice.ID || id["auth_time"] != firstID["auth_time"] {
			t.Errorf("refreshed ID token sub=%v auth_time=%v, want %v %v", id["sub"], id["auth_time"], alice.ID, firstID["auth_time"])
		}
		if in := f.introspect(t, apiClient, got.AccessToken); in["active"] != true {
			t.Errorf("refreshed access token inactive: %v", in)
		}
	}
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		reuseDetection bool
	}{
		{"rotation only", false},
		{"rotation with reuse detection", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, func(c *devidp.Config) {
				c.RotateRefreshTokens = true
				c.RefreshReuseDetection = tt.reuseDetection
			})
			tr, _ := f.tokens(t, basicClient, nil)

			second, status := f.refresh(t, basicClient, tr.RefreshToken)
			if status != http.StatusOK || second.RefreshToken == "" || second.RefreshToken == tr.RefreshToken {
				t.Fatalf("first refresh: %d %s, new refresh token %t", status, second.Error, second.RefreshToken != tr.RefreshToken)
			}

			// The rotated-out token no longer works.
			reuse, status := f.refresh(t, basicClient, tr.RefreshToken)
			if status != http.StatusBadRequest || reuse.Error != "invalid_grant" || !strings.Contains(reuse.Description, "already used") {
				t.Fatalf("reused refresh token: %d %q %q, want 400 invalid_grant", status, reuse.Error, reuse.Description)
			}

			// With reuse detection the whole grant is gone; without, the
			// current token still works.
			third, status := f.refresh(t, basicClient, second.RefreshToken)
			active := f.introspect(t, apiClient, second.AccessToken)["active"]
			if tt.reuseDetection {
				if status != http.StatusBadRequest || third.Error != "invalid_grant" {
					t.Errorf("current refresh token after reuse: %d %q, want invalid_grant", status, third.Error)
				}
				if active != false {
					t.Error("access token of the revoked grant is still active")
				}
			} else {
				if status != http.StatusOK {
					t.Errorf("current refresh token after reuse: %d %q, want 200", status, third.Error)
				}
				if active != true {
					t.Error("access token was revoked without reuse detection")
				}
			}
		})
	}
}

// TestRefreshRace pins that two concurrent refreshes with one token cannot
// both succeed under rotation (the second is a reuse).
func TestRefreshRace(t *testing.T) {
	t.Parallel()
	f := start(t, func(c *devidp.Config) { c.RotateRefreshTokens = true })
	tr, _ := f.tokens(t, postClient, nil)
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	form := url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken},
		"client_id": {postClient.id}, "client_secret": {postClient.secret},
	}
	for i := range n {
		wg.Go(func() {
			// No t.Fatal off the test goroutine: record the status only.
			resp, err := f.hc.PostForm(f.idp.Issuer()+devidp.PathToken, form)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		if s == http.StatusOK {
			ok++
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent refreshes with one token succeeded, want exactly 1 (%v)", ok, statuses)
	}
}

func TestRefreshFailures(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	f := start(t, func(c *devidp.Config) { c.Now = clock })

	t.Run("expired", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, nil)
		advance(devidp.DefaultRefreshTokenLifetime + time.Second)
		got, status := f.refresh(t, basicClient, tr.RefreshToken)
		if status != http.StatusBadRequest || got.Error != "invalid_grant" || !strings.Contains(got.Description, "expired") {
			t.Errorf("expired refresh token: %d %q %q", status, got.Error, got.Description)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		got, status := f.refresh(t, basicClient, "no-such-token")
		if status != http.StatusBadRequest || got.Error != "invalid_grant" {
			t.Errorf("unknown refresh token: %d %q", status, got.Error)
		}
	})
	t.Run("another client", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, nil)
		got, status := f.refresh(t, postClient, tr.RefreshToken)
		if status != http.StatusBadRequest || got.Error != "invalid_grant" {
			t.Errorf("refresh by another client: %d %q", status, got.Error)
		}
	})
	t.Run("no offline_access, no refresh token", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, url.Values{"scope": {"openid profile"}})
		if tr.RefreshToken != "" {
			t.Error("refresh token issued without offline_access")
		}
	})
	t.Run("narrower scope", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, nil)
		got, status := f.token(t, basicClient, url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "scope": {"openid read"},
		})
		if status != http.StatusOK || got.Scope != "openid read" {
			t.Fatalf("downscoped refresh: %d %q scope %q", status, got.Error, got.Scope)
		}
		if _, at := f.verify(t, got.AccessToken); at["scope"] != "openid read" {
			t.Errorf("access token scope = %v", at["scope"])
		}
	})
	t.Run("wider scope", func(t *testing.T) {
		tr, _ := f.tokens(t, basicClient, url.Values{"scope": {"openid offline_access"}})
		got, status := f.token(t, basicClient, url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "scope": {"openid write"},
		})
		if status != http.StatusBadRequest || got.Error != "invalid_scope" {
			t.Errorf("upscoped refresh: %d %q", status, got.Error)
		}
	})
}
