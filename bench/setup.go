package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
)

// Names the benchmark gives the provider's clients and Gatehouse's cookies.
const (
	cookiePrefix   = "bench"
	apiAudience    = "bench-api"
	spaClientID    = "bench-spa"
	jwtClientID    = "bench-job"
	opaqueClientID = "bench-job-opaque"
	introClientID  = "gatehouse"
	requestPath    = "/orders/42"
)

// target is one thing the load is sent to: the bare proxy or a Gatehouse route.
type target struct {
	name  string
	path  string // route prefix
	about string
	addr  string
	reqs  [][]byte // requests, sent round-robin
	proc  *child   // the process whose CPU counts
}

type env struct {
	dir       string
	idp       *devidp.Provider
	idpSrv    *http.Server
	idpURL    string
	upstream  *child
	bare      *child
	gatehouse *child
	gwAddr    string
	gwURL     string // public_url
	pprofAddr string // Gatehouse's, with -profile
	// the bare proxy's, with -profile
	barePprofAddr string
	ring          *seal.Ring
	secrets       map[string]string // client id → secret
	jwt           string            // a JWT access token (bench-job)
	opaque        string            // an opaque access token (bench-job-opaque)
	targets       []*target
}

func (e *env) close() {
	for _, c := range []*child{e.gatehouse, e.bare, e.upstream} {
		if c != nil {
			c.stop()
		}
	}
	if e.idpSrv != nil {
		_ = e.idpSrv.Close()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func setup(ctx context.Context, s settings) (_ *env, err error) {
	e := &env{secrets: map[string]string{}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "gatehouse-bench-"); err != nil {
		return nil, err
	}

	// Listeners first: every port is a free one the kernel picked.
	idpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	upLn, upFile, upAddr, err := listen()
	if err != nil {
		return nil, err
	}
	bareLn, bareFile, bareAddr, err := listen()
	if err != nil {
		return nil, err
	}
	gwLn, gwFile, gwAddr, err := listen()
	if err != nil {
		return nil, err
	}
	gwFiles, bareFiles := []*os.File{gwFile}, []*os.File{bareFile}
	var pprofLns []net.Listener
	if s.Profile {
		for _, p := range []struct {
			files *[]*os.File
			addr  *string
		}{{&gwFiles, &e.pprofAddr}, {&bareFiles, &e.barePprofAddr}} {
			ln, f, addr, err := listen()
			if err != nil {
				return nil, err
			}
			pprofLns = append(pprofLns, ln)
			*p.files = append(*p.files, f)
			*p.addr = addr
		}
	}
	e.gwAddr = gwAddr
	e.gwURL = "http://localhost:" + portOf(gwAddr)
	e.idpURL = "http://" + idpLn.Addr().String()

	// The provider runs in this process: it is idle while the rounds run
	// (caches are warm), and the checks read its counters.
	for _, id := range []string{spaClientID, jwtClientID, opaqueClientID, introClientID} {
		e.secrets[id] = randomHex(16)
	}
	job := func(id, format string) devidp.Client {
		return devidp.Client{
			ID: id, Secret: e.secrets[id], GrantTypes: []string{devidp.GrantClientCredentials},
			Scopes: []string{"read", "write"}, AccessTokenFormat: format,
			AccessTokenAudience: []string{apiAudience}, AccessTokenLifetime: time.Hour,
		}
	}
	e.idp, err = devidp.New(devidp.Config{
		Issuer: e.idpURL,
		Users:  []devidp.User{{ID: "bench-user", Username: "bench", Password: randomHex(8)}},
		Clients: []devidp.Client{
			{ID: spaClientID, Secret: e.secrets[spaClientID], RedirectURIs: []string{e.gwURL + "/"}, Scopes: []string{"read"}},
			job(jwtClientID, devidp.AccessTokenJWT),
			job(opaqueClientID, devidp.AccessTokenOpaque),
			{ID: introClientID, Secret: e.secrets[introClientID], CanIntrospect: true},
		},
	})
	if err != nil {
		return nil, err
	}
	e.idpSrv = &http.Server{Handler: e.idp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.idpSrv.Serve(idpLn) }()

	if e.upstream, err = startChild(roleUpstream, []*os.File{upFile}, ""); err != nil {
		return nil, err
	}
	bareArgs := []string{"-upstream", "http://" + upAddr, "-pool", fmt.Sprint(s.Conns)}
	if s.BarePool {
		bareArgs = append(bareArgs, "-buffer-pool")
	}
	if s.Profile {
		bareArgs = append(bareArgs, "-pprof")
	}
	if e.bare, err = startChild(roleBareProxy, bareFiles, "", bareArgs...); err != nil {
		return nil, err
	}

	key, err := seal.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	if e.ring, err = seal.NewRing([]seal.Key{key}, nil); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(e.dir, "gatehouse.yaml")
	if err := os.WriteFile(cfgPath, []byte(e.config(gwAddr, upAddr, key.String(), s.LogLevel)), 0o600); err != nil {
		return nil, err
	}
	args := []string{"-config", cfgPath}
	if s.Profile {
		args = append(args, "-pprof")
	}
	if e.gatehouse, err = startChild(roleGatehouse, gwFiles, s.GatehouseLog, args...); err != nil {
		return nil, err
	}
	// The children hold the sockets now.
	for _, c := range []io.Closer{upLn, upFile, bareLn, gwLn} {
		_ = c.Close()
	}
	for _, f := range append(gwFiles, bareFiles...) {
		_ = f.Close()
	}
	for _, ln := range pprofLns {
		_ = ln.Close()
	}

	if err := e.waitReady(ctx); err != nil {
		return nil, err
	}
	if e.jwt, err = e.clientToken(jwtClientID); err != nil {
		return nil, err
	}
	if e.opaque, err = e.clientToken(opaqueClientID); err != nil {
		return nil, err
	}
	if err := e.buildTargets(bareAddr, s.BarePool); err != nil {
		return nil, err
	}
	return e, nil
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// config is Gatehouse's configuration: four routes to the one upstream.
func (e *env) config(gwAddr, upAddr, cookieKey, logLevel string) string {
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	return strings.NewReplacer(
		"LISTEN", q(gwAddr), "PUBLIC_URL", q(e.gwURL), "ISSUER", q(e.idpURL),
		"INTRO_ID", q(introClientID), "INTRO_SECRET", q(e.secrets[introClientID]),
		"SPA_ID", q(spaClientID), "SPA_SECRET", q(e.secrets[spaClientID]),
		"REDIRECT", q(e.gwURL+"/"), "PREFIX", q(cookiePrefix), "COOKIE_KEY", q(cookieKey),
		"KEY_FILE", q(filepath.Join(e.dir, "signing-key.pem")),
		"UPSTREAM", q("http://"+upAddr), "AUDIENCE", q(apiAudience), "LOG_LEVEL", q(logLevel),
	).Replace(`listen: LISTEN
public_url: PUBLIC_URL
log:
  level: LOG_LEVEL
authorization_server:
  issuer: ISSUER
  introspection:
    client_id: INTRO_ID
    client_secret: INTRO_SECRET
oauth_agent:
  client_id: SPA_ID
  client_secret: SPA_SECRET
  redirect_uri: REDIRECT
  scope: "openid read"
  trusted_web_origins: [PUBLIC_URL]
  cookie:
    name_prefix: PREFIX
    encryption_keys: [COOKIE_KEY]
internal_jwt:
  key_file: KEY_FILE
routes:
  - name: cookie
    path: /cookie
    upstream: UPSTREAM
    entry: [cookie]
  - name: bearer-jwt
    path: /jwt
    upstream: UPSTREAM
    entry: [bearer]
    token_format: jwt
    audience: AUDIENCE
    require: { scopes: [read] }
  - name: phantom
    path: /phantom
    upstream: UPSTREAM
    entry: [bearer]
    token_format: opaque
    forward: phantom
    audience: AUDIENCE
    require: { scopes: [read] }
  - name: internal-jwt
    path: /internal
    upstream: UPSTREAM
    entry: [cookie]
    token_format: jwt
    forward: internal_jwt
    audience: AUDIENCE
`)
}

func (e *env) waitReady(ctx context.Context) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := e.gatehouse.exited(); err != nil {
			return fmt.Errorf("%w (run with -gatehouse-log FILE to see why)", err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.gwAddr+"/readyz", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("bench: Gatehouse did not become ready in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clientToken gets an access token with the client_credentials grant.
func (e *env) clientToken(clientID string) (string, error) {
	form := url.Values{"grant_type": {devidp.GrantClientCredentials}, "scope": {"read write"}}
	req, _ := http.NewRequest(http.MethodPost, e.idpURL+devidp.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(e.secrets[clientID]))
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tr) != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("bench: token for %s: %d %s", clientID, resp.StatusCode, body)
	}
	return tr.AccessToken, nil
}

// request builds a GET request for path with extra header lines.
func request(host, path string, headers ...string) []byte {
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: gatehouse-bench\r\nAccept: application/json\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// cookieHeader is what a browser sends to a cookie route: the sealed -at
// and -csrf cookies (the -auth and -id cookies live on the agent's paths).
func (e *env) cookieHeader(accessToken string) (string, error) {
	at, err := e.ring.SealString(accessToken)
	if err != nil {
		return "", err
	}
	csrf, err := e.ring.SealString(randomHex(32))
	if err != nil {
		return "", err
	}
	return "Cookie: " + cookiePrefix + "-at=" + at + "; " + cookiePrefix + "-csrf=" + csrf, nil
}

func (e *env) buildTargets(bareAddr string, barePool bool) error {
	bareAbout := "httputil.ReverseProxy (Rewrite: SetURL, SetXForwarded), tuned transport; request carries a bearer JWT"
	if barePool {
		bareAbout += "; response buffer pool"
	}
	gwHost := "localhost:" + portOf(e.gwAddr)
	origin := "Origin: " + e.gwURL
	bearerJWT := "Authorization: Bearer " + e.jwt
	cookie, err := e.cookieHeader(e.jwt)
	if err != nil {
		return err
	}
	one := func(r []byte) [][]byte { return [][]byte{r} }
	e.targets = []*target{
		{name: "bare", path: "/bare", addr: bareAddr, proc: e.bare,
			about: bareAbout,
			reqs:  one(request(bareAddr, "/bare"+requestPath, bearerJWT))},
		{name: "cookie", path: "/cookie", addr: e.gwAddr, proc: e.gatehouse,
			about: "cookie entry, forward: access_token (the sealed cookie holds a JWT)",
			reqs:  one(request(gwHost, "/cookie"+requestPath, origin, cookie))},
		{name: "bearer-jwt", path: "/jwt", addr: e.gwAddr, proc: e.gatehouse,
			about: "bearer entry, token_format: jwt (RS256, provider's JWKS; verified-token cache warm), require scopes",
			reqs:  one(request(gwHost, "/jwt"+requestPath, bearerJWT))},
		{name: "phantom", path: "/phantom", addr: e.gwAddr, proc: e.gatehouse,
			about: "bearer entry, token_format: opaque, forward: phantom (introspection and minted-JWT caches warm), require scopes",
			reqs:  one(request(gwHost, "/phantom"+requestPath, "Authorization: Bearer "+e.opaque))},
		{name: "internal-jwt", path: "/internal", addr: e.gwAddr, proc: e.gatehouse,
			about: "cookie entry, token_format: jwt, forward: internal_jwt (verified-token and minted-JWT caches warm)",
			reqs:  one(request(gwHost, "/internal"+requestPath, origin, cookie))},
	}
	// Every target must answer 200 before anything is measured.
	for _, t := range e.targets {
		c := client{addr: t.addr}
		st, err := c.do(t.reqs[0])
		c.close()
		if err != nil || st != http.StatusOK {
			return fmt.Errorf("bench: %s: first request answered %d %v", t.name, st, err)
		}
	}
	return nil
}
