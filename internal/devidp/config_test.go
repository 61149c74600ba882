package devidp_test

import (
	"errors"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	rsa, _ := clientKeys(t)
	good := func() devidp.Config {
		return devidp.Config{
			Issuer:  "http://127.0.0.1:9000",
			Users:   []devidp.User{{ID: "u1", Username: "u", Password: "p"}},
			Clients: []devidp.Client{{ID: "c", Secret: "s", RedirectURIs: []string{redirectURI}}},
		}
	}
	tests := []struct {
		name   string
		mutate func(*devidp.Config)
		want   []string // substrings of the error, one per problem
	}{
		{"empty issuer", func(c *devidp.Config) { c.Issuer = "" }, []string{"Issuer: must not be empty"}},
		{"issuer with path", func(c *devidp.Config) { c.Issuer = "http://127.0.0.1:9000/idp" }, []string{"Issuer: must not have a path"}},
		{"http issuer on a public host", func(c *devidp.Config) { c.Issuer = "http://idp.example.com" }, []string{"Issuer: http is allowed only for loopback"}},
		{"issuer with query", func(c *devidp.Config) { c.Issuer = "https://idp.example.com?x=1" }, []string{"Issuer: must not have user info, query or fragment"}},
		{"reuse detection without rotation", func(c *devidp.Config) { c.RefreshReuseDetection = true }, []string{"RefreshReuseDetection: requires RotateRefreshTokens"}},
		{"user without ID and password", func(c *devidp.Config) { c.Users[0].ID, c.Users[0].Password = "", "" }, []string{"Users[0].ID: must not be empty", "Users[0].Password: must not be empty"}},
		{"user ID with colon", func(c *devidp.Config) { c.Users[0].ID = "a:b" }, []string{"Users[0].ID: must not contain ':'"}},
		{"duplicate users", func(c *devidp.Config) { c.Users = append(c.Users, c.Users[0]) }, []string{`Users[1].ID: duplicate "u1"`, `Users[1].Username: duplicate "u"`}},
		{"reserved claim", func(c *devidp.Config) { c.Users[0].Claims = map[string]any{"sub": "x"} }, []string{`Users[0].Claims: "sub" is set by the provider`}},
		{"duplicate clients", func(c *devidp.Config) { c.Clients = append(c.Clients, c.Clients[0]) }, []string{`Clients[1].ID: duplicate "c"`}},
		{"unknown auth method", func(c *devidp.Config) { c.Clients[0].AuthMethod = "tls_client_auth" }, []string{`Clients[0].AuthMethod: unknown "tls_client_auth"`}},
		{"basic client without secret", func(c *devidp.Config) { c.Clients[0].Secret = "" }, []string{"Clients[0].Secret: required for client_secret_basic"}},
		{"public client with secret", func(c *devidp.Config) { c.Clients[0].AuthMethod = devidp.AuthMethodNone }, []string{"Clients[0].Secret: must be empty for none"}},
		{"private_key_jwt without keys", func(c *devidp.Config) {
			c.Clients[0].AuthMethod, c.Clients[0].Secret = devidp.AuthMethodPrivateKeyJWT, ""
		}, []string{"Clients[0].PublicKeys: required for private_key_jwt"}},
		{"private key instead of public", func(c *devidp.Config) {
			c.Clients[0].AuthMethod, c.Clients[0].Secret = devidp.AuthMethodPrivateKeyJWT, ""
			c.Clients[0].PublicKeys = []jose.JSONWebKey{{Key: rsa, KeyID: "k"}}
		}, []string{"Clients[0].PublicKeys[0]: must be a public key"}},
		{"redirect URI with fragment", func(c *devidp.Config) { c.Clients[0].RedirectURIs = []string{redirectURI + "#x"} }, []string{"Clients[0].RedirectURIs[0]: must not have a fragment"}},
		{"relative redirect URI", func(c *devidp.Config) { c.Clients[0].RedirectURIs = []string{"/cb"} }, []string{"Clients[0].RedirectURIs[0]: scheme must be http or https"}},
		{"OpenID scope listed", func(c *devidp.Config) { c.Clients[0].Scopes = []string{"openid"} }, []string{`Clients[0].Scopes[0]: "openid" is an OpenID scope`}},
		{"unknown token format", func(c *devidp.Config) { c.Clients[0].AccessTokenFormat = "paseto" }, []string{`Clients[0].AccessTokenFormat: unknown "paseto"`}},
		{"unsupported grant", func(c *devidp.Config) { c.Clients[0].GrantTypes = []string{"password"} }, []string{`Clients[0].GrantTypes[0]: unsupported "password"`}},
		{"code grant without redirect URIs", func(c *devidp.Config) {
			c.Clients[0].RedirectURIs, c.Clients[0].GrantTypes = nil, []string{devidp.GrantAuthorizationCode}
		}, []string{"Clients[0].RedirectURIs: required for authorization_code"}},
		{"public client with client_credentials", func(c *devidp.Config) {
			c.Clients[0].AuthMethod, c.Clients[0].Secret = devidp.AuthMethodNone, ""
			c.Clients[0].GrantTypes = []string{devidp.GrantClientCredentials}
		}, []string{"Clients[0].GrantTypes[0]: client_credentials needs a confidential client"}},
		{"negative lifetime", func(c *devidp.Config) { c.Clients[0].AccessTokenLifetime = -1 }, []string{"Clients[0].AccessTokenLifetime: must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mutate(&cfg)
			_, err := devidp.New(cfg)
			if !errors.Is(err, devidp.ErrInvalidConfig) {
				t.Fatalf("New: %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestNewAcceptsGoodConfig(t *testing.T) {
	t.Parallel()
	for _, issuer := range []string{"http://127.0.0.1:9000", "http://localhost:9443/", "http://[::1]:1", "https://idp.example.com"} {
		p, err := devidp.New(devidp.Config{Issuer: issuer, Clients: []devidp.Client{{ID: "rs", Secret: "s", CanIntrospect: true}}})
		if err != nil {
			t.Errorf("New(%s): %v", issuer, err)
			continue
		}
		if strings.HasSuffix(p.Issuer(), "/") {
			t.Errorf("Issuer() = %q has a trailing slash", p.Issuer())
		}
	}
}
