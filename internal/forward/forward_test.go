package forward

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
	"github.com/gatehouse-dev/gatehouse/internal/mint"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

func minter(t *testing.T) *mint.Minter {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mint.New(mint.Config{Issuer: "https://gw.example.com", Keys: []crypto.Signer{k}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func payload(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMintedIdentity(t *testing.T) {
	f := &Minted{Minter: minter(t), Audience: "api", Claims: []string{"roles", "sub"}}
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name      string
		p         authn.Principal
		wantSub   string
		wantError int
	}{
		{"user token", authn.Principal{Subject: "u1", ClientID: "app", Checked: true, Expiry: exp, TokenHash: "h1", Claims: map[string]any{"roles": []any{"a"}}}, "u1", 0},
		{"client credentials without sub", authn.Principal{ClientID: "svc", Checked: true, Expiry: exp, TokenHash: "h2"}, "svc", 0},
		{"no subject and no client", authn.Principal{Checked: true, Expiry: exp, TokenHash: "h3"}, "", http.StatusBadGateway},
		{"unchecked token", authn.Principal{Subject: "u1", ClientID: "app", TokenHash: "h4"}, "", http.StatusInternalServerError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := f.Credential(context.Background(), &tc.p)
			if tc.wantError != 0 {
				var he *httperr.Error
				if !errors.As(err, &he) || he.Status != tc.wantError {
					t.Fatalf("want status %d, got %v", tc.wantError, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := payload(t, tok)
			if c["sub"] != tc.wantSub || c["aud"] != "api" {
				t.Fatalf("claims %v", c)
			}
		})
	}
}

func TestPhantomPrefersTheProvidersJWT(t *testing.T) {
	f := &Minted{Minter: minter(t), Audience: "api", PreferUpstreamJWT: true}
	p := &authn.Principal{Subject: "u", ClientID: "c", Checked: true, UpstreamJWT: secret.New("a.b.c")}
	if tok, err := f.Credential(context.Background(), p); err != nil || tok != "a.b.c" {
		t.Fatalf("got %q, %v", tok, err)
	}
	if tok, _ := f.Credential(context.Background(), &authn.Principal{Method: "anonymous"}); tok != "" {
		t.Fatalf("anonymous caller got a token")
	}
}
