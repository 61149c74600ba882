package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// checks are facts the benchmark prints besides the timings.
type checks struct {
	// Concurrent first requests with one new opaque token, and the
	// introspection calls the provider counted for them.
	FirstRequests       int         `json:"introspection_first_requests"`
	FirstStatuses       map[int]int `json:"introspection_first_statuses"`
	IntrospectionCalls  int         `json:"introspection_calls"`
	IntrospectionPassed bool        `json:"introspection_exactly_one"`
	// Forged JWTs (the provider's kid, a signature that does not match),
	// and the JWKS fetches the provider counted for them.
	ForgedJWTs     int         `json:"forged_jwts"`
	ForgedStatuses map[int]int `json:"forged_statuses"`
	JWKSFetches    int         `json:"forged_jwks_fetches"`
	ForgedPassed   bool        `json:"forged_no_jwks_fetch"`
	// Gatehouse's RSS after closed-loop runs on the cookie route with more
	// and more connections.
	RSSByConns map[int]int64 `json:"rss_kb_by_connections"`
	// Gatehouse's RSS after as many cookie-route requests with one session
	// and with that many distinct sessions (cookies with distinct tokens).
	Sessions           int   `json:"sessions"`
	RSSOneSession      int64 `json:"rss_kb_after_one_session"`
	RSSManySessions    int64 `json:"rss_kb_after_distinct_sessions"`
	SessionErrors      int   `json:"session_errors"`
	GatehouseRSSAtExit int64 `json:"rss_kb_at_end"`
}

func (e *env) target(name string) *target {
	for _, t := range e.targets {
		if t.name == name {
			return t
		}
	}
	panic("bench: no target " + name)
}

// simultaneous sends one request on each of n new connections at once.
func simultaneous(addr string, reqs [][]byte) (map[int]int, error) {
	ws, err := newWorkers(addr, reqs, len(reqs))
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	statuses := make([]int, len(ws))
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, err := w.c.do(w.reqs[i])
			if err != nil {
				st = -1
			}
			statuses[i] = st
			w.c.close()
		}()
	}
	close(start)
	wg.Wait()
	out := map[int]int{}
	for _, s := range statuses {
		out[s]++
	}
	return out, nil
}

// forge returns a JWT with the header (and kid) of token, a payload that
// differs in its jti, and token's signature, which no longer matches.
func forge(token string, i int) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("bench: not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", err
	}
	claims["jti"] = fmt.Sprintf("forged-%d", i)
	payload, err = json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2], nil
}

func (e *env) checks(s settings) (*checks, error) {
	c := &checks{}
	gwHost := "localhost:" + portOf(e.gwAddr)

	// 1. Concurrent first requests with one new opaque token.
	const n = 100
	tok, err := e.clientToken(opaqueClientID)
	if err != nil {
		return nil, err
	}
	reqs := make([][]byte, n)
	for i := range reqs {
		reqs[i] = request(gwHost, "/phantom"+requestPath, "Authorization: Bearer "+tok)
	}
	before := e.idp.Stats().Introspection
	if c.FirstStatuses, err = simultaneous(e.gwAddr, reqs); err != nil {
		return nil, err
	}
	c.FirstRequests = n
	c.IntrospectionCalls = e.idp.Stats().Introspection - before
	c.IntrospectionPassed = c.IntrospectionCalls == 1 && c.FirstStatuses[http.StatusOK] == n
	fmt.Printf("  %d simultaneous first requests with one new opaque token: statuses %v, %d introspection call(s) at the provider\n",
		n, c.FirstStatuses, c.IntrospectionCalls)

	// 2. Forged JWTs: a known kid, a signature that does not match.
	for i := range reqs {
		f, err := forge(e.jwt, i)
		if err != nil {
			return nil, err
		}
		reqs[i] = request(gwHost, "/jwt"+requestPath, "Authorization: Bearer "+f)
	}
	before = e.idp.Stats().JWKS
	if c.ForgedStatuses, err = simultaneous(e.gwAddr, reqs); err != nil {
		return nil, err
	}
	c.ForgedJWTs = n
	c.JWKSFetches = e.idp.Stats().JWKS - before
	c.ForgedPassed = c.JWKSFetches == 0 && c.ForgedStatuses[http.StatusUnauthorized] == n
	fmt.Printf("  %d forged JWTs (known kid, bad signature): statuses %v, %d JWKS fetch(es) at the provider\n",
		n, c.ForgedStatuses, c.JWKSFetches)

	// 3. Memory: more connections, then many distinct sessions.
	cookie := e.target("cookie")
	c.RSSByConns = map[int]int64{}
	for _, conns := range []int{s.Conns, 4 * s.Conns, 16 * s.Conns} {
		r, err := e.measureClosed(cookie, conns, min(s.Duration, 2*time.Second))
		if err != nil {
			return nil, err
		}
		c.RSSByConns[conns] = r.RSSKB
	}
	fmt.Printf("  Gatehouse RSS (KiB) after cookie-route runs by connections: %v\n", c.RSSByConns)
	if s.Sessions > 0 {
		c.Sessions = s.Sessions
		same := make([][]byte, s.Sessions)
		for i := range same {
			same[i] = cookie.reqs[0]
		}
		l, err := each(cookie.addr, same, http.StatusOK, s.Conns)
		if err != nil {
			return nil, err
		}
		c.SessionErrors += l.Errors
		c.RSSOneSession, _ = rssKB(e.gatehouse.pid())
		distinct := make([][]byte, s.Sessions)
		origin := "Origin: " + e.gwURL
		for i := range distinct {
			// A distinct access token per session: the token's jti differs
			// (the cookie route forwards it unchecked).
			tok, err := forge(e.jwt, i)
			if err != nil {
				return nil, err
			}
			ch, err := e.cookieHeader(tok)
			if err != nil {
				return nil, err
			}
			distinct[i] = request(gwHost, "/cookie"+requestPath, origin, ch)
		}
		l, err = each(cookie.addr, distinct, http.StatusOK, s.Conns)
		if err != nil {
			return nil, err
		}
		c.SessionErrors += l.Errors
		c.RSSManySessions, _ = rssKB(e.gatehouse.pid())
		fmt.Printf("  Gatehouse RSS (KiB) after %d cookie-route requests with one session: %d; with %d distinct sessions: %d (errors %d)\n",
			s.Sessions, c.RSSOneSession, s.Sessions, c.RSSManySessions, c.SessionErrors)
	}
	c.GatehouseRSSAtExit, _ = rssKB(e.gatehouse.pid())
	return c, nil
}

// profiles records, per target (the bare proxy and each Gatehouse route),
// a CPU profile of the server process over a closed-loop run and its
// allocation profile after it.
func (e *env) profiles(targets []*target, s settings, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hc := &http.Client{Timeout: s.Duration + 30*time.Second}
	get := func(addr, path, file string) error {
		resp, err := hc.Get("http://" + addr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("bench: pprof %s: %s", path, resp.Status)
		}
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(f, resp.Body)
		return err
	}
	secs := max(1, int(s.Duration.Seconds()))
	for _, t := range targets {
		addr := e.pprofAddr
		if t.proc == e.bare {
			addr = e.barePprofAddr
		}
		errc := make(chan error, 1)
		go func() { errc <- get(addr, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), t.name+".cpu.pprof") }()
		time.Sleep(100 * time.Millisecond)
		r, err := e.measureClosed(t, s.Conns, time.Duration(secs)*time.Second+200*time.Millisecond)
		if err != nil {
			return err
		}
		if err := <-errc; err != nil {
			return err
		}
		if err := get(addr, "/debug/pprof/allocs", t.name+".allocs.pprof"); err != nil {
			return err
		}
		fmt.Printf("  profiled %-13s %8.0f req/s (under the profiler)\n", t.name, r.RPS)
	}
	return nil
}
