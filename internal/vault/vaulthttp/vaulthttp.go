// Package vaulthttp is the HTTP face of the token vault.
//
// For the signed-in user's browser (the cookie session, its Origin and CSRF
// rules, and an access token checked like a route's):
//
//	POST   /connections/{provider}/start     → {"authorizationUrl":..} and the binding cookie
//	GET    /connections/{provider}/callback  → 303 to the SPA page with ?connection=&result=
//	GET    /connections                      → {"connections":[{provider, scopes, expiresAt, status}]}
//	DELETE /connections/{provider}           → 204 (revoked at the provider when it can, then deleted)
//	ANY    /connections/{provider}/proxy/... → the provider's API, with the user's token
//
// For backend jobs (a client-credentials JWT of the authorization server
// whose aud is the vault's audience, and an entitlement in vault.jobs):
//
//	POST /vault/token                 {"user":{"issuer":..,"subject":..},"provider":..} → {"access_token":..,"expires_in":..}
//	ANY  /vault/proxy/{provider}/...  the provider's API for the user named by Gatehouse-User-Subject
//
// Tokens never appear in a response to the browser, in a URL Gatehouse
// builds, or in a log line; every job call is audited.
package vaulthttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/origin"
	"github.com/gatehouse-dev/gatehouse/internal/sessioncookie"
	"github.com/gatehouse-dev/gatehouse/internal/telemetry"
	"github.com/gatehouse-dev/gatehouse/internal/vault"
)

// Header names of the job proxy: the user on whose behalf a job calls.
const (
	HeaderUserSubject = "Gatehouse-User-Subject"
	HeaderUserIssuer  = "Gatehouse-User-Issuer"
)

// Paths.
const (
	ConnectionsPath = "/connections"
	JobsPath        = "/vault"
)

// API is how a provider's API is reached.
type API struct {
	// BaseURL is the API base; proxied paths stay under its path.
	BaseURL *url.URL
	// Timeout until the API's response headers.
	Timeout time.Duration
	// MaxBody is the largest request body forwarded.
	MaxBody int64
}

// Job is a backend job's entitlement.
type Job struct {
	ClientID  string
	Scopes    []string
	Providers []string
	// AllUsers, or the users whose recorded Claim has one of Values.
	AllUsers bool
	Claim    string
	Values   []string
}

// Config configures the handlers.
type Config struct {
	Vault *vault.Vault
	// User authenticates the browser: the cookie entry with the vault's
	// token check (Origin, CSRF on data-changing methods, a valid token).
	User    authn.Entry
	Origins *origin.Policy
	// CookiePrefix names the binding cookie <prefix>-vault and the CSRF
	// header x-<prefix>-csrf, which is never forwarded.
	CookiePrefix string
	// InsecureCookies drops Secure from the binding cookie (plain-http development).
	InsecureCookies bool
	// Jobs authenticate backend jobs: the bearer entry with a JWT check for
	// the vault's audience, and/or the apikey entry. Empty when no job is configured.
	Jobs []authn.Entry
	// DropHeaders are request headers that never reach a provider, besides
	// the cookies, Authorization, CSRF and forwarding headers every proxy of
	// Gatehouse removes: the API key header, for example.
	DropHeaders []string
	Entitlement []Job
	// DefaultIssuer is the user issuer when a verified token or a job's
	// request does not name one (the authorization server's issuer).
	DefaultIssuer string
	ReturnURL     string
	APIs          map[string]API
	Logger        *slog.Logger
	Now           func() time.Time
}

// Handler serves the vault's endpoints.
type Handler struct {
	cfg     Config
	jobs    map[string]*Job
	proxies map[string]*apiProxy
	csrfH   string
	// returnURL is cfg.ReturnURL, parsed once.
	returnURL *url.URL
	// scrubExtra are the headers the provider proxies remove besides
	// proxy.ScrubRequest's own.
	scrubExtra []string
}

// New builds the handlers and one reverse proxy per provider API.
func New(cfg Config) (*Handler, error) {
	if cfg.Vault == nil || cfg.User == nil || cfg.Origins == nil || cfg.CookiePrefix == "" {
		return nil, errors.New("vaulthttp: vault, user entry, origins and cookie prefix are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg, jobs: map[string]*Job{}, proxies: map[string]*apiProxy{}, csrfH: sessioncookie.CSRFHeaderName(cfg.CookiePrefix)}
	ret, err := url.Parse(cfg.ReturnURL)
	if err != nil || !ret.IsAbs() {
		return nil, fmt.Errorf("vaulthttp: return URL %q is not an absolute URL", cfg.ReturnURL)
	}
	h.returnURL = ret
	h.scrubExtra = append([]string{"Origin", "Referer", h.csrfH, HeaderUserSubject, HeaderUserIssuer}, cfg.DropHeaders...)
	for i := range cfg.Entitlement {
		j := &cfg.Entitlement[i]
		h.jobs[j.ClientID] = j
	}
	for name, api := range cfg.APIs {
		if _, ok := cfg.Vault.Provider(name); !ok {
			return nil, fmt.Errorf("vaulthttp: API of unknown provider %q", name)
		}
		h.proxies[name] = newAPIProxy(h, name, api)
	}
	return h, nil
}

// Close releases idle connections to the providers' APIs.
func (h *Handler) Close() {
	for _, p := range h.proxies {
		p.transport.CloseIdleConnections()
	}
}

func (h *Handler) now() time.Time { return h.cfg.Now() }

func (h *Handler) logger(r *http.Request) *slog.Logger {
	return telemetry.Logger(r.Context(), h.cfg.Logger)
}

// fail writes err; a paused refresh says when to try again (Retry-After).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var be *vault.BackoffError
	if errors.As(err, &be) {
		secs := int(be.Until.Sub(h.now()).Round(time.Second) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	httperr.Write(w, r, h.logger(r), mapError(err))
}

// Errors of the vault's endpoints.
var (
	errNotConnected   = httperr.New(http.StatusNotFound, "not_connected", "There is no connection to this provider; connect first")
	errReauth         = httperr.New(http.StatusConflict, "reauth_required", "The provider no longer accepts the connection; connect again")
	errProvider       = httperr.New(http.StatusBadGateway, "provider_error", "The provider could not renew the token; try again later")
	errBadGateway     = httperr.New(http.StatusBadGateway, httperr.CodeBadGateway, "The provider's API could not be reached")
	errTimeout        = httperr.New(http.StatusGatewayTimeout, httperr.CodeGatewayTimeout, "The provider's API did not answer in time")
	errInvalidRequest = httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest, "The request is malformed")
	errBadProxyPath   = httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest, "The path must stay under the provider's API")
)

// mapError turns the vault's errors into HTTP errors; others pass through.
func mapError(err error) error {
	switch {
	case errors.Is(err, vault.ErrUnknownProvider):
		return httperr.ErrNotFound.WithCause(err)
	case errors.Is(err, vault.ErrNotConnected):
		return errNotConnected.WithCause(err)
	case errors.Is(err, vault.ErrNeedsReauth):
		return errReauth.WithCause(err)
	case errors.Is(err, vault.ErrProvider), errors.Is(err, vault.ErrBusy):
		return errProvider.WithCause(err)
	}
	return err
}

func setSecurityHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only Gatehouse's own types are written; say so rather than crash.
		status, body = http.StatusInternalServerError, []byte(`{"code":"server_error","message":"A technical problem occurred in Gatehouse"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	setSecurityHeaders(h)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// ServeConnections serves /connections and everything under it.
func (h *Handler) ServeConnections(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), ConnectionsPath)
	if rest == "" {
		h.list(w, r)
		return
	}
	name, sub, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	if _, ok := h.cfg.Vault.Provider(name); !ok {
		httperr.Write(w, r, h.logger(r), httperr.ErrNotFound)
		return
	}
	switch {
	case sub == "":
		h.browser(w, r, http.MethodDelete, func() error { return h.disconnect(w, r, name) })
	case sub == "start":
		h.browser(w, r, http.MethodPost, func() error { return h.start(w, r, name) })
	case sub == "callback":
		h.callback(w, r, name)
	case sub == "proxy" || strings.HasPrefix(sub, "proxy/"):
		h.userProxy(w, r, name, strings.TrimPrefix(sub, "proxy"))
	default:
		httperr.Write(w, r, h.logger(r), httperr.ErrNotFound)
	}
}

// browser runs an endpoint the SPA calls with fetch: CORS for the trusted
// origins (with preflights), one allowed method.
func (h *Handler) browser(w http.ResponseWriter, r *http.Request, method string, f func() error) {
	if origin.IsPreflight(r) {
		h.cfg.Origins.Preflight(w, r, method)
		return
	}
	h.cfg.Origins.AddHeaders(w.Header(), r)
	if r.Method != method {
		w.Header().Set("Allow", method)
		httperr.Write(w, r, h.logger(r), httperr.ErrMethodNotAllowed)
		return
	}
	if err := f(); err != nil {
		h.fail(w, r, err)
	}
}

// user authenticates the browser's request and returns its user.
func (h *Handler) user(r *http.Request) (vault.User, map[string]any, error) {
	p, err := h.cfg.User.Authenticate(r)
	if err != nil {
		return vault.User{}, nil, err
	}
	if !p.Checked || p.Subject == "" {
		return vault.User{}, nil, authn.ErrUnauthorized.WithCause(errors.New("vaulthttp: the session's token was not verified or has no subject"))
	}
	iss := p.Issuer
	if iss == "" {
		iss = h.cfg.DefaultIssuer
	}
	return vault.User{Issuer: iss, Subject: p.Subject}, p.Claims, nil
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	h.browser(w, r, http.MethodGet, func() error {
		u, _, err := h.user(r)
		if err != nil {
			return err
		}
		infos, err := h.cfg.Vault.List(r.Context(), u)
		if err != nil {
			return err
		}
		type item struct {
			Provider  string     `json:"provider"`
			Scopes    []string   `json:"scopes"`
			ExpiresAt *time.Time `json:"expiresAt"`
			Status    string     `json:"status"`
		}
		out := struct {
			Connections []item `json:"connections"`
		}{Connections: []item{}}
		for _, in := range infos {
			it := item{Provider: in.Provider, Scopes: in.Scopes, Status: string(in.Status)}
			if it.Scopes == nil {
				it.Scopes = []string{}
			}
			if !in.ExpiresAt.IsZero() {
				t := in.ExpiresAt.UTC().Truncate(time.Second)
				it.ExpiresAt = &t
			}
			out.Connections = append(out.Connections, it)
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

func (h *Handler) disconnect(w http.ResponseWriter, r *http.Request, name string) error {
	u, _, err := h.user(r)
	if err != nil {
		return err
	}
	if err := h.cfg.Vault.Disconnect(r.Context(), u, name); err != nil {
		return err
	}
	h.logger(r).Info("vault: connection removed", "provider", name, "issuer", u.Issuer, "subject", u.Subject)
	setSecurityHeaders(w.Header())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// bindingCookieName is <prefix>-vault. A __Host- prefix becomes __Secure-:
// browsers refuse __Host- cookies on any path but /, and the binding
// cookie lives on its provider's callback path only.
func (h *Handler) bindingCookieName() string {
	p := h.cfg.CookiePrefix
	if rest, ok := strings.CutPrefix(p, "__Host-"); ok {
		p = "__Secure-" + rest
	}
	return p + "-vault"
}

func (h *Handler) bindingCookie(name, value string, maxAge int) string {
	c := &http.Cookie{
		Name:     h.bindingCookieName(),
		Value:    value,
		Path:     ConnectionsPath + "/" + name + "/callback",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   !h.cfg.InsecureCookies,
		// Lax: the provider's redirect back is a cross-site top-level
		// navigation, which Strict cookies would not survive.
		SameSite: http.SameSiteLaxMode,
	}
	if maxAge < 0 {
		c.Expires = time.Unix(0, 0)
	}
	return c.String()
}

func (h *Handler) start(w http.ResponseWriter, r *http.Request, name string) error {
	u, claims, err := h.user(r)
	if err != nil {
		return err
	}
	st, err := h.cfg.Vault.StartConnect(r.Context(), u, claims, name)
	if err != nil {
		return err
	}
	w.Header().Add("Set-Cookie", h.bindingCookie(name, st.Binding.Reveal(), int(vault.ConnectWindow/time.Second)))
	writeJSON(w, http.StatusOK, map[string]string{"authorizationUrl": st.AuthorizationURL})
	return nil
}

// callback receives the provider's redirect: it is a top-level navigation,
// so there is no Origin rule; the state and the binding cookie prove that
// this browser started this flow.
func (h *Handler) callback(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		httperr.Write(w, r, h.logger(r), httperr.ErrMethodNotAllowed)
		return
	}
	binding, n := sessioncookie.Lookup(r.Header["Cookie"], h.bindingCookieName())
	if n != 1 {
		binding = ""
	}
	result, err := h.cfg.Vault.FinishConnect(r.Context(), name, r.URL.Query(), binding)
	log := h.logger(r)
	if err != nil {
		log.Info("vault: connect callback did not connect", "provider", name, "result", string(result), "cause", err.Error())
	}
	target := *h.returnURL // a copy: the query is the request's own
	q := target.Query()
	q.Set("connection", name)
	q.Set("result", string(result))
	target.RawQuery = q.Encode()
	hd := w.Header()
	setSecurityHeaders(hd)
	hd.Add("Set-Cookie", h.bindingCookie(name, "", -1))
	hd.Set("Location", target.String())
	w.WriteHeader(http.StatusSeeOther)
}

// ServeJobs serves /vault and everything under it.
func (h *Handler) ServeJobs(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch {
	case len(h.cfg.Jobs) == 0:
		httperr.Write(w, r, h.logger(r), httperr.ErrNotFound)
	case p == JobsPath+"/token":
		h.jobToken(w, r)
	case strings.HasPrefix(p, JobsPath+"/proxy/"):
		name, rest, _ := strings.Cut(strings.TrimPrefix(p, JobsPath+"/proxy/"), "/")
		if _, ok := h.proxies[name]; !ok {
			httperr.Write(w, r, h.logger(r), httperr.ErrNotFound)
			return
		}
		if rest != "" {
			rest = "/" + rest
		}
		h.jobProxy(w, r, name, rest)
	default:
		httperr.Write(w, r, h.logger(r), httperr.ErrNotFound)
	}
}

// hasAll reports whether have contains every one of want.
func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// claimMatches reports whether a recorded claim has one of values: a string,
// number or boolean equal to one, or an array containing one.
func claimMatches(claim any, values []string) bool {
	switch c := claim.(type) {
	case []any:
		for _, x := range c {
			if claimMatches(x, values) {
				return true
			}
		}
		return false
	case string:
		return slices.Contains(values, c)
	case float64:
		return slices.Contains(values, strconv.FormatFloat(c, 'f', -1, 64))
	case json.Number:
		return slices.Contains(values, c.String())
	case bool:
		return slices.Contains(values, strconv.FormatBool(c))
	}
	return false
}
