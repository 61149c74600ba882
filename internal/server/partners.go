package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/exchange"
	"github.com/gatehouse-dev/gatehouse/internal/forward"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/servicetoken"
	"github.com/gatehouse-dev/gatehouse/internal/vault/sqlstore"
)

// partners holds what API users, partners and services need, built once:
// the API key entry, the client CAs of the mtls entry, and Gatehouse's own
// client at the token endpoint with its exchanger and service tokens.
type partners struct {
	apiKeys *authn.APIKeys
	// apiKeyStore holds the keys of api_keys.store; closed by Stop.
	apiKeyStore *sqlstore.Store
	clientCAs   *x509.CertPool
	tokenClient *oauthclient.Client
	exchanger   *exchange.Exchanger
	// serviceTokens are shared by the routes (and the exchanger's actor)
	// asking for the same target.
	serviceTokens map[string]*servicetoken.Source
}

// buildPartners builds the API key entry, reads the client CAs and sets up
// Gatehouse's token endpoint client.
func (s *Server) buildPartners() error {
	if k := s.cfg.APIKeys; k != nil {
		keys := make([]authn.APIKey, 0, len(k.Keys))
		for i, kc := range k.Keys {
			sum, err := apikey.ParseHash(kc.Hash)
			if err != nil {
				return fmt.Errorf("server: api_keys.keys[%d].hash: %w", i, err)
			}
			keys = append(keys, authn.APIKey{
				ID: kc.ID, Sum: sum, ClientID: kc.ClientID, Scopes: kc.Scopes,
				Expires: kc.ExpiryTime(), Revoked: kc.Revoked,
			})
		}
		ec := authn.APIKeysConfig{Header: k.Header, Keys: keys, Now: s.opts.Now}
		if k.Store != nil {
			st, err := openStore("api_keys.store", *k.Store, s.opts.ConfigDir)
			if err != nil {
				return err
			}
			s.apiKeyStore = st
			ec.Store = st.APIKeys()
		}
		e, err := authn.NewAPIKeys(ec)
		if err != nil {
			return fmt.Errorf("server: api_keys: %w", err)
		}
		s.apiKeys = e
	}
	if f := s.cfg.TLS.ClientCAFile; f != "" {
		b, err := readFile(s.abs(f))
		if err != nil {
			return fmt.Errorf("server: tls.client_ca_file: %w", err)
		}
		if s.clientCAs, err = config.ParseCertPool(b); err != nil {
			return fmt.Errorf("server: tls.client_ca_file: %w", err)
		}
	}
	as := s.cfg.AuthorizationServer
	if as == nil || as.TokenClient == nil {
		return nil
	}
	tc := as.TokenClient
	auth, err := s.clientAuth("authorization_server.token_client", tc.ClientAuth, tc.ClientID, tc.ClientSecret)
	if err != nil {
		return err
	}
	s.tokenClient = &oauthclient.Client{Provider: s.provider, ClientID: tc.ClientID, Auth: auth, HTTP: s.as.hc}
	s.serviceTokens = map[string]*servicetoken.Source{}
	actor, err := s.serviceToken("", "", nil)
	if err != nil {
		return err
	}
	s.exchanger, err = exchange.New(exchange.Config{
		Client: s.tokenClient, Actor: actor.Token, Clock: s.opts.Now, Logger: s.logger,
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// serviceToken returns the shared client-credentials source for a target.
func (s *Server) serviceToken(audience, resource string, scopes []string) (*servicetoken.Source, error) {
	key := audience + "\x00" + resource + "\x00" + strings.Join(scopes, " ")
	if src, ok := s.serviceTokens[key]; ok {
		return src, nil
	}
	src, err := servicetoken.New(servicetoken.Config{
		Client: s.tokenClient, Audience: audience, Resource: resource, Scopes: scopes, Clock: s.opts.Now, Logger: s.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.serviceTokens[key] = src
	return src, nil
}

// tokenForward builds forward exchange and client_credentials.
func (s *Server) tokenForward(i int, rc *config.Route) (forward.Forwarder, error) {
	if s.tokenClient == nil {
		return nil, fmt.Errorf("server: routes[%d]: forward %s needs authorization_server.token_client", i, rc.Forward)
	}
	if rc.Forward == "exchange" {
		x := rc.Exchange
		if x == nil {
			return nil, fmt.Errorf("server: routes[%d]: forward exchange needs exchange", i)
		}
		return &forward.Exchange{Exchanger: s.exchanger, Request: exchange.Request{
			Audience: x.Audience, Resource: x.Resource, Scopes: x.Scopes, Actor: x.Actor,
		}}, nil
	}
	var cc config.ClientCredentials
	if rc.ClientCredentials != nil {
		cc = *rc.ClientCredentials
	}
	src, err := s.serviceToken(cc.Audience, cc.Resource, cc.Scopes)
	if err != nil {
		return nil, err
	}
	return &forward.ClientCredentials{Source: src}, nil
}

// mtlsEntry builds a route's mtls entry; checker checks bound tokens.
func (s *Server) mtlsEntry(i int, rc *config.Route, checker authn.Checker) (*authn.MTLS, error) {
	if s.clientCAs == nil || rc.MTLS == nil {
		return nil, fmt.Errorf("server: routes[%d]: the mtls entry needs tls.client_ca_file and mtls", i)
	}
	m := &authn.MTLS{Roots: s.clientCAs, Now: s.opts.Now, Realm: authn.Realm}
	for _, c := range rc.MTLS.Clients {
		m.Clients = append(m.Clients, authn.MTLSClient{
			SubjectCN: c.SubjectCN, SANDNS: c.SANDNS, SANURI: c.SANURI, ClientID: c.ClientID, Scopes: c.Scopes,
		})
	}
	if rc.MTLS.BoundToken {
		if checker == nil {
			return nil, fmt.Errorf("server: routes[%d]: mtls.bound_token needs token_format", i)
		}
		m.Bound = checker
	}
	return m, nil
}

// upstreamTLS builds the TLS client configuration of a route's upstream.
func (s *Server) upstreamTLS(u *config.UpstreamTLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.ServerName}
	if u.CAFile != "" {
		b, err := readFile(s.abs(u.CAFile))
		if err != nil {
			return nil, err
		}
		if c.RootCAs, err = config.ParseCertPool(b); err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
	}
	if u.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.abs(u.CertFile), s.abs(u.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("cert_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// requestClientCerts makes the listener ask for (not require) a client
// certificate, naming the client CAs: routes with the mtls entry verify it,
// every other route works without one.
func (s *Server) requestClientCerts(c *tls.Config) {
	if s.clientCAs == nil {
		return
	}
	c.ClientAuth = tls.RequestClientCert
	c.ClientCAs = s.clientCAs
}

// closePartners releases the API key store.
func (s *Server) closePartners() {
	if s.apiKeyStore == nil {
		return
	}
	if err := s.apiKeyStore.Close(); err != nil {
		s.logger.Warn("api_keys: closing the store failed", "error", err.Error())
	}
	s.apiKeyStore = nil
}

// dropHeaders are request headers no upstream receives.
func (s *Server) dropHeaders() []string {
	if s.apiKeys == nil {
		return nil
	}
	return []string{s.apiKeys.Header()}
}
