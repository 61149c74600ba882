package main

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"
)

// runResult is one closed- or open-loop run against one target.
type runResult struct {
	Requests int         `json:"requests"`
	Errors   int         `json:"errors"`
	Statuses map[int]int `json:"unexpected_statuses,omitempty"`
	FirstErr string      `json:"first_error,omitempty"`
	Seconds  float64     `json:"seconds"`
	RPS      float64     `json:"requests_per_s"`
	// CPUus is the CPU time of the target's server process per request
	// (Gatehouse, or the bare proxy), in microseconds.
	CPUus float64 `json:"server_cpu_us_per_req"`
	// UpstreamCPUus and LoadgenCPUus are the same for the upstream and for
	// the load generator's process (for context: they share the CPUs).
	UpstreamCPUus float64 `json:"upstream_cpu_us_per_req"`
	LoadgenCPUus  float64 `json:"loadgen_cpu_us_per_req"`
	RSSKB         int64   `json:"server_rss_kb"`
	// Latency percentiles in milliseconds (open loop: from each request's
	// release by the dispatcher), computed per slice; the run's value is the
	// median over its slices: the typical second. A stall of the whole
	// machine (another process holding both CPUs for 100 ms) lands in one
	// slice of one target and would otherwise decide its p99.
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	// The same over all the run's requests pooled, stalls included.
	P50Pooled float64 `json:"p50_pooled_ms"`
	P90Pooled float64 `json:"p90_pooled_ms"`
	P99Pooled float64 `json:"p99_pooled_ms"`
	Max       float64 `json:"max_ms"`
	// Open loop only: the offered rate, and how late the dispatcher was at
	// worst.
	Rate      float64 `json:"offered_rate,omitempty"`
	MaxLagMS  float64 `json:"dispatcher_max_lag_ms,omitempty"`
	Completed float64 `json:"completed_fraction,omitempty"`
}

type round struct {
	Round  int                   `json:"round"`
	Order  []string              `json:"order"`
	Rate   float64               `json:"open_loop_rate"`
	Closed map[string]*runResult `json:"closed_loop"`
	Open   map[string]*runResult `json:"open_loop"`
}

// cpuSampler reads the CPU time of the processes that take part in a run.
type cpuSampler struct {
	server, upstream, self time.Duration
}

func (e *env) sample(t *target) (cpuSampler, error) {
	var s cpuSampler
	var err error
	if s.server, err = cpuTime(t.proc.pid()); err != nil {
		return s, err
	}
	if s.upstream, err = cpuTime(e.upstream.pid()); err != nil {
		return s, err
	}
	s.self, err = cpuTime(os.Getpid())
	return s, err
}

// part is one slice of a run: what the load generator saw and the CPU the
// processes used meanwhile.
type part struct {
	l   load
	cpu cpuSampler // used during the slice
}

// slice runs gen against t and samples CPU time right before its first
// request and after its last response.
func (e *env) slice(t *target, gen func(before func()) (load, error)) (part, error) {
	var before cpuSampler
	var serr error
	l, err := gen(func() { before, serr = e.sample(t) })
	if err != nil {
		return part{}, fmt.Errorf("bench: %s: %w", t.name, err)
	}
	if serr != nil {
		return part{}, serr
	}
	after, err := e.sample(t)
	if err != nil {
		return part{}, err
	}
	for _, c := range []*child{e.gatehouse, e.bare, e.upstream} {
		if err := c.exited(); err != nil {
			return part{}, err
		}
	}
	return part{l: l, cpu: cpuSampler{
		server:   after.server - before.server,
		upstream: after.upstream - before.upstream,
		self:     after.self - before.self,
	}}, nil
}

// result merges the slices of one target's run.
func (e *env) result(t *target, parts []part) *runResult {
	var l load
	var cpu cpuSampler
	for _, p := range parts {
		l.Requests += p.l.Requests
		l.Errors += p.l.Errors
		l.Elapsed += p.l.Elapsed
		l.Latencies = append(l.Latencies, p.l.Latencies...)
		l.MaxLag = max(l.MaxLag, p.l.MaxLag)
		for st, n := range p.l.Statuses {
			if l.Statuses == nil {
				l.Statuses = map[int]int{}
			}
			l.Statuses[st] += n
		}
		if l.FirstErr == "" {
			l.FirstErr = p.l.FirstErr
		}
		cpu.server += p.cpu.server
		cpu.upstream += p.cpu.upstream
		cpu.self += p.cpu.self
	}
	r := &runResult{Requests: l.Requests, Errors: l.Errors, Statuses: l.Statuses, FirstErr: l.FirstErr, Seconds: l.Elapsed.Seconds()}
	if l.Elapsed > 0 {
		r.RPS = float64(l.Requests) / l.Elapsed.Seconds()
	}
	if n := float64(l.Requests + l.Errors); n > 0 {
		us := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
		r.CPUus = us(cpu.server)
		r.UpstreamCPUus = us(cpu.upstream)
		r.LoadgenCPUus = us(cpu.self)
	}
	r.RSSKB, _ = rssKB(t.proc.pid())
	var p50, p90, p99 []float64
	for _, p := range parts {
		lat := p.l.Latencies
		slices.Sort(lat)
		p50 = append(p50, ms(percentile(lat, 50)))
		p90 = append(p90, ms(percentile(lat, 90)))
		p99 = append(p99, ms(percentile(lat, 99)))
	}
	r.P50, r.P90, r.P99 = median(p50), median(p90), median(p99)
	lat := l.Latencies
	slices.Sort(lat)
	r.P50Pooled, r.P90Pooled, r.P99Pooled = ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99))
	if len(lat) > 0 {
		r.Max = ms(lat[len(lat)-1])
	}
	r.MaxLagMS = ms(l.MaxLag)
	return r
}

func (e *env) measureClosed(t *target, conns int, d time.Duration) (*runResult, error) {
	p, err := e.slice(t, func(before func()) (load, error) {
		return closedLoop(t.addr, t.reqs, http.StatusOK, conns, d, before)
	})
	if err != nil {
		return nil, err
	}
	return e.result(t, []part{p}), nil
}

// pause lets the machine settle between runs (sockets in TIME_WAIT, GC).
const pause = 100 * time.Millisecond

// order returns the targets in the order of slice i of round n: a cyclic
// walk with a step that changes from round to round (among the steps that
// visit every target), starting one further at each slice. Over the rounds
// each target runs first, last and right after each other target: a
// process that was idle during the previous slices (the bare proxy, or
// Gatehouse after the bare proxy's slice) pays for waking up, and that
// cost must not always fall on the same route.
func order(targets []*target, n, i int) []*target {
	var steps []int
	for s := 1; s < len(targets); s++ {
		if gcd(s, len(targets)) == 1 {
			steps = append(steps, s)
		}
	}
	step := 1
	if len(steps) > 0 {
		step = steps[n%len(steps)]
	}
	out := make([]*target, len(targets))
	for k := range targets {
		out[k] = targets[(n+i+k*step)%len(targets)]
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// phase runs gen against every target for d in total, in slices of at most
// sliceLen that alternate between the targets (see order), so that a change
// in the machine's background load falls on every target alike.
func (e *env) phase(round int, targets []*target, d, sliceLen time.Duration,
	gen func(t *target, d time.Duration, before func()) (load, error)) (map[string]*runResult, error) {
	n := max(1, int((d+sliceLen-1)/sliceLen))
	each := d / time.Duration(n)
	parts := map[string][]part{}
	for i := range n {
		for _, t := range order(targets, round, i) {
			time.Sleep(pause)
			p, err := e.slice(t, func(before func()) (load, error) { return gen(t, each, before) })
			if err != nil {
				return nil, err
			}
			parts[t.name] = append(parts[t.name], p)
		}
	}
	out := map[string]*runResult{}
	for _, t := range targets {
		out[t.name] = e.result(t, parts[t.name])
	}
	return out, nil
}

// round measures every target closed-loop, then every target open-loop at
// the fraction of this round's bare-proxy rate.
func (e *env) round(n int, targets []*target, s settings) (round, error) {
	rd := round{Round: n + 1}
	for _, t := range order(targets, n, 0) {
		rd.Order = append(rd.Order, t.name)
	}
	fmt.Printf("round %d/%d (first slice: %v)\n", n+1, s.Rounds, rd.Order)
	var err error
	rd.Closed, err = e.phase(n, targets, s.Duration, s.Slice, func(t *target, d time.Duration, before func()) (load, error) {
		return closedLoop(t.addr, t.reqs, http.StatusOK, s.Conns, d, before)
	})
	if err != nil {
		return rd, err
	}
	for _, t := range targets {
		r := rd.Closed[t.name]
		fmt.Printf("  closed %-13s %8.0f req/s  cpu %6.1f µs/req  errors %d\n", t.name, r.RPS, r.CPUus, r.Errors)
	}
	rd.Rate = s.OpenFraction * rd.Closed["bare"].RPS
	rd.Open, err = e.phase(n, targets, s.Duration, s.Slice, func(t *target, d time.Duration, before func()) (load, error) {
		return openLoop(t.addr, t.reqs, http.StatusOK, s.OpenConns, rd.Rate, d, before)
	})
	if err != nil {
		return rd, err
	}
	for _, t := range targets {
		r := rd.Open[t.name]
		r.Rate = rd.Rate
		r.Completed = float64(r.Requests) / (rd.Rate * s.Duration.Seconds())
		fmt.Printf("  open   %-13s %8.0f req/s  p50 %6.3f  p90 %6.3f  p99 %6.3f ms  errors %d\n", t.name, rd.Rate, r.P50, r.P90, r.P99, r.Errors)
	}
	return rd, nil
}

// summary is one target's medians over the rounds, and the medians of its
// per-round ratios to the bare proxy.
type summary struct {
	Target     string  `json:"target"`
	RPS        float64 `json:"requests_per_s"`
	RPSRatio   float64 `json:"requests_per_s_ratio"`
	CPUus      float64 `json:"server_cpu_us_per_req"`
	CPURatio   float64 `json:"server_cpu_ratio"`
	P50        float64 `json:"p50_ms"`
	P50Ratio   float64 `json:"p50_ratio"`
	P90        float64 `json:"p90_ms"`
	P90Ratio   float64 `json:"p90_ratio"`
	P99        float64 `json:"p99_ms"`
	P99Ratio   float64 `json:"p99_ratio"`
	P99Pooled  float64 `json:"p99_pooled_ms"`
	P99PRatio  float64 `json:"p99_pooled_ratio"`
	Errors     int     `json:"errors"`
	MeetsRPS   bool    `json:"meets_rps_target"`
	MeetsP99   bool    `json:"meets_p99_target"`
	OpenRate   float64 `json:"open_loop_rate"`
	UpstreamUS float64 `json:"upstream_cpu_us_per_req"`
	LoadgenUS  float64 `json:"loadgen_cpu_us_per_req"`
}

// Targets of the issue: each route ≥ 0.85× the bare proxy's requests/s and
// p99 ≤ 1.2× the bare proxy's in the open-loop run.
const (
	minRPSRatio = 0.85
	maxP99Ratio = 1.2
)

func summarize(rounds []round, targets []*target) []summary {
	var out []summary
	for _, t := range targets {
		var rps, rpsR, cpu, cpuR, p50, p50R, p90, p90R, p99, p99R, p99P, p99PR, rate, up, lg []float64
		s := summary{Target: t.name}
		for _, rd := range rounds {
			c, o, bc, bo := rd.Closed[t.name], rd.Open[t.name], rd.Closed["bare"], rd.Open["bare"]
			rps, rpsR = append(rps, c.RPS), append(rpsR, c.RPS/bc.RPS)
			cpu, cpuR = append(cpu, c.CPUus), append(cpuR, c.CPUus/bc.CPUus)
			p50, p50R = append(p50, o.P50), append(p50R, o.P50/bo.P50)
			p90, p90R = append(p90, o.P90), append(p90R, o.P90/bo.P90)
			p99, p99R = append(p99, o.P99), append(p99R, o.P99/bo.P99)
			p99P, p99PR = append(p99P, o.P99Pooled), append(p99PR, o.P99Pooled/bo.P99Pooled)
			rate, up, lg = append(rate, rd.Rate), append(up, c.UpstreamCPUus), append(lg, c.LoadgenCPUus)
			s.Errors += c.Errors + o.Errors
		}
		s.RPS, s.RPSRatio = median(rps), median(rpsR)
		s.CPUus, s.CPURatio = median(cpu), median(cpuR)
		s.P50, s.P50Ratio = median(p50), median(p50R)
		s.P90, s.P90Ratio = median(p90), median(p90R)
		s.P99, s.P99Ratio = median(p99), median(p99R)
		s.P99Pooled, s.P99PRatio = median(p99P), median(p99PR)
		s.OpenRate, s.UpstreamUS, s.LoadgenUS = median(rate), median(up), median(lg)
		s.MeetsRPS = s.RPSRatio >= minRPSRatio && s.Errors == 0
		s.MeetsP99 = s.P99Ratio <= maxP99Ratio && s.Errors == 0
		out = append(out, s)
	}
	return out
}
