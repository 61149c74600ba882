// Package browser drives Debian's headless Chromium from tests with chromedp:
// finding the browser, fresh profiles, tabs, and waits that poll instead of
// sleeping.
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Path finds Chromium: $GATEHOUSE_CHROMIUM, /usr/bin/chromium or chromium in
// PATH. Without it the test is skipped with instructions, or fails when CI is
// set (CI installs it).
func Path(t testing.TB) string {
	t.Helper()
	for _, c := range []string{os.Getenv("GATEHOUSE_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"} {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	msg := "headless Chromium not found: install Debian's package (apt-get install -y chromium; bash .ci/run does) or set GATEHOUSE_CHROMIUM"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// New starts a fresh headless Chromium with its own profile and returns the
// context of its first tab.
func New(t testing.TB) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Path(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.DisableGPU,
		chromedp.NoSandbox,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// NewTab opens another tab in the same browser (same cookies).
func NewTab(t testing.TB, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new tab: %v", err)
	}
	return ctx
}

// Run runs steps with a 30 s bound and fails the test on error.
func Run(t testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("browser: %v%s", err, State(ctx))
	}
}

// Text returns the visible text of the element with the given id.
func Text(t testing.TB, ctx context.Context, id string) string {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("text of #%s: %v%s", id, err, State(ctx))
	}
	return s
}

// WaitText polls until the element's text contains want.
func WaitText(t testing.TB, ctx context.Context, id, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := chromedp.Run(tctx, chromedp.TextContent(chromedp.ID(id)))
		cancel()
		if err == nil && strings.Contains(s, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("#%s never contained %q (last %q, %v)%s", id, want, s, err, State(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitLocation polls the tab's URL from Go (evaluating in the page fails
// while a redirect chain runs) until it starts with prefix.
func WaitLocation(t testing.TB, ctx context.Context, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		loc, err := chromedp.Run(tctx, chromedp.Location())
		cancel()
		if err == nil && strings.HasPrefix(loc, prefix) {
			return loc
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 500) : ''`))
			t.Fatalf("location never started with %q (last %q, %v); page text: %q", prefix, loc, err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Eval evaluates a JavaScript expression, awaiting it if it is a promise.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr, func(p *runtime.EvaluateParams) { p.AwaitPromise = new(true) }))
	if err != nil {
		t.Fatalf("evaluate: %v%s", err, State(ctx))
	}
	return v
}

// State describes the page for failure messages: its URL and the text of an
// #error element, if any.
func State(ctx context.Context) string {
	tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(tctx, chromedp.Location())
	errText, _ := chromedp.Run(tctx, chromedp.Evaluate[string](`(document.getElementById('error')||{}).textContent||''`))
	return fmt.Sprintf(" [page %s, error box %q]", loc, errText)
}
