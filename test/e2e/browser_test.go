// Package e2e runs the demo's SPA in headless Chromium (Debian's package,
// never a downloaded browser) against Gatehouse and the embedded provider,
// as a user would: clicks, redirects, cookies, tabs.
package e2e_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/demo"
	"github.com/gatehouse-dev/gatehouse/test/browser"
)

func startDemo(t *testing.T, atLifetime time.Duration) *demo.Demo {
	t.Helper()
	d, err := demo.Start(context.Background(), demo.Options{AutoPorts: true, AccessTokenLifetime: atLifetime})
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	t.Cleanup(d.Close)
	return d
}

// signIn goes from the signed-out view through the provider's login page
// back to the signed-in view.
func signIn(t *testing.T, ctx context.Context, d *demo.Demo) {
	t.Helper()
	browser.Run(t, ctx,
		chromedp.Navigate(d.SPAURL),
		chromedp.WaitVisible(chromedp.ID("sign-in")),
		chromedp.Click(chromedp.ID("sign-in")),
	)
	browser.WaitLocation(t, ctx, d.ProviderURL)
	browser.Run(t, ctx,
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SetValue(chromedp.ID("username"), demo.Username),
		chromedp.SendKeys(chromedp.ID("password"), demo.Password),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	)
	browser.WaitLocation(t, ctx, d.SPAURL)
	browser.Run(t, ctx, chromedp.WaitVisible(chromedp.ID("signed-in")))
	browser.WaitText(t, ctx, "claims", demo.UserID)
}

func signedIn(t *testing.T, ctx context.Context) {
	t.Helper()
	browser.Run(t, ctx, chromedp.WaitVisible(chromedp.ID("signed-in")))
}

func click(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	browser.Run(t, ctx, chromedp.Click(chromedp.ID(id)))
}

func TestSignInCallAPIAndCookiesStayHidden(t *testing.T) {
	d := startDemo(t, 0)
	tab := browser.New(t)
	signIn(t, tab, d)

	// After the callback the SPA removed code and state from its URL.
	loc := browser.WaitLocation(t, tab, d.SPAURL)
	if strings.Contains(loc, "code=") || strings.Contains(loc, "state=") {
		t.Errorf("the callback parameters stayed in the address bar: %s", loc)
	}
	if name := browser.Text(t, tab, "user-name"); name != "Demo User" {
		t.Errorf("signed in as %q", name)
	}

	click(t, tab, "get-data")
	browser.WaitText(t, tab, "status", "GET succeeded")
	// The phantom token pattern: the cookie holds an opaque token, and the API
	// receives a JWT signed by Gatehouse (iss = Gatehouse, aud = the API) for the user.
	got := browser.Text(t, tab, "api-result")
	for _, want := range []string{`"sub": "` + demo.UserID + `"`, `"iss": "` + d.GatehouseURL + `"`, `"aud": "` + demo.APIAudience + `"`, `"cookiesReceived": false`} {
		if !strings.Contains(got, want) {
			t.Errorf("the API's view lacks %s: %s", want, got)
		}
	}
	click(t, tab, "post-data")
	browser.WaitText(t, tab, "status", "POST succeeded")
	if got := browser.Text(t, tab, "api-result"); !strings.Contains(got, `"method": "POST"`) || !strings.Contains(got, "Hello from the SPA") {
		t.Errorf("POST result: %s", got)
	}

	// JavaScript cannot read any Gatehouse cookie, on the SPA's page or on Gatehouse's origin.
	for _, u := range []string{d.SPAURL, d.GatehouseURL + "/healthz"} {
		ctx := browser.NewTab(t, tab)
		browser.Run(t, ctx, chromedp.Navigate(u))
		cookies, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(cookies, demo.CookiePrefix+"-") {
			t.Errorf("document.cookie on %s exposes Gatehouse cookies: %q", u, cookies)
		}
	}

	// The SPA serves Referrer-Policy: no-referrer.
	resp, err := http.Get(d.SPAURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("SPA Referrer-Policy = %q", resp.Header.Get("Referrer-Policy"))
	}

	// A reload keeps the session; a second tab and a pasted deep link are signed in.
	browser.Run(t, tab, chromedp.Reload())
	signedIn(t, tab)
	second := browser.NewTab(t, tab)
	browser.Run(t, second, chromedp.Navigate(d.SPAURL))
	signedIn(t, second)
	pasted := browser.NewTab(t, tab)
	browser.Run(t, pasted, chromedp.Navigate(d.SPAURL+"orders/42?from=email"))
	signedIn(t, pasted)
	click(t, pasted, "get-data")
	browser.WaitText(t, pasted, "status", "GET succeeded")
}

func TestExpiredAccessTokenRefreshesTransparently(t *testing.T) {
	const lifetime = 2 * time.Second
	d := startDemo(t, lifetime)
	tab1 := browser.New(t)
	signIn(t, tab1, d)
	tab2 := browser.NewTab(t, tab1)
	browser.Run(t, tab2, chromedp.Navigate(d.SPAURL))
	signedIn(t, tab2)

	// Let the access token expire (its lifetime plus the API's 1 s leeway).
	time.Sleep(lifetime + 1500*time.Millisecond)
	before := d.Provider.Stats().TokenRefresh
	click(t, tab1, "get-data")
	browser.WaitText(t, tab1, "status", "GET succeeded")
	if n := d.Provider.Stats().TokenRefresh - before; n != 1 {
		t.Errorf("expected one refresh at the provider, got %d", n)
	}

	// Two tabs hit an expired token at the same moment: both stay signed in.
	time.Sleep(lifetime + 1500*time.Millisecond)
	before = d.Provider.Stats().TokenRefresh
	var wg sync.WaitGroup
	for _, tab := range []context.Context{tab1, tab2} {
		wg.Go(func() {
			tctx, cancel := context.WithTimeout(tab, 10*time.Second)
			defer cancel()
			_ = chromedp.Do(tctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('status').textContent=''`), chromedp.Click(chromedp.ID("get-data")))
		})
	}
	wg.Wait()
	browser.WaitText(t, tab1, "status", "GET succeeded")
	browser.WaitText(t, tab2, "status", "GET succeeded")
	signedIn(t, tab1)
	signedIn(t, tab2)
	// Depending on timing the second tab presents the same refresh token (the
	// reuse window answers it, 1 call) or the already rotated one (2 calls);
	// either way neither tab may be logged out. The exact one-call case with
	// identical tokens is pinned by internal/server's concurrency test.
	if n := d.Provider.Stats().TokenRefresh - before; n < 1 || n > 2 {
		t.Errorf("two tabs refreshing at once made %d refresh calls at the provider, want 1 or 2", n)
	}
}

func TestSignOutEndsTheSessionInEveryTab(t *testing.T) {
	d := startDemo(t, 0)
	tab1 := browser.New(t)
	signIn(t, tab1, d)
	tab2 := browser.NewTab(t, tab1)
	browser.Run(t, tab2, chromedp.Navigate(d.SPAURL))
	signedIn(t, tab2)

	click(t, tab1, "sign-out")
	browser.WaitLocation(t, tab1, d.SPAURL)
	browser.Run(t, tab1, chromedp.WaitVisible(chromedp.ID("signed-out")))
	if d.Provider.Stats().EndSession == 0 {
		t.Error("sign out did not reach the provider's end-session endpoint")
	}

	apiBefore := d.API.Requests()
	click(t, tab2, "get-data")
	browser.Run(t, tab2, chromedp.WaitVisible(chromedp.ID("signed-out")))
	browser.WaitText(t, tab2, "error", "session_expired")
	if d.API.Requests() != apiBefore {
		t.Error("a request reached the API after sign out")
	}
}

// A page on an untrusted origin cannot use the user's cookies: not on the
// same site (another localhost port) and not cross-site (127.0.0.1).
func TestUntrustedOriginCannotUseTheSession(t *testing.T) {
	d := startDemo(t, 0)
	tab := browser.New(t)
	signIn(t, tab, d)

	evil := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><body><pre id="out">running</pre><script>
const gw = %q;
const results = [];
async function attempt(name, url, opts) {
  try {
    const r = await fetch(url, Object.assign({credentials: 'include'}, opts));
    results.push(name + ':' + r.status + ':' + (await r.text()).slice(0, 40));
  } catch (e) { results.push(name + ':blocked'); }
}
(async () => {
  await attempt('get', gw + '/api/data', {});
  await attempt('post', gw + '/api/data', {method: 'POST', mode: 'no-cors', body: 'x'});
  await attempt('claims', gw + '/oauth-agent/claims', {});
  await attempt('loginend', gw + '/oauth-agent/login/end', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({pageUrl: location.href})});
  document.getElementById('out').textContent = 'done ' + results.join(' | ');
})();
</script></body>`, d.GatehouseURL)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: evil}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	before := d.API.Requests()
	for _, origin := range []string{fmt.Sprintf("http://localhost:%d", port), fmt.Sprintf("http://127.0.0.1:%d", port)} {
		ctx := browser.NewTab(t, tab)
		browser.Run(t, ctx, chromedp.Navigate(origin+"/"))
		browser.WaitText(t, ctx, "out", "done")
		out := browser.Text(t, ctx, "out")
		for _, leak := range []string{"get:200", "claims:200", "loginend:200", "csrf"} {
			if strings.Contains(out, leak) {
				t.Errorf("page at %s got through: %s", origin, out)
			}
		}
	}
	if n := d.API.Requests() - before; n != 0 {
		t.Errorf("%d requests from untrusted pages reached the API", n)
	}
	// The real SPA still works.
	click(t, tab, "get-data")
	browser.WaitText(t, tab, "status", "GET succeeded")
}
