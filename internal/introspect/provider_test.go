package introspect_test

// Tests against the real in-process provider (devidp, built on zitadel's op).

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/introspect"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

// Every client authentication method of oauthclient works at the
// introspection endpoint, and an active opaque token gives its claims.
func TestActiveTokenAtProvider(t *testing.T) {
	key, _ := keys()
	f := startIDP(t, key, nil)
	jwtAuth, err := oauthclient.NewPrivateKeyJWT(gatehouseID+"-jwt", f.idp.Issuer(), key, "ES256", "gh-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		auth oauthclient.ClientAuth
	}{
		{"client_secret_basic", oauthclient.SecretBasic{ClientID: gatehouseID, Secret: secret.New(gatehouseSecret)}},
		{"client_secret_post", oauthclient.SecretPost{ClientID: gatehouseID + "-post", Secret: secret.New(gatehouseSecret)}},
		{"private_key_jwt", jwtAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.idp.Stats().Introspection
			token := f.serviceToken(t)
			issued := f.clock.Now()
			i := f.introspector(t, func(c *introspect.Config) { c.Auth = tt.auth })
			got := introspectOK(t, i, token)
			want := &introspect.Result{
				Active:    true,
				Issuer:    f.idp.Issuer(),
				Subject:   serviceID,
				ClientID:  serviceID,
				Scope:     "read write",
				TokenType: "Bearer",
				Audience:  []string{serviceID, "business-api"},
				Expiry:    issued.Add(devidp.DefaultAccessTokenLifetime).UTC(),
				IssuedAt:  issued.UTC(),
				NotBefore: issued.UTC(),
			}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(introspect.Result{}, "Claims")); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if got.Claims["active"] != true || got.Claims["sub"] != serviceID || got.Claims["jti"] == nil {
				t.Errorf("claims lack members of the response: %v", got.Claims)
			}
			if n := f.idp.Stats().Introspection - before; n != 1 || i.Calls() != 1 {
				t.Errorf("provider saw %d introspection requests, Calls() = %d; want 1 and 1", n, i.Calls())
			}
		})
	}
}

// A user's token: its extra claims reach Claims; once the user's sessions
// are revoked, a fresh introspection says inactive, and the cached active
// answer lasts no longer than MaxTTL.
func TestRevokedTokenIsInactive(t *testing.T) {
	key, _ := keys()
	f := startIDP(t, key, nil)
	tr := f.userTokens(t)
	i := f.introspector(t, func(c *introspect.Config) { c.MaxTTL = 30 * time.Second })

	res := introspectOK(t, i, tr.AccessToken)
	if !res.Active || res.Subject != "u-alice" || res.ClientID != webID {
		t.Fatalf("before revocation: %+v", res)
	}
	if roles, _ := res.Claims["roles"].([]any); len(roles) != 1 || roles[0] != "admin" {
		t.Errorf("user claims missing: %v", res.Claims)
	}

	f.idp.RevokeUserSessions("u-alice")
	// A fresh introspector (no cache) sees the revocation at once.
	if res := introspectOK(t, f.introspector(t, nil), tr.AccessToken); res.Active {
		t.Errorf("revoked token is active: %+v", res)
	}
	// The cached answer ends with MaxTTL.
	f.clock.Advance(29 * time.Second)
	if res := introspectOK(t, i, tr.AccessToken); !res.Active {
		t.Fatal("cached active answer lost before MaxTTL")
	}
	f.clock.Advance(2 * time.Second)
	if res := introspectOK(t, i, tr.AccessToken); res.Active {
		t.Errorf("revoked token still active after MaxTTL: %+v", res)
	}
	if i.Calls() != 2 {
		t.Errorf("Calls() = %d, want 2", i.Calls())
	}
}

// A refresh token is not an access token. The provider answers active (with
// token_type refresh_token) to the introspection of a refresh token; a
// stolen refresh token presented as a bearer token must still be refused.
func TestRefreshTokenIsNotAnAccessToken(t *testing.T) {
	key, _ := keys()
	f := startIDP(t, key, nil)
	tr := f.userTokens(t)
	if tr.RefreshToken == "" {
		t.Fatal("no refresh token issued")
	}
	res := introspectOK(t, f.introspector(t, nil), tr.RefreshToken)
	if res.Active {
		t.Errorf("refresh token introspected as an active access token: %+v", res)
	}
}

func TestCacheHitMakesNoCall(t *testing.T) {
	key, _ := keys()
	f := startIDP(t, key, nil)
	i := f.introspector(t, nil)
	token := f.serviceToken(t)
	first := introspectOK(t, i, token)
	before := f.idp.Stats().Introspection
	for range 5 {
		f.clock.Advance(10 * time.Second)
		if got := introspectOK(t, i, token); got != first {
			t.Fatalf("hit returned another result: %+v", got)
		}
	}
	if n := f.idp.Stats().Introspection; n != before {
		t.Errorf("cache hits made %d introspection requests", n-before)
	}
	// Another token is another entry.
	introspectOK(t, i, f.serviceToken(t))
	if n := f.idp.Stats().Introspection; n != before+1 {
		t.Errorf("a new token made %d requests, want 1", n-before)
	}
}

// N concurrent first requests with one new opaque token make exactly one
// introspection call, counted at the provider (DESIGN.md performance budget).
func TestConcurrentMissesMakeOneCall(t *testing.T) {
	key, _ := keys()
	f := startIDP(t, key, nil)
	i := f.introspector(t, nil)
	token := f.serviceToken(t)
	before := f.idp.Stats().Introspection

	const n = 100
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			<-start
			res, err := i.Introspect(t.Context(), token)
			if err == nil && !res.Active {
				err = errors.New("inactive")
			}
			if err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := f.idp.Stats().Introspection - before; got != 1 {
		t.Errorf("provider saw %d introspection requests for one token, want 1", got)
	}
}

// An entry never outlives its token: with a 1-minute token and a 5-minute
// MaxTTL, the cached answer turns inactive at exp, without a call.
func TestCacheTTLBoundedByExp(t *testing.T) {
	key, _ := keys()
	f := startIDP(t, key, func(c *devidp.Config) { c.Clients[0].AccessTokenLifetime = time.Minute })
	i := f.introspector(t, func(c *introspect.Config) { c.MaxTTL = 5 * time.Minute })
	token := f.serviceToken(t)
	introspectOK(t, i, token)
	before := f.idp.Stats().Introspection

	f.clock.Advance(59 * time.Second)
	if res := introspectOK(t, i, token); !res.Active {
		t.Fatal("inactive before exp")
	}
	f.clock.Advance(time.Second)
	if res := introspectOK(t, i, token); res.Active {
		t.Errorf("active at exp: %+v", res)
	}
	if n := f.idp.Stats().Introspection - before; n != 0 {
		t.Errorf("%d introspection requests; the expiry is known without asking", n)
	}
}

func TestCacheTTLBoundedByMaxTTL(t *testing.T) {
	key, _ := keys()
	f := startIDP(t, key, func(c *devidp.Config) { c.Clients[0].AccessTokenLifetime = time.Hour })
	i := f.introspector(t, func(c *introspect.Config) { c.MaxTTL = time.Minute })
	token := f.serviceToken(t)
	introspectOK(t, i, token)
	before := f.idp.Stats().Introspection

	f.clock.Advance(59 * time.Second)
	introspectOK(t, i, token)
	if n := f.idp.Stats().Introspection - before; n != 0 {
		t.Fatalf("%d requests within MaxTTL", n)
	}
	f.clock.Advance(2 * time.Second)
	if res := introspectOK(t, i, token); !res.Active {
		t.Error("token inactive after MaxTTL, want active (it lives an hour)")
	}
	if n := f.idp.Stats().Introspection - before; n != 1 {
		t.Errorf("%d requests after MaxTTL, want 1", n)
	}
}

// Inactive answers are cached for at most NegativeTTL (default 10 s).
func TestNegativeCache(t *testing.T) {
	key, _ := keys()
	f := startIDP(t, key, nil)
	for _, tt := range []struct {
		name string
		ttl  time.Duration // configured; 0 = default
		want time.Duration
	}{
		{"default 10s", 0, 10 * time.Second},
		{"configured 3s", 3 * time.Second, 3 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			i := f.introspector(t, func(c *introspect.Config) { c.NegativeTTL = tt.ttl })
			tr := f.token(t, serviceID, serviceSecret, map[string][]string{"grant_type": {"client_credentials"}})
			// Unknown to the provider: inactive.
			token := tr.AccessToken + "x"
			before := f.idp.Stats().Introspection
			if res := introspectOK(t, i, token); res.Active {
				t.Fatal("altered token is active")
			}
			f.clock.Advance(tt.want - time.Second)
			introspectOK(t, i, token)
			if n := f.idp.Stats().Introspection - before; n != 1 {
				t.Fatalf("%d requests within the negative TTL, want 1", n)
			}
			f.clock.Advance(time.Second)
			if res := introspectOK(t, i, token); res.Active {
				t.Fatal("altered token is active")
			}
			if n := f.idp.Stats().Introspection - before; n != 2 {
				t.Errorf("%d requests after the negative TTL, want 2", n)
			}
		})
	}
	t.Run("New refuses more than 10s", func(t *testing.T) {
		_, err := introspect.New(introspect.Config{
			Endpoint: f.endpoint, Issuer: f.idp.Issuer(),
			Auth: oauthclient.SecretBasic{ClientID: gatehouseID}, HTTP: oauthclient.NewHTTPClient(time.Second),
			NegativeTTL: 11 * time.Second,
		})
		if err == nil || !strings.Contains(err.Error(), "negative TTL") {
			t.Errorf("New: %v", err)
		}
	})
}

// An unreachable server is ErrUnavailable and is not cached: the next call
// goes out again.
func TestServerDownIsUnavailableAndNotCached(t *testing.T) {
	key, _ := keys()
	f := startIDP(t, key, nil)
	token := f.serviceToken(t)
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + devidp.PathIntrospect
	ln.Close()
	i := f.introspector(t, func(c *introspect.Config) {
		c.Endpoint = func() (string, error) { return dead, nil }
	})
	for n := 1; n <= 2; n++ {
		res, err := i.Introspect(t.Context(), token)
		if !errors.Is(err, introspect.ErrUnavailable) || res != nil {
			t.Fatalf("call %d: %v, %v; want ErrUnavailable", n, res, err)
		}
		if strings.Contains(err.Error(), token) {
			t.Fatalf("error contains the token: %v", err)
		}
		if i.Calls() != int64(n) {
			t.Fatalf("Calls() = %d after %d attempts: the failure was cached", i.Calls(), n)
		}
	}

	t.Run("endpoint not discovered yet", func(t *testing.T) {
		i := f.introspector(t, func(c *introspect.Config) {
			c.Endpoint = func() (string, error) { return "", oauthclient.ErrNotReady }
		})
		_, err := i.Introspect(t.Context(), token)
		if !errors.Is(err, introspect.ErrUnavailable) || !errors.Is(err, oauthclient.ErrNotReady) || i.Calls() != 0 {
			t.Errorf("got %v with %d calls", err, i.Calls())
		}
	})
}

// Tokens of impossible shape or size are refused before any call.
func TestMalformedTokensMakeNoCall(t *testing.T) {
	key, _ := keys()
	f := startIDP(t, key, nil)
	i := f.introspector(t, nil)
	before := f.idp.Stats().Introspection
	valid := f.serviceToken(t)
	for _, tt := range []struct{ name, token string }{
		{"empty", ""},
		{"over 8 KiB", strings.Repeat("a", introspect.MaxTokenBytes+1)},
		{"space", "abc def"},
		{"leading space", " " + valid},
		{"bearer prefix", "Bearer " + valid},
		{"CRLF", valid + "\r\nX-Injected: 1"},
		{"NUL", "abc\x00"},
		{"quote", `abc"`},
		{"comma", "a,b"},
		{"percent", "a%20b"},
		{"only padding", "=="},
		{"padding in the middle", "ab=cd"},
		{"non-ASCII", "tökén"},
		{"JSON", `{"active":true}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := i.Introspect(t.Context(), tt.token)
			if !errors.Is(err, introspect.ErrMalformedToken) || res != nil {
				t.Fatalf("got %v, %v; want ErrMalformedToken", res, err)
			}
			if len(tt.token) >= 8 && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error contains the token: %v", err)
			}
		})
	}
	if n := f.idp.Stats().Introspection - before; n != 0 || i.Calls() != 0 {
		t.Errorf("malformed tokens made %d requests (Calls %d), want 0", n, i.Calls())
	}
	// The edges that are valid: every b64token character, padding, 8 KiB.
	for _, token := range []string{
		"AZaz09-._~+/==",
		strings.Repeat("a", introspect.MaxTokenBytes),
	} {
		if res := introspectOK(t, i, token); res.Active {
			t.Errorf("unknown token %.20q active", token)
		}
	}
}
