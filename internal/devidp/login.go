package devidp

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrLoginFailed is returned by Login when the provider refused the
// username or password.
var ErrLoginFailed = errors.New("devidp: login failed")

// maxLoginSteps bounds the requests Login makes for one flow.
const maxLoginSteps = 10

// Login drives a Provider's login page over plain HTTP, as a browser would,
// for tests: it requests authURL (an authorization request URL of the
// provider), follows the redirects to the login page, submits username and
// password, and follows the redirects until the next one would leave the
// provider for the client's redirect_uri. It returns that full URL (with
// code, state and iss, or error and state) without requesting it.
//
// An authorization error that the provider redirects to the client is a
// successful Login: the returned URL carries the error. A refused password
// is ErrLoginFailed. hc may have a nil Jar (the provider sets no cookies);
// nil means a plain client with a 30-second timeout. Login works only with
// this package's login page and the query or fragment response modes.
func Login(ctx context.Context, hc *http.Client, authURL, username, password string) (callbackURL string, err error) {
	c := &http.Client{Timeout: 30 * time.Second}
	if hc != nil {
		cc := *hc
		c = &cc
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	start, err := url.Parse(authURL)
	if err != nil {
		return "", fmt.Errorf("devidp: login: authorization URL: %w", err)
	}
	next, method := start, http.MethodGet
	var form url.Values
	submitted := false
	for range maxLoginSteps {
		status, location, body, err := loginStep(ctx, c, method, next, form)
		if err != nil {
			return "", err
		}
		switch {
		case status >= 300 && status < 400:
			if location == "" {
				return "", fmt.Errorf("devidp: login: %s %s: redirect without Location", method, next.Path)
			}
			target, err := next.Parse(location)
			if err != nil {
				return "", fmt.Errorf("devidp: login: redirect target: %w", err)
			}
			if !isProviderPage(start, target) {
				return target.String(), nil
			}
			next, method, form = target, http.MethodGet, nil
		case status == http.StatusOK && next.Path == PathLogin:
			if submitted {
				return "", fmt.Errorf("%w: %s", ErrLoginFailed, pageError(body))
			}
			method, submitted = http.MethodPost, true
			form = url.Values{"username": {username}, "password": {password}}
		default:
			return "", fmt.Errorf("devidp: login: %s %s answered %d: %s", method, next.Path, status, summary(body))
		}
	}
	return "", fmt.Errorf("devidp: login: more than %d steps", maxLoginSteps)
}

func loginStep(ctx context.Context, c *http.Client, method string, u *url.URL, form url.Values) (status int, location, body string, err error) {
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, "", "", fmt.Errorf("devidp: login: %w", err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", fmt.Errorf("devidp: login: %s %s: %w", method, u.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", "", fmt.Errorf("devidp: login: %s %s: %w", method, u.Path, err)
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(b), nil
}

// isProviderPage reports whether target is one of the provider's own steps
// of the flow (authorize, login, callback) rather than the client.
func isProviderPage(start, target *url.URL) bool {
	if target.Scheme != start.Scheme || target.Host != start.Host {
		return false
	}
	switch target.Path {
	case PathAuthorize, PathLogin, PathCallback:
		return true
	}
	return false
}

// pageError extracts the error message from the login page.
func pageError(body string) string {
	const open = `<p class="error" role="alert">`
	i := strings.Index(body, open)
	if i < 0 {
		return "the login page was shown again"
	}
	rest := body[i+len(open):]
	if j := strings.Index(rest, "</p>"); j >= 0 {
		rest = rest[:j]
	}
	return html.UnescapeString(rest)
}

func summary(body string) string {
	body = strings.TrimSpace(body)
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	return body
}
