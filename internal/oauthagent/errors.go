package oauthagent

import (
	"errors"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
)

// Error codes and texts of the Curity v1 OAuth Agent contract.
const (
	codeUnauthorized   = "unauthorized_request"
	codeAuthorization  = "authorization_error"
	codeTokenExpired   = "token_expired"
	codeSessionExpired = "session_expired"
	codeCookieTooLarge = "cookie_too_large"

	msgUnauthorized  = "Access denied due to invalid request details"
	msgASRejected    = "A request sent to the Authorization Server was rejected"
	msgASProblem     = "A problem occurred with a request to the Authorization Server"
	msgLoginFailed   = "Login failed at the Authorization Server"
	msgInvalidIDTok  = "ID Token missing or invalid"
	msgStateMismatch = "State parameter mismatch when completing a login"
)

var (
	errUnauthorized   = httperr.New(http.StatusUnauthorized, codeUnauthorized, msgUnauthorized)
	errBadJSON        = httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest, "The request body is not valid JSON of the expected shape")
	errStateMismatch  = httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest, msgStateMismatch)
	errNoVerifier     = httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest, "Missing code verifier when completing a login")
	errStateReplayed  = httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest, "The login response has already been used")
	errLoginExpired   = httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest, "The login took too long; start a new login")
	errIssuer         = httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest, "The login response does not come from the configured issuer")
	errInvalidIDToken = httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest, msgInvalidIDTok)
	errBadPageURL     = httperr.New(http.StatusBadRequest, httperr.CodeInvalidRequest, "pageUrl is not a valid URL with a single code and state")
	errASUnavailable  = httperr.New(http.StatusBadGateway, httperr.CodeASError, msgASProblem)
	errASRejected     = httperr.New(http.StatusBadRequest, codeAuthorization, msgASRejected)
	errTokenExpired   = httperr.New(http.StatusUnauthorized, codeTokenExpired, msgASRejected)
	errSessionExpired = httperr.New(http.StatusUnauthorized, codeSessionExpired, msgASRejected)
	errCookieTooLarge = httperr.New(http.StatusInternalServerError, codeCookieTooLarge, "A token is too large to be stored in a cookie")
)

// asError maps a failed call to the authorization server to the contract's
// errors: unreachable or not yet discovered → 502, an OAuth error → 400.
func asError(err error) error {
	var oe *oauthclient.Error
	switch {
	case errors.As(err, &oe):
		return errASRejected.WithCause(err)
	case errors.Is(err, oauthclient.ErrUnavailable), errors.Is(err, oauthclient.ErrNotReady):
		return errASUnavailable.WithCause(err)
	}
	return err
}

// Registered OAuth 2.0 (RFC 6749 section 4.1.2.1) and OpenID Connect Core
// (section 3.1.2.6) authorization error codes: only these are passed to the SPA.
var registeredErrors = map[string]bool{
	"invalid_request": true, "unauthorized_client": true, "access_denied": true,
	"unsupported_response_type": true, "invalid_scope": true, "server_error": true,
	"temporarily_unavailable": true, "interaction_required": true, "login_required": true,
	"account_selection_required": true, "consent_required": true, "invalid_request_uri": true,
	"invalid_request_object": true, "request_not_supported": true,
	"request_uri_not_supported": true, "registration_not_supported": true,
}

// safeDescription returns d when it is at most 256 characters of the RFC 6749
// error_description charset (%x20-21 / %x23-5B / %x5D-7E), else "".
func safeDescription(d string) string {
	if d == "" || len(d) > 256 {
		return ""
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return ""
		}
	}
	return d
}
