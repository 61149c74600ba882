package introspect_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/introspect"
	"github.com/gatehouse-dev/gatehouse/internal/oauthclient"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

func ExampleIntrospector_Introspect() {
	// An authorization server's introspection endpoint.
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("token") == "opaque-token" {
			exp := time.Now().Add(time.Hour).Unix()
			fmt.Fprintf(w, `{"active":true,"sub":"alice","scope":"read","exp":%d}`, exp)
			return
		}
		io.WriteString(w, `{"active":false}`)
	}))
	defer as.Close()

	i, err := introspect.New(introspect.Config{
		// Usually the discovered introspection_endpoint.
		Endpoint: func() (string, error) { return as.URL, nil },
		Issuer:   "https://login.example.com",
		Auth:     oauthclient.SecretBasic{ClientID: "gatehouse", Secret: secret.New("s3cret")},
		HTTP:     oauthclient.NewHTTPClient(5 * time.Second),
	})
	if err != nil {
		panic(err)
	}
	for _, token := range []string{"opaque-token", "opaque-token", "revoked-token"} {
		res, err := i.Introspect(context.Background(), token)
		if err != nil {
			panic(err)
		}
		if !res.Active {
			fmt.Println("inactive")
			continue
		}
		fmt.Printf("active: sub=%s scope=%q\n", res.Subject, res.Scope)
	}
	fmt.Println("calls:", i.Calls())
	// Output:
	// active: sub=alice scope="read"
	// active: sub=alice scope="read"
	// inactive
	// calls: 2
}
