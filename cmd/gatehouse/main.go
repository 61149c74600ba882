// Command gatehouse is a token handler: an OAuth Agent and API gateway that
// keeps tokens out of the browser. See README.md.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/gatehouse-dev/gatehouse/internal/cli"
)

func main() {
	// Gatehouse's own components log through injected loggers. Libraries
	// that log through the process default (zitadel's op in the demo) are
	// kept to errors: their lower levels print request URLs, which may hold
	// OAuth parameters.
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.LookupEnv})
	stop()
	os.Exit(code)
}
