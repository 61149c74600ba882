package jwtverify_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
)

func ExampleVerifier_Verify() {
	// An authorization server's signing key and JWKS endpoint.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: pub, KeyID: "2026-01", Algorithm: "EdDSA", Use: "sig"},
	}})
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(jwks)
	}))
	defer as.Close()

	// Built once at startup, shared by every request of the route.
	keys, err := jwtverify.NewKeySet(jwtverify.KeySetConfig{URL: as.URL + "/jwks", Client: as.Client()})
	if err != nil {
		panic(err)
	}
	verifier, err := jwtverify.New(keys, jwtverify.Config{
		Purpose:  jwtverify.AccessToken,
		Issuer:   "https://as.example.com",
		Audience: "orders-api",
	})
	if err != nil {
		panic(err)
	}

	// An access token as the authorization server issues it (RFC 9068).
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "2026-01"))
	payload, _ := json.Marshal(map[string]any{
		"iss": "https://as.example.com", "aud": "orders-api", "sub": "user-1",
		"client_id": "mobile-app", "scope": "orders:read",
		"iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(),
	})
	obj, _ := signer.Sign(payload)
	raw, _ := obj.CompactSerialize()

	claims, err := verifier.Verify(context.Background(), raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Subject, claims.ClientID, claims.Scope)
	// Output: user-1 mobile-app orders:read
}
