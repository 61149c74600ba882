// Package devidp is an embedded development OpenID Provider.
//
// It is the authorization server that Gatehouse's own tests run the
// authorization code flow against over real HTTP, and the provider that
// `gatehouse demo` shows in a browser. All protocol work — request parsing,
// redirect URI checks, client assertions, ID tokens, discovery, end session —
// is done by github.com/zitadel/oidc/v3/pkg/op; this package adds an
// in-memory op.Storage, a login page, and the behaviours a realistic test
// peer needs that op leaves to its user.
//
// A Provider never listens on a socket itself: it is an http.Handler, and the
// caller decides where it is served (devidptest serves it on 127.0.0.1).
// It is for development only: users and passwords are plain configuration,
// http issuers are allowed on loopback hosts, and nothing is persisted.
//
// Behaviour, where a provider has a choice:
//
//   - Login: every authorization request shows the login page and asks for
//     the password; there is no single sign-on session and no cookie.
//     prompt=login is therefore always honoured, prompt=none always answers
//     login_required, login_hint (or the user of an id_token_hint) prefills
//     the username. Unknown authorization parameters are ignored.
//   - PKCE: only S256. Required for public clients (AuthMethodNone); when a
//     confidential client sent a code_challenge, the code_verifier is
//     required too.
//   - Codes live one minute and are single use; replaying a used code
//     revokes the grant the first exchange created.
//   - Refresh tokens are issued when offline_access was granted and the
//     client has the refresh_token grant. Without rotation a refresh answers
//     without refresh_token (keep the old one). With rotation the presented
//     token stops working; with reuse detection presenting it again revokes
//     the whole grant. Expired, revoked, rotated-out and unknown tokens are
//     invalid_grant. A refresh returns a new access token and, with openid,
//     a new ID token for the same sub.
//   - Access tokens are RFC 9068 JWTs (typ at+jwt, with scope and client_id)
//     or opaque handles, per client. Both work at userinfo and introspection.
//   - Introspection: a client sees its own tokens; CanIntrospect clients see
//     all. Refresh tokens can be introspected.
//   - Revocation: a refresh token ends its grant (access tokens included);
//     an access token ends only itself; another client's token is refused.
//   - End session: post_logout_redirect_uri must be registered for the
//     client named by client_id or by the id_token_hint's azp, or the
//     request fails without redirect; without a client the provider's own
//     signed-out page is shown. With an id_token_hint, the user's grants at
//     that client are revoked.
//   - Client authentication is checked against the registered method:
//     client_secret_basic must use the Authorization header,
//     client_secret_post the form; private_key_jwt assertions must have
//     aud = issuer and a jti that was not used before.
//   - Token exchange (RFC 8693): a confidential client with the grant trades
//     an active access token of any client for one with an audience or
//     resource from its TokenExchangeTargets (else invalid_target) and a
//     subset of the subject token's scopes (else invalid_scope); an unknown,
//     expired or revoked subject token is invalid_grant. With an actor token
//     the new token's act claim names the actor (nesting an earlier act).
//     The new token belongs to the subject token's grant (revoking the grant
//     ends it too), is issued to the exchanging client in that client's
//     format and lifetime, and is not bounded by the subject token's expiry.
//   - Certificate-bound tokens (RFC 8705) for clients that ask for them.
//   - Discovery advertises exactly this.
package devidp

import (
	"context"
	"crypto/rand"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Client authentication methods (Client.AuthMethod).
const (
	AuthMethodBasic         = "client_secret_basic"
	AuthMethodPost          = "client_secret_post"
	AuthMethodPrivateKeyJWT = "private_key_jwt"
	AuthMethodNone          = "none"
)

// Access token formats (Client.AccessTokenFormat).
const (
	AccessTokenJWT    = "jwt"
	AccessTokenOpaque = "opaque"
)

// Grant types (Client.GrantTypes).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	// GrantTokenExchange is RFC 8693 token exchange.
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// Default lifetimes.
const (
	DefaultAccessTokenLifetime  = 5 * time.Minute
	DefaultRefreshTokenLifetime = 8 * time.Hour
	DefaultIDTokenLifetime      = time.Hour
)

// Paths served by a Provider, relative to its issuer.
const (
	PathDiscovery  = "/.well-known/openid-configuration"
	PathAuthorize  = "/authorize"
	PathCallback   = "/authorize/callback"
	PathLogin      = "/login"
	PathLoggedOut  = "/logged-out"
	PathToken      = "/oauth/token"
	PathIntrospect = "/oauth/introspect"
	PathUserinfo   = "/userinfo"
	PathRevoke     = "/revoke"
	PathEndSession = "/end_session"
	PathKeys       = "/keys"
)

// User is an account that can sign in at the login page.
type User struct {
	ID       string // the stable `sub`; must not contain ':'
	Username string // what the user types; preferred_username
	Password string

	GivenName, FamilyName, Email string

	// Claims are extra claims put into ID tokens, userinfo, introspection
	// responses and JWT access tokens (for example "roles"). Registered and
	// standard profile claim names are rejected by New.
	Claims map[string]any
}

// Client is a registered OAuth client.
type Client struct {
	ID string // must not contain ':'
	// Secret is the shared secret for client_secret_basic and client_secret_post.
	Secret string
	// AuthMethod is how the client authenticates at the token, introspection
	// and revocation endpoints: AuthMethodBasic (the default), AuthMethodPost,
	// AuthMethodPrivateKeyJWT or AuthMethodNone (a public client, which must
	// use PKCE). The method is enforced: a basic client sending its secret in
	// the form is refused, and the other way round.
	AuthMethod string
	// PublicKeys verify the client assertions of a private_key_jwt client
	// (RFC 7523: iss = sub = client id, aud = issuer, unique jti, exp).
	// RS256, PS256 and ES256 are accepted.
	PublicKeys []jose.JSONWebKey

	// RedirectURIs are matched exactly.
	RedirectURIs []string
	// PostLogoutRedirectURIs are matched exactly at the end session endpoint.
	PostLogoutRedirectURIs []string

	// Scopes are the extra (non-OpenID) scopes this client may request, e.g.
	// "read". openid, profile, email and offline_access are always allowed.
	Scopes []string

	// AccessTokenFormat is AccessTokenJWT (the default; RFC 9068, typ at+jwt)
	// or AccessTokenOpaque (an encrypted handle, usable at userinfo and
	// introspection).
	AccessTokenFormat string
	// AccessTokenAudience is added to the access token `aud` besides the client id.
	AccessTokenAudience []string

	// Lifetimes; zero means the Default* constant.
	AccessTokenLifetime, RefreshTokenLifetime, IDTokenLifetime time.Duration

	// CanIntrospect lets this client introspect any token (a resource server
	// or gateway). Without it a client can introspect only its own tokens.
	CanIntrospect bool

	// GrantTypes defaults to authorization_code + refresh_token for a client
	// with RedirectURIs and to none for a client without (for example a
	// resource server that only introspects). GrantClientCredentials and
	// GrantTokenExchange are allowed for confidential clients.
	GrantTypes []string

	// TokenExchangeTargets are the audiences and resources this client may
	// ask tokens for with GrantTokenExchange (RFC 8693); any other target is
	// invalid_target.
	TokenExchangeTargets []string

	// CertificateBoundAccessTokens binds this client's access tokens to the
	// TLS client certificate of its token request (RFC 8705
	// tls_client_certificate_bound_access_tokens): JWTs and introspection
	// carry cnf.x5t#S256, and a token request without a client certificate
	// is refused. The provider must then be served on a TLS listener that
	// asks for client certificates (as an mTLS endpoint alias besides the
	// issuer's own listener); it reads the certificate from the connection
	// without judging it, as its client is authenticated otherwise.
	CertificateBoundAccessTokens bool
}

// Config configures a Provider. New validates it and reports every problem.
type Config struct {
	// Issuer is the provider's URL without a path, e.g. "http://127.0.0.1:43123"
	// or "http://localhost:9443". http is allowed only for loopback hosts.
	Issuer  string
	Users   []User
	Clients []Client

	// RotateRefreshTokens issues a new refresh token on every refresh; the
	// presented one stops working. Without it the response to a refresh has
	// no refresh_token and the client keeps using the one it has.
	RotateRefreshTokens bool
	// RefreshReuseDetection makes presenting a rotated-out refresh token
	// revoke the whole grant (all its access and refresh tokens); the request
	// fails with invalid_grant. It requires RotateRefreshTokens.
	RefreshReuseDetection bool
	// IssParameter (RFC 9207) advertises
	// authorization_response_iss_parameter_supported and adds iss=<issuer>
	// to every authorization response sent to a client redirect_uri, success
	// and error.
	IssParameter bool

	// Logger receives the provider's own logs; nil discards them. Passwords,
	// codes and tokens are never logged.
	//
	// zitadel's op package logs request errors through slog.Default and
	// cannot be given a logger.
	Logger *slog.Logger
	// Now is the clock for code, refresh token, access token and auth request
	// lifetimes; nil means time.Now. Signature and exp checks inside op
	// always use the wall clock.
	Now func() time.Time
}

// Stats counts the HTTP requests the provider received, per endpoint (token
// requests per grant_type), whether or not they succeeded.
type Stats struct {
	Authorize              int
	TokenAuthorizationCode int
	TokenRefresh           int
	TokenClientCredentials int
	TokenExchange          int
	TokenOther             int // any other or missing grant_type
	Introspection          int
	Revocation             int
	Userinfo               int
	JWKS                   int
	Discovery              int
	EndSession             int
	Login                  int // successful logins at the login page
	LoginFailed            int // rejected username/password submissions
}

type counters struct {
	authorize, tokenCode, tokenRefresh, tokenClientCredentials, tokenOther atomic.Int64
	tokenExchange                                                          atomic.Int64
	introspection, revocation, userinfo, jwks, discovery, endSession       atomic.Int64
	login, loginFailed                                                     atomic.Int64
}

// Provider is a running development OpenID Provider. It is an http.Handler;
// the caller serves it at the issuer's host.
type Provider struct {
	issuer   string
	log      *slog.Logger
	now      func() time.Time
	issParam bool

	store   *storage
	op      *op.Provider
	handler http.Handler
	pages   *template.Template
	stats   counters
}

// New validates cfg and builds a Provider with a fresh RSA-2048 signing key.
func New(cfg Config) (*Provider, error) {
	v, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	key, err := newSigningKey()
	if err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	p := &Provider{
		issuer:   v.issuer,
		log:      log,
		now:      now,
		issParam: cfg.IssParameter,
		pages:    pages,
	}
	p.store = newStorage(v, key, now, log)

	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("devidp: token encryption key: %w", err)
	}
	opts := []op.Option{
		// Only AES-256-GCM: op's default also tries the unauthenticated
		// legacy AES-CFB decrypter on every opaque token.
		op.WithCrypto(op.NewAES256GCMCrypto(cryptoKey, "")),
	}
	if v.insecure {
		opts = append(opts, op.WithAllowInsecure())
	}
	p.op, err = op.NewProvider(&op.Config{
		CryptoKey:                cryptoKey,
		DefaultLogoutRedirectURI: v.issuer + PathLoggedOut,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		AuthMethodPrivateKeyJWT:  true,
		GrantTypeRefreshToken:    true,
		SupportedScopes:          v.scopesSupported,
		SupportedClaims:          v.claimsSupported,
	}, p.store, op.StaticIssuer(v.issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}

	srv := &server{LegacyServer: op.NewLegacyServer(p.op, endpoints()), p: p}
	var sopts []op.ServerOption
	if p.issParam {
		// The encoder builds the error redirects of the authorization endpoint.
		sopts = append(sopts, op.WithEncoder(p.responseEncoder()))
	}
	opHandler := op.RegisterLegacyServer(srv, p.serveCallback, sopts...)

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathLogin, p.serveLogin)
	mux.HandleFunc("POST "+PathLogin, p.serveLogin)
	mux.HandleFunc("GET "+PathLoggedOut, p.serveLoggedOut)
	mux.Handle("/", opHandler)
	p.handler = p.instrument(mux)

	log.Info("devidp: provider ready", "issuer", v.issuer, "users", len(cfg.Users), "clients", len(cfg.Clients))
	return p, nil
}

func endpoints() op.Endpoints {
	return op.Endpoints{
		Authorization: op.NewEndpoint(PathAuthorize),
		Token:         op.NewEndpoint(PathToken),
		Introspection: op.NewEndpoint(PathIntrospect),
		Userinfo:      op.NewEndpoint(PathUserinfo),
		Revocation:    op.NewEndpoint(PathRevoke),
		EndSession:    op.NewEndpoint(PathEndSession),
		JwksURI:       op.NewEndpoint(PathKeys),
		// DeviceAuthorization and CheckSessionIframe stay nil: not served,
		// not advertised.
	}
}

// ServeHTTP serves the provider's endpoints and login page.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.handler.ServeHTTP(w, r)
}

// Issuer returns the issuer URL (no trailing slash).
func (p *Provider) Issuer() string { return p.issuer }

// Stats returns a snapshot of the request counters.
func (p *Provider) Stats() Stats {
	c := &p.stats
	return Stats{
		Authorize:              int(c.authorize.Load()),
		TokenAuthorizationCode: int(c.tokenCode.Load()),
		TokenRefresh:           int(c.tokenRefresh.Load()),
		TokenClientCredentials: int(c.tokenClientCredentials.Load()),
		TokenExchange:          int(c.tokenExchange.Load()),
		TokenOther:             int(c.tokenOther.Load()),
		Introspection:          int(c.introspection.Load()),
		Revocation:             int(c.revocation.Load()),
		Userinfo:               int(c.userinfo.Load()),
		JWKS:                   int(c.jwks.Load()),
		Discovery:              int(c.discovery.Load()),
		EndSession:             int(c.endSession.Load()),
		Login:                  int(c.login.Load()),
		LoginFailed:            int(c.loginFailed.Load()),
	}
}

// RotateSigningKey generates a new RSA-2048 key that signs every token from
// now on. The previous key stays in the JWKS so tokens it signed still
// verify; the key before that is dropped.
func (p *Provider) RotateSigningKey() error {
	key, err := newSigningKey()
	if err != nil {
		return fmt.Errorf("devidp: rotate signing key: %w", err)
	}
	p.store.rotateKey(key)
	p.log.Info("devidp: signing key rotated", "kid", key.id)
	return nil
}

// RevokeUserSessions makes every token of the user invalid: refresh tokens
// answer invalid_grant, access tokens are inactive at introspection and
// refused at userinfo, and pending authorization codes can no longer be
// exchanged. Self-contained JWT access tokens stay verifiable by signature
// until they expire, as with any real provider.
func (p *Provider) RevokeUserSessions(userID string) {
	n := p.store.revokeUser(userID)
	p.log.Info("devidp: user sessions revoked", "user_id", userID, "grants", n)
}

// opContext returns ctx carrying the issuer the op package expects.
func (p *Provider) opContext(ctx context.Context) context.Context {
	return op.ContextWithIssuer(ctx, p.issuer)
}
