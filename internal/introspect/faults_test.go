package introspect_test

// Tests against the scriptable server: the request on the wire, faults of
// the authorization server, Cache-Control, and the JWT response formats.

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/internal/introspect"
	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

func TestRequestOnTheWire(t *testing.T) {
	f := newFakeFixture(t)
	for _, tt := range []struct {
		format introspect.Format
		accept string
	}{
		{introspect.FormatJSON, "application/json"},
		{introspect.FormatJWT, "application/jwt"},
		{introspect.FormatRFC9701, "application/token-introspection+jwt"},
	} {
		t.Run(tt.format.String(), func(t *testing.T) {
			i := f.introspector(t, func(c *introspect.Config) { c.Format = tt.format })
			token := opaque(int(tt.format))
			_, _ = i.Introspect(t.Context(), token)
			r := f.srv.last(t)
			if r.method != http.MethodPost {
				t.Errorf("method %s", r.method)
			}
			if got := r.header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type %q", got)
			}
			if got := r.header.Get("Accept"); got != tt.accept {
				t.Errorf("Accept %q, want %q", got, tt.accept)
			}
			user, pass, ok := (&http.Request{Header: r.header}).BasicAuth()
			if !ok || user != fakeClient || pass != "gh-secret" {
				t.Errorf("client_secret_basic: %q %q %t", user, pass, ok)
			}
			want := map[string][]string{"token": {token}, "token_type_hint": {"access_token"}}
			if diff := cmp.Diff(want, map[string][]string(r.form)); diff != "" {
				t.Errorf("form (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("client_secret_post", func(t *testing.T) {
		i := f.introspector(t, func(c *introspect.Config) {
			c.Auth = oauthclient.SecretPost{ClientID: fakeClient, Secret: secret.New("gh-secret")}
		})
		_, _ = i.Introspect(t.Context(), opaque(9))
		r := f.srv.last(t)
		if r.form.Get("client_id") != fakeClient || r.form.Get("client_secret") != "gh-secret" || r.header.Get("Authorization") != "" {
			t.Errorf("form %v, Authorization %q", r.form, r.header.Get("Authorization"))
		}
	})
}

// A redirect from the introspection endpoint is never followed: the token
// would be sent on to wherever the redirect points (a 307 keeps the body).
func TestRedirectIsNotFollowed(t *testing.T) {
	f := newFakeFixture(t)
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f.srv.respond(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/elsewhere", status)
			})
			// Even with a client that would follow redirects.
			i := f.introspector(t, func(c *introspect.Config) { c.HTTP = &http.Client{Timeout: 2 * time.Second} })
			_, err := i.Introspect(t.Context(), opaque(status))
			if !errors.Is(err, introspect.ErrUnavailable) {
				t.Errorf("got %v, want ErrUnavailable", err)
			}
		})
	}
}

func TestServerFaults(t *testing.T) {
	f := newFakeFixture(t)
	now := f.clock.Now()
	big := `{"active":false,"pad":"` + strings.Repeat("x", introspect.MaxResponseBytes) + `"}`
	const marker = "SECRET-BODY-MARKER"
	tests := []struct {
		name   string
		answer func(http.ResponseWriter, *http.Request)
	}{
		{"500", f.srv.jsonAnswer(http.StatusInternalServerError, map[string]any{"error": marker}, nil)},
		{"502", f.srv.rawAnswer(http.StatusBadGateway, "text/html", marker, nil)},
		{"503", f.srv.rawAnswer(http.StatusServiceUnavailable, "", "", nil)},
		// 401/403: the server refused Gatehouse's own client. That is
		// Gatehouse's fault, not the token's: 502, never "inactive".
		{"401 for Gatehouse's client", f.srv.jsonAnswer(http.StatusUnauthorized, map[string]any{"error": "invalid_client", "error_description": marker}, nil)},
		{"403", f.srv.jsonAnswer(http.StatusForbidden, map[string]any{"error": marker}, nil)},
		{"400", f.srv.jsonAnswer(http.StatusBadRequest, map[string]any{"error": "invalid_request"}, nil)},
		{"404", f.srv.rawAnswer(http.StatusNotFound, "text/plain", marker, nil)},
		{"204 in JSON format", f.srv.rawAnswer(http.StatusNoContent, "", "", nil)},
		{"garbage", f.srv.rawAnswer(http.StatusOK, "application/json", "<html>"+marker, nil)},
		{"empty body", f.srv.rawAnswer(http.StatusOK, "application/json", "", nil)},
		{"JSON null", f.srv.rawAnswer(http.StatusOK, "application/json", "null", nil)},
		{"JSON array", f.srv.rawAnswer(http.StatusOK, "application/json", `[{"active":true}]`, nil)},
		{"trailing data", f.srv.rawAnswer(http.StatusOK, "application/json", `{"active":true} {"x":1}`, nil)},
		{"active missing", f.srv.jsonAnswer(http.StatusOK, map[string]any{"sub": marker}, nil)},
		// active must be the JSON boolean true; look-alikes are not.
		{"active is the string true", f.srv.jsonAnswer(http.StatusOK, map[string]any{"active": "true", "sub": marker}, nil)},
		{"active is 1", f.srv.jsonAnswer(http.StatusOK, map[string]any{"active": 1}, nil)},
		{"active is null", f.srv.jsonAnswer(http.StatusOK, map[string]any{"active": nil}, nil)},
		{"exp is a string", f.srv.jsonAnswer(http.StatusOK, map[string]any{"active": true, "exp": "tomorrow"}, nil)},
		{"exp is negative", f.srv.jsonAnswer(http.StatusOK, map[string]any{"active": true, "exp": -1}, nil)},
		{"sub is a number", f.srv.jsonAnswer(http.StatusOK, map[string]any{"active": true, "sub": 1, "exp": now.Add(time.Minute).Unix()}, nil)},
		{"aud has a number", f.srv.jsonAnswer(http.StatusOK, map[string]any{"active": true, "aud": []any{"a", 1}}, nil)},
		{"scope is an object", f.srv.jsonAnswer(http.StatusOK, map[string]any{"active": true, "scope": map[string]any{}}, nil)},
		{"body over 1 MiB", f.srv.rawAnswer(http.StatusOK, "application/json", big, nil)},
	}
	for n, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := f.introspector(t, nil)
			f.srv.respond(tt.answer)
			token := opaque(1000 + n)
			for attempt := 1; attempt <= 2; attempt++ {
				res, err := i.Introspect(t.Context(), token)
				if !errors.Is(err, introspect.ErrUnavailable) || res != nil {
					t.Fatalf("attempt %d: got %+v, %v; want ErrUnavailable", attempt, res, err)
				}
				for _, s := range []string{token, marker, "<html>"} {
					if strings.Contains(err.Error(), s) {
						t.Fatalf("error %q contains %q", err, s)
					}
				}
			}
			// Failures are never cached.
			if i.Calls() != 2 {
				t.Errorf("Calls() = %d, want 2", i.Calls())
			}
			// Once the server recovers, the token is answered.
			f.srv.respond(f.srv.jsonAnswer(http.StatusOK, activeBody(now.Add(time.Hour)), nil))
			if res := introspectOK(t, i, token); !res.Active {
				t.Error("inactive after recovery")
			}
		})
	}
	if logs := f.logs.String(); strings.Contains(logs, marker) || strings.Contains(logs, "<html>") || strings.Contains(logs, opaque(1000)) || !strings.Contains(logs, `"level":"ERROR","msg":"introspect: token could not be checked"`) || !strings.Contains(logs, "HTTP 401") {
		t.Errorf("logs hold a response body or a token, or lack the failures:\n%s", logs)
	}
}

// An endless response body is cut at 1 MiB: Gatehouse stops reading (and
// closes the connection) instead of reading until the timeout.
func TestEndlessBodyIsCut(t *testing.T) {
	f := newFakeFixture(t)
	var written atomic.Int64
	f.srv.respond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		chunk := []byte(strings.Repeat(" ", 32<<10)) // JSON whitespace, forever
		for {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-f.srv.release:
				return
			default:
			}
		}
	})
	i := f.introspector(t, func(c *introspect.Config) { c.HTTP = &http.Client{Timeout: 5 * time.Second} })
	_, err := i.Introspect(t.Context(), opaque(1))
	if !errors.Is(err, introspect.ErrUnavailable) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v, want ErrUnavailable for a too large body", err)
	}
	// Whatever the socket buffers held besides the 1 MiB read.
	if n := written.Load(); n > 32<<20 {
		t.Errorf("server wrote %d bytes before Gatehouse stopped reading", n)
	}
}

// A server that hangs: the call ends at the HTTP client's timeout with
// ErrUnavailable, and is not cached.
func TestServerHangsBeyondTimeout(t *testing.T) {
	f := newFakeFixture(t)
	f.srv.respond(f.srv.hang)
	i := f.introspector(t, func(c *introspect.Config) { c.HTTP = &http.Client{Timeout: 100 * time.Millisecond} })
	for attempt := 1; attempt <= 2; attempt++ {
		_, err := i.Introspect(t.Context(), opaque(1))
		if !errors.Is(err, introspect.ErrUnavailable) {
			t.Fatalf("attempt %d: %v, want ErrUnavailable", attempt, err)
		}
	}
	if i.Calls() != 2 {
		t.Errorf("Calls() = %d, want 2 (a timeout is never cached)", i.Calls())
	}
}

// The shared call survives the cancellation of the caller who started it;
// each waiter still stops waiting when its own context ends.
func TestSharedCallOutlivesFirstCallersContext(t *testing.T) {
	f := newFakeFixture(t)
	now := f.clock.Now()
	gate := make(chan struct{})
	arrived := make(chan struct{}, 1)
	f.srv.mu.Lock()
	f.srv.gate, f.srv.arrived = gate, arrived
	f.srv.mu.Unlock()
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, activeBody(now.Add(time.Hour)), nil))
	i := f.introspector(t, nil)
	token := opaque(1)

	ctx1, cancel1 := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, err := i.Introspect(ctx1, token)
		first <- err
	}()
	<-arrived // the call is at the server

	second := make(chan *introspect.Result, 1)
	go func() {
		res, err := i.Introspect(t.Context(), token)
		if err != nil {
			t.Error(err)
		}
		second <- res
	}()

	cancel1()
	if err := <-first; !errors.Is(err, context.Canceled) || errors.Is(err, introspect.ErrUnavailable) {
		t.Fatalf("first caller: %v, want context.Canceled", err)
	}
	close(gate)
	if res := <-second; res == nil || !res.Active {
		t.Fatalf("second caller: %+v", res)
	}
	// The result was cached by the shared call.
	introspectOK(t, i, token)
	if i.Calls() != 1 || f.srv.requests.Load() != 1 {
		t.Errorf("Calls() = %d, server saw %d; want 1 and 1", i.Calls(), f.srv.requests.Load())
	}
}

// Concurrent misses held at the server join the one call under way.
func TestConcurrentMissesJoinOneHeldCall(t *testing.T) {
	f := newFakeFixture(t)
	gate := make(chan struct{})
	arrived := make(chan struct{}, 100)
	f.srv.mu.Lock()
	f.srv.gate, f.srv.arrived = gate, arrived
	f.srv.mu.Unlock()
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, activeBody(f.clock.Now().Add(time.Hour)), nil))
	i := f.introspector(t, nil)

	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if res, err := i.Introspect(t.Context(), opaque(1)); err != nil || !res.Active {
				t.Errorf("%+v %v", res, err)
			}
		})
	}
	<-arrived
	close(gate)
	wg.Wait()
	if n := f.srv.requests.Load(); n != 1 {
		t.Errorf("server saw %d requests for one token, want 1", n)
	}
}

func TestCacheControlMaxAge(t *testing.T) {
	f := newFakeFixture(t)
	tests := []struct {
		name     string
		active   bool
		header   string
		cachedAt time.Duration // still a hit at this age
		missAt   time.Duration // a new call at this age; 0: never cached
	}{
		{"max-age shortens the TTL", true, "max-age=30", 29 * time.Second, 30 * time.Second},
		{"max-age longer than MaxTTL", true, "public, max-age=3600", 4*time.Minute + 59*time.Second, 5 * time.Minute},
		{"max-age=0: not cached", true, "max-age=0", 0, 0},
		{"malformed max-age: not cached", true, "max-age=soon", 0, 0},
		{"smallest of several", true, "max-age=60, max-age=20", 19 * time.Second, 20 * time.Second},
		{"over two lines", true, "max-age=60\nmax-age=20", 19 * time.Second, 20 * time.Second},
		// no-store is on most introspection responses; honouring it would
		// disable the cache. max-age is how a server asks for less.
		{"no-store is ignored", true, "no-store", 4*time.Minute + 59*time.Second, 5 * time.Minute},
		{"max-age shortens the negative TTL", false, "max-age=2", time.Second, 2 * time.Second},
		{"max-age cannot lengthen the negative TTL", false, "max-age=60", 9 * time.Second, 10 * time.Second},
	}
	for n, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := f.clock.Now()
			body := map[string]any{"active": false}
			if tt.active {
				body = activeBody(now.Add(time.Hour))
			}
			answer := f.srv.jsonAnswer(http.StatusOK, body, nil)
			f.srv.respond(func(w http.ResponseWriter, r *http.Request) {
				for line := range strings.SplitSeq(tt.header, "\n") {
					w.Header().Add("Cache-Control", line)
				}
				answer(w, r)
			})
			i := f.introspector(t, nil)
			token := opaque(2000 + n)
			start := f.clock.Now()
			at := func(d time.Duration) int64 {
				f.clock.Advance(start.Add(d).Sub(f.clock.Now()))
				if res := introspectOK(t, i, token); res.Active != tt.active {
					t.Fatalf("at %s: active = %t", d, res.Active)
				}
				return i.Calls()
			}
			at(0)
			if tt.missAt == 0 {
				if calls := at(0); calls != 2 {
					t.Errorf("Calls() = %d, want 2 (not cached)", calls)
				}
				return
			}
			if calls := at(tt.cachedAt); calls != 1 {
				t.Errorf("at %s: Calls() = %d, want 1 (cached)", tt.cachedAt, calls)
			}
			if calls := at(tt.missAt); calls != 2 {
				t.Errorf("at %s: Calls() = %d, want 2 (expired)", tt.missAt, calls)
			}
		})
	}
}

// A response that says active about a token whose exp has passed is
// inactive.
func TestActiveWithPastExpIsInactive(t *testing.T) {
	f := newFakeFixture(t)
	now := f.clock.Now()
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, activeBody(now.Add(-time.Second)), nil))
	i := f.introspector(t, nil)
	if res := introspectOK(t, i, opaque(1)); res.Active || res.Subject != "" {
		t.Errorf("got %+v, want inactive", res)
	}
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, activeBody(now), nil))
	if res := introspectOK(t, i, opaque(2)); res.Active {
		t.Errorf("exp == now: got %+v, want inactive", res)
	}
}

func TestJSONResultFields(t *testing.T) {
	f := newFakeFixture(t)
	now := f.clock.Now()
	body := map[string]any{
		"active": true, "sub": "u1", "client_id": "spa", "scope": []string{"read", "write"},
		"aud": "api", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": float64(now.Unix()) + 0.5,
		"token_type": "Bearer", "roles": []string{"admin"},
	}
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, body, nil))
	res := introspectOK(t, f.introspector(t, nil), opaque(1))
	want := introspect.Result{
		Active: true, Issuer: fakeIssuer, Subject: "u1", ClientID: "spa", Scope: "read write", TokenType: "Bearer",
		Audience: []string{"api"}, Expiry: now.Add(time.Hour).UTC(), IssuedAt: now.UTC(), NotBefore: now.Add(500 * time.Millisecond).UTC(),
		Claims: map[string]any{
			"active": true, "sub": "u1", "client_id": "spa", "scope": []any{"read", "write"},
			"aud": "api", "exp": float64(now.Add(time.Hour).Unix()), "iat": float64(now.Unix()), "nbf": float64(now.Unix()) + 0.5,
			"token_type": "Bearer", "roles": []any{"admin"},
		},
	}
	if diff := cmp.Diff(want, *res); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The server's iss wins over the configured issuer.
	body["iss"] = "https://other.example.com"
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, body, nil))
	if res := introspectOK(t, f.introspector(t, nil), opaque(2)); res.Issuer != "https://other.example.com" {
		t.Errorf("issuer %q", res.Issuer)
	}
}

// --- FormatJWT (Curity) ---

func TestFormatJWT(t *testing.T) {
	f := newFakeFixture(t)
	now := f.clock.Now()
	_, attacker := keys()
	payload := map[string]any{
		"iss": fakeIssuer, "sub": "u1", "client_id": "spa", "scope": "read",
		"aud": []string{"api"}, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
	}
	jwt := sign(t, f.srv.key, "JWT", "as-1", payload)
	i := f.introspector(t, func(c *introspect.Config) { c.Format = introspect.FormatJWT })

	t.Run("200 with a JWT", func(t *testing.T) {
		for n, ct := range []string{"application/jwt", "", "text/plain"} {
			f.srv.respond(f.srv.rawAnswer(http.StatusOK, ct, jwt+"\n", nil))
			res := introspectOK(t, i, opaque(3000+n))
			want := introspect.Result{
				Active: true, Issuer: fakeIssuer, Subject: "u1", ClientID: "spa", Scope: "read",
				Audience: []string{"api"}, Expiry: now.Add(time.Hour).UTC(), IssuedAt: now.UTC(),
				Claims: map[string]any{
					"iss": fakeIssuer, "sub": "u1", "client_id": "spa", "scope": "read",
					"aud": []any{"api"}, "exp": float64(now.Add(time.Hour).Unix()), "iat": float64(now.Unix()),
				},
				JWT: jwt,
			}
			if diff := cmp.Diff(want, *res); diff != "" {
				t.Errorf("Content-Type %q (-want +got):\n%s", ct, diff)
			}
		}
	})
	t.Run("the JWT's signature is not Gatehouse's to check", func(t *testing.T) {
		// The back channel is trusted; the upstream verifies the JWT.
		other := sign(t, attacker, "JWT", "x", payload)
		f.srv.respond(f.srv.rawAnswer(http.StatusOK, "application/jwt", other, nil))
		if res := introspectOK(t, i, opaque(3100)); !res.Active || res.JWT != other {
			t.Errorf("%+v", res)
		}
	})
	t.Run("204 is inactive and cached", func(t *testing.T) {
		f.srv.respond(f.srv.rawAnswer(http.StatusNoContent, "", "", nil))
		token := opaque(3200)
		if res := introspectOK(t, i, token); res.Active || res.JWT != "" {
			t.Fatalf("%+v", res)
		}
		calls := i.Calls()
		introspectOK(t, i, token)
		if i.Calls() != calls {
			t.Error("inactive answer not cached")
		}
	})
	t.Run("200 JSON active false is inactive", func(t *testing.T) {
		f.srv.respond(f.srv.jsonAnswer(http.StatusOK, map[string]any{"active": false}, nil))
		if res := introspectOK(t, i, opaque(3300)); res.Active {
			t.Errorf("%+v", res)
		}
	})
	t.Run("expired JWT is inactive", func(t *testing.T) {
		old := map[string]any{"sub": "u1", "exp": now.Add(-time.Minute).Unix()}
		f.srv.respond(f.srv.rawAnswer(http.StatusOK, "application/jwt", sign(t, f.srv.key, "JWT", "as-1", old), nil))
		if res := introspectOK(t, i, opaque(3400)); res.Active || res.JWT != "" {
			t.Errorf("%+v", res)
		}
	})
	t.Run("TTL bounded by the JWT's exp", func(t *testing.T) {
		short := map[string]any{"sub": "u1", "exp": f.clock.Now().Add(20 * time.Second).Unix()}
		f.srv.respond(f.srv.rawAnswer(http.StatusOK, "application/jwt", sign(t, f.srv.key, "JWT", "as-1", short), nil))
		token := opaque(3500)
		introspectOK(t, i, token)
		calls := i.Calls()
		f.clock.Advance(19 * time.Second)
		if res := introspectOK(t, i, token); !res.Active || i.Calls() != calls {
			t.Fatalf("not cached before exp: %+v", res)
		}
		f.clock.Advance(time.Second)
		if res := introspectOK(t, i, token); res.Active || i.Calls() != calls {
			t.Errorf("at exp: %+v, %d calls", res, i.Calls()-calls)
		}
	})

	parts := strings.Split(jwt, ".")
	enc := base64.RawURLEncoding.EncodeToString
	bad := []struct{ name, body string }{
		{"empty", ""},
		{"two segments", parts[0] + "." + parts[1]},
		{"four segments", jwt + ".x"},
		{"empty signature", parts[0] + "." + parts[1] + "."},
		{"opaque string", "not-a-jwt"},
		// A JWT is put into the upstream's Authorization header: a line
		// break inside it must never get there (header injection).
		{"CRLF inside", parts[0] + "." + parts[1][:10] + "\r\nX-Injected: 1\r\n" + parts[1][10:] + "." + parts[2]},
		{"space inside", parts[0] + ". " + parts[1] + "." + parts[2]},
		{"padding", parts[0] + "=." + parts[1] + "." + parts[2]},
		{"payload not JSON", parts[0] + "." + enc([]byte("hello")) + "." + parts[2]},
		{"payload a JSON array", parts[0] + "." + enc([]byte(`[1]`)) + "." + parts[2]},
		{"payload exp a string", parts[0] + "." + enc([]byte(`{"exp":"soon"}`)) + "." + parts[2]},
		{"header alg none", enc([]byte(`{"alg":"none"}`)) + "." + parts[1] + "." + parts[2]},
		{"header not JSON", enc([]byte(`alg`)) + "." + parts[1] + "." + parts[2]},
		{"JSON active true", `{"active":true,"sub":"u1"}`},
		{"JSON garbage", `{"active":false`},
	}
	for n, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			f.srv.respond(f.srv.rawAnswer(http.StatusOK, "application/jwt", tt.body, nil))
			res, err := i.Introspect(t.Context(), opaque(3600+n))
			if !errors.Is(err, introspect.ErrUnavailable) || res != nil {
				t.Fatalf("got %+v, %v; want ErrUnavailable", res, err)
			}
			if len(tt.body) > 16 && strings.Contains(err.Error(), tt.body[:16]) {
				t.Errorf("error contains the body: %v", err)
			}
		})
	}
}

// --- FormatRFC9701 ---

func TestFormatRFC9701(t *testing.T) {
	f := newFakeFixture(t)
	now := f.clock.Now()
	_, attacker := keys()
	inner := func() map[string]any {
		return map[string]any{
			"active": true, "iss": fakeIssuer, "sub": "u1", "client_id": "spa", "scope": "read write",
			"aud": "api", "exp": now.Add(time.Hour).Unix(), "token_type": "Bearer",
		}
	}
	i := f.introspector(t, func(c *introspect.Config) { c.Format = introspect.FormatRFC9701 })
	answer := func(body string) {
		f.srv.respond(f.srv.rawAnswer(http.StatusOK, "application/token-introspection+jwt", body, nil))
	}

	t.Run("active", func(t *testing.T) {
		answer(f.srv.rfc9701(t, now, inner(), nil))
		res := introspectOK(t, i, opaque(4000))
		want := introspect.Result{
			Active: true, Issuer: fakeIssuer, Subject: "u1", ClientID: "spa", Scope: "read write",
			TokenType: "Bearer", Audience: []string{"api"}, Expiry: now.Add(time.Hour).UTC(),
			Claims: map[string]any{
				"active": true, "iss": fakeIssuer, "sub": "u1", "client_id": "spa", "scope": "read write",
				"aud": "api", "exp": float64(now.Add(time.Hour).Unix()), "token_type": "Bearer",
			},
		}
		if diff := cmp.Diff(want, *res); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("inactive", func(t *testing.T) {
		answer(f.srv.rfc9701(t, now, map[string]any{"active": false}, nil))
		if res := introspectOK(t, i, opaque(4100)); res.Active {
			t.Errorf("%+v", res)
		}
	})
	t.Run("typ with application/ prefix", func(t *testing.T) {
		claims := map[string]any{"iss": fakeIssuer, "aud": []string{"x", fakeClient}, "iat": now.Unix(), "token_introspection": inner()}
		answer(sign(t, f.srv.key, "application/token-introspection+jwt", "as-1", claims))
		if res := introspectOK(t, i, opaque(4200)); !res.Active {
			t.Errorf("%+v", res)
		}
	})

	set := func(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }
	del := func(k string) func(map[string]any) { return func(c map[string]any) { delete(c, k) } }
	bad := []struct {
		name string
		body func(t *testing.T) string
	}{
		// A response meant for another client of the same server must not
		// be accepted by Gatehouse.
		{"aud is another client", func(t *testing.T) string { return f.srv.rfc9701(t, now, inner(), set("aud", "other")) }},
		{"wrong issuer", func(t *testing.T) string {
			return f.srv.rfc9701(t, now, inner(), set("iss", "https://evil.example.com"))
		}},
		{"iat missing", func(t *testing.T) string { return f.srv.rfc9701(t, now, inner(), del("iat")) }},
		{"expired response", func(t *testing.T) string {
			return f.srv.rfc9701(t, now, inner(), set("exp", now.Add(-time.Hour).Unix()))
		}},
		{"token_introspection missing", func(t *testing.T) string {
			return f.srv.rfc9701(t, now, inner(), del("token_introspection"))
		}},
		{"token_introspection active is a string", func(t *testing.T) string {
			return f.srv.rfc9701(t, now, map[string]any{"active": "true"}, nil)
		}},
		{"signed by another key", func(t *testing.T) string {
			return sign(t, attacker, "token-introspection+jwt", "as-1", map[string]any{
				"iss": fakeIssuer, "aud": fakeClient, "iat": now.Unix(), "token_introspection": inner(),
			})
		}},
		{"typ missing", func(t *testing.T) string {
			return sign(t, f.srv.key, "", "as-1", map[string]any{
				"iss": fakeIssuer, "aud": fakeClient, "iat": now.Unix(), "token_introspection": inner(),
			})
		}},
		{"typ JWT", func(t *testing.T) string {
			return sign(t, f.srv.key, "JWT", "as-1", map[string]any{
				"iss": fakeIssuer, "aud": fakeClient, "iat": now.Unix(), "token_introspection": inner(),
			})
		}},
		{"alg none", func(t *testing.T) string {
			enc := base64.RawURLEncoding.EncodeToString
			return enc([]byte(`{"alg":"none","typ":"token-introspection+jwt"}`)) + "." +
				enc([]byte(`{"iss":"`+fakeIssuer+`","aud":"`+fakeClient+`","iat":1,"token_introspection":{"active":true}}`)) + "."
		}},
		// A server (or someone on the path) answering plain JSON must not
		// downgrade the signed format.
		{"plain JSON instead", func(t *testing.T) string { return `{"active":true,"sub":"u1"}` }},
		{"garbage", func(t *testing.T) string { return "garbage" }},
	}
	for n, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			answer(tt.body(t))
			res, err := i.Introspect(t.Context(), opaque(4300+n))
			if !errors.Is(err, introspect.ErrUnavailable) || res != nil {
				t.Fatalf("got %+v, %v; want ErrUnavailable", res, err)
			}
		})
	}
	t.Run("keys unavailable", func(t *testing.T) {
		ks, err := jwtverify.NewKeySet(jwtverify.KeySetConfig{URL: f.srv.URL + "/no-jwks", Client: f.srv.Client(), Clock: f.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		i := f.introspector(t, func(c *introspect.Config) { c.Format = introspect.FormatRFC9701; c.Keys = ks })
		answer(f.srv.rfc9701(t, now, inner(), nil))
		if _, err := i.Introspect(t.Context(), opaque(4999)); !errors.Is(err, introspect.ErrUnavailable) || !errors.Is(err, jwtverify.ErrKeysUnavailable) {
			t.Errorf("got %v, want ErrUnavailable (keys unavailable)", err)
		}
	})
}

func TestNewValidatesConfig(t *testing.T) {
	f := newFakeFixture(t)
	base := func() introspect.Config {
		return introspect.Config{
			Endpoint: f.srv.endpoint, Issuer: fakeIssuer, ClientID: fakeClient,
			Auth: oauthclient.SecretBasic{ClientID: fakeClient}, HTTP: &http.Client{Timeout: time.Second},
		}
	}
	tests := []struct {
		name    string
		edit    func(*introspect.Config)
		wantErr string
	}{
		{"defaults", func(*introspect.Config) {}, ""},
		{"negative TTL 10s", func(c *introspect.Config) { c.NegativeTTL = 10 * time.Second }, ""},
		{"no endpoint", func(c *introspect.Config) { c.Endpoint = nil }, "endpoint is required"},
		{"no issuer", func(c *introspect.Config) { c.Issuer = "" }, "issuer is required"},
		{"no auth", func(c *introspect.Config) { c.Auth = nil }, "client authentication"},
		{"no HTTP client", func(c *introspect.Config) { c.HTTP = nil }, "HTTP client is required"},
		{"HTTP client without timeout", func(c *introspect.Config) { c.HTTP = &http.Client{} }, "timeout"},
		{"unknown format", func(c *introspect.Config) { c.Format = 7 }, "format 7"},
		{"rfc9701 without keys", func(c *introspect.Config) { c.Format = introspect.FormatRFC9701 }, "key set"},
		{"rfc9701 without client id", func(c *introspect.Config) { c.Format = introspect.FormatRFC9701; c.ClientID = "" }, "client id"},
		{"negative TTL over 10s", func(c *introspect.Config) { c.NegativeTTL = 10*time.Second + 1 }, "negative TTL"},
		{"negative TTL below 0", func(c *introspect.Config) { c.NegativeTTL = -1 }, "negative TTL"},
		{"max TTL below 0", func(c *introspect.Config) { c.MaxTTL = -1 }, "max TTL"},
		{"max entries below 0", func(c *introspect.Config) { c.MaxEntries = -1 }, "max entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.edit(&cfg)
			i, err := introspect.New(cfg)
			if tt.wantErr == "" {
				if err != nil || i == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("reports every problem", func(t *testing.T) {
		_, err := introspect.New(introspect.Config{NegativeTTL: time.Hour})
		for _, want := range []string{"endpoint", "issuer", "client authentication", "HTTP client", "negative TTL"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not mention %q", err, want)
			}
		}
	})
	if n := f.srv.requests.Load(); n != 0 {
		t.Errorf("New made %d requests", n)
	}
}

func TestParseFormat(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want introspect.Format
	}{{"", introspect.FormatJSON}, {"json", introspect.FormatJSON}, {"jwt", introspect.FormatJWT}, {"rfc9701", introspect.FormatRFC9701}} {
		got, err := introspect.ParseFormat(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseFormat(%q) = %v, %v", tt.in, got, err)
		}
		if tt.in != "" && got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
	if _, err := introspect.ParseFormat("JWT"); err == nil {
		t.Error("ParseFormat accepted JWT")
	}
}
