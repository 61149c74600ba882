package server

import (
	"crypto"
	"fmt"
	"net/url"
	"os"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/authz"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/forward"
	"github.com/gatehouse-dev/gatehouse/internal/mint"
	"github.com/gatehouse-dev/gatehouse/internal/origin"
	"github.com/gatehouse-dev/gatehouse/internal/proxy"
	"github.com/gatehouse-dev/gatehouse/internal/sessioncookie"
)

// buildRoute turns routes[i] into a proxy route: its entries with their
// token checker, its requirements and its forwarder.
func (s *Server) buildRoute(i int, cookies *sessioncookie.Codec, origins *origin.Policy) (proxy.Route, error) {
	rc := &s.cfg.Routes[i]
	up, err := url.Parse(rc.Upstream)
	if err != nil {
		return proxy.Route{}, fmt.Errorf("server: routes[%d].upstream: %w", i, err)
	}
	r := proxy.Route{
		Name: rc.Name, Path: rc.Path, StripPrefix: rc.StripPrefix, Methods: rc.Methods,
		Upstream: up, Timeout: rc.Timeout.D(), MaxBody: rc.BodyLimit(), Websocket: rc.Websocket,
	}
	var checker authn.Checker
	if rc.TokenFormat != "" {
		if s.as == nil {
			return proxy.Route{}, fmt.Errorf("server: routes[%d]: token_format needs authorization_server", i)
		}
		checker = s.as.checker(rc, s.cfg)
	}
	for _, e := range rc.Entry {
		switch e {
		case "cookie":
			r.Entries = append(r.Entries, &authn.Cookie{Cookies: cookies, Origins: origins, Checker: checker})
		case "bearer":
			r.Entries = append(r.Entries, &authn.Bearer{Checker: checker, Realm: authn.Realm})
		case "anonymous":
			r.Entries = append(r.Entries, authn.Anonymous{})
		case "apikey":
			if s.apiKeys == nil {
				return proxy.Route{}, fmt.Errorf("server: routes[%d]: the apikey entry needs api_keys", i)
			}
			r.Entries = append(r.Entries, s.apiKeys)
		case "mtls":
			m, err := s.mtlsEntry(i, rc, checker)
			if err != nil {
				return proxy.Route{}, err
			}
			r.Entries = append(r.Entries, m)
		default:
			return proxy.Route{}, fmt.Errorf("server: routes[%d]: unsupported entry %q", i, e)
		}
	}
	if q := rc.Require; q != nil {
		r.Require = authz.New(authz.Rules{
			Scopes: q.Scopes, AnyScopes: q.AnyScopes, Roles: q.Roles, AnyRoles: q.AnyRoles,
			RolesClaim: q.RolesClaim, Claims: q.Claims,
		})
	}
	switch rc.Forward {
	case "phantom", "internal_jwt":
		m := &forward.Minted{Minter: s.minter, Audience: rc.Audience, Claims: rc.ForwardClaims, PreferUpstreamJWT: rc.Forward == "phantom"}
		if s.minter == nil {
			if in := s.cfg.RouteIntrospection(rc); rc.Forward == "internal_jwt" || in == nil || in.Format != "jwt" {
				return proxy.Route{}, fmt.Errorf("server: routes[%d]: forward %s needs internal_jwt", i, rc.Forward)
			}
		}
		r.Forward = m
	case "exchange", "client_credentials":
		f, err := s.tokenForward(i, rc)
		if err != nil {
			return proxy.Route{}, err
		}
		r.Forward = f
	default:
		r.Forward = forward.AccessToken{}
	}
	if rc.UpstreamTLS != nil {
		if r.TLS, err = s.upstreamTLS(rc.UpstreamTLS); err != nil {
			return proxy.Route{}, fmt.Errorf("server: routes[%d].upstream_tls: %w", i, err)
		}
	}
	return r, nil
}

// buildMinter loads (or creates) the signing keys of internal JWTs.
func (s *Server) buildMinter(j *config.InternalJWT) (*mint.Minter, error) {
	// algorithm is the type of a key Gatehouse creates (it defaults to
	// ES256); a key file that exists is used as it is, P-256 or Ed25519,
	// as config validation accepted it.
	path, alg := s.abs(j.KeyFile), j.Algorithm
	if _, err := os.Stat(path); err == nil {
		alg = ""
	}
	cur, err := mint.LoadOrCreateKey(path, alg)
	if err != nil {
		return nil, fmt.Errorf("server: internal_jwt.key_file: %w", err)
	}
	keys := []crypto.Signer{cur}
	for i, f := range j.PreviousKeyFiles {
		k, err := mint.LoadOrCreateKey(s.abs(f), "")
		if err != nil {
			return nil, fmt.Errorf("server: internal_jwt.previous_key_files[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	m, err := mint.New(mint.Config{Issuer: s.cfg.PublicURL, Keys: keys, TTL: j.TTL.D(), Clock: s.opts.Now})
	if err != nil {
		return nil, fmt.Errorf("server: internal_jwt: %w", err)
	}
	return m, nil
}
