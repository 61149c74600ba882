package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// The load generators speak HTTP/1.1 over raw keep-alive connections with
// requests built once: net/http's client costs several times more CPU per
// request than the proxies under test, and on a small machine the load
// generator shares the CPUs with them.

var errMalformed = errors.New("bench: malformed HTTP response")

// client is one keep-alive HTTP/1.1 connection.
type client struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
}

func (c *client) dial() error {
	conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		return err
	}
	// Every run ends long before this; it only keeps a stuck server from
	// hanging the benchmark.
	_ = conn.SetDeadline(time.Now().Add(5 * time.Minute))
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 32<<10)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

func (c *client) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// do sends one complete request and reads the whole response. It redials
// when the server closed the connection.
func (c *client) do(req []byte) (status int, err error) {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return 0, err
		}
	}
	if _, err := c.conn.Write(req); err != nil {
		c.close()
		return 0, err
	}
	status, closeConn, err := readResponse(c.br)
	if err != nil || closeConn {
		c.close()
	}
	return status, err
}

// readResponse reads one response to a GET request and discards its body.
func readResponse(br *bufio.Reader) (status int, closeConn bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, true, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, true, errMalformed
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, true, errMalformed
		}
		status = status*10 + int(d-'0')
	}
	closeConn = line[7] == '0'
	length, chunked := -1, false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return status, true, err
		}
		if len(line) <= 2 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, true, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length = 0
			for _, d := range value {
				if d < '0' || d > '9' {
					return status, true, errMalformed
				}
				length = length*10 + int(d-'0')
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				closeConn = true
			}
		}
	}
	if status == 204 || status == 304 || status < 200 {
		return status, closeConn, nil
	}
	switch {
	case chunked:
		err = discardChunked(br)
	case length >= 0:
		_, err = br.Discard(length)
	default:
		_, err = io.Copy(io.Discard, br)
		closeConn = true
	}
	if err != nil {
		return status, true, err
	}
	return status, closeConn, nil
}

func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimSpace(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n := 0
		for _, d := range line {
			switch {
			case d >= '0' && d <= '9':
				n = n*16 + int(d-'0')
			case d >= 'a' && d <= 'f':
				n = n*16 + int(d-'a'+10)
			case d >= 'A' && d <= 'F':
				n = n*16 + int(d-'A'+10)
			default:
				return errMalformed
			}
		}
		if n == 0 {
			// Trailers, then the empty line.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(line) <= 2 {
					return nil
				}
			}
		}
		if _, err := br.Discard(n + 2); err != nil {
			return err
		}
	}
}

// load is the outcome of one run against one target.
type load struct {
	Requests  int             // completed with the expected status
	Errors    int             // wrong status or transport error
	Statuses  map[int]int     // unexpected statuses
	FirstErr  string          // the first transport error, if any
	Elapsed   time.Duration   // first send to last completion
	Latencies []time.Duration // of the completed requests
	// MaxLag is how late the open-loop dispatcher released a request
	// after its scheduled time (generator health, not server latency).
	MaxLag time.Duration
}

type worker struct {
	c         client
	lat       []time.Duration
	ok, bad   int
	statuses  map[int]int
	firstErr  error
	reqIndex  int
	reqs      [][]byte
	reqStride int
}

func (w *worker) one(want int) time.Duration {
	req := w.reqs[w.reqIndex%len(w.reqs)]
	w.reqIndex += w.reqStride
	t0 := time.Now()
	st, err := w.c.do(req)
	d := time.Since(t0)
	switch {
	case err != nil:
		w.bad++
		if w.firstErr == nil {
			w.firstErr = err
		}
	case st != want:
		w.bad++
		if w.statuses == nil {
			w.statuses = map[int]int{}
		}
		w.statuses[st]++
	default:
		w.ok++
	}
	return d
}

func newWorkers(addr string, reqs [][]byte, n int) ([]*worker, error) {
	ws := make([]*worker, n)
	for i := range ws {
		ws[i] = &worker{c: client{addr: addr}, reqs: reqs, reqIndex: i, reqStride: n}
		if err := ws[i].c.dial(); err != nil {
			for _, w := range ws[:i] {
				w.c.close()
			}
			return nil, err
		}
	}
	return ws, nil
}

func collect(ws []*worker, elapsed time.Duration) load {
	l := load{Elapsed: elapsed}
	for _, w := range ws {
		w.c.close()
		l.Requests += w.ok
		l.Errors += w.bad
		l.Latencies = append(l.Latencies, w.lat...)
		for s, n := range w.statuses {
			if l.Statuses == nil {
				l.Statuses = map[int]int{}
			}
			l.Statuses[s] += n
		}
		if w.firstErr != nil && l.FirstErr == "" {
			l.FirstErr = w.firstErr.Error()
		}
	}
	return l
}

// closedLoop keeps conns connections busy for d: each sends its next request
// as soon as the previous response has been read. before runs once every
// connection is open, right before the first request.
func closedLoop(addr string, reqs [][]byte, want, conns int, d time.Duration, before func()) (load, error) {
	ws, err := newWorkers(addr, reqs, conns)
	if err != nil {
		return load{}, err
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	var deadline time.Time
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			w.lat = make([]time.Duration, 0, 1<<14)
			for time.Now().Before(deadline) {
				w.lat = append(w.lat, w.one(want))
			}
		}()
	}
	if before != nil {
		before()
	}
	t0 := time.Now()
	deadline = t0.Add(d)
	close(start)
	wg.Wait()
	return collect(ws, time.Since(t0)), nil
}

// each sends every request of reqs once over conns connections, as fast as
// they answer (used to present many distinct sessions).
func each(addr string, reqs [][]byte, want, conns int) (load, error) {
	ws, err := newWorkers(addr, reqs, conns)
	if err != nil {
		return load{}, err
	}
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w.reqIndex < len(reqs) {
				w.one(want)
			}
		}()
	}
	wg.Wait()
	return collect(ws, time.Since(t0)), nil
}

// openLoop sends at a fixed rate for d, whatever the latency: a dispatcher
// releases each request at its scheduled time to the next free connection
// (conns of them); when all are busy, released requests wait, and that
// wait counts in their latency. Latency runs from the release to the end
// of the response.
//
// The dispatcher sleeps with nanosleep on a locked thread: Go's timers wake
// about a millisecond late on Linux, which would turn a steady rate into
// bursts. Requests due within one wake-up are released together.
func openLoop(addr string, reqs [][]byte, want, conns int, rate float64, d time.Duration, before func()) (load, error) {
	ws, err := newWorkers(addr, reqs, conns)
	if err != nil {
		return load{}, err
	}
	n := int(rate * d.Seconds())
	if n < 1 {
		return load{}, fmt.Errorf("bench: open loop of %v at %.0f/s sends nothing", d, rate)
	}
	jobs := make(chan time.Time, n)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.lat = make([]time.Duration, 0, n/len(ws)+1024)
			for released := range jobs {
				w.one(want)
				w.lat = append(w.lat, time.Since(released))
			}
		}()
	}
	if before != nil {
		before()
	}
	interval := time.Duration(float64(time.Second) / rate)
	t0 := time.Now()
	maxLag := dispatch(jobs, t0, interval, n)
	close(jobs)
	wg.Wait()
	l := collect(ws, time.Since(t0))
	l.MaxLag = maxLag
	return l, nil
}

func dispatch(jobs chan<- time.Time, t0 time.Time, interval time.Duration, n int) (maxLag time.Duration) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := 0; i < n; {
		now := time.Now()
		for ; i < n; i++ {
			due := t0.Add(time.Duration(i) * interval)
			if due.After(now) {
				break
			}
			maxLag = max(maxLag, now.Sub(due))
			jobs <- now
		}
		if i < n {
			wait := time.Until(t0.Add(time.Duration(i) * interval))
			if wait > 0 {
				ts := syscall.NsecToTimespec(int64(wait))
				_ = syscall.Nanosleep(&ts, nil)
			}
		}
	}
	return maxLag
}
