package authn_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
)

func TestAPIKeysEntry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	valid, _ := apikey.Generate(nil)
	expired, _ := apikey.Generate(nil)
	revoked, _ := apikey.Generate(nil)
	key := func(k apikey.Key, client string, exp time.Time, rev bool) authn.APIKey {
		return authn.APIKey{ID: k.ID, Sum: apikey.Sum(k.Value), ClientID: client, Scopes: []string{"read"}, Expires: exp, Revoked: rev}
	}
	e, err := authn.NewAPIKeys(authn.APIKeysConfig{Header: "x-api-key", Keys: []authn.APIKey{
		key(valid, "job", now.Add(time.Hour), false),
		key(expired, "old", now, false),
		key(revoked, "leaked", time.Time{}, true),
	}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if e.Header() != "X-Api-Key" || e.Name() != "apikey" {
		t.Errorf("header %q name %q", e.Header(), e.Name())
	}
	req := func(vals ...string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		for _, v := range vals {
			r.Header.Add("X-API-Key", v)
		}
		return r
	}
	p, err := e.Authenticate(req(valid.Value))
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "job" || p.ClientID != "job" || p.Method != "apikey" || !p.Checked || !p.Token.IsZero() ||
		!p.Expiry.Equal(now.Add(time.Hour)) || p.TokenHash == "" || p.Anonymous() {
		t.Errorf("principal %+v", p)
	}
	wrong := valid.Value[:len(valid.Value)-2] + "xx"
	for name, r := range map[string]*http.Request{
		"expired": req(expired.Value), "revoked": req(revoked.Value), "wrong secret": req(wrong),
		"unknown": req(func() string { k, _ := apikey.Generate(nil); return k.Value }()), "malformed": req("nope"),
		"two headers": req(valid.Value, valid.Value),
	} {
		_, err := e.Authenticate(r)
		var he *httperr.Error
		if !errors.As(err, &he) || he.Status != 401 || he.Message != authn.ErrUnauthorized.Message {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && (contains(err.Error(), valid.Value) || contains(err.Error(), wrong)) {
			t.Errorf("%s: the error text holds the key", name)
		}
	}
	if _, err := authn.NewAPIKeys(authn.APIKeysConfig{Header: "x", Keys: []authn.APIKey{key(valid, "a", time.Time{}, false), key(valid, "b", time.Time{}, false)}}); err == nil {
		t.Error("duplicate ids accepted")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// fixedChecker returns a principal with the given claims for any token.
type fixedChecker struct{ claims map[string]any }

func (f fixedChecker) Check(context.Context, string) (*authn.Principal, error) {
	return &authn.Principal{Subject: "s", ClientID: "c", Claims: f.claims, Checked: true}, nil
}

// TestBearerProofOfPossession: a token that names a confirmation key (cnf)
// passes the bearer entry only with the certificate it is bound to; a kind
// of binding Gatehouse cannot verify (DPoP's jkt) is refused.
func TestBearerProofOfPossession(t *testing.T) {
	cert := &x509.Certificate{Raw: []byte("certificate DER")}
	other := &x509.Certificate{Raw: []byte("another certificate")}
	bound := map[string]any{"cnf": map[string]any{"x5t#S256": authn.Thumbprint(cert)}}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		peer   *x509.Certificate
		ok     bool
	}{
		{"unbound token, no certificate", map[string]any{}, nil, true},
		{"unbound token with a certificate", map[string]any{}, cert, true},
		{"bound token with its certificate", bound, cert, true},
		{"bound token without a certificate", bound, nil, false},
		{"bound token with another certificate", bound, other, false},
		{"DPoP-bound token", map[string]any{"cnf": map[string]any{"jkt": "abc"}}, cert, false},
		{"malformed cnf", map[string]any{"cnf": "x"}, cert, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer tok")
			if tc.peer != nil {
				r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{tc.peer}}
			}
			b := &authn.Bearer{Checker: fixedChecker{tc.claims}, Realm: "gatehouse"}
			_, err := b.Authenticate(r)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			var he *httperr.Error
			if err != nil && (!errors.As(err, &he) || he.Status != 401 || he.WWWAuthenticate == "") {
				t.Errorf("refusal %v", err)
			}
		})
	}
}
