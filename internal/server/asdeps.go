package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/introspect"
	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
)

// asDeps builds, once the authorization server is discovered, what depends
// on its metadata: one key set (its jwks_uri) shared by every verifier, and
// one introspector per introspection client (shared, so that routes using
// the same client share one cache).
type asDeps struct {
	provider  *oauthclient.Provider
	hc        *http.Client
	now       func() time.Time
	logger    *slog.Logger
	allowHTTP bool
	build     func(*config.Introspection) (oauthclient.ClientAuth, error)

	mu     sync.Mutex
	keys   *jwtverify.KeySet
	intros map[*config.Introspection]*introspect.Introspector
}

// keySet returns the authorization server's key set, building it on the
// first call after discovery.
func (d *asDeps) keySet() (*jwtverify.KeySet, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys != nil {
		return d.keys, nil
	}
	md, err := d.provider.Metadata()
	if err != nil {
		return nil, err
	}
	ks, err := jwtverify.NewKeySet(jwtverify.KeySetConfig{
		URL: md.JWKSURI, InsecureAllowHTTP: d.allowHTTP, Client: d.hc, Clock: d.now, Logger: d.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("server: authorization server key set: %w", err)
	}
	d.keys = ks
	return ks, nil
}

// introspector returns the shared introspector of client configuration c.
func (d *asDeps) introspector(c *config.Introspection) (*introspect.Introspector, error) {
	d.mu.Lock()
	if in, ok := d.intros[c]; ok {
		d.mu.Unlock()
		return in, nil
	}
	d.mu.Unlock()
	format, err := introspect.ParseFormat(c.Format)
	if err != nil {
		return nil, err
	}
	var keys *jwtverify.KeySet
	if format == introspect.FormatRFC9701 {
		if keys, err = d.keySet(); err != nil {
			return nil, err
		}
	}
	auth, err := d.build(c)
	if err != nil {
		return nil, err
	}
	in, err := introspect.New(introspect.Config{
		Endpoint: func() (string, error) {
			md, err := d.provider.Metadata()
			if err != nil {
				return "", err
			}
			if md.IntrospectionEndpoint == "" {
				return "", fmt.Errorf("server: the authorization server has no introspection endpoint (set authorization_server.introspection_endpoint)")
			}
			return md.IntrospectionEndpoint, nil
		},
		Issuer:   d.provider.Issuer(),
		ClientID: c.ClientID,
		Auth:     auth,
		HTTP:     d.hc,
		Format:   format,
		Keys:     keys,
		MaxTTL:   c.MaxCacheTTL.D(),
		Clock:    d.now,
		Logger:   d.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("server: introspection client %s: %w", c.ClientID, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if prev, ok := d.intros[c]; ok {
		return prev, nil
	}
	d.intros[c] = in
	return in, nil
}

// lazyChecker builds its Checker on first use, after discovery, and retries
// the build on later requests while it fails (the request gets 502). Once
// built, the checker is read without a lock: every request of the route
// passes here.
type lazyChecker struct {
	build func() (authn.Checker, error)

	mu sync.Mutex // serializes builds
	c  atomic.Pointer[checkerRef]
}

type checkerRef struct{ authn.Checker }

func (l *lazyChecker) Check(ctx context.Context, token string) (*authn.Principal, error) {
	if c := l.c.Load(); c != nil {
		return c.Check(ctx, token)
	}
	l.mu.Lock()
	c := l.c.Load()
	if c == nil {
		built, err := l.build()
		if err != nil {
			l.mu.Unlock()
			return nil, authn.ErrASUnavailable.WithCause(err)
		}
		c = &checkerRef{built}
		l.c.Store(c)
	}
	l.mu.Unlock()
	return c.Check(ctx, token)
}

// checker returns the token checker of a route's token_format.
func (d *asDeps) checker(rc *config.Route, cfg *config.Config) authn.Checker {
	switch rc.TokenFormat {
	case "jwt":
		return &lazyChecker{build: func() (authn.Checker, error) {
			keys, err := d.keySet()
			if err != nil {
				return nil, err
			}
			v, err := jwtverify.New(keys, jwtverify.Config{
				Purpose:       jwtverify.AccessToken,
				Issuer:        d.provider.Issuer(),
				Audience:      rc.Audience,
				Algorithms:    rc.Algorithms,
				Leeway:        rc.Leeway.D(),
				AcceptUntyped: rc.AcceptUntypedJWT,
				Clock:         d.now,
			})
			if err != nil {
				return nil, fmt.Errorf("server: route %s: %w", rc.Name, err)
			}
			return authn.NewJWTChecker(v, d.now, 0), nil
		}}
	case "opaque":
		ic := cfg.RouteIntrospection(rc)
		return &lazyChecker{build: func() (authn.Checker, error) {
			in, err := d.introspector(ic)
			if err != nil {
				return nil, err
			}
			return &authn.OpaqueChecker{Introspector: in}, nil
		}}
	}
	return nil
}
