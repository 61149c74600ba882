// Package oauthagent is the SPA-facing OAuth Agent: it runs the OpenID
// Connect authorization code flow with PKCE for a single page application and
// keeps every token in sealed, HttpOnly, SameSite=Strict cookies.
//
// Its HTTP contract is Curity's open-source (v1) OAuth Agent:
//
//	POST <base>/login/start  {"extraParams":[{"key":..,"value":..}]} → {"authorizationRequestUrl":..}
//	POST <base>/login/end    {"pageUrl":..} → {"handled":..,"isLoggedIn":..,"csrf":..}
//	GET  <base>/userInfo     → the authorization server's userinfo JSON
//	GET  <base>/claims       → the ID token's claims
//	POST <base>/refresh      → 204 with new cookies
//	POST <base>/logout       → {"url":..} the end-session URL
//
// with the stricter choices of DESIGN.md's wire contract (state single use,
// nonce and RFC 9207 iss checks, a refresh reuse window, cookies cleared on
// their own paths).
package oauthagent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/origin"
	"github.com/gatehouse-dev/gatehouse/internal/sessioncookie"
	"github.com/gatehouse-dev/gatehouse/internal/telemetry"
)

// Config is the agent's validated configuration.
type Config struct {
	BasePath              string
	ClientID              string
	RedirectURI           string
	PostLogoutRedirectURI string
	Scope                 string
	AllowedExtraParams    []string
	LoginWindow           time.Duration
	RefreshReuseWindow    time.Duration
	SendIDTokenHint       bool
}

// IDTokenVerifier verifies an ID token from the authorization server:
// signature, issuer, audience and expiry. The agent checks nonce and subject.
type IDTokenVerifier interface {
	VerifyIDToken(ctx context.Context, raw string) (IDToken, error)
}

// IDToken is what the agent needs of a verified ID token.
type IDToken struct {
	Subject string
	Nonce   string
}

// ErrVerifierUnavailable is returned (wrapped) by an IDTokenVerifier that
// cannot obtain the provider's keys; the agent answers 502 then, not 400.
var ErrVerifierUnavailable = errors.New("oauthagent: ID token keys unavailable")

// Deps are the agent's collaborators.
type Deps struct {
	Client   *oauthclient.Client
	Cookies  *sessioncookie.Codec
	Origins  *origin.Policy
	IDTokens IDTokenVerifier
	Logger   *slog.Logger
	Now      func() time.Time
	Random   io.Reader
}

// Agent serves the OAuth Agent endpoints.
type Agent struct {
	cfg     Config
	deps    Deps
	extra   map[string]bool
	states  *usedStates
	refresh *refresher
}

// maxRequestBody bounds agent request bodies (a pageUrl with code, state and
// iss fits easily).
const maxRequestBody = 32 << 10

// maxExtraParams bounds the total size of login extraParams.
const maxExtraParams = 2 << 10

// revokeTimeout bounds the best-effort revocation at logout.
const revokeTimeout = 2 * time.Second

// New returns an Agent.
func New(cfg Config, deps Deps) (*Agent, error) {
	if deps.Client == nil || deps.Cookies == nil || deps.Origins == nil || deps.IDTokens == nil {
		return nil, errors.New("oauthagent: client, cookies, origins and ID token verifier are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Random == nil {
		deps.Random = rand.Reader
	}
	a := &Agent{cfg: cfg, deps: deps, extra: map[string]bool{}}
	for _, p := range cfg.AllowedExtraParams {
		a.extra[p] = true
	}
	a.states = newUsedStates(deps.Now)
	a.refresh = newRefresher(a, cfg.RefreshReuseWindow)
	return a, nil
}

type endpoint struct {
	method string
	csrf   bool
	h      func(http.ResponseWriter, *http.Request) error
}

// ServeHTTP serves every path under the base path.
func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if err := a.serve(w, r); err != nil {
		httperr.Write(w, r, a.logger(r), err)
	}
}

func (a *Agent) logger(r *http.Request) *slog.Logger {
	return telemetry.Logger(r.Context(), a.deps.Logger)
}

func (a *Agent) serve(w http.ResponseWriter, r *http.Request) error {
	var ep endpoint
	switch strings.TrimPrefix(r.URL.Path, a.cfg.BasePath) {
	case "/login/start":
		ep = endpoint{http.MethodPost, false, a.loginStart}
	case "/login/end":
		ep = endpoint{http.MethodPost, false, a.loginEnd}
	case "/userInfo":
		ep = endpoint{http.MethodGet, false, a.userInfo}
	case "/claims":
		ep = endpoint{http.MethodGet, false, a.claims}
	case "/refresh":
		ep = endpoint{http.MethodPost, true, a.refreshTokens}
	case "/logout":
		ep = endpoint{http.MethodPost, true, a.logout}
	default:
		a.deps.Origins.AddHeaders(w.Header(), r)
		return httperr.ErrNotFound
	}
	if r.Method == http.MethodOptions {
		a.deps.Origins.Preflight(w, r, "GET, POST")
		return nil
	}
	a.deps.Origins.AddHeaders(w.Header(), r)
	if r.Method != ep.method && !(ep.method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", ep.method)
		return httperr.ErrMethodNotAllowed
	}
	if err := a.deps.Origins.Check(r); err != nil {
		return errUnauthorized.WithCause(err)
	}
	if a.deps.Cookies.Duplicates(r) {
		return errUnauthorized.WithCause(sessioncookie.ErrDuplicate)
	}
	if ep.csrf {
		if err := a.checkCSRF(r); err != nil {
			return err
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	return ep.h(w, r)
}

// checkCSRF compares the x-<prefix>-csrf header with the sealed -csrf cookie
// in constant time.
func (a *Agent) checkCSRF(r *http.Request) error {
	want, err := a.deps.Cookies.Get(r, sessioncookie.CSRF)
	if err != nil {
		return errUnauthorized.WithCause(err)
	}
	got := r.Header.Values(a.deps.Cookies.CSRFHeader())
	if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), []byte(want)) != 1 {
		return errUnauthorized.WithCause(errors.New("CSRF header missing or not equal to the CSRF cookie"))
	}
	return nil
}

// readJSON decodes an optional JSON object body into v. An empty body leaves
// v untouched.
func readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return httperr.ErrRequestTooLarge.WithCause(err)
		}
		return errBadJSON.WithCause(err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errBadJSON.WithCause(fmt.Errorf("decode body: %w", err))
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("oauthagent: encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

// randomString returns n random bytes as base64url without padding.
func (a *Agent) randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(a.deps.Random, b); err != nil {
		return "", fmt.Errorf("oauthagent: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// loginTransaction is the plaintext of the -login cookie. codeVerifier and
// state are Curity's fields; nonce and the creation time are Gatehouse's.
type loginTransaction struct {
	CodeVerifier string `json:"codeVerifier"`
	State        string `json:"state"`
	Nonce        string `json:"nonce"`
	Created      int64  `json:"iat"`
}

type extraParam struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func (a *Agent) loginStart(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		ExtraParams []extraParam `json:"extraParams"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	extras, err := a.checkExtraParams(body.ExtraParams)
	if err != nil {
		return err
	}
	md, err := a.deps.Client.Provider.Metadata()
	if err != nil {
		return asError(err)
	}
	var tx loginTransaction
	for _, f := range []*string{&tx.CodeVerifier, &tx.State, &tx.Nonce} {
		if *f, err = a.randomString(32); err != nil {
			return err
		}
	}
	tx.Created = a.deps.Now().Unix()
	challenge := sha256.Sum256([]byte(tx.CodeVerifier))

	var q strings.Builder
	add := func(k, v string) {
		if q.Len() > 0 {
			q.WriteByte('&')
		}
		q.WriteString(encodeComponent(k))
		q.WriteByte('=')
		q.WriteString(encodeComponent(v))
	}
	add("client_id", a.cfg.ClientID)
	add("redirect_uri", a.cfg.RedirectURI)
	add("response_type", "code")
	add("state", tx.State)
	add("nonce", tx.Nonce)
	add("code_challenge", base64.RawURLEncoding.EncodeToString(challenge[:]))
	add("code_challenge_method", "S256")
	for _, p := range extras {
		add(p.Key, p.Value)
	}
	add("scope", a.cfg.Scope)
	sep := "?"
	if strings.Contains(md.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	authURL := md.AuthorizationEndpoint + sep + q.String()

	txJSON, err := json.Marshal(tx)
	if err != nil {
		return fmt.Errorf("oauthagent: encode login transaction: %w", err)
	}
	c, err := a.deps.Cookies.Seal(sessioncookie.Login, string(txJSON))
	if err != nil {
		return a.cookieError(r, err)
	}
	w.Header().Add("Set-Cookie", c)
	return writeJSON(w, http.StatusOK, map[string]string{"authorizationRequestUrl": authURL})
}

// checkExtraParams enforces the allow-list; a parameter the agent sets itself,
// a duplicate or more than 2 KB in total is refused. Empty values are dropped.
func (a *Agent) checkExtraParams(params []extraParam) ([]extraParam, error) {
	var out []extraParam
	seen := map[string]bool{}
	total := 0
	for _, p := range params {
		total += len(p.Key) + len(p.Value)
		switch {
		case !a.extra[p.Key]:
			return nil, httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest,
				"extraParams may only contain the configured allowed_extra_params")
		case seen[p.Key]:
			return nil, httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest, "extraParams contains a key twice")
		case total > maxExtraParams:
			return nil, httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest, "extraParams are larger than 2 KB")
		}
		seen[p.Key] = true
		if p.Value != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// encodeComponent percent-encodes like JavaScript's encodeURIComponent for
// the characters that matter: space becomes %20, not +.
func encodeComponent(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

func (a *Agent) cookieError(r *http.Request, err error) error {
	if errors.Is(err, sessioncookie.ErrTooLarge) {
		return errCookieTooLarge.WithCause(fmt.Errorf("%w (endpoint %s)", err, r.URL.Path))
	}
	return err
}

type loginEndResponse struct {
	Handled    bool   `json:"handled"`
	IsLoggedIn bool   `json:"isLoggedIn"`
	CSRF       string `json:"csrf,omitempty"`
}

func (a *Agent) loginEnd(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		PageURL string `json:"pageUrl"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	var q url.Values
	if body.PageURL != "" {
		// The causes are fixed texts: url's errors quote the URL, and the
		// page URL holds the authorization code and state (invariant 1).
		u, err := url.Parse(body.PageURL)
		if err != nil {
			return errBadPageURL.WithCause(errors.New("pageUrl is not a URL"))
		}
		if q, err = url.ParseQuery(u.RawQuery); err != nil {
			return errBadPageURL.WithCause(errors.New("the query of pageUrl is malformed"))
		}
	}
	has := func(k string) bool { return len(q[k]) > 0 && q[k][0] != "" }
	single := func(keys ...string) error {
		for _, k := range keys {
			if len(q[k]) > 1 {
				return errBadPageURL.WithCause(fmt.Errorf("parameter %s repeated", k))
			}
		}
		return nil
	}
	switch {
	case has("code") && has("state"):
		if err := single("code", "state", "iss"); err != nil {
			return err
		}
		return a.completeLogin(w, r, q)
	case has("error") && has("state"):
		if err := single("error", "state", "iss", "error_description"); err != nil {
			return err
		}
		return a.loginError(w, r, q)
	}
	return a.pageLoad(w, r)
}

// pageLoad answers the current login state. Undecryptable cookies count as
// absent: a page load never fails because of stale cookies.
func (a *Agent) pageLoad(w http.ResponseWriter, r *http.Request) error {
	resp := loginEndResponse{}
	if _, err := a.deps.Cookies.Get(r, sessioncookie.AT); err == nil {
		if csrf, err := a.deps.Cookies.Get(r, sessioncookie.CSRF); err == nil {
			resp.IsLoggedIn, resp.CSRF = true, csrf
		}
	}
	return writeJSON(w, http.StatusOK, resp)
}

// openLogin returns the login transaction from the -login cookie.
func (a *Agent) openLogin(r *http.Request) (*loginTransaction, error) {
	raw, err := a.deps.Cookies.Get(r, sessioncookie.Login)
	switch {
	case errors.Is(err, sessioncookie.ErrMissing):
		return nil, errNoVerifier
	case err != nil:
		return nil, errUnauthorized.WithCause(err)
	}
	var tx loginTransaction
	if err := json.Unmarshal([]byte(raw), &tx); err != nil || tx.State == "" || tx.CodeVerifier == "" || tx.Nonce == "" {
		return nil, errUnauthorized.WithCause(errors.New("the -login cookie does not hold a Gatehouse login transaction"))
	}
	created := time.Unix(tx.Created, 0)
	if now := a.deps.Now(); now.After(created.Add(a.cfg.LoginWindow)) || created.After(now.Add(time.Minute)) {
		return nil, errLoginExpired
	}
	return &tx, nil
}

// checkIss applies RFC 9207 to an authorization response.
func (a *Agent) checkIss(q url.Values) error {
	md, err := a.deps.Client.Provider.Metadata()
	if err != nil {
		return asError(err)
	}
	iss, present := q.Get("iss"), len(q["iss"]) > 0
	if present && iss != a.deps.Client.Provider.Issuer() {
		return errIssuer.WithCause(errors.New("iss in the authorization response differs from the issuer"))
	}
	if !present && md.AuthorizationResponseIssSupport {
		return errIssuer.WithCause(errors.New("the issuer advertises RFC 9207 but the response has no iss"))
	}
	return nil
}

func (a *Agent) completeLogin(w http.ResponseWriter, r *http.Request, q url.Values) error {
	tx, err := a.openLogin(r)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(tx.State)) != 1 {
		return errStateMismatch
	}
	if err := a.checkIss(q); err != nil {
		return err
	}
	if !a.states.use(tx.State, time.Unix(tx.Created, 0).Add(a.cfg.LoginWindow)) {
		return errStateReplayed
	}
	ctx := r.Context()
	tokens, err := a.deps.Client.Exchange(ctx, q.Get("code"), a.cfg.RedirectURI, tx.CodeVerifier)
	if err != nil {
		return asError(err)
	}
	if tokens.IDToken.IsZero() {
		return errInvalidIDToken.WithCause(errors.New("the token response has no id_token"))
	}
	id, err := a.deps.IDTokens.VerifyIDToken(ctx, tokens.IDToken.Reveal())
	if err != nil {
		if errors.Is(err, ErrVerifierUnavailable) {
			return errASUnavailable.WithCause(err)
		}
		return errInvalidIDToken.WithCause(err)
	}
	if subtle.ConstantTimeCompare([]byte(id.Nonce), []byte(tx.Nonce)) != 1 {
		return errInvalidIDToken.WithCause(errors.New("ID token nonce does not match the login"))
	}
	// One CSRF token per browser: a second tab's login keeps the first's.
	csrf, err := a.deps.Cookies.Get(r, sessioncookie.CSRF)
	if err != nil {
		if csrf, err = a.randomString(32); err != nil {
			return err
		}
	}
	cookies, err := a.sessionCookies(tokens.AccessToken.Reveal(), tokens.RefreshToken.Reveal(), tokens.IDToken.Reveal(), id.Subject, csrf, true)
	if err != nil {
		return a.cookieError(r, err)
	}
	for _, c := range cookies {
		w.Header().Add("Set-Cookie", c)
	}
	a.logger(r).Info("login completed", "sub", id.Subject)
	return writeJSON(w, http.StatusOK, loginEndResponse{Handled: true, IsLoggedIn: true, CSRF: csrf})
}

// sessionCookies seals the cookies of a session in the contract's order: at,
// csrf, login (cleared), auth, id. At login (full) a missing refresh token
// clears -auth, so that a refresh token of an earlier session never outlives
// it; at refresh, a missing one keeps the current cookie.
func (a *Agent) sessionCookies(at, rt, idToken, sub, csrf string, full bool) ([]string, error) {
	c := a.deps.Cookies
	var out []string
	add := func(k sessioncookie.Kind, v string) error {
		s, err := c.Seal(k, v)
		if err == nil {
			out = append(out, s)
		}
		return err
	}
	if err := add(sessioncookie.AT, at); err != nil {
		return nil, err
	}
	if full {
		if err := add(sessioncookie.CSRF, csrf); err != nil {
			return nil, err
		}
		out = append(out, c.Clearing(sessioncookie.Login))
	}
	if rt != "" {
		v, err := json.Marshal(refreshCookie{RefreshToken: rt, Subject: sub})
		if err != nil {
			return nil, fmt.Errorf("oauthagent: encode refresh cookie: %w", err)
		}
		if err := add(sessioncookie.Auth, string(v)); err != nil {
			return nil, err
		}
	} else if full {
		out = append(out, c.Clearing(sessioncookie.Auth))
	}
	if idToken != "" {
		if err := add(sessioncookie.ID, idToken); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// refreshCookie is the plaintext of -auth: the refresh token and the subject
// of the session, so that a refreshed ID token can be checked against it (the
// -id cookie is not sent to /refresh). A bare refresh token (a cookie written
// by Curity's agent) is accepted too, without a subject.
type refreshCookie struct {
	RefreshToken string `json:"refreshToken"`
	Subject      string `json:"sub"`
}

func parseRefreshCookie(s string) refreshCookie {
	if strings.HasPrefix(s, "{") {
		var rc refreshCookie
		if json.Unmarshal([]byte(s), &rc) == nil && rc.RefreshToken != "" {
			return rc
		}
	}
	return refreshCookie{RefreshToken: s}
}

func (a *Agent) loginError(w http.ResponseWriter, r *http.Request, q url.Values) error {
	if _, err := a.deps.Cookies.Raw(r, sessioncookie.Login); err == nil {
		tx, err := a.openLogin(r)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(tx.State)) != 1 {
			return errStateMismatch
		}
		if err := a.checkIss(q); err != nil {
			return err
		}
	}
	w.Header().Add("Set-Cookie", a.deps.Cookies.Clearing(sessioncookie.Login))
	code := q.Get("error")
	if !registeredErrors[code] {
		code = codeAuthorization
	}
	msg := safeDescription(q.Get("error_description"))
	if msg == "" {
		msg = msgLoginFailed
	}
	status := http.StatusBadRequest
	if code == "login_required" {
		status = http.StatusUnauthorized
	}
	return httperr.New(status, code, msg)
}

func (a *Agent) userInfo(w http.ResponseWriter, r *http.Request) error {
	at, err := a.deps.Cookies.Get(r, sessioncookie.AT)
	if err != nil {
		return errUnauthorized.WithCause(err)
	}
	info, err := a.deps.Client.Userinfo(r.Context(), at)
	if err != nil {
		var oe *oauthclient.Error
		if errors.As(err, &oe) && oe.Status == http.StatusUnauthorized {
			return errTokenExpired.WithCause(err)
		}
		return asError(err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(info)
	}
	return nil
}

func (a *Agent) claims(w http.ResponseWriter, r *http.Request) error {
	idToken, err := a.deps.Cookies.Get(r, sessioncookie.ID)
	if err != nil {
		return errUnauthorized.WithCause(err)
	}
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return errInvalidIDToken.WithCause(errors.New("the -id cookie does not hold a JWT"))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var obj map[string]json.RawMessage
	if err != nil || json.Unmarshal(payload, &obj) != nil {
		return errInvalidIDToken.WithCause(errors.New("the ID token payload is not a JSON object"))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(payload)
	}
	return nil
}

func (a *Agent) refreshTokens(w http.ResponseWriter, r *http.Request) error {
	raw, err := a.deps.Cookies.Get(r, sessioncookie.Auth)
	if err != nil {
		return errUnauthorized.WithCause(err)
	}
	rc := parseRefreshCookie(raw)
	cookies, err := a.refresh.do(r.Context(), rc)
	if err != nil {
		var oe *oauthclient.Error
		if errors.As(err, &oe) && oe.Code == "invalid_grant" {
			a.clearSession(w)
			return errSessionExpired.WithCause(err)
		}
		if errors.Is(err, errSubjectUnknown) {
			a.clearSession(w)
			return err
		}
		if errors.Is(err, sessioncookie.ErrTooLarge) {
			return a.cookieError(r, err)
		}
		return asError(err)
	}
	for _, c := range cookies {
		w.Header().Add("Set-Cookie", c)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// clearSession clears every cookie on the path it was set with, in the
// contract's order: auth, at, id, csrf, then login.
func (a *Agent) clearSession(w http.ResponseWriter) {
	for _, k := range []sessioncookie.Kind{sessioncookie.Auth, sessioncookie.AT, sessioncookie.ID, sessioncookie.CSRF, sessioncookie.Login} {
		w.Header().Add("Set-Cookie", a.deps.Cookies.Clearing(k))
	}
}

func (a *Agent) logout(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.deps.Cookies.Get(r, sessioncookie.AT); err != nil {
		return errUnauthorized.WithCause(err)
	}
	log := a.logger(r)
	if raw, err := a.deps.Cookies.Get(r, sessioncookie.Auth); err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), revokeTimeout)
		if err := a.deps.Client.Revoke(ctx, parseRefreshCookie(raw).RefreshToken, "refresh_token"); err != nil {
			log.Warn("refresh token revocation at logout failed; the session is cleared anyway", "error", err.Error())
		}
		cancel()
	}
	logoutURL := a.cfg.PostLogoutRedirectURI
	md, err := a.deps.Client.Provider.Metadata()
	switch {
	case err != nil:
		log.Warn("logout without end-session URL: the authorization server is not discovered yet")
	case md.EndSessionEndpoint != "":
		params := []string{"client_id=" + encodeComponent(a.cfg.ClientID)}
		if a.cfg.PostLogoutRedirectURI != "" {
			params = append(params, "post_logout_redirect_uri="+encodeComponent(a.cfg.PostLogoutRedirectURI))
		}
		if a.cfg.SendIDTokenHint {
			if idt, err := a.deps.Cookies.Get(r, sessioncookie.ID); err == nil {
				params = append(params, "id_token_hint="+encodeComponent(idt))
			}
		}
		sep := "?"
		if strings.Contains(md.EndSessionEndpoint, "?") {
			sep = "&"
		}
		logoutURL = md.EndSessionEndpoint + sep + strings.Join(params, "&")
	}
	a.clearSession(w)
	return writeJSON(w, http.StatusOK, map[string]string{"url": logoutURL})
}

// Endpoints lists the agent's paths relative to the base path.
func Endpoints() []string {
	return slices.Clone([]string{"/login/start", "/login/end", "/userInfo", "/claims", "/refresh", "/logout"})
}
