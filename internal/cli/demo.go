package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/demo"
	"github.com/gatehouse-dev/gatehouse/internal/telemetry"
)

func runDemo(ctx context.Context, args []string, env Env) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	ports := fs.String("ports", "default", `"default" (SPA 3000, Gatehouse 8080, provider 8081, API 8082) or "auto" (free ports)`)
	atLifetime := fs.Duration("access-token-lifetime", 5*time.Minute, "lifetime of the provider's access tokens")
	logLevel := fs.String("log-level", "warn", "log level of the components: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || (*ports != "default" && *ports != "auto") {
		fmt.Fprintln(env.Stderr, "usage: gatehouse demo [--ports default|auto] [--access-token-lifetime 5m] [--log-level warn]")
		return 2
	}
	logger, err := telemetry.NewLogger(env.Stderr, *logLevel)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 2
	}
	d, err := demo.Start(ctx, demo.Options{AutoPorts: *ports == "auto", AccessTokenLifetime: *atLifetime, Logger: logger})
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	defer d.Close()
	fmt.Fprintf(env.Stdout, `Gatehouse demo — DEVELOPMENT ONLY: the provider, its user and all keys are generated for this run.

  Open the SPA:     %s
  Sign in as:       %s / %s

  Gatehouse:        %s  (OAuth Agent at %s, API route %s)
  OpenID Provider:  %s  (embedded development provider, never for production)
  Example API:      %s  (accepts only valid JWTs; reached through Gatehouse)

Press Ctrl+C to stop.
`, d.SPAURL, demo.Username, demo.Password, d.GatehouseURL, demo.AgentPath, demo.APIPath, d.ProviderURL, d.APIURL)
	if err := d.Wait(ctx); err != nil {
		fmt.Fprintln(env.Stderr, "demo stopped:", err)
		return 1
	}
	return 0
}
