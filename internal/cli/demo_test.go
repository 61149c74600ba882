package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// `gatehouse demo --ports auto` starts, prints where to go, serves the SPA and
// a ready Gatehouse, and stops cleanly on cancellation.
func TestDemoCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"demo", "--ports", "auto"}, Env{Stdout: out, Stderr: io.Discard, Getenv: func(string) (string, bool) { return "", false }})
	}()
	spaRe := regexp.MustCompile(`Open the SPA:\s+(http://localhost:\d+/)`)
	gwRe := regexp.MustCompile(`Gatehouse:\s+(http://localhost:\d+)`)
	deadline := time.Now().Add(20 * time.Second)
	for !spaRe.MatchString(out.String()) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("demo printed no SPA URL: %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	spa := spaRe.FindStringSubmatch(out.String())[1]
	gw := gwRe.FindStringSubmatch(out.String())[1]
	for _, want := range []string{"DEVELOPMENT ONLY", "demouser / Password1"} {
		if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(out.String()) {
			t.Errorf("demo output lacks %q", want)
		}
	}

	resp, err := http.Get(spa + "config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&cfg)
	resp.Body.Close()
	if cfg["gatehouseUrl"] != gw || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("SPA config %v, headers %v", cfg, resp.Header)
	}
	resp, err = http.Get(gw + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("gatehouse /readyz = %d", resp.StatusCode)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("demo exited with %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
}
