package server_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
)

// Helpers shared by the error-path and wire-contract tests.

const otherCookieKey = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

// agentEndpoints are the OAuth Agent's endpoints with their methods.
var agentEndpoints = []struct{ method, path string }{
	{"POST", "/oauth-agent/login/start"},
	{"POST", "/oauth-agent/login/end"},
	{"GET", "/oauth-agent/userInfo"},
	{"GET", "/oauth-agent/claims"},
	{"POST", "/oauth-agent/refresh"},
	{"POST", "/oauth-agent/logout"},
}

// raw returns a client without a cookie jar: the test writes the Cookie
// header itself.
func (e *env) raw() *http.Client {
	cc := *e.gw.Client()
	cc.Jar = nil
	cc.Timeout = 30 * time.Second
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// cookieHeader is the Cookie header browser c would send to path.
func (e *env) cookieHeader(c *http.Client, path string) string {
	u, _ := url.Parse(e.base + path)
	var parts []string
	for _, ck := range c.Jar.Cookies(u) {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	return strings.Join(parts, "; ")
}

// withCookies sets the Cookie header (for the raw client).
func withCookies(v string) reqOpt { return withHeader("Cookie", v) }

// setJarCookie puts name=value for path into browser c's jar.
func (e *env) setJarCookie(c *http.Client, path, name, value string) {
	u, _ := url.Parse(e.base + path)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: path, Secure: true, HttpOnly: true}})
}

// sessionCookies returns the sealed cookie values of a logged-in browser.
type sessionValues struct{ at, csrf, auth, id string }

func (e *env) session(c *http.Client) sessionValues {
	return sessionValues{
		at:   e.cookie(c, "/", "example-at"),
		csrf: e.cookie(c, "/", "example-csrf"),
		auth: e.cookie(c, "/oauth-agent", "example-auth"),
		id:   e.cookie(c, "/oauth-agent/claims", "example-id"),
	}
}

// header builds a Cookie header from name=value pairs, skipping empty values.
func cookieLine(pairs ...string) string {
	var parts []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			parts = append(parts, pairs[i]+"="+pairs[i+1])
		}
	}
	return strings.Join(parts, "; ")
}

// seal seals plaintext with the test's cookie key.
func (e *env) seal(plaintext string) string {
	e.t.Helper()
	v, err := e.ring.SealString(plaintext)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// sealOther seals plaintext with a key Gatehouse does not know.
func sealOther(t *testing.T, plaintext string) string {
	t.Helper()
	k, err := seal.ParseKey(otherCookieKey)
	if err != nil {
		t.Fatal(err)
	}
	r, err := seal.NewRing([]seal.Key{k}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.SealString(plaintext)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// flipBit flips one bit of the decoded cookie at byte offset i (negative: from the end).
func flipBit(t *testing.T, v string, i int) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		t.Fatal(err)
	}
	if i < 0 {
		i += len(b)
	}
	b[i] ^= 0x01
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkAgentHeaders asserts invariant 12 on an agent response.
func checkAgentHeaders(t *testing.T, what string, r *response) {
	t.Helper()
	for k, want := range map[string]string{
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q (invariant 12)", what, k, got, want)
		}
	}
}

// checkNoCORS asserts that r carries no CORS grant.
func checkNoCORS(t *testing.T, what string, r *response) {
	t.Helper()
	for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} {
		if v := r.Header.Get(k); v != "" {
			t.Errorf("%s: %s = %q, want none", what, k, v)
		}
	}
}

// checkCORS asserts that r grants the SPA's origin with credentials.
func checkCORS(t *testing.T, what string, r *response) {
	t.Helper()
	if r.Header.Get("Access-Control-Allow-Origin") != spaOrigin || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("%s: CORS headers ACAO=%q ACAC=%q, want the SPA origin with credentials", what,
			r.Header.Get("Access-Control-Allow-Origin"), r.Header.Get("Access-Control-Allow-Credentials"))
	}
}

// expectErr is expectError that reports instead of stopping, with a label.
func expectErr(t *testing.T, what string, r *response, status int, code string) bool {
	t.Helper()
	if r.StatusCode != status {
		t.Errorf("%s: status %d, want %d; body %s", what, r.StatusCode, status, r.body)
		return false
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Errorf("%s: body is not JSON: %q", what, r.body)
		return false
	}
	if m["code"] != code {
		t.Errorf("%s: code %v, want %s; body %s", what, m["code"], code, r.body)
		return false
	}
	return true
}

// clearedCookies maps the names of the cookies r clears to their paths.
func clearedCookies(r *response) map[string]string {
	out := map[string]string{}
	for _, c := range r.Cookies() {
		if c.MaxAge < 0 && c.Value == "" {
			out[c.Name] = c.Path
		}
	}
	return out
}

// setCookieNames lists the cookies r sets with a value (not clearing ones).
func setCookieNames(r *response) []string {
	var out []string
	for _, c := range r.Cookies() {
		if c.Value != "" {
			out = append(out, c.Name)
		}
	}
	return out
}

// assertNoSecretsAnywhere checks the logs and every response body seen
// (invariant 1). The contract puts two values in bodies on purpose: the
// authorization request URL of /login/start carries state, nonce and the
// PKCE challenge, and /login/end returns the CSRF token; those fields are
// left out, every other byte is checked.
func (e *env) assertNoSecretsAnywhere() {
	e.t.Helper()
	e.assertNoSecrets("the logs", e.logs.String())
	for i, b := range e.bodies.all() {
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			delete(m, "authorizationRequestUrl")
			delete(m, "csrf")
			b, _ = json.Marshal(m)
		}
		e.assertNoSecrets(fmt.Sprintf("response body #%d", i), string(b))
	}
}

// rawRequest writes request line and headers verbatim over a new TLS
// connection to the gateway: for paths an HTTP client would refuse or clean.
func (e *env) rawRequest(method, target string, headers map[string]string) *response {
	e.t.Helper()
	tr := e.gw.Client().Transport.(*http.Transport)
	cfg := tr.TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.gw.Listener.Addr().String(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, e.gw.Listener.Addr().String())
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	e.bodies.add(body)
	return &response{Response: resp, body: body}
}

// send makes a request built by the caller with client c.
func (e *env) send(c *http.Client, req *http.Request) *response {
	e.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	e.bodies.add(b)
	return &response{Response: resp, body: b}
}

// closedPort returns an address on which nothing listens (it was free a
// moment ago).
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// scriptedServer is a small fake for fault injection: each path answers
// according to its current mode; paths without a mode go to next (a real
// server) when set.
type scriptedServer struct {
	*httptest.Server
	mu    sync.Mutex
	modes map[string]string
	calls map[string]int
	next  http.Handler
}

// Fault modes of a scriptedServer.
const (
	modePass         = ""
	mode500          = "500"
	modeGarbage      = "garbage"
	modeHang         = "hang"
	modeInvalidGrant = "invalid_grant"
	modeSlow         = "slow" // pass on after half a second
)

func newScriptedServer(t *testing.T, next http.Handler) *scriptedServer {
	s := &scriptedServer{modes: map[string]string{}, calls: map[string]int{}, next: next}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		mode := s.modes[r.URL.Path]
		s.calls[r.URL.Path]++
		s.mu.Unlock()
		switch mode {
		case mode500:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":"server_error","error_description":"internal 10.0.0.7 failure"}`)
		case modeGarbage:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "<html><body>Bad Gateway from 10.0.0.7</body></html>")
		case modeHang:
			// Reading the body lets the server notice when the client gives up.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case modeInvalidGrant:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"code expired"}`)
		case modeSlow:
			select {
			case <-r.Context().Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			s.next.ServeHTTP(w, r)
		default:
			if s.next == nil {
				http.NotFound(w, r)
				return
			}
			s.next.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scriptedServer) set(path, mode string) {
	s.mu.Lock()
	s.modes[path] = mode
	s.mu.Unlock()
}

func (s *scriptedServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

// insertAfter inserts text after the first line of y that contains marker.
func insertAfter(t *testing.T, y, marker, text string) string {
	t.Helper()
	i := strings.Index(y, marker)
	if i < 0 {
		t.Fatalf("config has no %q", marker)
	}
	j := strings.Index(y[i:], "\n")
	return y[:i+j+1] + text + y[i+j+1:]
}

// setUpstreamHandler replaces the API's answer.
func (e *env) setUpstreamHandler(h http.HandlerFunc) {
	e.api.mu.Lock()
	e.api.handler = h
	e.api.mu.Unlock()
}

// newEnvWithFaultyAS returns an env whose token and userinfo endpoints are
// a scriptedServer in front of the provider (passing through by default),
// with authorization_server.timeout set to asTimeout.
func newEnvWithFaultyAS(t *testing.T, asTimeout string) (*env, *scriptedServer) {
	t.Helper()
	var target atomic.Pointer[httputil.ReverseProxy]
	fake := newScriptedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target.Load().ServeHTTP(w, r)
	}))
	e := newEnv(t, envOptions{yaml: func(y string) string {
		y = strings.Replace(y, `  timeout: "5s"`, `  timeout: "`+asTimeout+`"`, 1)
		return insertAfter(t, y, "authorization_server:",
			"  token_endpoint: \""+fake.URL+devidp.PathToken+"\"\n  userinfo_endpoint: \""+fake.URL+devidp.PathUserinfo+"\"\n")
	}})
	idpURL, _ := url.Parse(e.idp.Issuer())
	target.Store(httputil.NewSingleHostReverseProxy(idpURL))
	return e, fake
}
