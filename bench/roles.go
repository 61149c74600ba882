package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/telemetry"
)

// The servers under test run in processes of their own (this binary,
// re-executed with -role), so that the CPU each one uses can be read from
// /proc. The parent passes each its listening socket as file descriptor 3
// (and, with -profile, a pprof socket as 4): ports are picked by the kernel, never
// guessed.

const (
	roleUpstream  = "upstream"
	roleBareProxy = "bare-proxy"
	roleGatehouse = "gatehouse"
)

// upstreamBody is what the trivial upstream answers.
var upstreamBody = []byte(`{"id":42,"status":"shipped","items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}]}` + "\n")

func runRole(role string, args roleArgs) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		return fmt.Errorf("bench: %s: listener: %w", role, err)
	}
	if args.pprof {
		if err := servePprof(ctx); err != nil {
			return err
		}
	}
	switch role {
	case roleUpstream:
		return serveHTTP(ctx, ln, http.HandlerFunc(upstream))
	case roleBareProxy:
		return serveHTTP(ctx, ln, bareProxy(args.upstream, args.conns, args.bufferPool))
	case roleGatehouse:
		return runGatehouse(ctx, ln, args)
	}
	return fmt.Errorf("bench: unknown role %q", role)
}

type roleArgs struct {
	upstream string // bare proxy: the upstream URL
	conns    int    // bare proxy: the load's connection count
	config   string // gatehouse: the configuration file
	pprof    bool   // fd 4 is a pprof listener
	// bare proxy: pool response buffers as Gatehouse does
	bufferPool bool
}

// upstream answers 200 with a small JSON body to requests that carry a
// bearer token (so a request that lost its credential shows as an error),
// 401 to others.
func upstream(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h := w.Header()
	if len(r.Header["Authorization"]) != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(upstreamBody))}
	_, _ = w.Write(upstreamBody)
}

// bareProxy is the baseline: httputil.ReverseProxy with X-Forwarded-*
// headers and a transport whose keep-alive pool holds every connection the
// load can need. With pool, it also reuses its response copy buffers, as
// Gatehouse does (ReverseProxy allocates 32 KiB per response otherwise).
func bareProxy(upstreamURL string, conns int, pool bool) http.Handler {
	u, err := url.Parse(upstreamURL)
	if err != nil {
		panic(err)
	}
	idle := max(512, 2*conns)
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			MaxIdleConns:          2 * idle,
			MaxIdleConnsPerHost:   idle,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ForceAttemptHTTP2:     true,
		},
	}
	if pool {
		rp.BufferPool = &buffers{}
	}
	return rp
}

// buffers is a pool of ReverseProxy copy buffers.
type buffers struct{ pool sync.Pool }

func (b *buffers) Get() []byte {
	if p, ok := b.pool.Get().(*[32 << 10]byte); ok {
		return p[:]
	}
	return new([32 << 10]byte)[:]
}

func (b *buffers) Put(p []byte) {
	if len(p) == 32<<10 {
		b.pool.Put((*[32 << 10]byte)(p))
	}
}

func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// runGatehouse does what `gatehouse serve` does (config.Load, the JSON
// logger on stderr at the configured level, server.New, Serve), on the
// inherited listener.
func runGatehouse(ctx context.Context, ln net.Listener, args roleArgs) error {
	cfg, _, err := config.Load(args.config, config.Options{})
	if err != nil {
		return err
	}
	logger, err := telemetry.NewLogger(os.Stderr, cfg.Log.Level)
	if err != nil {
		return err
	}
	srv, err := server.New(cfg, server.Options{Logger: logger, ConfigDir: filepath.Dir(args.config)})
	if err != nil {
		return err
	}
	if err := srv.Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// servePprof serves net/http/pprof on descriptor 4 (never on the port
// under test).
func servePprof(ctx context.Context) error {
	pln, err := net.FileListener(os.NewFile(4, "pprof"))
	if err != nil {
		return fmt.Errorf("bench: pprof listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go func() { _ = serveHTTP(ctx, pln, mux) }()
	return nil
}

// child is a server process started by the parent.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// startChild re-executes this binary in role with the given listeners as
// descriptors 3, 4, ...; stderr goes to logPath ("" discards it).
func startChild(role string, files []*os.File, logPath string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append([]string{"-role", role}, args...)...)
	cmd.ExtraFiles = files
	cmd.Stdout = os.Stdout
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stderr = f
	}
	// The child dies with the parent, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", role, err)
	}
	c := &child{name: role, cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	return c, nil
}

// stop ends the child with SIGTERM (SIGKILL after 5s) and waits for it.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// exited reports a child that ended early.
func (c *child) exited() error {
	select {
	case err := <-c.done:
		c.done <- err
		return fmt.Errorf("bench: %s exited: %v", c.name, err)
	default:
		return nil
	}
}

// listen opens a loopback listener on a free port and returns it with its
// file (for a child) and its address.
func listen() (*net.TCPListener, *os.File, string, error) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, nil, "", err
	}
	f, err := ln.File()
	if err != nil {
		ln.Close()
		return nil, nil, "", err
	}
	return ln, f, ln.Addr().String(), nil
}
