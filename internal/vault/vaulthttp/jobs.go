package vaulthttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/origin"
	"github.com/gatehouse-dev/gatehouse/internal/vault"
)

// userProxy forwards the signed-in user's request to the provider's API.
func (h *Handler) userProxy(w http.ResponseWriter, r *http.Request, name, rest string) {
	p := h.proxies[name]
	if p == nil {
		httperr.Write(w, r, h.logger(r), httperr.ErrNotFound)
		return
	}
	if origin.IsPreflight(r) {
		h.cfg.Origins.Preflight(w, r, "GET, HEAD, POST, PUT, PATCH, DELETE")
		return
	}
	h.cfg.Origins.AddHeaders(w.Header(), r)
	u, _, err := h.user(r)
	if err == nil {
		err = p.serve(w, r, u, rest, true)
	}
	if err != nil {
		h.fail(w, r, err)
	}
}

// errJobForbidden is the 403 of a job without the entitlement.
var errJobForbidden = httperr.New(http.StatusForbidden, httperr.CodeForbidden, "The job is not entitled to this user's connection to this provider")

// audit is one job call's audit record, logged when the call ends. It never
// holds a token.
type audit struct {
	start    time.Time
	endpoint string
	clientID string
	job      string // the job token's subject
	provider string
	user     vault.User
	method   string
	path     string
	decision string
	reason   string
}

func (a *audit) log(log *slog.Logger, status int, now time.Time) {
	log.Info("vault: job call",
		slog.String("audit", "vault_job"),
		slog.String("endpoint", a.endpoint),
		slog.String("client_id", a.clientID),
		slog.String("job_subject", a.job),
		slog.String("provider", a.provider),
		slog.String("user_issuer", a.user.Issuer),
		slog.String("user_subject", a.user.Subject),
		slog.String("method", a.method),
		slog.String("path", a.path),
		slog.String("decision", a.decision),
		slog.String("reason", a.reason),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(now.Sub(a.start).Microseconds())/1000),
	)
}

// statusRecorder remembers the status of a response.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// authorizeJob authenticates the job and checks its entitlement to the
// user's connection to provider; it fills a as it learns.
func (h *Handler) authorizeJob(r *http.Request, a *audit) error {
	p, err := authn.Authenticate(r, h.cfg.Jobs)
	if err != nil {
		a.decision, a.reason = "denied", "invalid or missing job token"
		return err
	}
	a.clientID, a.job = p.ClientID, p.Subject
	deny := func(reason string) error {
		a.decision, a.reason = "denied", reason
		return errJobForbidden.WithCause(errors.New("vaulthttp: " + reason))
	}
	job := h.jobs[p.ClientID]
	switch {
	case job == nil:
		return deny("client_id is not a job in vault.jobs")
	case !hasAll(p.Scopes, job.Scopes):
		e := errJobForbidden.WithCause(errors.New("vaulthttp: the job's token lacks the job's scopes"))
		e.WWWAuthenticate = fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope=%q`, authn.Realm, strings.Join(job.Scopes, " "))
		a.decision, a.reason = "denied", "missing scopes"
		return e
	case !hasAll(job.Providers, []string{a.provider}):
		return deny("provider not in the job's providers")
	case a.user.Subject == "":
		a.decision, a.reason = "denied", "no user"
		return errInvalidRequest.WithCause(errors.New("vaulthttp: the request names no user"))
	case job.AllUsers:
		return nil
	}
	claims, err := h.cfg.Vault.Claims(r.Context(), a.user, a.provider)
	if errors.Is(err, vault.ErrNotConnected) {
		// Without a connection there is nothing to prove the entitlement
		// with; a 404 would tell the job who is connected.
		return deny("user not connected (entitlement by claim)")
	}
	if err != nil {
		a.decision, a.reason = "error", "reading the connection failed"
		return err
	}
	if c, ok := claims[job.Claim]; !ok || !claimMatches(c, job.Values) {
		return deny("user's " + job.Claim + " claim does not match")
	}
	return nil
}

func (h *Handler) newAudit(r *http.Request, endpoint, provider string) *audit {
	return &audit{start: h.cfg.Now(), endpoint: endpoint, provider: provider, method: r.Method, decision: "allowed"}
}

// jobToken answers POST /vault/token.
func (h *Handler) jobToken(w http.ResponseWriter, r *http.Request) {
	a := h.newAudit(r, "token", "")
	rec := &statusRecorder{ResponseWriter: w}
	defer func() { a.log(h.logger(r), rec.status, h.cfg.Now()) }()
	if r.Method != http.MethodPost {
		a.decision, a.reason = "denied", "method"
		w.Header().Set("Allow", http.MethodPost)
		httperr.Write(rec, r, h.logger(r), httperr.ErrMethodNotAllowed)
		return
	}
	var body struct {
		User struct {
			Issuer  string `json:"issuer"`
			Subject string `json:"subject"`
		} `json:"user"`
		Provider string `json:"provider"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		a.decision, a.reason = "denied", "malformed body"
		// Authenticate first, so that an unauthenticated caller learns nothing.
		if _, aerr := authn.Authenticate(r, h.cfg.Jobs); aerr != nil {
			h.fail(rec, r, aerr)
			return
		}
		h.fail(rec, r, errInvalidRequest.WithCause(err))
		return
	}
	a.provider = body.Provider
	a.user = vault.User{Issuer: body.User.Issuer, Subject: body.User.Subject}
	if a.user.Issuer == "" {
		a.user.Issuer = h.cfg.DefaultIssuer
	}
	if _, ok := h.cfg.Vault.Provider(body.Provider); !ok {
		if _, err := authn.Authenticate(r, h.cfg.Jobs); err != nil {
			a.decision, a.reason = "denied", "invalid or missing job token"
			h.fail(rec, r, err)
			return
		}
		a.decision, a.reason = "denied", "unknown provider"
		h.fail(rec, r, errInvalidRequest.WithCause(errors.New("vaulthttp: unknown provider")))
		return
	}
	if err := h.authorizeJob(r, a); err != nil {
		h.fail(rec, r, err)
		return
	}
	tok, err := h.cfg.Vault.Token(r.Context(), a.user, a.provider, "")
	if err != nil {
		a.decision, a.reason = "error", errorReason(err)
		h.fail(rec, r, err)
		return
	}
	out := map[string]any{"access_token": tok.Value.Reveal(), "token_type": "Bearer"}
	if !tok.ExpiresAt.IsZero() {
		out["expires_in"] = max(int64(tok.ExpiresAt.Sub(h.now())/time.Second), 0)
	}
	writeJSON(rec, http.StatusOK, out)
}

// jobProxy forwards a job's request to the provider's API for the user
// named in the Gatehouse-User-* headers.
func (h *Handler) jobProxy(w http.ResponseWriter, r *http.Request, name, rest string) {
	a := h.newAudit(r, "proxy", name)
	a.path = rest
	rec := &statusRecorder{ResponseWriter: w}
	defer func() { a.log(h.logger(r), rec.status, h.cfg.Now()) }()
	subj, iss := r.Header.Values(HeaderUserSubject), r.Header.Values(HeaderUserIssuer)
	if len(subj) == 1 {
		a.user.Subject = subj[0]
	}
	a.user.Issuer = h.cfg.DefaultIssuer
	if len(iss) == 1 {
		a.user.Issuer = iss[0]
	}
	if len(subj) > 1 || len(iss) > 1 {
		a.user = vault.User{}
	}
	if err := h.authorizeJob(r, a); err != nil {
		h.fail(rec, r, err)
		return
	}
	if err := h.proxies[name].serve(rec, r, a.user, rest, false); err != nil {
		a.decision, a.reason = "error", errorReason(err)
		h.fail(rec, r, err)
	}
}

// errorReason names an error for the audit log without its details.
func errorReason(err error) string {
	switch {
	case errors.Is(err, vault.ErrNotConnected):
		return "not connected"
	case errors.Is(err, vault.ErrNeedsReauth):
		return "connection needs the user again"
	case errors.Is(err, vault.ErrProvider), errors.Is(err, vault.ErrBusy):
		return "provider error"
	}
	return httperr.As(mapError(err)).Code
}
