package mint

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestCacheHitSignsNothing(t *testing.T) {
	m := newMinter(t, newFakeClock(), nil)
	first := mustMint(t, m, user(), testAudience)
	for range 3 {
		if got := mustMint(t, m, user(), testAudience); got != first {
			t.Fatal("cache hit returned another token")
		}
	}
	if n := m.Mints(); n != 1 {
		t.Fatalf("Mints = %d, want 1", n)
	}
}

// TestCacheReuseMargin: a cached token is served while more than
// max(10s, 20% of its lifetime) of it is left, then a new one is minted.
func TestCacheReuseMargin(t *testing.T) {
	tests := []struct {
		name     string
		expiry   time.Duration // source expiry after t0; the token's lifetime when shorter than 5m
		advance  time.Duration
		wantSame bool
	}{
		{"5m token, 61s left (margin 60s)", time.Hour, 239 * time.Second, true},
		{"5m token, 60s left", time.Hour, 240 * time.Second, false},
		{"100s token, 21s left (margin 20s)", 100 * time.Second, 79 * time.Second, true},
		{"100s token, 20s left", 100 * time.Second, 80 * time.Second, false},
		{"30s token, 11s left (margin 10s, not 6s)", 30 * time.Second, 19 * time.Second, true},
		{"30s token, 10s left", 30 * time.Second, 20 * time.Second, false},
		{"8s token: shorter than the margin, never reused", 8 * time.Second, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			m := newMinter(t, clock, nil)
			s := user()
			s.Expiry = t0.Add(tt.expiry)
			first := mustMint(t, m, s, testAudience)
			clock.Advance(tt.advance)
			second := mustMint(t, m, s, testAudience)
			if same := second == first; same != tt.wantSame {
				t.Fatalf("same token = %v, want %v", same, tt.wantSame)
			}
			wantMints := int64(2)
			if tt.wantSame {
				wantMints = 1
			} else if iat := segment(t, second, 1)["iat"]; iat != float64(clock.Now().Unix()) {
				t.Errorf("renewed token iat = %v, want now", iat)
			}
			if n := m.Mints(); n != wantMints {
				t.Errorf("Mints = %d, want %d", n, wantMints)
			}
		})
	}
}

// TestCacheKey: the cache is keyed by source credential, audience and set of
// scopes; a token is reused only for the same caller and never outlives
// the source credential.
func TestCacheKey(t *testing.T) {
	tests := []struct {
		name     string
		s        func(*Subject)
		aud      string
		wantSame bool
	}{
		{name: "same request", wantSame: true},
		{name: "scopes in another order", s: func(s *Subject) { s.Scopes = []string{"b", "a"} }, wantSame: true},
		{name: "duplicate scopes", s: func(s *Subject) { s.Scopes = []string{"a", "b", "a"} }, wantSame: true},
		{name: "other extra claims are not compared", s: func(s *Subject) { s.Claims = map[string]any{"roles": "x"} }, wantSame: true},
		{name: "other audience", aud: "billing-api"},
		{name: "fewer scopes", s: func(s *Subject) { s.Scopes = []string{"a"} }},
		{name: "more scopes", s: func(s *Subject) { s.Scopes = []string{"a", "b", "c"} }},
		{name: "other credential", s: func(s *Subject) { s.CacheKey = "cred-2" }},
		{name: "caching disabled", s: func(s *Subject) { s.CacheKey = "" }},
		// A CacheKey reused by mistake for another caller must not hand
		// out the first caller's token.
		{name: "other subject under the same key", s: func(s *Subject) { s.Subject = "user-2" }},
		{name: "other client under the same key", s: func(s *Subject) { s.ClientID = "mobile" }},
		{name: "source now expires before the cached token", s: func(s *Subject) { s.Expiry = t0.Add(time.Minute) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMinter(t, newFakeClock(), nil)
			base := user()
			base.Scopes = []string{"a", "b"}
			first := mustMint(t, m, base, testAudience)
			s := user()
			s.Scopes = []string{"a", "b"}
			if tt.s != nil {
				tt.s(&s)
			}
			aud := tt.aud
			if aud == "" {
				aud = testAudience
			}
			second := mustMint(t, m, s, aud)
			if same := second == first; same != tt.wantSame {
				t.Fatalf("same token = %v, want %v", same, tt.wantSame)
			}
			if !tt.wantSame {
				if c := segment(t, second, 1); c["sub"] != s.Subject || c["client_id"] != s.ClientID || c["aud"] != aud {
					t.Errorf("new token is not about the request: %v", c)
				}
			}
		})
	}
}

func TestCacheBound(t *testing.T) {
	t.Run("full: the oldest goes", func(t *testing.T) {
		clock := newFakeClock()
		m := newMinter(t, clock, func(c *Config) { c.MaxEntries = 3 })
		tokens := map[string]string{}
		for i := 1; i <= 4; i++ {
			s := user()
			s.CacheKey = fmt.Sprint("cred-", i)
			tokens[s.CacheKey] = mustMint(t, m, s, testAudience)
			if n := m.cache.len(); n > 3 {
				t.Fatalf("cache holds %d entries, bound is 3", n)
			}
		}
		for _, key := range []string{"cred-2", "cred-3", "cred-4"} {
			s := user()
			s.CacheKey = key
			if mustMint(t, m, s, testAudience) != tokens[key] {
				t.Errorf("%s was evicted", key)
			}
		}
		if n := m.Mints(); n != 4 {
			t.Fatalf("Mints = %d, want 4", n)
		}
		s := user()
		s.CacheKey = "cred-1"
		if mustMint(t, m, s, testAudience) == tokens["cred-1"] {
			t.Error("cred-1, the oldest, was not evicted")
		}
	})
	t.Run("full: a token no longer served goes before an older valid one", func(t *testing.T) {
		clock := newFakeClock()
		m := newMinter(t, clock, func(c *Config) { c.MaxEntries = 3 })
		mintKey := func(key string, expiry time.Time) string {
			s := user()
			s.CacheKey, s.Expiry = key, expiry
			return mustMint(t, m, s, testAudience)
		}
		old := mintKey("old", t0.Add(time.Hour)) // 5m, served until t0+240s
		clock.Advance(time.Second)
		mintKey("short", clock.Now().Add(20*time.Second)) // served until t0+11s
		mid := mintKey("mid", t0.Add(time.Hour))
		clock.Advance(15 * time.Second)
		latest := mintKey("new", t0.Add(time.Hour))
		before := m.Mints()
		for key, want := range map[string]string{"old": old, "mid": mid, "new": latest} {
			if mintKey(key, t0.Add(time.Hour)) != want {
				t.Errorf("%s was evicted instead of the stale token", key)
			}
		}
		if m.Mints() != before {
			t.Error("a valid cached token was re-minted")
		}
	})
	t.Run("stale tokens are dropped as new ones arrive", func(t *testing.T) {
		clock := newFakeClock()
		m := newMinter(t, clock, nil)
		for i := range 50 {
			s := user()
			s.CacheKey = fmt.Sprint("cred-", i)
			mustMint(t, m, s, testAudience)
		}
		clock.Advance(5 * time.Minute)
		mustMint(t, m, user(), testAudience)
		if n := m.cache.len(); n != 1 {
			t.Fatalf("cache holds %d entries, want 1", n)
		}
	})
	t.Run("renewal replaces the entry", func(t *testing.T) {
		clock := newFakeClock()
		m := newMinter(t, clock, func(c *Config) { c.MaxEntries = 2 })
		mustMint(t, m, user(), testAudience)
		clock.Advance(4 * time.Minute)
		mustMint(t, m, user(), testAudience)
		if n := m.cache.len(); n != 1 || len(m.cache.order) != 1 {
			t.Fatalf("cache holds %d entries, %d in the heap; want 1", n, len(m.cache.order))
		}
	})
}

// gateReader blocks the first Read until gate is closed, after signalling
// entered: it holds the first mint in the middle of signing.
type gateReader struct {
	once    sync.Once
	entered chan struct{}
	gate    chan struct{}
	counter countingReader
}

func (r *gateReader) Read(p []byte) (int, error) {
	r.once.Do(func() {
		close(r.entered)
		<-r.gate
	})
	return r.counter.Read(p)
}

func TestConcurrentMissesMintOnce(t *testing.T) {
	const n = 16
	rd := &gateReader{entered: make(chan struct{}), gate: make(chan struct{})}
	m := newMinter(t, newFakeClock(), func(c *Config) { c.Random = rd })
	results := make(chan string, n)
	var wg sync.WaitGroup
	run := func() {
		defer wg.Done()
		raw, err := m.Mint(user(), testAudience)
		if err != nil {
			t.Error(err)
		}
		results <- raw
	}
	wg.Add(1)
	go run()
	<-rd.entered // the first mint is signing
	wg.Add(n - 1)
	for range n - 1 {
		go run()
	}
	deadline := time.Now().Add(10 * time.Second)
	for m.cache.waiting.Load() != n-1 {
		if time.Now().After(deadline) {
			close(rd.gate)
			t.Fatalf("%d of %d callers wait for the mint in flight; the others mint on their own", m.cache.waiting.Load(), n-1)
		}
		time.Sleep(time.Millisecond)
	}
	close(rd.gate)
	wg.Wait()
	close(results)
	first := ""
	for raw := range results {
		if first == "" {
			first = raw
		}
		if raw != first {
			t.Error("concurrent callers got different tokens")
		}
	}
	if got := m.Mints(); got != 1 {
		t.Fatalf("Mints = %d, want 1", got)
	}
}

// TestConcurrentUse runs many callers over few keys while the clock moves and
// the bound forces evictions (meant for -race); every token must be about
// its own request.
func TestConcurrentUse(t *testing.T) {
	clock := newFakeClock()
	m := newMinter(t, clock, func(c *Config) { c.MaxEntries = 8 })
	stop := make(chan struct{})
	var ticker sync.WaitGroup
	ticker.Add(1)
	go func() {
		defer ticker.Done()
		for {
			select {
			case <-stop:
				return
			default:
				clock.Advance(time.Second)
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 150 {
				s := user()
				s.Expiry = time.Time{}
				s.Subject = fmt.Sprint("user-", (g+i)%5)
				s.CacheKey = "cred-" + s.Subject
				aud := fmt.Sprint("api-", i%3)
				raw, err := m.Mint(s, aud)
				if err != nil {
					t.Error(err)
					return
				}
				if c := segment(t, raw, 1); c["sub"] != s.Subject || c["aud"] != aud {
					t.Errorf("token for %s/%s is about %v/%v", s.Subject, aud, c["sub"], c["aud"])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	ticker.Wait()
	if n := m.cache.len(); n > 8 || n != len(m.cache.order) {
		t.Fatalf("cache holds %d entries and %d in the heap, bound 8", n, len(m.cache.order))
	}
}
