package devidp

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"

	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Banner is shown on every page of the provider.
const Banner = "Development provider — for local use only, never in production"

const pagesTemplate = `
{{define "head"}}<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.Title}} · Gatehouse development provider</title>
<style>
*{box-sizing:border-box}
body{margin:0;min-height:100vh;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#eef1f5;color:#1b2430}
.banner{margin:0;padding:.6rem 1rem;background:#ffd25a;color:#4a3500;text-align:center;font-weight:600;border-bottom:2px solid #e0a800}
main{max-width:24rem;margin:3.5rem auto;padding:2rem 2rem 1.75rem;background:#fff;border-radius:12px;box-shadow:0 1px 2px rgba(0,0,0,.06),0 8px 24px rgba(0,0,0,.08)}
h1{margin:0 0 .25rem;font-size:1.4rem}
.sub{margin:0 0 1.5rem;color:#5b6675;font-size:.95rem}
.sub strong{color:#1b2430;font-weight:600;word-break:break-all}
label{display:block;margin:1rem 0 .35rem;font-weight:600;font-size:.9rem}
input{width:100%;padding:.6rem .75rem;border:1px solid #c5ccd6;border-radius:8px;font:inherit;background:#fff;color:inherit}
input:focus{outline:2px solid #3b6fd8;outline-offset:1px;border-color:#3b6fd8}
button{width:100%;margin-top:1.5rem;padding:.7rem;border:0;border-radius:8px;background:#2f5fd0;color:#fff;font:inherit;font-weight:600;cursor:pointer}
button:hover{background:#254fb3}
.error{margin:0 0 1rem;padding:.65rem .8rem;border:1px solid #f1b4b4;border-radius:8px;background:#fdecec;color:#8a1c1c;font-size:.95rem}
.foot{margin:1.5rem 0 0;color:#7a8594;font-size:.8rem;text-align:center}
@media (prefers-color-scheme:dark){
body{background:#12161c;color:#e6e9ee}
main{background:#1c222b;box-shadow:none;border:1px solid #2c3440}
.sub,.foot{color:#9aa5b4}.sub strong{color:#e6e9ee}
input{background:#12161c;border-color:#3a4452}
.error{background:#3a1a1a;border-color:#6b2b2b;color:#ffc9c9}
}
</style>
</head>
<body>
<p class="banner" role="note">{{.Banner}}</p>
<main>
{{end}}

{{define "foot"}}<p class="foot">Issuer {{.Issuer}}</p>
</main>
</body>
</html>
{{end}}

{{define "login"}}{{template "head" .}}<h1>Sign in</h1>
<p class="sub">to continue to <strong>{{.ClientID}}</strong></p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>
{{end}}<form method="post" action="{{.Action}}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required value="{{.Username}}"{{if not .Username}} autofocus{{end}}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required{{if .Username}} autofocus{{end}}>
<button type="submit">Sign in</button>
</form>
{{template "foot" .}}{{end}}

{{define "form_post"}}{{template "head" .}}<h1>Signing in…</h1>
<form method="post" action="{{.Action}}">
{{range .Params}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<p class="sub">If nothing happens, continue to the application.</p>
<button type="submit">Continue</button>
</form>
<script>` + formPostScript + `</script>
{{template "foot" .}}{{end}}

{{define "message"}}{{template "head" .}}<h1>{{.Title}}</h1>
<p class="sub">{{.Message}}</p>
{{template "foot" .}}{{end}}
`

// formPostScript submits the form_post page; the page's CSP allows exactly
// this script by hash.
const formPostScript = `document.forms[0].submit()`

func formPostScriptHash() string {
	sum := sha256.Sum256([]byte(formPostScript))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

func parsePages() (*template.Template, error) {
	return template.New("pages").Parse(pagesTemplate)
}

type pageData struct {
	Banner, Issuer, Title string
	// login
	ClientID, Username, Error, Action string
	// message
	Message string
	// form_post
	Params []formParam
}

type formParam struct{ Name, Value string }

// renderPage writes one of the provider's HTML pages with headers that keep
// it out of frames and caches. The provider sets no cookies.
func (p *Provider) renderPage(w http.ResponseWriter, status int, name string, data pageData) {
	p.renderPageCSP(w, status, name, data, "")
}

func (p *Provider) renderPageCSP(w http.ResponseWriter, status int, name string, data pageData, scriptSrc string) {
	data.Banner, data.Issuer = Banner, p.issuer
	var buf bytes.Buffer
	if err := p.pages.ExecuteTemplate(&buf, name, data); err != nil {
		p.log.Error("devidp: render page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	// No form-action: browsers apply it to the redirect chain that follows
	// the login POST, which ends at the client's redirect_uri.
	csp := "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"
	if scriptSrc != "" {
		csp += "; script-src " + scriptSrc
	}
	h.Set("Content-Security-Policy", csp)
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// renderFormPost sends an authorization response in response_mode
// form_post: a form that posts every parameter to the redirect_uri, submitted
// by a script (allowed by hash) or by the user. op's own form_post page
// drops the error and iss parameters.
func (p *Provider) renderFormPost(w http.ResponseWriter, redirectURI string, params map[string][]string) {
	data := pageData{Title: "Signing in", Action: redirectURI}
	for _, name := range slices.Sorted(maps.Keys(params)) {
		for _, v := range params[name] {
			data.Params = append(data.Params, formParam{Name: name, Value: v})
		}
	}
	p.renderPageCSP(w, http.StatusOK, "form_post", data, formPostScriptHash())
}

func (p *Provider) renderMessage(w http.ResponseWriter, status int, title, message string) {
	p.renderPage(w, status, "message", pageData{Title: title, Message: message})
}

// serveLogin shows the login form for an authorization request (GET) and
// checks the submitted username and password (POST). Success redirects to
// op's callback, which sends the code to the client.
func (p *Provider) serveLogin(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	ar, err := p.store.pendingLogin(id)
	if id == "" || err != nil {
		p.renderMessage(w, http.StatusBadRequest, "Sign-in request not found",
			"This sign-in request is unknown, was already used, or has expired. Start again from the application.")
		return
	}
	data := pageData{
		Title:    "Sign in",
		ClientID: ar.clientID,
		Username: ar.loginHint,
		Action:   PathLogin + "?" + url.Values{"authRequestID": {id}}.Encode(),
	}
	if r.Method != http.MethodPost {
		p.renderPage(w, http.StatusOK, "login", data)
		return
	}

	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	u := p.store.usersByName[username]
	// Compare even for an unknown user, so timing does not tell them apart.
	want := "\x00"
	if u != nil {
		want = u.Password
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(password)) != 1 || u == nil {
		p.stats.loginFailed.Add(1)
		// The attempted username is logged only when it names a user: a
		// password typed into the username field must not reach the log.
		known := ""
		if u != nil {
			known = u.ID
		}
		p.log.Info("devidp: login failed", "user_id", known, "client_id", ar.clientID)
		data.Username, data.Error = username, "Invalid username or password."
		p.renderPage(w, http.StatusOK, "login", data)
		return
	}
	if err := p.store.completeLogin(id, u.ID); err != nil {
		p.renderMessage(w, http.StatusBadRequest, "Sign-in request not found",
			"This sign-in request is unknown, was already used, or has expired. Start again from the application.")
		return
	}
	p.stats.login.Add(1)
	p.log.Info("devidp: login", "user_id", u.ID, "client_id", ar.clientID)
	callback := op.AuthCallbackURL(p.op)(p.opContext(r.Context()), id)
	http.Redirect(w, r, callback, http.StatusSeeOther)
}

func (p *Provider) serveLoggedOut(w http.ResponseWriter, _ *http.Request) {
	p.renderMessage(w, http.StatusOK, "Signed out", "You have been signed out. You can close this window.")
}

// serveCallback replaces op's callback handler: it turns a logged-in
// authorization request into a code exactly once, and sends the response
// with the iss parameter (RFC 9207) when configured, in every response mode.
func (p *Provider) serveCallback(w http.ResponseWriter, r *http.Request) {
	id, err := op.ParseAuthorizeCallbackRequest(r)
	if err != nil {
		p.renderMessage(w, http.StatusBadRequest, "Bad request", "The sign-in callback is missing its request id.")
		return
	}
	ar, err := p.store.takeForCallback(id)
	if err != nil {
		p.renderMessage(w, http.StatusBadRequest, "Sign-in request not found",
			"This sign-in request is unknown, was already used, or has expired. Start again from the application.")
		return
	}
	if !ar.done {
		e := oidc.ErrInteractionRequired().WithDescription("the user has not logged in")
		e.State = ar.state
		p.sendAuthResponse(w, r, ar, e)
		return
	}
	payload, err := op.BuildAuthResponseCodeResponsePayload(r.Context(), ar, p.op)
	if err != nil {
		p.log.Error("devidp: create authorization code", "error", err)
		e := oidc.ErrServerError()
		e.State = ar.state
		p.sendAuthResponse(w, r, ar, e)
		return
	}
	p.sendAuthResponse(w, r, ar, payload)
}

// sendAuthResponse sends an authorization response (a code or an
// *oidc.Error) to the client's redirect_uri in the request's response mode.
func (p *Provider) sendAuthResponse(w http.ResponseWriter, r *http.Request, ar *authRequest, response any) {
	enc := p.responseEncoder()
	if ar.responseMode == oidc.ResponseModeFormPost {
		params := make(map[string][]string)
		if err := enc.Encode(response, params); err != nil {
			p.log.Error("devidp: form_post response", "error", err)
			p.renderMessage(w, http.StatusInternalServerError, "Error", "The authorization response could not be built.")
			return
		}
		p.renderFormPost(w, ar.redirectURI, params)
		return
	}
	target, err := op.AuthResponseURL(ar.redirectURI, ar.responseType, ar.responseMode, response, enc)
	if err != nil {
		p.log.Error("devidp: authorization response URL", "error", err)
		p.renderMessage(w, http.StatusInternalServerError, "Error", "The authorization response could not be built.")
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// responseEncoder encodes authorization responses, adding iss when
// IssParameter is on.
func (p *Provider) responseEncoder() httphelper.Encoder {
	enc := oidc.NewEncoder()
	if !p.issParam {
		return enc
	}
	return issEncoder{Encoder: enc, issuer: p.issuer}
}

// issEncoder adds the RFC 9207 iss parameter to whatever it encodes.
type issEncoder struct {
	httphelper.Encoder
	issuer string
}

func (e issEncoder) Encode(src any, dst map[string][]string) error {
	if err := e.Encoder.Encode(src, dst); err != nil {
		return err
	}
	dst["iss"] = []string{e.issuer}
	return nil
}
