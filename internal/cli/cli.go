// Package cli implements the gatehouse command line: serve, demo, config
// check, keys generate, keys api-key (create, revoke, list) and version.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/telemetry"
)

// Env is the process environment the commands see.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) (string, bool)
}

const usage = `gatehouse — a token handler for single page apps and APIs

Usage:
  gatehouse demo [--ports auto]          run a complete local demo (development only)
  gatehouse serve --config FILE          run the gateway
  gatehouse config check --config FILE   validate a configuration file
  gatehouse keys generate                print a new 256-bit cookie encryption key (64 hex characters)
  gatehouse keys api-key --client-id ID [--scopes a,b] [--expires-in 90d | --expires-at TIME]
                                         create an API key: prints the key once and the
                                         api_keys entry (with its hash) for the configuration
  gatehouse keys api-key create --config FILE --client-id ID [--scopes a,b] [--expires-in 720h | --expires-at TIME]
                                         create an API key in api_keys.store: prints the key
                                         once; Gatehouse accepts it without a restart
  gatehouse keys api-key revoke --config FILE --id ID
                                         revoke a key of api_keys.store: refused from the next request on
  gatehouse keys api-key list --config FILE
                                         list the API keys (ids, clients, scopes, expiry, revocation)
  gatehouse version                      print the version

Documentation: README.md and docs/configuration.md
`

// Run executes the command in args (without the program name) and returns
// the process exit code: 0 success, 1 failure, 2 usage error.
func Run(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], env)
	case "demo":
		return runDemo(ctx, args[1:], env)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprintln(env.Stderr, "usage: gatehouse config check --config FILE")
			return 2
		}
		return configCheck(args[2:], env)
	case "keys":
		if len(args) >= 2 && args[1] == "api-key" {
			return apiKey(ctx, args[2:], env)
		}
		if len(args) < 2 || args[1] != "generate" {
			fmt.Fprintln(env.Stderr, "usage: gatehouse keys generate | gatehouse keys api-key [create|revoke|list] ...")
			return 2
		}
		k, err := seal.GenerateKey(nil)
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		fmt.Fprintln(env.Stdout, k.String())
		return 0
	case "version", "--version", "-v":
		fmt.Fprintln(env.Stdout, "gatehouse", Version())
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(env.Stdout, usage)
		return 0
	}
	fmt.Fprintf(env.Stderr, "gatehouse: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// Version returns the module version and VCS revision from the build info.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " (" + rev + dirty + ")"
	}
	return v
}

func configFlag(name string, args []string, env Env) (string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "usage: gatehouse %s --config FILE\n", name)
		return "", false
	}
	return *path, true
}

func load(path string, env Env) (*config.Config, bool) {
	cfg, warnings, err := config.Load(path, config.Options{Env: env.Getenv})
	for _, w := range warnings {
		fmt.Fprintf(env.Stderr, "warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: configuration is invalid:\n", path)
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(env.Stderr, "  %s\n", line)
		}
		return nil, false
	}
	return cfg, true
}

func configCheck(args []string, env Env) int {
	path, ok := configFlag("config check", args, env)
	if !ok {
		return 2
	}
	cfg, ok := load(path, env)
	if !ok {
		return 1
	}
	fmt.Fprintf(env.Stdout, "%s: configuration OK (%d routes)\n", path, len(cfg.Routes))
	return 0
}

func serve(ctx context.Context, args []string, env Env) int {
	path, ok := configFlag("serve", args, env)
	if !ok {
		return 2
	}
	cfg, ok := load(path, env)
	if !ok {
		return 1
	}
	logger, err := telemetry.NewLogger(env.Stderr, cfg.Log.Level)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	srv, err := server.New(cfg, server.Options{Logger: logger, ConfigDir: filepath.Dir(path)})
	if err != nil {
		logger.Error("cannot start", "error", err.Error())
		return 1
	}
	logger.Info("starting gatehouse", "version", Version())
	if err := srv.ListenAndServe(ctx); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("gatehouse stopped with an error", "error", err.Error())
		return 1
	}
	return 0
}
