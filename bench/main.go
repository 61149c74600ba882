// Command gatehouse-bench measures Gatehouse's proxy paths against a bare
// httputil.ReverseProxy, on loopback, in one sitting: `make bench`.
//
// It starts a trivial upstream, the bare proxy and Gatehouse as separate
// processes (this binary re-executed with -role), and the development
// provider (devidp) in its own process, next to the load generators. Gatehouse
// has four routes to the same upstream: a cookie route forwarding the access
// token, a bearer-JWT route, an opaque bearer route with forward: phantom and
// a cookie route with token_format: jwt and forward: internal_jwt. Tokens
// come from the provider (client_credentials); cookies are sealed with the
// key Gatehouse is configured with.
//
// Every round measures every target: closed-loop (requests/s, server CPU
// per request), then open-loop at a fraction of that round's bare-proxy
// rate (latency percentiles). Each run is cut into slices (-slice) that
// alternate between the targets, the order rotating, so that changes in
// the machine's background load fall on every target alike. The report
// gives medians over rounds and each target's ratio to the bare proxy, as a
// table and as JSON in -out.
//
// Checks (printed, not timed): concurrent first requests with a new opaque
// token make one introspection call; forged JWTs make no JWKS fetch; RSS
// under more connections and under many distinct sessions.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

type settings struct {
	Duration     time.Duration `json:"-"`
	DurationS    float64       `json:"duration_s"`
	Warmup       time.Duration `json:"-"`
	Slice        time.Duration `json:"-"`
	SliceS       float64       `json:"slice_s"`
	Rounds       int           `json:"rounds"`
	Conns        int           `json:"connections"`
	OpenConns    int           `json:"open_loop_connections"`
	OpenFraction float64       `json:"open_loop_fraction"`
	Sessions     int           `json:"distinct_sessions"`
	GatehouseLog string        `json:"gatehouse_log"`
	LogLevel     string        `json:"gatehouse_log_level"`
	BarePool     bool          `json:"bare_buffer_pool"`
	Out          string        `json:"-"`
	Profile      bool          `json:"-"`
	Only         string        `json:"-"`
}

func main() {
	var (
		s    settings
		role string
		ra   roleArgs
	)
	flag.DurationVar(&s.Duration, "duration", 3*time.Second, "length of each closed-loop and each open-loop run")
	flag.DurationVar(&s.Slice, "slice", time.Second, "runs are cut into slices of at most this long that alternate between the targets")
	flag.DurationVar(&s.Warmup, "warmup", time.Second, "closed-loop warm-up per target before the rounds")
	flag.IntVar(&s.Rounds, "rounds", 5, "interleaved rounds (medians are taken over them)")
	flag.IntVar(&s.Conns, "conns", 16, "connections of the closed-loop runs")
	flag.IntVar(&s.OpenConns, "open-conns", 0, "connections of the open-loop runs (default: -conns)")
	flag.Float64Var(&s.OpenFraction, "open-fraction", 0.5, "open-loop rate as a fraction of the round's bare-proxy requests/s")
	flag.IntVar(&s.Sessions, "sessions", 20000, "distinct cookie sessions sent in the memory check (0 skips it)")
	flag.StringVar(&s.GatehouseLog, "gatehouse-log", os.DevNull, "where Gatehouse's stderr (its JSON logs) goes")
	flag.StringVar(&s.LogLevel, "gatehouse-log-level", "info", "Gatehouse's log.level (info writes the access log line of every request)")
	flag.BoolVar(&s.BarePool, "bare-buffer-pool", false, "give the bare proxy a response-buffer pool like Gatehouse's (a stricter baseline)")
	flag.StringVar(&s.Out, "out", "bench/results", "directory for the JSON results (and profiles)")
	flag.BoolVar(&s.Profile, "profile", false, "after the rounds, record CPU and allocation profiles of the bare proxy and of Gatehouse per route")
	flag.StringVar(&s.Only, "only", "", "measure only the bare proxy and this route (cookie, bearer-jwt, phantom, internal-jwt)")
	flag.StringVar(&role, "role", "", "internal: run as a child server process")
	flag.StringVar(&ra.upstream, "upstream", "", "internal: bare proxy upstream URL")
	flag.IntVar(&ra.conns, "pool", 0, "internal: bare proxy pool sizing")
	flag.StringVar(&ra.config, "config", "", "internal: Gatehouse configuration file")
	flag.BoolVar(&ra.pprof, "pprof", false, "internal: serve pprof on descriptor 4")
	flag.BoolVar(&ra.bufferPool, "buffer-pool", false, "internal: bare proxy with a buffer pool")
	flag.Parse()

	if role != "" {
		if err := runRole(role, ra); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if s.OpenConns <= 0 {
		s.OpenConns = s.Conns
	}
	s.DurationS = s.Duration.Seconds()
	if s.Slice <= 0 {
		s.Slice = s.Duration
	}
	s.SliceS = s.Slice.Seconds()
	if s.Rounds < 1 || s.Conns < 1 || s.Duration <= 0 || s.OpenFraction <= 0 {
		fmt.Fprintln(os.Stderr, "bench: -rounds, -conns, -duration and -open-fraction must be positive")
		os.Exit(2)
	}
	if err := run(context.Background(), s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, s settings) error {
	// zitadel's op package (inside devidp) logs through slog.Default.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	m := readMachine()
	m.GoVersion = runtime.Version()
	fmt.Printf("gatehouse-bench: %d CPUs (%s), load average %v, %d rounds of %v, %d connections\n",
		m.CPUs, m.CPUModel, m.LoadBefore, s.Rounds, s.Duration, s.Conns)

	env, err := setup(ctx, s)
	if err != nil {
		return err
	}
	defer env.close()

	targets := env.targets
	if s.Only != "" {
		var keep []*target
		for _, t := range targets {
			if t.name == "bare" || t.name == s.Only {
				keep = append(keep, t)
			}
		}
		if len(keep) != 2 {
			return fmt.Errorf("bench: -only %q: no such route", s.Only)
		}
		targets = keep
	}

	fmt.Printf("warm-up: %v per target\n", s.Warmup)
	for _, t := range targets {
		if _, err := env.measureClosed(t, s.Conns, s.Warmup); err != nil {
			return err
		}
	}

	res := &results{Timestamp: time.Now().UTC().Format(time.RFC3339), Machine: m, Settings: s}
	for _, t := range targets {
		res.Targets = append(res.Targets, targetInfo{Name: t.name, Path: t.path, Process: t.proc.name, About: t.about})
	}
	for r := range s.Rounds {
		rd, err := env.round(r, targets, s)
		if err != nil {
			return err
		}
		res.Rounds = append(res.Rounds, rd)
	}
	res.Summary = summarize(res.Rounds, targets)

	fmt.Println("checks:")
	res.Checks, err = env.checks(s)
	if err != nil {
		return err
	}
	if s.Profile {
		dir := filepath.Join(s.Out, "pprof-"+time.Now().UTC().Format("20060102T150405Z"))
		if err := env.profiles(targets, s, dir); err != nil {
			return err
		}
		fmt.Printf("profiles written to %s\n", dir)
	}
	res.Machine.LoadAfter = loadAvg()
	printTable(os.Stdout, res)
	return writeResults(res, s.Out)
}

func writeResults(res *results, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	name := filepath.Join(dir, time.Now().UTC().Format("20060102T150405Z")+".json")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), b, 0o644); err != nil {
		return err
	}
	fmt.Printf("results: %s and %s\n", name, filepath.Join(dir, "latest.json"))
	return nil
}
