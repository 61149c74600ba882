// Package proxy forwards route traffic to upstream services.
//
// A Route is built once from validated config: its upstream transport, its
// entries and its httputil.ReverseProxy. Per request it checks the method and
// body size, authenticates through the route's entries, then forwards with
// strict header hygiene: the browser's cookies, a client-sent Authorization,
// the CSRF header, Forwarded, X-Real-IP and client-sent X-Forwarded-* never
// reach the upstream; X-Forwarded-* are rebuilt from the connection, trusting
// only configured proxies; upstream Set-Cookie for Gatehouse's cookie names
// and upstream CORS headers never reach the browser.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/authz"
	"github.com/gatehouse-dev/gatehouse/internal/forward"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/origin"
	"github.com/gatehouse-dev/gatehouse/internal/sessioncookie"
	"github.com/gatehouse-dev/gatehouse/internal/telemetry"
)

// Route is one published upstream.
type Route struct {
	Name        string
	Path        string // canonical prefix, e.g. /api
	StripPrefix bool
	Methods     []string // empty: all
	Upstream    *url.URL
	Timeout     time.Duration // until the upstream's response headers
	MaxBody     int64
	Websocket   bool
	Entries     []authn.Entry
	// Require, when set, must pass before the request is forwarded.
	Require *authz.Policy
	// Forward picks the upstream's bearer token; nil forwards the caller's.
	Forward forward.Forwarder
	// TLS configures connections to an https upstream (custom CAs, a client
	// certificate); nil uses the system roots and no client certificate.
	TLS *tls.Config
}

// Options are shared by all routes.
type Options struct {
	// PublicHost is sent as X-Forwarded-Host (never the client's Host).
	PublicHost string
	// TrustedProxies may set X-Forwarded-For and X-Forwarded-Proto.
	TrustedProxies []netip.Prefix
	// Cookies identifies Gatehouse's cookies and CSRF header (nil without an agent).
	Cookies *sessioncookie.Codec
	// Origins answers CORS for cookie routes (nil without an agent).
	Origins *origin.Policy
	// DropHeaders are request headers that never reach an upstream, on any
	// route (the API key header).
	DropHeaders []string
	Logger      *slog.Logger
}

// Router matches requests to routes by path prefix at segment boundaries,
// longest prefix first.
type Router struct {
	routes  []*route
	opts    Options
	buffers copyBuffers
}

type route struct {
	Route
	methods   map[string]bool
	allow     string
	cookie    bool // the route accepts the cookie entry: browser rules apply
	rp        *httputil.ReverseProxy
	transport *http.Transport
	// scrubExtra are the headers removed besides ScrubRequest's own: the
	// CSRF header and Options.DropHeaders (computed once).
	scrubExtra []string
	opts       *Options
}

// DefaultMethods are offered in CORS preflights of routes without a method list.
const DefaultMethods = "GET, HEAD, POST, PUT, PATCH, DELETE"

// NewRouter builds every route.
func NewRouter(routes []Route, opts Options) (*Router, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	rt := &Router{opts: opts}
	for _, r := range routes {
		if r.Upstream == nil || len(r.Entries) == 0 {
			return nil, fmt.Errorf("proxy: route %s: upstream and entries are required", r.Name)
		}
		if r.Forward == nil {
			r.Forward = forward.AccessToken{}
		}
		x := &route{Route: r, opts: &rt.opts, allow: DefaultMethods}
		if len(r.Methods) > 0 {
			x.methods = map[string]bool{}
			for _, m := range r.Methods {
				x.methods[m] = true
			}
			x.allow = strings.Join(r.Methods, ", ")
		}
		for _, e := range r.Entries {
			if e.Name() == "cookie" {
				x.cookie = true
			}
		}
		if x.cookie && (opts.Cookies == nil || opts.Origins == nil) {
			return nil, fmt.Errorf("proxy: route %s: the cookie entry needs the agent's cookies and origins", r.Name)
		}
		x.scrubExtra = append([]string(nil), opts.DropHeaders...)
		if opts.Cookies != nil {
			x.scrubExtra = append(x.scrubExtra, opts.Cookies.CSRFHeader())
		}
		x.transport = newTransport(r.Timeout, r.TLS)
		x.rp = &httputil.ReverseProxy{
			Rewrite:        x.rewrite,
			Transport:      x.transport,
			ModifyResponse: x.modifyResponse,
			ErrorHandler:   x.errorHandler,
			ErrorLog:       slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
			BufferPool:     &rt.buffers,
		}
		rt.routes = append(rt.routes, x)
	}
	sort.SliceStable(rt.routes, func(i, j int) bool { return len(rt.routes[i].Path) > len(rt.routes[j].Path) })
	return rt, nil
}

// newTransport returns an upstream transport with a keep-alive pool sized
// for a busy gateway and the route's response-header timeout.
func newTransport(timeout time.Duration, tlsConfig *tls.Config) *http.Transport {
	dialer := &net.Dialer{Timeout: min(timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone()
		if tlsConfig.MinVersion < tls.VersionTLS12 {
			tlsConfig.MinVersion = tls.VersionTLS12
		}
	}
	return &http.Transport{
		TLSClientConfig:       tlsConfig,
		Proxy:                 nil, // upstreams are reached directly, never via HTTP_PROXY
		DialContext:           dialer.DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     true,
	}
}

// copyBufferSize is the size of ReverseProxy's response copy buffer.
const copyBufferSize = 32 << 10

// copyBuffers lends every route's ReverseProxy its response-copy buffers.
// Without a pool, ReverseProxy allocates 32 KiB per response, which in a
// busy gateway is most of the bytes allocated and so most of the garbage
// collector's work. The buffers only ever hold upstream response bytes on
// their way to the client, never a token Gatehouse decrypted, verified or
// minted: those are never pooled.
type copyBuffers struct{ pool sync.Pool }

// Get implements httputil.BufferPool.
func (c *copyBuffers) Get() []byte {
	if b, ok := c.pool.Get().(*[copyBufferSize]byte); ok {
		return b[:]
	}
	return new([copyBufferSize]byte)[:]
}

// Put implements httputil.BufferPool. The array pointer goes into the pool
// without allocating (a slice would be boxed).
func (c *copyBuffers) Put(b []byte) {
	if len(b) == copyBufferSize {
		c.pool.Put((*[copyBufferSize]byte)(b))
	}
}

// Close releases idle upstream connections.
func (rt *Router) Close() {
	for _, r := range rt.routes {
		r.transport.CloseIdleConnections()
	}
}

// Match returns the route for path, or nil.
func (rt *Router) Match(path string) *route {
	for _, r := range rt.routes {
		if r.Path == "/" || path == r.Path || (strings.HasPrefix(path, r.Path) && path[len(r.Path)] == '/') {
			return r
		}
	}
	return nil
}

// ServeHTTP serves a request for one of the routes, or 404.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := rt.Match(r.URL.Path)
	if x == nil {
		httperr.Write(w, r, rt.logger(r), httperr.ErrNotFound)
		return
	}
	if err := x.serve(w, r); err != nil {
		httperr.Write(w, r, rt.logger(r), err)
	}
}

func (rt *Router) logger(r *http.Request) *slog.Logger {
	return telemetry.Logger(r.Context(), rt.opts.Logger)
}

var (
	errWebsocketOff = httperr.New(http.StatusForbidden, httperr.CodeForbidden, "WebSocket upgrades are not enabled on this route")
	errBadGateway   = httperr.New(http.StatusBadGateway, httperr.CodeBadGateway, "The upstream service could not be reached")
	errTimeout      = httperr.New(http.StatusGatewayTimeout, httperr.CodeGatewayTimeout, "The upstream service did not answer in time")
)

func (x *route) serve(w http.ResponseWriter, r *http.Request) error {
	if x.cookie {
		if origin.IsPreflight(r) {
			x.opts.Origins.Preflight(w, r, x.allow)
			return nil
		}
		x.opts.Origins.AddHeaders(w.Header(), r)
	}
	if x.methods != nil && !x.methods[r.Method] {
		w.Header().Set("Allow", x.allow)
		return httperr.ErrMethodNotAllowed
	}
	if isUpgrade(r) {
		if !x.Websocket || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			return errWebsocketOff
		}
		if x.cookie {
			if err := x.opts.Origins.CheckStrict(r); err != nil {
				return authn.ErrUnauthorized.WithCause(err)
			}
		}
	}
	if r.ContentLength > x.MaxBody {
		return httperr.ErrRequestTooLarge
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, x.MaxBody)
	}
	p, err := authn.Authenticate(r, x.Entries)
	if err != nil {
		return err
	}
	if x.Require != nil {
		if err := x.Require.Check(p); err != nil {
			return err
		}
	}
	cred, err := x.Forward.Credential(r.Context(), p)
	if err != nil {
		return err
	}
	x.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), credentialKey{}, cred)))
	return nil
}

// credentialKey carries the upstream's bearer token from serve to rewrite.
type credentialKey struct{}

func isUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Connection") {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return true
			}
		}
	}
	return r.Header.Get("Upgrade") != ""
}

// rewrite builds the upstream request. Hop-by-hop headers (and those named in
// Connection) are already removed by httputil.ReverseProxy.
func (x *route) rewrite(pr *httputil.ProxyRequest) {
	out, in := pr.Out, pr.In
	if x.StripPrefix && x.Path != "/" {
		out.URL.Path = strings.TrimPrefix(out.URL.Path, x.Path)
		if out.URL.RawPath != "" {
			out.URL.RawPath = strings.TrimPrefix(out.URL.RawPath, x.Path)
		}
		if out.URL.Path == "" {
			out.URL.Path = "/"
			out.URL.RawPath = ""
		}
	}
	pr.SetURL(x.Upstream)

	h := out.Header
	ScrubRequest(h, x.scrubExtra...)
	x.forwardedHeaders(in, h)
	if cred, _ := in.Context().Value(credentialKey{}).(string); cred != "" {
		h.Set("Authorization", "Bearer "+cred)
	}
}

// forwardedHeaders rebuilds X-Forwarded-For/-Proto/-Host. A peer in
// trusted_proxies may extend the client's chain and state the scheme.
func (x *route) forwardedHeaders(in *http.Request, h http.Header) {
	peer, _, err := net.SplitHostPort(in.RemoteAddr)
	if err != nil {
		peer = in.RemoteAddr
	}
	trusted := false
	if ip, err := netip.ParseAddr(peer); err == nil {
		ip = ip.Unmap()
		for _, p := range x.opts.TrustedProxies {
			if p.Contains(ip) {
				trusted = true
				break
			}
		}
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	xff := peer
	if trusted {
		if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + peer
		}
		if p := strings.ToLower(in.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
			proto = p
		}
	}
	h.Set("X-Forwarded-For", xff)
	h.Set("X-Forwarded-Proto", proto)
	if x.opts.PublicHost != "" {
		h.Set("X-Forwarded-Host", x.opts.PublicHost)
	}
}

func (x *route) modifyResponse(resp *http.Response) error {
	if x.opts.Cookies != nil {
		if sc := resp.Header.Values("Set-Cookie"); len(sc) > 0 {
			resp.Header.Del("Set-Cookie")
			for _, c := range sc {
				name, _, _ := strings.Cut(c, "=")
				if x.opts.Cookies.Owns(strings.TrimSpace(name)) {
					continue
				}
				resp.Header.Add("Set-Cookie", c)
			}
		}
	}
	if len(resp.Header.Values("Set-Cookie")) > 0 {
		// Invariant 12: a response that sets a cookie is never cached and
		// carries nosniff and no-referrer, whoever set the cookie.
		resp.Header.Set("Cache-Control", "no-store")
		resp.Header.Set("X-Content-Type-Options", "nosniff")
		resp.Header.Set("Referrer-Policy", "no-referrer")
	}
	if x.cookie {
		origin.StripUpstream(resp.Header)
	}
	return nil
}

func (x *route) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	log := telemetry.Logger(r.Context(), x.opts.Logger)
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		log.Debug("client went away before the upstream answered", "route", x.Name)
		w.WriteHeader(499)
		return
	}
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		httperr.Write(w, r, log, httperr.ErrRequestTooLarge.WithCause(err))
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		httperr.Write(w, r, log, errTimeout.WithCause(fmt.Errorf("route %s: %w", x.Name, err)))
	default:
		httperr.Write(w, r, log, errBadGateway.WithCause(fmt.Errorf("route %s: %w", x.Name, err)))
	}
}
