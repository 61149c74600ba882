package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// routeYAML is one extra cookie route for envOptions.yaml.
func routeYAML(name, path, upstream, extra string) string {
	return fmt.Sprintf("  - name: %q\n    path: %q\n    upstream: %q\n    entry: [\"cookie\"]\n%s", name, path, upstream, extra)
}

// TestProxyUpstreamFaults pins the gateway errors for upstream faults: an
// unreachable upstream is 502 bad_gateway, one that sends no headers within
// the route timeout is 504 gateway_timeout; both with the SPA's CORS grant.
func TestProxyUpstreamFaults(t *testing.T) {
	t.Parallel()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	down := "http://" + closedPort(t)
	e := newEnv(t, envOptions{yaml: func(y string) string {
		return y + routeYAML("down", "/down", down, "") + routeYAML("slow", "/slow", slow.URL, "    timeout: \"300ms\"\n")
	}})
	e.login(e.browser)

	r := e.do(e.browser, "GET", "/down/x", nil)
	expectErr(t, "upstream down", r, 502, "bad_gateway")
	checkCORS(t, "upstream down", r)
	if strings.Contains(string(r.body), strings.TrimPrefix(down, "http://")) {
		t.Errorf("the upstream address reached the browser: %s", r.body)
	}

	start := time.Now()
	r = e.do(e.browser, "GET", "/slow/x", nil)
	expectErr(t, "slow upstream", r, 504, "gateway_timeout")
	checkCORS(t, "slow upstream", r)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the 300 ms route timeout answered after %v", d)
	}
	e.assertNoSecretsAnywhere()
}

// TestProxyStreaming pins "timeout until response headers; streaming bodies
// are not cut": a server-sent-events upstream sends one event, then holds the
// stream open longer than the route timeout; the browser gets the first event
// at once and the rest of the stream intact.
func TestProxyStreaming(t *testing.T) {
	t.Parallel()
	var finished atomic.Bool
	sse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(800 * time.Millisecond): // longer than the 300 ms route timeout
		}
		_, _ = io.WriteString(w, "data: two\n\n")
		finished.Store(true)
	}))
	t.Cleanup(sse.Close)
	e := newEnv(t, envOptions{yaml: func(y string) string {
		return y + routeYAML("events", "/events", sse.URL, "    timeout: \"300ms\"\n")
	}})
	e.login(e.browser)

	req, _ := http.NewRequest("GET", e.base+"/events/stream", nil)
	req.Header.Set("Origin", spaOrigin)
	req.Header.Set("Accept", "text/event-stream")
	start := time.Now()
	resp, err := e.browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	if finished.Load() {
		t.Error("the first event arrived only after the upstream finished: the stream was buffered")
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("the stream was cut after %v: %v", time.Since(start), err)
	}
	if !strings.Contains(string(rest), "data: two") {
		t.Errorf("the second event is missing: %q", rest)
	}
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Errorf("the stream ended after %v, before the upstream's second event", d)
	}
}

// TestProxyBodyLimit pins max_body_bytes (invariant 11): a larger body is
// 413 request_too_large, announced by Content-Length or streamed chunked.
func TestProxyBodyLimit(t *testing.T) {
	e := newEnv(t, envOptions{})
	csrf := e.login(e.browser)
	post := func(body string, chunked bool) *response {
		var rd io.Reader = strings.NewReader(body)
		if chunked {
			rd = io.MultiReader(strings.NewReader(body)) // unknown length: chunked
		}
		req, _ := http.NewRequest("POST", e.base+"/api/upload", rd)
		req.Header.Set("Origin", spaOrigin)
		req.Header.Set("X-Example-Csrf", csrf)
		req.Header.Set("Content-Type", "application/octet-stream")
		r := e.send(e.browser, req)
		if chunked && req.ContentLength != 0 {
			t.Fatal("the request was not chunked")
		}
		return r
	}
	for _, chunked := range []bool{false, true} {
		name := map[bool]string{false: "Content-Length", true: "chunked"}[chunked]
		t.Run(name, func(t *testing.T) {
			e := e.sub(t)
			calls := e.api.count()
			r := post(strings.Repeat("x", 1025), chunked)
			expectErr(t, "1025 bytes", r, 413, "request_too_large")
			checkCORS(t, "413", r)
			if !chunked && e.api.count() != calls {
				t.Error("an announced oversized body reached the upstream")
			}
			r = post(strings.Repeat("x", 64<<10), chunked)
			expectErr(t, "64 KiB", r, 413, "request_too_large")
			r = post(strings.Repeat("x", 1024), chunked)
			if r.StatusCode != 200 || !strings.Contains(string(r.body), `"bodyBytes":1024`) {
				t.Errorf("1024 bytes: %d %s", r.StatusCode, r.body)
			}
		})
	}
}

// TestProxyPaths pins the canonical-path rule and prefix matching at segment
// boundaries: paths that could mean another resource upstream are 400, a
// path that only shares the prefix's characters is 404; none is forwarded.
func TestProxyPaths(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login(e.browser)
	hdr := map[string]string{"Origin": spaOrigin, "Cookie": e.cookieHeader(e.browser, "/api")}
	for _, target := range []string{
		"/api/../oauth-agent/userInfo",
		"/api/..",
		"/api/./orders",
		"/api/%2e%2e/x",
		"/api/%2E%2E/oauth-agent/claims",
		"/api/.%2e/x",
		"/api/%2F..",
		"/api%2f..%2foauth-agent",
		"/api/orders%2F..%2F..%2Fadmin",
		"//api",
		"//api/orders",
		"/api//orders",
		"/api\\x",
		"/api/a\\..\\..\\oauth-agent",
		"/api/a%2Fb",
		"/api/a%2fb",
		"/api/a%5Cb",
		"/api/%5c..%5cx",
		"/api/x%00y",
		"/api/x%0d%0aInjected:%20yes",
	} {
		r := e.rawRequest("GET", target, hdr)
		expectErr(t, target, r, 400, "invalid_request")
	}
	for _, target := range []string{"/apix", "/apix/orders", "/ap", "/API/orders", "/svc/ordersx"} {
		r := e.rawRequest("GET", target, hdr)
		expectErr(t, target, r, 404, "not_found")
	}
	if n := e.api.count(); n != 0 {
		t.Errorf("%d non-canonical or unmatched requests reached the upstream", n)
	}
	// The prefix itself and paths below it match.
	for _, target := range []string{"/api", "/api/", "/api/orders"} {
		if r := e.rawRequest("GET", target, hdr); r.StatusCode != 200 {
			t.Errorf("%s: %d %s", target, r.StatusCode, r.body)
		}
	}
}

// TestProxyMethods pins a route's method list: other methods are 405 with
// Allow, and do not reach the upstream.
func TestProxyMethods(t *testing.T) {
	e := newEnv(t, envOptions{})
	csrf := e.login(e.browser)
	for _, m := range []string{"DELETE", "PUT", "PATCH", "PROPFIND"} {
		r := e.do(e.browser, m, "/svc/orders/1", nil, withCSRF(csrf))
		expectErr(t, m, r, 405, "method_not_allowed")
		if r.Header.Get("Allow") != "GET, POST" {
			t.Errorf("%s: Allow %q, want \"GET, POST\"", m, r.Header.Get("Allow"))
		}
		checkCORS(t, m, r)
	}
	if n := e.api.count(); n != 0 {
		t.Errorf("refused methods reached the upstream %d times", n)
	}
	if r := e.do(e.browser, "POST", "/svc/orders/1", `{}`, withCSRF(csrf)); r.StatusCode != 200 {
		t.Errorf("POST on the route: %d", r.StatusCode)
	}
}

// forgedClientHeaders are what a client may send to impersonate a proxy or
// smuggle credentials.
var forgedClientHeaders = map[string]string{
	"Authorization":       "Bearer attacker-token",
	"Proxy-Authorization": "Basic YXR0YWNrZXI6cHc=",
	"Forwarded":           "for=198.51.100.9;host=evil.example;proto=http",
	"X-Real-Ip":           "198.51.100.9",
	"X-Forwarded-For":     "198.51.100.9",
	"X-Forwarded-Host":    "evil.example",
	"X-Forwarded-Proto":   "http",
	"X-Forwarded-Port":    "81",
	"X-Forwarded-Prefix":  "/admin",
	"X-Gatehouse-Test":    "hop-by-hop",
}

// TestProxyRequestHeaders pins invariant 6 on the way in: the upstream never
// sees the browser's cookies, a client Authorization, the CSRF header,
// Forwarded, X-Real-IP, client X-Forwarded-* or hop-by-hop headers; it gets
// the session's access token and X-Forwarded-* rebuilt from the connection,
// with X-Forwarded-Host the public_url host.
func TestProxyRequestHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	csrf := e.login(e.browser)
	at := e.open(e.cookie(e.browser, "/", "example-at"))
	public, _ := url.Parse(e.base)

	// With and without the client naming Authorization as hop-by-hop: the
	// session's token must be set after the hop-by-hop headers are removed,
	// and a client Authorization removed even when Connection does not name it.
	for _, c := range []struct{ m, connection string }{
		{"GET", ""}, {"POST", ""}, {"GET", "Authorization, X-Gatehouse-Test"}, {"POST", "Authorization, X-Gatehouse-Test"},
	} {
		m := c.m + " Connection=" + c.connection
		opts := []reqOpt{withCSRF(csrf), func(r *http.Request) {
			for k, v := range forgedClientHeaders {
				r.Header.Set(k, v)
			}
			if c.connection != "" {
				r.Header.Set("Connection", c.connection)
			}
			r.AddCookie(&http.Cookie{Name: "theme", Value: "dark"})
		}}
		r := e.do(e.browser, c.m, "/api/orders", `{}`, opts...)
		if r.StatusCode != 200 {
			t.Fatalf("%s: %d %s", m, r.StatusCode, r.body)
		}
		up := e.api.last(t)
		if got := up.Header.Get("Authorization"); got != "Bearer "+at {
			t.Errorf("%s: upstream Authorization %q, want the session's token", m, got)
		}
		for _, h := range []string{"Cookie", "Proxy-Authorization", "Forwarded", "X-Real-Ip", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Example-Csrf", "Connection"} {
			if v := up.Header.Values(h); len(v) > 0 {
				t.Errorf("%s: upstream received %s: %q", m, h, v)
			}
		}
		for h, want := range map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": public.Host} {
			if got := up.Header.Values(h); len(got) != 1 || got[0] != want {
				t.Errorf("%s: upstream %s = %q, want %q", m, h, got, want)
			}
		}
		if c.connection != "" && up.Header.Get("X-Gatehouse-Test") != "" {
			t.Errorf("%s: a header named in Connection reached the upstream", m)
		}
		if up.Host == "evil.example" {
			t.Errorf("%s: upstream Host is the client's forgery", m)
		}
	}
	e.assertNoSecretsAnywhere()
}

// TestProxyTrustedProxies pins trusted_proxies: a peer in the list may pass
// the client chain in X-Forwarded-For (extended with the peer) and the
// scheme; X-Forwarded-Host is still public_url's host and Forwarded,
// X-Real-IP are still dropped.
func TestProxyTrustedProxies(t *testing.T) {
	e := newEnv(t, envOptions{yaml: func(y string) string {
		return "trusted_proxies: [\"127.0.0.1\"]\n" + y
	}})
	e.login(e.browser)
	public, _ := url.Parse(e.base)
	r := e.do(e.browser, "GET", "/api/orders", nil,
		withHeader("X-Forwarded-For", "203.0.113.7, 198.51.100.2"),
		withHeader("X-Forwarded-Proto", "http"),
		withHeader("X-Forwarded-Host", "evil.example"),
		withHeader("Forwarded", "for=203.0.113.7"),
		withHeader("X-Real-Ip", "203.0.113.7"))
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	up := e.api.last(t)
	for h, want := range map[string]string{
		"X-Forwarded-For":   "203.0.113.7, 198.51.100.2, 127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  public.Host,
	} {
		if got := up.Header.Values(h); len(got) != 1 || got[0] != want {
			t.Errorf("upstream %s = %q, want %q", h, got, want)
		}
	}
	for _, h := range []string{"Forwarded", "X-Real-Ip"} {
		if v := up.Header.Get(h); v != "" {
			t.Errorf("upstream received %s: %q", h, v)
		}
	}
	// Without client headers the chain starts at the peer.
	e.do(e.browser, "GET", "/api/orders", nil)
	if got := e.api.last(t).Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want the peer", got)
	}
}

// TestProxyResponseHeaders pins invariant 6 on the way out: an upstream
// cannot set Gatehouse's cookies or its own CORS policy on cookie routes;
// its other cookies pass.
func TestProxyResponseHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login(e.browser)
	realAT := e.cookie(e.browser, "/", "example-at")
	e.setUpstreamHandler(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for _, c := range []string{
			"example-at=evil; Path=/",
			"EXAMPLE-CSRF=evil; Path=/",
			"example-auth=evil; Path=/oauth-agent",
			" example-id=evil; Path=/oauth-agent/claims",
			"example-login=evil",
			"theme=dark; Path=/; Secure",
			"example=not-ours; Path=/",
		} {
			h.Add("Set-Cookie", c)
		}
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Credentials", "false")
		h.Set("Access-Control-Expose-Headers", "X-Internal")
		h.Set("Access-Control-Allow-Methods", "*")
		w.WriteHeader(200)
	})
	r := e.do(e.browser, "GET", "/api/orders", nil)
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	var names []string
	for _, c := range r.Cookies() {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"example", "theme"}) {
		t.Errorf("the browser received cookies %v, want only the upstream's own [example theme]", names)
	}
	if got := r.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != spaOrigin {
		t.Errorf("Access-Control-Allow-Origin %q, want only Gatehouse's %q", got, spaOrigin)
	}
	if got := r.Header.Values("Access-Control-Allow-Credentials"); len(got) != 1 || got[0] != "true" {
		t.Errorf("Access-Control-Allow-Credentials %q", got)
	}
	for _, h := range []string{"Access-Control-Expose-Headers", "Access-Control-Allow-Methods"} {
		if v := r.Header.Get(h); v != "" {
			t.Errorf("the upstream's %s reached the browser: %q", h, v)
		}
	}
	if e.cookie(e.browser, "/", "example-at") != realAT {
		t.Error("the upstream replaced the session cookie")
	}

	// An upstream 401 (an expired opaque token) is relayed with Gatehouse's
	// CORS grant, so the SPA can read it and call /refresh.
	e.setUpstreamHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.WriteHeader(401)
	})
	r = e.do(e.browser, "GET", "/api/orders", nil)
	if r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("upstream 401 not relayed: %d %v", r.StatusCode, r.Header)
	}
	checkCORS(t, "relayed 401", r)
	if got := r.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 {
		t.Errorf("relayed 401 carries Access-Control-Allow-Origin %q", got)
	}
}

// TestProxyWebSocket pins the WebSocket rules: an upgrade on a route without
// websocket: true is 403; with it, an untrusted or missing Origin is 401
// even for this GET; a trusted one is upgraded and the upstream gets the
// access token, not the cookies.
func TestProxyWebSocket(t *testing.T) {
	t.Parallel()
	var gotAuth, gotCookie atomic.Value
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			_, _ = io.WriteString(w, "plain")
			return
		}
		gotAuth.Store(r.Header.Get("Authorization"))
		gotCookie.Store(r.Header.Get("Cookie"))
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		buf := make([]byte, 4)
		if _, err := io.ReadFull(brw, buf); err == nil {
			_, _ = conn.Write(buf)
		}
	}))
	t.Cleanup(ws.Close)
	e := newEnv(t, envOptions{yaml: func(y string) string {
		return y + routeYAML("ws", "/ws", ws.URL, "    websocket: true\n")
	}})
	e.login(e.browser)
	at := e.open(e.cookie(e.browser, "/", "example-at"))
	upgrade := []reqOpt{withHeader("Connection", "Upgrade"), withHeader("Upgrade", "websocket"),
		withHeader("Sec-WebSocket-Version", "13"), withHeader("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")}

	r := e.do(e.browser, "GET", "/api/socket", nil, upgrade...)
	expectErr(t, "upgrade on a route without websocket", r, 403, "forbidden")
	for _, o := range []reqOpt{withOrigin("https://evil.example"), withOrigin("null"), withoutOrigin()} {
		r := e.do(e.browser, "GET", "/ws/socket", nil, append(slices.Clone(upgrade), o)...)
		expectErr(t, "upgrade from an untrusted origin", r, 401, "unauthorized")
	}
	if n := e.api.count(); n != 0 {
		t.Errorf("refused upgrades reached the upstream %d times", n)
	}
	if gotAuth.Load() != nil {
		t.Fatal("a refused upgrade reached the WebSocket upstream")
	}

	// A trusted origin is upgraded: bytes flow both ways.
	tr := e.gw.Client().Transport.(*http.Transport)
	cfg := tr.TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", e.gw.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /ws/socket HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\nCookie: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		e.gw.Listener.Addr().String(), spaOrigin, e.cookieHeader(e.browser, "/ws"))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("trusted upgrade: %d", resp.StatusCode)
	}
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, 4)
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != "ping" {
		t.Fatalf("echo through the upgraded connection: %q %v", echo, err)
	}
	if gotAuth.Load() != "Bearer "+at || gotCookie.Load() != "" {
		t.Errorf("the WebSocket upstream got Authorization %q and Cookie %q", gotAuth.Load(), gotCookie.Load())
	}

	// Without CORS a GET without Origin passes, but an upgrade still needs a
	// trusted Origin (browsers always send one on WebSocket handshakes; a
	// missing one is not a same-origin browser request).
	t.Run("cors disabled", func(t *testing.T) {
		e := newEnv(t, envOptions{yaml: func(y string) string {
			y = insertAfter(t, y, "  scope:", "  cors: { enabled: false }\n")
			return y + routeYAML("ws", "/ws", ws.URL, "    websocket: true\n")
		}})
		e.login(e.browser)
		if r := e.do(e.browser, "GET", "/ws/x", nil, withoutOrigin()); r.StatusCode != 200 {
			t.Fatalf("plain GET without Origin in same-origin mode: %d %s", r.StatusCode, r.body)
		}
		r := e.do(e.browser, "GET", "/ws/socket", nil, append(slices.Clone(upgrade), withoutOrigin())...)
		expectErr(t, "upgrade without Origin", r, 401, "unauthorized")
	})
}

// TestGracefulShutdown pins Serve's shutdown: when ctx ends, the listener
// closes, an in-flight request still completes with 200 and Serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	started := make(chan struct{})
	release := make(chan struct{})
	e.setUpstreamHandler(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		_, _ = io.WriteString(w, "done")
	})
	srv, err := server.New(e.cfg, server.Options{Logger: slog.New(slog.NewJSONHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/slow", nil)
		req.Header.Set("Origin", spaOrigin)
		req.Header.Set("Cookie", "example-at="+e.seal("in-flight-token"))
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("the request ended before reaching the upstream: %+v", r)
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the upstream")
	}
	cancel()
	// Wait until the listener is closed: shutdown has begun.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener stayed open after ctx ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	select {
	case r := <-done:
		if r.err != nil || r.status != 200 || r.body != "done" {
			t.Fatalf("in-flight request: %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight request did not complete")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the in-flight request completed")
	}
}
