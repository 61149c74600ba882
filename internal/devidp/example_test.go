package devidp_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

// ExampleLogin runs the authorization code flow with PKCE against a provider
// served on a loopback port: Login plays the browser, the token request is
// what a confidential client sends. In tests, devidptest.Start does the
// serving.
func ExampleLogin() {
	srv := httptest.NewUnstartedServer(nil) // listens on 127.0.0.1:0
	defer srv.Close()
	idp, err := devidp.New(devidp.Config{
		Issuer:       "http://" + srv.Listener.Addr().String(),
		Users:        []devidp.User{{ID: "u1", Username: "demouser", Password: "Password1"}},
		Clients:      []devidp.Client{{ID: "app", Secret: "s3cret", RedirectURIs: []string{"http://localhost:8080/callback"}}},
		IssParameter: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	srv.Config.Handler = idp
	srv.Start()

	verifier := "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	challenge := sha256.Sum256([]byte(verifier))
	authURL := idp.Issuer() + devidp.PathAuthorize + "?" + url.Values{
		"client_id":             {"app"},
		"response_type":         {"code"},
		"redirect_uri":          {"http://localhost:8080/callback"},
		"scope":                 {"openid profile offline_access"},
		"state":                 {"xyz"},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(challenge[:])},
		"code_challenge_method": {"S256"},
	}.Encode()

	callback, err := devidp.Login(context.Background(), srv.Client(), authURL, "demouser", "Password1")
	if err != nil {
		log.Fatal(err)
	}
	cb, _ := url.Parse(callback)
	fmt.Println(cb.Host+cb.Path, cb.Query().Get("state"), cb.Query().Get("iss") == idp.Issuer())

	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {cb.Query().Get("code")},
		"redirect_uri":  {"http://localhost:8080/callback"},
		"code_verifier": {verifier},
	}
	req, _ := http.NewRequest(http.MethodPost, idp.Issuer()+devidp.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("app", "s3cret")
	resp, err := srv.Client().Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var tokens struct {
		AccessToken  string `json:"access_token"`
		IDToken      string `json:"id_token"`
		RefreshToken string `json:"refresh_token"`
		Scope        string `json:"scope"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tokens); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, tokens.Scope, tokens.AccessToken != "", tokens.IDToken != "", tokens.RefreshToken != "")
	fmt.Println(idp.Stats().TokenAuthorizationCode)
	// Output:
	// localhost:8080/callback xyz true
	// 200 openid profile offline_access true true true
	// 1
}
