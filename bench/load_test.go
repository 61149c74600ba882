package main

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		status    int
		closeConn bool
		wantErr   bool
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, false, false},
		{"chunked", "HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nTrailer: v\r\n\r\n", 401, false, false},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\n", 204, false, false},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 200, true, false},
		{"until close", "HTTP/1.1 200 OK\r\n\r\nbody", 200, true, false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, true, false},
		{"garbage", "SSH-2.0-OpenSSH\r\n", 0, true, true},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 200, true, true},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 200, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.raw))
			status, closeConn, err := readResponse(br)
			if status != tc.status || closeConn != tc.closeConn || (err != nil) != tc.wantErr {
				t.Fatalf("readResponse = %d, %v, %v; want %d, %v, error %v", status, closeConn, err, tc.status, tc.closeConn, tc.wantErr)
			}
		})
	}
}

// TestLoops runs both generators briefly against a real server: every
// request is answered and counted, responses of every framing are read.
func TestLoops(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.(http.Flusher).Flush()
			fmt.Fprint(w, "streamed")
		case "/close":
			w.Header().Set("Connection", "close")
			fmt.Fprint(w, "bye")
		default:
			upstream(w, r)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	reqs := [][]byte{
		request(host, "/x", "Authorization: Bearer t"),
		request(host, "/chunked"),
		request(host, "/close"),
	}
	l, err := closedLoop(host, reqs, http.StatusOK, 3, 100*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Requests == 0 || l.Errors != 0 || len(l.Latencies) != l.Requests {
		t.Fatalf("closed loop: %d requests, %d errors (%v %s), %d latencies", l.Requests, l.Errors, l.Statuses, l.FirstErr, len(l.Latencies))
	}
	l, err = openLoop(host, reqs, http.StatusOK, 2, 200, 100*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Requests != 20 || l.Errors != 0 {
		t.Fatalf("open loop: %d requests, %d errors (%v %s), want 20 and 0", l.Requests, l.Errors, l.Statuses, l.FirstErr)
	}
	l, err = each(host, [][]byte{reqs[0], request(host, "/x")}, http.StatusOK, 2)
	if err != nil {
		t.Fatal(err)
	}
	if l.Requests != 1 || l.Errors != 1 || l.Statuses[http.StatusUnauthorized] != 1 {
		t.Fatalf("each: %d requests, %d errors %v; want the request without a token refused", l.Requests, l.Errors, l.Statuses)
	}
}

func TestPercentileMedian(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{50: 50, 90: 90, 99: 99, 100: 100, 1: 1} {
		if got := percentile(d, p); got != want {
			t.Errorf("percentile(%v) = %v, want %v", p, got, want)
		}
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
}

// TestOrder: every slice visits every target once, and over the rounds each
// target runs right after the first one (the bare proxy) at least once.
func TestOrder(t *testing.T) {
	var targets []*target
	for _, n := range []string{"bare", "a", "b", "c", "d"} {
		targets = append(targets, &target{name: n})
	}
	afterBare := map[string]bool{}
	for round := range 5 {
		for i := range 3 {
			o := order(targets, round, i)
			seen := map[string]bool{}
			for k, tg := range o {
				seen[tg.name] = true
				if tg.name == "bare" && k+1 < len(o) {
					afterBare[o[k+1].name] = true
				}
			}
			if len(seen) != len(targets) {
				t.Fatalf("round %d slice %d: order %v misses targets", round, i, o)
			}
		}
	}
	if len(afterBare) != len(targets)-1 {
		t.Fatalf("targets run right after bare: %v, want all four", afterBare)
	}
	if o := order(targets[:2], 1, 0); len(o) != 2 || o[0] == o[1] {
		t.Fatalf("two targets: %v", o)
	}
}
