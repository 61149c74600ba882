package devidp

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	authRequestLifetime = 10 * time.Minute // from /authorize to the code exchange
	codeLifetime        = time.Minute      // from the callback to the code exchange
	redeemedCodeMemory  = 10 * time.Minute // how long a used code is remembered for replay detection
	sweepInterval       = time.Minute
)

// Errors of the storage. Their texts end up in logs and error descriptions,
// so they never contain token, code or password values.
var (
	errUnknownClient     = errors.New("unknown client")
	errBadClientSecret   = errors.New("invalid client credentials")
	errUnknownAuthReq    = errors.New("unknown or expired authorization request")
	errTokenInactive     = errors.New("token is unknown, expired or revoked")
	errNoUser            = errors.New("token was not issued to a user")
	errNoOpenIDScope     = errors.New("token was not issued with the openid scope")
	errNotAllowedToIntro = errors.New("client may not introspect this token")
)

// storage is the provider's in-memory op.Storage. Users and clients are
// fixed at New; everything else is guarded by mu.
type storage struct {
	issuer         string
	now            func() time.Time
	log            *slog.Logger
	rotate         bool
	reuseDetection bool
	users          map[string]*User // by ID
	usersByName    map[string]*User
	clients        map[string]*client

	mu            sync.Mutex
	signing       *signingKey
	previous      *signingKey
	authRequests  map[string]*authRequest // by ID
	codes         map[string]string       // code -> auth request ID
	redeemedCodes map[string]redeemedCode // used code -> its grant, for replay detection
	grants        map[string]*grant
	accessTokens  map[string]*accessToken  // by ID (jti)
	refreshTokens map[string]*refreshToken // by token value
	assertions    map[string]time.Time     // client id + jti of used client assertions -> exp
	lastSweep     time.Time
}

var (
	_ op.Storage                   = (*storage)(nil)
	_ op.ClientCredentialsStorage  = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
)

func newStorage(v *validated, key *signingKey, now func() time.Time, log *slog.Logger) *storage {
	return &storage{
		issuer:         v.issuer,
		now:            now,
		log:            log,
		rotate:         v.rotate,
		reuseDetection: v.reuseDetection,
		users:          v.users,
		usersByName:    v.usersByName,
		clients:        v.clients,
		signing:        key,
		authRequests:   make(map[string]*authRequest),
		codes:          make(map[string]string),
		redeemedCodes:  make(map[string]redeemedCode),
		grants:         make(map[string]*grant),
		accessTokens:   make(map[string]*accessToken),
		refreshTokens:  make(map[string]*refreshToken),
		assertions:     make(map[string]time.Time),
	}
}

// authRequest is one authorization request from /authorize to the code
// exchange. The storage hands op copies, never its own records.
type authRequest struct {
	id            string
	clientID      string
	redirectURI   string
	state         string
	nonce         string
	scopes        []string
	responseType  oidc.ResponseType
	responseMode  oidc.ResponseMode
	codeChallenge *oidc.CodeChallenge
	loginHint     string
	expires       time.Time

	userID       string
	authTime     time.Time
	done         bool // the user logged in
	callbackUsed bool // the callback turned it into a code
	code         string
	codeExpires  time.Time
	redeemed     bool // the code was exchanged
	grantID      string
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string         { return a.id }
func (a *authRequest) GetACR() string        { return "" }
func (a *authRequest) GetAMR() []string      { return amrPassword(a.done) }
func (a *authRequest) GetAudience() []string { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time {
	return a.authTime
}
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.codeChallenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.userID }
func (a *authRequest) Done() bool                            { return a.done }

func (a *authRequest) copy() *authRequest {
	c := *a
	c.scopes = slices.Clone(a.scopes)
	return &c
}

func amrPassword(done bool) []string {
	if !done {
		return nil
	}
	return []string{"pwd"}
}

type redeemedCode struct {
	grantID string
	expires time.Time
}

// grant is one authorization of a user at a client: what a code exchange
// creates and what its refresh tokens extend. Revoking it ends all its tokens.
type grant struct {
	id       string
	clientID string
	userID   string
	scopes   []string
	authTime time.Time
	revoked  bool
}

type accessToken struct {
	id       string
	grantID  string // empty for client credentials
	clientID string
	userID   string // empty for client credentials
	subject  string
	scopes   []string
	audience []string
	authTime time.Time
	issued   time.Time
	expires  time.Time
	revoked  bool
	cnf      string            // x5t#S256 of the certificate the token is bound to
	actor    *oidc.ActorClaims // act: who acts for the subject (token exchange)
}

type refreshToken struct {
	token   string
	grantID string
	expires time.Time
	rotated bool // replaced by a newer token of the same grant
}

// refreshTokenRequest is what a valid refresh token stands for; it
// implements op.RefreshTokenRequest.
type refreshTokenRequest struct {
	grantID       string
	clientID      string
	userID        string
	scopes        []string // the grant's scopes
	currentScopes []string // narrowed by the refresh request's scope parameter
	authTime      time.Time
}

var _ op.RefreshTokenRequest = (*refreshTokenRequest)(nil)

func (r *refreshTokenRequest) GetAMR() []string       { return amrPassword(true) }
func (r *refreshTokenRequest) GetAudience() []string  { return []string{r.clientID} }
func (r *refreshTokenRequest) GetAuthTime() time.Time { return r.authTime }
func (r *refreshTokenRequest) GetClientID() string    { return r.clientID }
func (r *refreshTokenRequest) GetSubject() string     { return r.userID }
func (r *refreshTokenRequest) GetScopes() []string {
	if r.currentScopes != nil {
		return r.currentScopes
	}
	return r.scopes
}
func (r *refreshTokenRequest) SetCurrentScopes(scopes []string) { r.currentScopes = scopes }

// clientCredentialsRequest implements op.TokenRequest for the
// client_credentials grant; the subject is the client.
type clientCredentialsRequest struct {
	clientID string
	scopes   []string
}

func (r *clientCredentialsRequest) GetSubject() string    { return r.clientID }
func (r *clientCredentialsRequest) GetAudience() []string { return []string{r.clientID} }
func (r *clientCredentialsRequest) GetScopes() []string   { return r.scopes }

// --- keys ---

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signing, nil
}

func (s *storage) signingKey() *signingKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signing
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := []op.Key{s.signing.public()}
	if s.previous != nil {
		keys = append(keys, s.previous.public())
	}
	return keys, nil
}

func (s *storage) rotateKey(key *signingKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.previous, s.signing = s.signing, key
}

// --- clients ---

func (s *storage) client(id string) (*client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, errUnknownClient
	}
	return c, nil
}

// GetClientByClientID answers an unknown client with invalid_client, which
// op passes on as it is (a plain error would become a server_error at the
// authorization endpoint).
func (s *storage) GetClientByClientID(_ context.Context, clientID string) (op.Client, error) {
	c, err := s.client(clientID)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client").WithParent(err)
	}
	return c, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, clientID, clientSecret string) error {
	c, err := s.client(clientID)
	if err != nil {
		return err
	}
	return c.checkSecret(clientSecret)
}

func (c *client) checkSecret(secret string) error {
	if c.authMethod != oidc.AuthMethodBasic && c.authMethod != oidc.AuthMethodPost {
		return errBadClientSecret
	}
	if subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		return errBadClientSecret
	}
	return nil
}

func (s *storage) ClientCredentials(ctx context.Context, clientID, clientSecret string) (op.Client, error) {
	if err := s.AuthorizeClientIDSecret(ctx, clientID, clientSecret); err != nil {
		return nil, err
	}
	return s.clients[clientID], nil
}

// ClientCredentialsTokenRequest grants the requested scopes, which must be
// among the client's Scopes; no scope parameter grants all of them.
func (s *storage) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	c, err := s.client(clientID)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithParent(err)
	}
	if !c.hasGrant(oidc.GrantTypeClientCredentials) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client_credentials not allowed for this client")
	}
	if len(scopes) == 0 {
		return &clientCredentialsRequest{clientID: clientID, scopes: slices.Clone(c.scopes)}, nil
	}
	var granted []string
	for _, sc := range scopes {
		if !c.IsScopeAllowed(sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for this client", sc)
		}
		if !slices.Contains(granted, sc) {
			granted = append(granted, sc)
		}
	}
	return &clientCredentialsRequest{clientID: clientID, scopes: granted}, nil
}

// GetKeyByIDAndClientID finds the public key a client assertion names by
// kid; with a single key, a missing kid on either side matches.
func (s *storage) GetKeyByIDAndClientID(_ context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	c, err := s.client(clientID)
	if err != nil {
		return nil, err
	}
	for _, k := range c.publicKeys {
		if k.KeyID == keyID || (len(c.publicKeys) == 1 && (keyID == "" || k.KeyID == "")) {
			k := k
			return &k, nil
		}
	}
	return nil, errors.New("no public key of the client matches the assertion's kid")
}

// useAssertion records the jti of a verified client assertion and refuses
// one seen before (OpenID Connect Core 9: jti prevents reuse).
func (s *storage) useAssertion(clientID, jti string, exp time.Time) error {
	if jti == "" {
		return errors.New("client assertion has no jti")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := clientID + "\x00" + jti
	if seen, ok := s.assertions[key]; ok && s.now().Before(seen) {
		return errors.New("client assertion was already used (jti replay)")
	}
	s.assertions[key] = exp
	return nil
}

// --- authorization requests and codes ---

func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	id := rand.Text()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweepLocked(now)
	ar := &authRequest{
		id:           id,
		clientID:     req.ClientID,
		redirectURI:  req.RedirectURI,
		state:        req.State,
		nonce:        req.Nonce,
		scopes:       slices.Clone([]string(req.Scopes)),
		responseType: req.ResponseType,
		responseMode: req.ResponseMode,
		loginHint:    req.LoginHint,
		expires:      now.Add(authRequestLifetime),
	}
	if req.CodeChallenge != "" {
		ar.codeChallenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	if u := s.users[userID]; u != nil && ar.loginHint == "" {
		ar.loginHint = u.Username // from a valid id_token_hint
	}
	s.authRequests[id] = ar
	return ar.copy(), nil
}

func (s *storage) authRequestLocked(id string) (*authRequest, error) {
	ar, ok := s.authRequests[id]
	if !ok || !s.now().Before(ar.expires) {
		return nil, errUnknownAuthReq
	}
	return ar, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, err := s.authRequestLocked(id)
	if err != nil {
		return nil, err
	}
	return ar.copy(), nil
}

// pendingLogin returns the auth request the login page is for, if the user
// has not logged in for it yet.
func (s *storage) pendingLogin(id string) (*authRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, err := s.authRequestLocked(id)
	if err != nil || ar.done {
		return nil, errUnknownAuthReq
	}
	return ar.copy(), nil
}

// completeLogin marks the auth request as authenticated by userID.
func (s *storage) completeLogin(id, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, err := s.authRequestLocked(id)
	if err != nil || ar.done {
		return errUnknownAuthReq
	}
	ar.userID, ar.authTime, ar.done = userID, s.now(), true
	return nil
}

// takeForCallback returns the auth request for the one callback that may
// turn it into a code.
func (s *storage) takeForCallback(id string) (*authRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, err := s.authRequestLocked(id)
	if err != nil || ar.callbackUsed {
		return nil, errUnknownAuthReq
	}
	// Only a completed login uses up the callback; an early call gets
	// interaction_required and leaves the login page usable.
	ar.callbackUsed = ar.done
	return ar.copy(), nil
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, err := s.authRequestLocked(id)
	if err != nil {
		return err
	}
	if !ar.done || ar.code != "" {
		return errors.New("authorization request cannot take a code")
	}
	ar.code, ar.codeExpires = code, s.now().Add(codeLifetime)
	s.codes[code] = id
	return nil
}

// AuthRequestByCode finds the auth request of an unused, unexpired code. A
// code that was already exchanged revokes the grant it created (RFC 6749
// 4.1.2).
func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if id, ok := s.codes[code]; ok {
		ar, err := s.authRequestLocked(id)
		if err != nil {
			return nil, err
		}
		if !now.Before(ar.codeExpires) {
			return nil, errors.New("authorization code expired")
		}
		if ar.redeemed {
			return nil, errors.New("authorization code already used")
		}
		return ar.copy(), nil
	}
	if rc, ok := s.redeemedCodes[code]; ok && now.Before(rc.expires) {
		if g := s.grants[rc.grantID]; g != nil && !g.revoked {
			s.revokeGrantLocked(g)
			s.log.Warn("devidp: authorization code replayed; its grant is revoked",
				"client_id", g.clientID, "user_id", g.userID)
		}
		return nil, errors.New("authorization code already used")
	}
	return nil, errors.New("unknown authorization code")
}

func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteAuthRequestLocked(id)
	return nil
}

func (s *storage) deleteAuthRequestLocked(id string) {
	ar, ok := s.authRequests[id]
	if !ok {
		return
	}
	if ar.code != "" {
		delete(s.codes, ar.code)
		if ar.redeemed {
			s.redeemedCodes[ar.code] = redeemedCode{grantID: ar.grantID, expires: s.now().Add(redeemedCodeMemory)}
		}
	}
	delete(s.authRequests, id)
}

// --- tokens ---

// CreateAccessToken issues an access token without a refresh token.
func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, _, err := s.issueLocked(req, "", false)
	if err != nil {
		return "", time.Time{}, err
	}
	return at.id, at.expires, nil
}

// CreateAccessAndRefreshTokens issues an access token and, for a code
// exchange or a refresh with rotation, a new refresh token. A refresh
// without rotation returns no new refresh token: the client keeps its own.
func (s *storage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, rt, err := s.issueLocked(req, currentRefreshToken, true)
	if err != nil {
		return "", "", time.Time{}, err
	}
	return at.id, rt, at.expires, nil
}

func (s *storage) issueLocked(req op.TokenRequest, currentRefreshToken string, withRefresh bool) (*accessToken, string, error) {
	now := s.now()
	s.sweepLocked(now)
	switch r := req.(type) {
	case *authRequest:
		ar, err := s.authRequestLocked(r.id)
		if err != nil || !ar.done || ar.redeemed {
			return nil, "", oidc.ErrInvalidGrant().WithDescription("authorization code is no longer valid")
		}
		c, err := s.client(ar.clientID)
		if err != nil {
			return nil, "", oidc.ErrInvalidClient().WithParent(err)
		}
		g := &grant{id: rand.Text(), clientID: ar.clientID, userID: ar.userID, scopes: slices.Clone(ar.scopes), authTime: ar.authTime}
		s.grants[g.id] = g
		ar.redeemed, ar.grantID = true, g.id
		at := s.newAccessTokenLocked(c, g, g.scopes, now)
		if !withRefresh {
			return at, "", nil
		}
		return at, s.newRefreshTokenLocked(c, g, now), nil

	case *refreshTokenRequest:
		c, err := s.client(r.clientID)
		if err != nil {
			return nil, "", oidc.ErrInvalidClient().WithParent(err)
		}
		var g *grant
		if withRefresh {
			var rt *refreshToken
			rt, g, err = s.checkRefreshLocked(currentRefreshToken)
			if err != nil {
				return nil, "", err
			}
			if g.id != r.grantID {
				return nil, "", oidc.ErrInvalidGrant()
			}
			at := s.newAccessTokenLocked(c, g, r.GetScopes(), now)
			if !s.rotate {
				return at, "", nil
			}
			rt.rotated = true
			return at, s.newRefreshTokenLocked(c, g, now), nil
		}
		g = s.grants[r.grantID]
		if g == nil || g.revoked {
			return nil, "", oidc.ErrInvalidGrant().WithDescription("grant was revoked")
		}
		return s.newAccessTokenLocked(c, g, r.GetScopes(), now), "", nil

	case *clientCredentialsRequest:
		c, err := s.client(r.clientID)
		if err != nil {
			return nil, "", oidc.ErrInvalidClient().WithParent(err)
		}
		at := &accessToken{
			id:       rand.Text(),
			clientID: c.id,
			subject:  c.id,
			scopes:   slices.Clone(r.scopes),
			audience: c.audience,
			issued:   now,
			expires:  now.Add(c.accessTokenLifetime),
		}
		s.accessTokens[at.id] = at
		return at, "", nil
	}
	return nil, "", oidc.ErrUnsupportedGrantType()
}

// bindToken binds the access token with the id to a certificate (RFC 8705).
func (s *storage) bindToken(id, thumbprint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.accessTokens[id]; ok {
		at.cnf = thumbprint
	}
}

// activeAccessToken returns a copy of the access token with the id and
// subject if it may be used now.
func (s *storage) activeAccessToken(id, subject string) (accessToken, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.activeAccessTokenLocked(id)
	if !ok || at.subject != subject {
		return accessToken{}, false
	}
	return *at, true
}

// issueExchanged issues the access token of a token exchange: the subject
// token's user and grant, the exchanging client, the given scopes, audience
// and actor.
func (s *storage) issueExchanged(subject accessToken, c *client, scopes, audience []string, actor *oidc.ActorClaims) (accessToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweepLocked(now)
	if subject.grantID != "" {
		if g := s.grants[subject.grantID]; g == nil || g.revoked {
			return accessToken{}, oidc.ErrInvalidGrant().WithDescription("subject token was revoked")
		}
	}
	at := &accessToken{
		id:       rand.Text(),
		grantID:  subject.grantID,
		clientID: c.id,
		userID:   subject.userID,
		subject:  subject.subject,
		scopes:   slices.Clone(scopes),
		audience: slices.Clone(audience),
		authTime: subject.authTime,
		issued:   now,
		expires:  now.Add(c.accessTokenLifetime),
		actor:    actor,
	}
	s.accessTokens[at.id] = at
	return *at, nil
}

func (s *storage) newAccessTokenLocked(c *client, g *grant, scopes []string, now time.Time) *accessToken {
	at := &accessToken{
		id:       rand.Text(),
		grantID:  g.id,
		clientID: c.id,
		userID:   g.userID,
		subject:  g.userID,
		scopes:   slices.Clone(scopes),
		audience: c.audience,
		authTime: g.authTime,
		issued:   now,
		expires:  now.Add(c.accessTokenLifetime),
	}
	s.accessTokens[at.id] = at
	return at
}

func (s *storage) newRefreshTokenLocked(c *client, g *grant, now time.Time) string {
	rt := &refreshToken{token: rand.Text() + rand.Text(), grantID: g.id, expires: now.Add(c.refreshTokenLifetime)}
	s.refreshTokens[rt.token] = rt
	return rt.token
}

// checkRefreshLocked returns a refresh token that may be used now. A
// rotated-out token revokes its grant when reuse detection is on.
func (s *storage) checkRefreshLocked(token string) (*refreshToken, *grant, error) {
	rt, ok := s.refreshTokens[token]
	if !ok {
		return nil, nil, oidc.ErrInvalidGrant().WithDescription("unknown refresh token")
	}
	g := s.grants[rt.grantID]
	if g == nil || g.revoked {
		return nil, nil, oidc.ErrInvalidGrant().WithDescription("refresh token was revoked")
	}
	if rt.rotated {
		if s.reuseDetection {
			s.revokeGrantLocked(g)
			s.log.Warn("devidp: rotated-out refresh token reused; its grant is revoked",
				"client_id", g.clientID, "user_id", g.userID)
			return nil, nil, oidc.ErrInvalidGrant().WithDescription("refresh token was already used; the grant is revoked")
		}
		return nil, nil, oidc.ErrInvalidGrant().WithDescription("refresh token was already used")
	}
	if !s.now().Before(rt.expires) {
		return nil, nil, oidc.ErrInvalidGrant().WithDescription("refresh token expired")
	}
	return rt, g, nil
}

func (s *storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, g, err := s.checkRefreshLocked(token)
	if err != nil {
		return nil, err
	}
	return &refreshTokenRequest{
		grantID:  g.id,
		clientID: g.clientID,
		userID:   g.userID,
		scopes:   slices.Clone(g.scopes),
		authTime: g.authTime,
	}, nil
}

func (s *storage) GetRefreshTokenInfo(_ context.Context, _ string, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refreshTokens[token]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	var userID string
	if g := s.grants[rt.grantID]; g != nil {
		userID = g.userID
	}
	return userID, token, nil
}

// activeAccessTokenLocked returns the access token with the id if it may be
// used now.
func (s *storage) activeAccessTokenLocked(id string) (*accessToken, bool) {
	at, ok := s.accessTokens[id]
	if !ok || at.revoked || !s.now().Before(at.expires) {
		return nil, false
	}
	if at.grantID != "" {
		if g := s.grants[at.grantID]; g == nil || g.revoked {
			return nil, false
		}
	}
	return at, true
}

// RevokeToken revokes an access token (by id) or a refresh token (by value,
// which revokes its whole grant). An unknown token is not an error (RFC
// 7009 2.2); a token of another client is refused.
func (s *storage) RevokeToken(_ context.Context, tokenOrID, _ string, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.accessTokens[tokenOrID]; ok {
		if at.clientID != clientID {
			return oidc.ErrInvalidGrant().WithDescription("token was not issued to this client")
		}
		at.revoked = true
		return nil
	}
	if rt, ok := s.refreshTokens[tokenOrID]; ok {
		g := s.grants[rt.grantID]
		if g == nil {
			return nil
		}
		if g.clientID != clientID {
			return oidc.ErrInvalidGrant().WithDescription("token was not issued to this client")
		}
		s.revokeGrantLocked(g)
		return nil
	}
	return nil
}

func (s *storage) revokeGrantLocked(g *grant) {
	g.revoked = true
	for _, at := range s.accessTokens {
		if at.grantID == g.id {
			at.revoked = true
		}
	}
}

// revokeUser revokes every grant and access token of the user and drops
// its pending authorization requests. It returns the number of grants.
func (s *storage) revokeUser(userID string) int {
	return s.revokeSessions(userID, "")
}

// TerminateSession ends what the provider holds for the user at the client:
// its grants (with their tokens) and pending authorization requests.
func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	if userID == "" {
		return nil // no id_token_hint: nobody to log out
	}
	n := s.revokeSessions(userID, clientID)
	s.log.Info("devidp: session ended", "user_id", userID, "client_id", clientID, "grants", n)
	return nil
}

// revokeSessions revokes the user's grants and tokens, at one client or at
// all when clientID is empty.
func (s *storage) revokeSessions(userID, clientID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, g := range s.grants {
		if g.userID == userID && (clientID == "" || g.clientID == clientID) && !g.revoked {
			s.revokeGrantLocked(g)
			n++
		}
	}
	for _, at := range s.accessTokens {
		if at.userID == userID && (clientID == "" || at.clientID == clientID) {
			at.revoked = true
		}
	}
	for id, ar := range s.authRequests {
		if ar.userID == userID && (clientID == "" || ar.clientID == clientID) {
			s.deleteAuthRequestLocked(id)
		}
	}
	return n
}

// --- userinfo, claims, introspection ---

func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil // deprecated by op; SetUserinfoFromRequest does the work
}

// SetUserinfoFromRequest fills the ID token's user claims.
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	u := s.users[req.GetSubject()]
	if u == nil {
		return errNoUser
	}
	fillUserinfo(info, u, scopes)
	return nil
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	at, ok := s.activeAccessTokenLocked(tokenID)
	var scopes []string
	if ok {
		scopes = slices.Clone(at.scopes)
	}
	s.mu.Unlock()
	if !ok || at.subject != subject {
		return errTokenInactive
	}
	u := s.users[at.userID]
	if at.userID == "" || u == nil {
		return errNoUser
	}
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		return errNoOpenIDScope
	}
	fillUserinfo(info, u, scopes)
	return nil
}

// fillUserinfo sets sub, the profile and email claims the scopes grant, and
// the user's extra claims.
func fillUserinfo(info *oidc.UserInfo, u *User, scopes []string) {
	info.Subject = u.ID
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.Name = strings.TrimSpace(u.GivenName + " " + u.FamilyName)
		info.GivenName = u.GivenName
		info.FamilyName = u.FamilyName
		info.PreferredUsername = u.Username
	}
	if slices.Contains(scopes, oidc.ScopeEmail) && u.Email != "" {
		info.Email = u.Email
		info.EmailVerified = true
	}
	for k, v := range u.Claims {
		info.AppendClaims(k, v)
	}
}

func (s *storage) userClaims(userID string) map[string]any {
	if u := s.users[userID]; u != nil {
		return cloneClaims(u.Claims)
	}
	return nil
}

func (s *storage) GetPrivateClaimsFromScopes(_ context.Context, userID, _ string, _ []string) (map[string]any, error) {
	return s.userClaims(userID), nil
}

// SetIntrospectionFromToken fills resp for an active access token that the
// calling client may see: its own, or any when it has CanIntrospect.
func (s *storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	caller, err := s.client(clientID)
	if err != nil {
		return err
	}
	return s.introspectAccessToken(resp, tokenID, subject, caller)
}

func (s *storage) introspectAccessToken(resp *oidc.IntrospectionResponse, tokenID, subject string, caller *client) error {
	s.mu.Lock()
	at, ok := s.activeAccessTokenLocked(tokenID)
	var snapshot accessToken
	if ok {
		snapshot = *at
	}
	s.mu.Unlock()
	if !ok || snapshot.subject != subject {
		return errTokenInactive
	}
	if snapshot.clientID != caller.id && !caller.canIntrospect {
		return errNotAllowedToIntro
	}
	if u := s.users[snapshot.userID]; snapshot.userID != "" && u != nil {
		info := new(oidc.UserInfo)
		fillUserinfo(info, u, snapshot.scopes)
		resp.SetUserInfo(info)
		resp.Username = u.Username
		resp.AuthTime = oidc.FromTime(snapshot.authTime)
	}
	resp.Active = true
	resp.Scope = snapshot.scopes
	resp.ClientID = snapshot.clientID
	resp.TokenType = oidc.BearerToken
	resp.Expiration = oidc.FromTime(snapshot.expires)
	resp.IssuedAt = oidc.FromTime(snapshot.issued)
	resp.NotBefore = oidc.FromTime(snapshot.issued)
	resp.Subject = snapshot.subject
	resp.Audience = slices.Clone(snapshot.audience)
	resp.Issuer = s.issuer
	resp.JWTID = snapshot.id
	resp.Actor = snapshot.actor
	if snapshot.cnf != "" {
		if resp.Claims == nil {
			resp.Claims = map[string]any{}
		}
		resp.Claims["cnf"] = map[string]any{"x5t#S256": snapshot.cnf}
	}
	return nil
}

// introspectRefreshToken fills resp for an active refresh token of the
// caller (or any, with CanIntrospect). It reports whether token is a
// refresh token at all.
func (s *storage) introspectRefreshToken(resp *oidc.IntrospectionResponse, token string, caller *client) bool {
	s.mu.Lock()
	rt, ok := s.refreshTokens[token]
	if !ok {
		s.mu.Unlock()
		return false
	}
	g := s.grants[rt.grantID]
	active := g != nil && !g.revoked && !rt.rotated && s.now().Before(rt.expires)
	var snapshot grant
	if g != nil {
		snapshot = *g
	}
	expires := rt.expires
	s.mu.Unlock()
	if !active || (snapshot.clientID != caller.id && !caller.canIntrospect) {
		return true
	}
	resp.Active = true
	resp.Scope = snapshot.scopes
	resp.ClientID = snapshot.clientID
	resp.TokenType = "refresh_token"
	resp.Expiration = oidc.FromTime(expires)
	resp.Subject = snapshot.userID
	resp.Issuer = s.issuer
	if u := s.users[snapshot.userID]; u != nil {
		resp.Username = u.Username
	}
	return true
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, oidc.ErrUnsupportedGrantType().WithDescription("the JWT bearer grant is not supported")
}

func (s *storage) Health(context.Context) error { return nil }

// sweepLocked drops expired records, at most once per sweepInterval.
func (s *storage) sweepLocked(now time.Time) {
	if now.Sub(s.lastSweep) < sweepInterval {
		return
	}
	s.lastSweep = now
	for id, ar := range s.authRequests {
		if !now.Before(ar.expires) {
			s.deleteAuthRequestLocked(id)
		}
	}
	for code, rc := range s.redeemedCodes {
		if !now.Before(rc.expires) {
			delete(s.redeemedCodes, code)
		}
	}
	for id, at := range s.accessTokens {
		if !now.Before(at.expires) {
			delete(s.accessTokens, id)
		}
	}
	for token, rt := range s.refreshTokens {
		if !now.Before(rt.expires) {
			delete(s.refreshTokens, token)
		}
	}
	for key, exp := range s.assertions {
		if !now.Before(exp) {
			delete(s.assertions, key)
		}
	}
}
