package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
)

// TestTokenExchange: forward exchange trades the caller's access token at
// the provider (RFC 8693, Gatehouse's own client authentication) for one
// whose aud and scope the upstream checks; the result is cached per (token,
// target), 100 concurrent first uses make one exchange, refusals map to 403
// (invalid_target, invalid_scope) and 401 (invalid_grant) and the AS being
// down to 502, never cached. With actor: true the act claim names Gatehouse.
func TestTokenExchange(t *testing.T) {
	t.Parallel()
	billing, billingActor, payroll := newExampleAPI(t), newExampleAPI(t), newExampleAPI(t)
	exchangeRoute := func(name, path, upstream, entries string, exchange string) string {
		return gwRoute(name, path, upstream, entries, "token_format: jwt", "audience: "+ordersAudience,
			"forward: exchange", "exchange: "+exchange)
	}
	p := newPartnerEnv(t, partnerSetup{tokenClient: true, g: gateway{routes: []string{
		exchangeRoute("billing", "/api/billing", billing.URL, "[bearer]", "{audience: "+billingAudience+", scopes: [read]}"),
		exchangeRoute("web-billing", "/api/web/billing", billing.URL, "[cookie]", "{audience: "+billingAudience+", scopes: [read]}"),
		exchangeRoute("billing-actor", "/api/billing-actor", billingActor.URL, "[bearer]", "{resource: \""+billingResource+"\", scopes: [read], actor: true}"),
		exchangeRoute("payroll", "/api/payroll", payroll.URL, "[bearer]", "{audience: payroll-api}"),
		exchangeRoute("billing-admin", "/api/billing-admin", billing.URL, "[bearer]", "{audience: "+billingAudience+", scopes: [admin]}"),
	}}, yaml: func(y string) string {
		// The SPA's tokens carry the read scope the exchange asks for.
		return strings.Replace(y, `scope: "openid profile offline_access"`, `scope: "openid profile offline_access read"`, 1)
	}})
	e := p.env
	idpHTTP := &http.Client{Timeout: 5 * time.Second}
	billing.trust(t, e.idp.Issuer()+devidp.PathKeys, e.idp.Issuer(), billingAudience, idpHTTP, time.Now)
	billingActor.trust(t, e.idp.Issuer()+devidp.PathKeys, e.idp.Issuer(), billingResource, idpHTTP, time.Now)
	exchanges := func() int { return e.idp.Stats().TokenExchange }

	// checkBilling checks what the billing API validated last: a token of the
	// provider for the billing API only, with the requested scope, about the caller.
	checkBilling := func(t *testing.T, api *exampleAPI, caller string, aud []string, scope string) seenToken {
		t.Helper()
		st := api.last(t)
		if st.err != nil {
			t.Fatalf("the billing API refused what Gatehouse forwarded: %v", st.err)
		}
		c := st.claims
		if c.Issuer != e.idp.Issuer() || !slices.Equal(c.Audience, aud) || c.Scope != scope || c.Subject != userID || c.ClientID != caller {
			t.Errorf("exchanged token iss=%q aud=%v scope=%q sub=%q client_id=%q; want the provider, %v, %q, %q, %q",
				c.Issuer, c.Audience, c.Scope, c.Subject, c.ClientID, aud, scope, userID, caller)
		}
		e.secrets["exchanged "+st.raw[len(st.raw)-12:]] = st.raw
		return st
	}

	tok := e.mobileLogin(mobileClientID, "read", "write").access
	n := exchanges()
	r := e.bearer("GET", "/api/billing/invoices", tok)
	if r.StatusCode != 200 {
		t.Fatalf("exchange route: %d %s", r.StatusCode, r.body)
	}
	first := checkBilling(t, billing, tokenClientID, []string{billingAudience}, "read")
	if first.raw == tok {
		t.Fatal("the caller's token was forwarded")
	}
	for range 3 {
		if r := e.bearer("GET", "/api/billing/invoices", tok); r.StatusCode != 200 {
			t.Fatalf("cached exchange: %d %s", r.StatusCode, r.body)
		}
		if billing.last(t).raw != first.raw {
			t.Error("a cached exchange was not reused")
		}
	}
	if got := exchanges() - n; got != 1 {
		t.Errorf("4 requests with one token made %d exchanges, want 1", got)
	}

	t.Run("100 concurrent first uses make one exchange", func(t *testing.T) {
		e := e.sub(t)
		tok := e.mobileLogin(mobileClientID, "read").access
		n, calls := exchanges(), billing.count()
		p.fake.set(devidp.PathToken, modeSlow)
		defer p.fake.set(devidp.PathToken, modePass)
		statuses := e.concurrently(100, func(int) *http.Request { return e.bearerRequest("/api/billing/x", tok) })
		if got := countStatus(statuses, 200); got != 100 {
			t.Errorf("%d of 100 succeeded: %v", got, statuses)
		}
		if got := exchanges() - n; got != 1 {
			t.Errorf("100 concurrent first uses made %d exchanges, want exactly 1", got)
		}
		if got := billing.count() - calls; got != 100 {
			t.Errorf("the billing API received %d requests, want 100", got)
		}
	})

	t.Run("cookie entry", func(t *testing.T) {
		e := e.sub(t)
		b := e.newBrowser()
		e.login(b)
		if r := e.do(b, "GET", "/api/web/billing/invoices", nil); r.StatusCode != 200 {
			t.Fatalf("cookie route: %d %s", r.StatusCode, r.body)
		}
		checkBilling(t, billing, tokenClientID, []string{billingAudience}, "read")
	})

	t.Run("actor names Gatehouse", func(t *testing.T) {
		e := e.sub(t)
		cc := e.idp.Stats().TokenClientCredentials
		for i := range 2 {
			tok := e.mobileLogin(mobileClientID, "read").access
			if r := e.bearer("GET", "/api/billing-actor/x", tok); r.StatusCode != 200 {
				t.Fatalf("actor route %d: %d %s", i, r.StatusCode, r.body)
			}
			st := checkBilling(t, billingActor, tokenClientID, []string{billingResource}, "read")
			if act, _ := st.claims.Raw["act"].(map[string]any); act["sub"] != tokenClientID {
				t.Errorf("act %v, want sub %s", st.claims.Raw["act"], tokenClientID)
			}
		}
		if got := e.idp.Stats().TokenClientCredentials - cc; got != 1 {
			t.Errorf("two exchanges with an actor made %d client credentials requests, want 1 (the actor token is cached)", got)
		}
	})

	t.Run("refused target and scope are 403, remembered briefly", func(t *testing.T) {
		e := e.sub(t)
		tok := e.mobileLogin(mobileClientID, "read").access
		n, calls := exchanges(), payroll.count()
		for range 3 {
			r := e.bearer("GET", "/api/payroll/x", tok)
			if expectErr(t, "audience the provider refuses", r, 403, "forbidden") {
				if params, _ := bearerChallenge(r.Header.Get("WWW-Authenticate")); params["error"] != "insufficient_scope" {
					t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
				}
			}
		}
		expectErr(t, "scope beyond the caller's token", e.bearer("GET", "/api/billing-admin/x", tok), 403, "forbidden")
		if got := exchanges() - n; got != 2 {
			t.Errorf("4 refused requests made %d exchanges, want 2 (refusals are cached)", got)
		}
		if payroll.count() != calls {
			t.Error("a refused request reached the upstream")
		}
		// After the negative cache (10 s) the provider is asked again.
		e.clock.Advance(11 * time.Second)
		expectErr(t, "after the negative cache", e.bearer("GET", "/api/payroll/x", tok), 403, "forbidden")
		if got := exchanges() - n; got != 3 {
			t.Errorf("%d exchanges after the negative cache ended, want 3", got)
		}
	})

	t.Run("authorization server down is 502 and not cached", func(t *testing.T) {
		e := e.sub(t)
		tok := e.mobileLogin(mobileClientID, "read").access
		for _, mode := range []string{mode500, modeGarbage} {
			p.fake.set(devidp.PathToken, mode)
			r := e.bearer("GET", "/api/billing/x", tok)
			expectErr(t, "exchange with the token endpoint "+mode, r, 502, "authorization_server_error")
			if string(r.body) != `{"code":"authorization_server_error","message":"A problem occurred with a request to the Authorization Server"}` {
				t.Errorf("body %s", r.body)
			}
		}
		p.fake.set(devidp.PathToken, modePass)
		if r := e.bearer("GET", "/api/billing/x", tok); r.StatusCode != 200 {
			t.Errorf("after the faults: %d %s", r.StatusCode, r.body)
		}
	})

	t.Run("cache ends before the exchanged token does", func(t *testing.T) {
		e := e.sub(t)
		tok := e.mobileLogin(mobileClientID, "read").access
		n := exchanges()
		e.bearer("GET", "/api/billing/x", tok)
		// The exchanged token lives 10 minutes; it is reused for 8 of them.
		e.clock.Advance(7 * time.Minute)
		e.bearer("GET", "/api/billing/x", tok)
		if got := exchanges() - n; got != 1 {
			t.Errorf("%d exchanges within the reuse window, want 1", got)
		}
		e.clock.Advance(90 * time.Second)
		if r := e.bearer("GET", "/api/billing/x", tok); r.StatusCode != 200 {
			t.Fatalf("%d %s", r.StatusCode, r.body)
		}
		if got := exchanges() - n; got != 2 {
			t.Errorf("%d exchanges after the reuse window, want 2", got)
		}
		e.clock.Advance(-8*time.Minute - 30*time.Second)
	})

	t.Run("revoked subject token is 401", func(t *testing.T) {
		e := e.sub(t)
		tok := e.mobileLogin(mobileClientID, "read").access
		e.idp.RevokeUserSessions(userID)
		// The JWT still verifies at Gatehouse; the provider refuses to exchange it.
		r := e.bearer("GET", "/api/billing/x", tok)
		if expectErr(t, "exchange of a revoked token", r, 401, "unauthorized") {
			if params, _ := bearerChallenge(r.Header.Get("WWW-Authenticate")); params["error"] != "invalid_token" {
				t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
			}
		}
	})
	e.assertNoSecretsAnywhere()
}

// TestClientCredentialsForward: forward client_credentials sends the
// upstream Gatehouse's own token (client credentials with the route's
// scopes), obtained once, reused until shortly before it expires, then
// renewed; a refusal of Gatehouse's client is a 502.
func TestClientCredentialsForward(t *testing.T) {
	t.Parallel()
	reports := newExampleAPI(t)
	p := newPartnerEnv(t, partnerSetup{tokenClient: true, g: gateway{routes: []string{
		gwRoute("reports", "/api/reports", reports.URL, "[bearer]", "token_format: jwt", "audience: "+ordersAudience,
			"forward: client_credentials", "client_credentials: {scopes: [read]}"),
		gwRoute("reports-admin", "/api/reports-admin", reports.URL, "[bearer]", "token_format: jwt", "audience: "+ordersAudience,
			"forward: client_credentials", "client_credentials: {scopes: [admin]}"),
	}}})
	e := p.env
	reports.trust(t, e.idp.Issuer()+devidp.PathKeys, e.idp.Issuer(), reportsAudience, &http.Client{Timeout: 5 * time.Second}, time.Now)
	cc := func() int { return e.idp.Stats().TokenClientCredentials }
	tok := e.mobileLogin(mobileClientID, "read").access

	n := cc()
	var first string
	for i := range 3 {
		if r := e.bearer("GET", "/api/reports/daily", tok); r.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, r.StatusCode, r.body)
		}
		st := reports.last(t)
		if st.err != nil || st.claims.Subject != tokenClientID || st.claims.ClientID != tokenClientID || st.claims.Scope != "read" ||
			!slices.Contains(st.claims.Audience, reportsAudience) {
			t.Fatalf("the reports API got sub=%q client_id=%q scope=%q aud=%v err=%v", st.claims.Subject, st.claims.ClientID, st.claims.Scope, st.claims.Audience, st.err)
		}
		if first == "" {
			first = st.raw
			e.secrets["service token"] = first
		} else if st.raw != first {
			t.Error("the service token was not reused")
		}
	}
	if got := cc() - n; got != 1 {
		t.Errorf("3 requests made %d client credentials requests, want 1", got)
	}
	// The token lives 10 minutes and is renewed 2 minutes before it ends.
	e.clock.Advance(8*time.Minute + time.Second)
	if r := e.bearer("GET", "/api/reports/daily", tok); r.StatusCode != 200 {
		t.Fatalf("after renewal: %d %s", r.StatusCode, r.body)
	}
	if got := cc() - n; got != 2 || reports.last(t).raw == first {
		t.Errorf("%d client credentials requests after 8 minutes, want 2 and a new token", got)
	}
	e.clock.Advance(-8*time.Minute - time.Second)
	// Gatehouse's client may not have the admin scope: Gatehouse's problem, a 502.
	expectErr(t, "refused service token", e.bearer("GET", "/api/reports-admin/x", tok), 502, "authorization_server_error")
	e.assertNoSecretsAnywhere()
}
