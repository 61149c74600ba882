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
	// release by the dispatcher).
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
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

func (e *env) finish(t *target, l load, before cpuSampler) (*runResult, error) {
	after, err := e.sample(t)
	if err != nil {
		return nil, err
	}
	for _, c := range []*child{e.gatehouse, e.bare, e.upstream} {
		if err := c.exited(); err != nil {
			return nil, err
		}
	}
	r := &runResult{Requests: l.Requests, Errors: l.Errors, Statuses: l.Statuses, FirstErr: l.FirstErr, Seconds: l.Elapsed.Seconds()}
	if l.Elapsed > 0 {
		r.RPS = float64(l.Requests) / l.Elapsed.Seconds()
	}
	if n := float64(l.Requests + l.Errors); n > 0 {
		us := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
		r.CPUus = us(after.server - before.server)
		r.UpstreamCPUus = us(after.upstream - before.upstream)
		r.LoadgenCPUus = us(after.self - before.self)
	}
	r.RSSKB, _ = rssKB(t.proc.pid())
	lat := l.Latencies
	slices.Sort(lat)
	r.P50, r.P90, r.P99 = ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99))
	if len(lat) > 0 {
		r.Max = ms(lat[len(lat)-1])
	}
	return r, nil
}

func (e *env) measureClosed(t *target, conns int, d time.Duration) (*runResult, error) {
	var before cpuSampler
	var serr error
	l, err := closedLoop(t.addr, t.reqs, http.StatusOK, conns, d, func() { before, serr = e.sample(t) })
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", t.name, err)
	}
	if serr != nil {
		return nil, serr
	}
	return e.finish(t, l, before)
}

func (e *env) measureOpen(t *target, conns int, rate float64, d time.Duration) (*runResult, error) {
	var before cpuSampler
	var serr error
	l, err := openLoop(t.addr, t.reqs, http.StatusOK, conns, rate, d, func() { before, serr = e.sample(t) })
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", t.name, err)
	}
	if serr != nil {
		return nil, serr
	}
	r, err := e.finish(t, l, before)
	if err != nil {
		return nil, err
	}
	r.Rate = rate
	r.MaxLagMS = ms(l.MaxLag)
	r.Completed = float64(l.Requests) / (rate * d.Seconds())
	return r, nil
}

// pause lets the machine settle between runs (sockets in TIME_WAIT, GC).
const pause = 300 * time.Millisecond

// round measures every target closed-loop, then every target open-loop at
// the fraction of this round's bare-proxy rate. The order rotates.
func (e *env) round(n int, targets []*target, s settings) (round, error) {
	order := make([]*target, len(targets))
	for i := range targets {
		order[i] = targets[(i+n)%len(targets)]
	}
	rd := round{Round: n + 1, Closed: map[string]*runResult{}, Open: map[string]*runResult{}}
	for _, t := range order {
		rd.Order = append(rd.Order, t.name)
	}
	fmt.Printf("round %d/%d (%v)\n", n+1, s.Rounds, rd.Order)
	for _, t := range order {
		time.Sleep(pause)
		r, err := e.measureClosed(t, s.Conns, s.Duration)
		if err != nil {
			return rd, err
		}
		rd.Closed[t.name] = r
		fmt.Printf("  closed %-13s %8.0f req/s  cpu %6.1f µs/req  errors %d\n", t.name, r.RPS, r.CPUus, r.Errors)
	}
	rd.Rate = s.OpenFraction * rd.Closed["bare"].RPS
	for _, t := range order {
		time.Sleep(pause)
		r, err := e.measureOpen(t, s.OpenConns, rd.Rate, s.Duration)
		if err != nil {
			return rd, err
		}
		rd.Open[t.name] = r
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
		var rps, rpsR, cpu, cpuR, p50, p50R, p90, p90R, p99, p99R, rate, up, lg []float64
		s := summary{Target: t.name}
		for _, rd := range rounds {
			c, o, bc, bo := rd.Closed[t.name], rd.Open[t.name], rd.Closed["bare"], rd.Open["bare"]
			rps, rpsR = append(rps, c.RPS), append(rpsR, c.RPS/bc.RPS)
			cpu, cpuR = append(cpu, c.CPUus), append(cpuR, c.CPUus/bc.CPUus)
			p50, p50R = append(p50, o.P50), append(p50R, o.P50/bo.P50)
			p90, p90R = append(p90, o.P90), append(p90R, o.P90/bo.P90)
			p99, p99R = append(p99, o.P99), append(p99R, o.P99/bo.P99)
			rate, up, lg = append(rate, rd.Rate), append(up, c.UpstreamCPUus), append(lg, c.LoadgenCPUus)
			s.Errors += c.Errors + o.Errors
		}
		s.RPS, s.RPSRatio = median(rps), median(rpsR)
		s.CPUus, s.CPURatio = median(cpu), median(cpuR)
		s.P50, s.P50Ratio = median(p50), median(p50R)
		s.P90, s.P90Ratio = median(p90), median(p90R)
		s.P99, s.P99Ratio = median(p99), median(p99R)
		s.OpenRate, s.UpstreamUS, s.LoadgenUS = median(rate), median(up), median(lg)
		s.MeetsRPS = s.RPSRatio >= minRPSRatio && s.Errors == 0
		s.MeetsP99 = s.P99Ratio <= maxP99Ratio && s.Errors == 0
		out = append(out, s)
	}
	return out
}
