package vaulthttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/origin"
	"github.com/gatehouse-dev/gatehouse/internal/proxy"
	"github.com/gatehouse-dev/gatehouse/internal/vault"
)

// maxReplayBody is the largest request body kept in memory so that the
// request can be sent again after a refresh (a 401 from the provider).
// Larger bodies stream through once; their 401 reaches the caller.
const maxReplayBody = 1 << 20

// maxKept401 bounds the body of a 401 kept while a refresh is tried.
const maxKept401 = 64 << 10

// apiProxy forwards to one provider's API with a user's access token.
type apiProxy struct {
	h         *Handler
	name      string
	api       API
	rp        *httputil.ReverseProxy
	transport *http.Transport
}

// call is what the proxy knows about one forwarded request.
type call struct {
	user    vault.User
	token   string
	target  *url.URL
	browser bool // a browser (cookie) request: CORS headers are Gatehouse's
	retried bool
}

type callKey struct{}

func newAPIProxy(h *Handler, name string, api API) *apiProxy {
	dialer := &net.Dialer{Timeout: min(api.Timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	p := &apiProxy{h: h, name: name, api: api, transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: api.Timeout,
		ForceAttemptHTTP2:     true,
	}}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      &retryTransport{p: p},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       nil,
	}
	return p
}

// targetURL confines rest (the escaped path after .../proxy) under the API
// base path: no dot segments (also encoded), no empty segments, no encoded
// slashes or backslashes, no control characters. Scheme and host are the
// base URL's; the query is the caller's.
func (p *apiProxy) targetURL(rest, rawQuery string) (*url.URL, error) {
	if rest != "" && rest[0] != '/' {
		return nil, errors.New("vaulthttp: proxy path must start with /")
	}
	lower := strings.ToLower(rest)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(rest, "\\") {
		return nil, errors.New("vaulthttp: proxy path contains an encoded slash or a backslash")
	}
	plain, err := url.PathUnescape(rest)
	if err != nil {
		return nil, fmt.Errorf("vaulthttp: proxy path: %w", err)
	}
	for i := 0; i < len(plain); i++ {
		if c := plain[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return nil, errors.New("vaulthttp: proxy path contains a control character")
		}
	}
	if plain != "" && plain != "/" {
		for seg := range strings.SplitSeq(strings.TrimSuffix(plain[1:], "/"), "/") {
			if dot, _, _ := strings.Cut(seg, ";"); seg == "" || dot == "." || dot == ".." {
				return nil, errors.New("vaulthttp: proxy path contains an empty or dot segment")
			}
		}
	}
	base := p.api.BaseURL
	basePath := strings.TrimSuffix(base.Path, "/")
	full := basePath + plain
	if full == "" {
		full = "/"
	}
	clean := path.Clean(full)
	if clean != strings.TrimSuffix(full, "/") && clean != full {
		return nil, errors.New("vaulthttp: proxy path is not canonical")
	}
	if basePath != "" && clean != basePath && !strings.HasPrefix(clean, basePath+"/") {
		return nil, errors.New("vaulthttp: proxy path leaves the API base path")
	}
	u := &url.URL{Scheme: base.Scheme, Host: base.Host, Path: full, RawQuery: rawQuery}
	if raw := strings.TrimSuffix(base.EscapedPath(), "/") + rest; raw != u.EscapedPath() {
		u.RawPath = raw
		if u.EscapedPath() != raw {
			u.RawPath = ""
		}
	}
	return u, nil
}

// serve forwards r for user with the user's current token. The body is
// bounded, and kept in memory (for one retry after a refresh) when small.
func (p *apiProxy) serve(w http.ResponseWriter, r *http.Request, u vault.User, rest string, browser bool) error {
	target, err := p.targetURL(rest, r.URL.RawQuery)
	if err != nil {
		return errBadProxyPath.WithCause(err)
	}
	if r.ContentLength > p.api.MaxBody {
		return httperr.ErrRequestTooLarge
	}
	if err := bufferBody(w, r, p.api.MaxBody); err != nil {
		return err
	}
	tok, err := p.h.cfg.Vault.Token(r.Context(), u, p.name, "")
	if err != nil {
		return err
	}
	c := &call{user: u, token: tok.Value.Reveal(), target: target, browser: browser}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
	return nil
}

// bufferBody bounds r's body by limit and reads it into memory when it fits
// maxReplayBody, setting GetBody so the request can be sent twice.
func bufferBody(w http.ResponseWriter, r *http.Request, limit int64) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength > maxReplayBody {
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, maxReplayBody+1))
	if err != nil {
		return httperr.As(err)
	}
	if len(buf) > maxReplayBody {
		// A chunked body larger than the replay buffer: stream it once.
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	r.ContentLength = int64(len(buf))
	return nil
}

// rewrite builds the request to the provider's API: its scheme, host and
// confined path; the provider token instead of anything the caller sent;
// none of the browser's cookies or Gatehouse's headers. X-Forwarded-* are
// not added: the provider needs no part of the caller's network path.
func (p *apiProxy) rewrite(pr *httputil.ProxyRequest) {
	c := pr.In.Context().Value(callKey{}).(*call)
	out := pr.Out
	out.URL = c.target
	out.Host = ""
	h := out.Header
	proxy.ScrubRequest(h, p.h.scrubExtra...)
	h.Set("Authorization", "Bearer "+c.token)
}

// modifyResponse drops the provider's cookies (they belong to the
// provider's domain, never Gatehouse's). For the browser it also replaces
// the provider's CORS headers with Gatehouse's, and serves the answer as
// inert data: third-party content (a file in a repository, say) must never
// run as a page of Gatehouse's origin, where the session cookies are sent.
func (p *apiProxy) modifyResponse(resp *http.Response) error {
	resp.Header.Del("Set-Cookie")
	resp.Header.Del("Set-Cookie2")
	if c, _ := resp.Request.Context().Value(callKey{}).(*call); c != nil && c.browser {
		origin.StripUpstream(resp.Header)
		resp.Header.Set("Content-Security-Policy", "sandbox; default-src 'none'; frame-ancestors 'none'")
		resp.Header.Set("X-Content-Type-Options", "nosniff")
		resp.Header.Set("Referrer-Policy", "no-referrer")
	}
	return nil
}

func (p *apiProxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	log := p.h.logger(r)
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		w.WriteHeader(499)
		return
	}
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		httperr.Write(w, r, log, httperr.ErrRequestTooLarge.WithCause(err))
	case errors.Is(err, vault.ErrNeedsReauth), errors.Is(err, vault.ErrProvider), errors.Is(err, vault.ErrBusy), errors.Is(err, vault.ErrNotConnected):
		p.h.fail(w, r, err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		httperr.Write(w, r, log, errTimeout.WithCause(fmt.Errorf("provider %s API: %w", p.name, err)))
	default:
		httperr.Write(w, r, log, errBadGateway.WithCause(fmt.Errorf("provider %s API: %w", p.name, err)))
	}
}

// retryTransport sends a request once more after the provider's API
// answered 401: the token is refreshed (once, shared by concurrent callers)
// and the request replayed, when its body can be replayed.
type retryTransport struct{ p *apiProxy }

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.p.transport.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	c, _ := req.Context().Value(callKey{}).(*call)
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if c == nil || !replayable || c.retried {
		return resp, nil
	}
	c.retried = true
	// Keep the 401 for the caller in case the refresh does not help.
	kept, rerr := io.ReadAll(io.LimitReader(resp.Body, maxKept401))
	resp.Body.Close()
	if rerr != nil {
		kept = nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(kept))
	resp.ContentLength = int64(len(kept))
	resp.Header.Set("Content-Length", strconv.Itoa(len(kept)))
	resp.Header.Del("Transfer-Encoding")

	tok, err := t.p.h.cfg.Vault.Token(req.Context(), c.user, t.p.name, c.token)
	if err != nil {
		if errors.Is(err, vault.ErrNeedsReauth) {
			return nil, err
		}
		t.p.h.logger(req).Warn("vault: the provider's API refused the token and it could not be refreshed", "provider", t.p.name, "error", err.Error())
		return resp, nil
	}
	if tok.Value.Reveal() == c.token {
		return resp, nil
	}
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	retry.Header.Set("Authorization", "Bearer "+tok.Value.Reveal())
	c.token = tok.Value.Reveal()
	return t.p.transport.RoundTrip(retry)
}
