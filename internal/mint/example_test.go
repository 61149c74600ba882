package mint_test

import (
	"context"
	"crypto"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
	"github.com/gatehouse-dev/gatehouse/internal/mint"
)

func ExampleMinter_Mint() {
	dir, _ := os.MkdirTemp("", "mint-example")
	defer os.RemoveAll(dir)

	// At startup: the signing key (generated on first run) and the Minter.
	key, err := mint.LoadOrCreateKey(filepath.Join(dir, "mint-key.pem"), "ES256")
	if err != nil {
		panic(err)
	}
	minter, err := mint.New(mint.Config{Issuer: "https://api.example.com", Keys: []crypto.Signer{key}})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(mint.JWKSPath, minter.ServeJWKS)
	gatehouse := httptest.NewServer(mux)
	defer gatehouse.Close()

	// Per request: a token about the authenticated caller for the route's
	// upstream.
	token, err := minter.Mint(mint.Subject{
		Subject:  "user-1",
		ClientID: "spa",
		Scopes:   []string{"orders:write", "orders:read"},
		Expiry:   time.Now().Add(time.Hour),
		Claims:   map[string]any{"roles": []string{"customer"}},
		CacheKey: "hex SHA-256 of the caller's token",
	}, "orders-api")
	if err != nil {
		panic(err)
	}

	// The upstream verifies it against Gatehouse's JWKS.
	keys, _ := jwtverify.NewKeySet(jwtverify.KeySetConfig{URL: gatehouse.URL + mint.JWKSPath, Client: gatehouse.Client()})
	verifier, _ := jwtverify.New(keys, jwtverify.Config{
		Purpose:  jwtverify.AccessToken,
		Issuer:   "https://api.example.com",
		Audience: "orders-api",
	})
	claims, err := verifier.Verify(context.Background(), token)
	if err != nil {
		panic(err)
	}
	fmt.Println(claims.Subject, claims.ClientID, claims.Scope, claims.Raw["roles"])
	// Output: user-1 spa orders:read orders:write [customer]
}
