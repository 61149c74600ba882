package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

type targetInfo struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Process string `json:"process"`
	About   string `json:"about"`
}

type results struct {
	Timestamp string       `json:"timestamp"`
	Machine   machine      `json:"machine"`
	Settings  settings     `json:"settings"`
	Targets   []targetInfo `json:"targets"`
	Summary   []summary    `json:"summary"`
	Checks    *checks      `json:"checks"`
	Rounds    []round      `json:"rounds"`
}

func mark(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}

// printTable writes the summary: medians over rounds, ratios to the bare proxy.
func printTable(w io.Writer, res *results) {
	s := res.Settings
	fmt.Fprintf(w, "\nGatehouse vs bare httputil.ReverseProxy — medians of %d rounds; per round and target: closed loop %d connections × %.0fs, open loop at %.0f%% of the bare proxy's req/s × %.0fs, in slices of ≤ %.0fs alternating between targets\n",
		s.Rounds, s.Conns, s.DurationS, 100*s.OpenFraction, s.DurationS, s.SliceS)
	fmt.Fprintf(w, "machine: %d × %s, load average before %v, after %v\n\n", res.Machine.CPUs, res.Machine.CPUModel, res.Machine.LoadBefore, res.Machine.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\treq/s\t×bare\tCPU µs/req\t×bare\tp50 ms\t×bare\tp90 ms\t×bare\tp99 ms\t×bare\tpooled p99\t×bare\terrors\treq/s ≥0.85×\tp99 ≤1.2×\t")
	for _, r := range res.Summary {
		rpsOK, p99OK := mark(r.MeetsRPS), mark(r.MeetsP99)
		if r.Target == "bare" {
			rpsOK, p99OK = "", ""
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.1f\t%.2f\t%.3f\t%.2f\t%.3f\t%.2f\t%.3f\t%.2f\t%.3f\t%.2f\t%d\t%s\t%s\t\n",
			r.Target, r.RPS, r.RPSRatio, r.CPUus, r.CPURatio, r.P50, r.P50Ratio, r.P90, r.P90Ratio, r.P99, r.P99Ratio, r.P99Pooled, r.P99PRatio, r.Errors, rpsOK, p99OK)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "latency percentiles: per slice, median over the slices of a round, then over rounds; \"pooled p99\" pools each round's requests (machine-wide stalls included)")
	if len(res.Summary) > 0 {
		fmt.Fprintf(w, "\nopen-loop rate (median): %.0f req/s; upstream CPU %.1f µs/req; load generator CPU %.1f µs/req\n",
			res.Summary[0].OpenRate, res.Summary[0].UpstreamUS, res.Summary[0].LoadgenUS)
	}
	if c := res.Checks; c != nil {
		fmt.Fprintf(w, "introspection: %d simultaneous first requests → %d call(s) [%s]; forged JWTs: %d → %d JWKS fetch(es) [%s]\n",
			c.FirstRequests, c.IntrospectionCalls, mark(c.IntrospectionPassed), c.ForgedJWTs, c.JWKSFetches, mark(c.ForgedPassed))
		fmt.Fprintf(w, "Gatehouse RSS KiB by connections %v; after %d requests with one session %d, with %d distinct sessions %d\n",
			c.RSSByConns, c.Sessions, c.RSSOneSession, c.Sessions, c.RSSManySessions)
	}
}
