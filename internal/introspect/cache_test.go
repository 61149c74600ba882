package introspect_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/introspect"
)

// A flood of distinct tokens (valid-looking, each unknown) must not grow the
// cache past MaxEntries: memory stays bounded, and the newest answers stay.
func TestCacheIsBoundedUnderFlood(t *testing.T) {
	f := newFakeFixture(t)
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, activeBody(f.clock.Now().Add(time.Hour)), nil))
	const max = 10
	i := f.introspector(t, func(c *introspect.Config) { c.MaxEntries = max })
	for n := range 1000 {
		introspectOK(t, i, opaque(n))
		if got := i.CacheLen(); got > max {
			t.Fatalf("after %d tokens the cache holds %d entries, max %d", n+1, got, max)
		}
	}
	calls := i.Calls()
	// The newest are cached ...
	for n := 1000 - max; n < 1000; n++ {
		introspectOK(t, i, opaque(n))
	}
	if i.Calls() != calls {
		t.Errorf("the %d newest tokens made %d calls, want 0", max, i.Calls()-calls)
	}
	// ... the oldest were evicted.
	introspectOK(t, i, opaque(0))
	if i.Calls() != calls+1 {
		t.Errorf("the first token made %d calls, want 1", i.Calls()-calls)
	}
}

// When the cache is full, expired entries go first, then the oldest.
func TestCacheEvictsExpiredBeforeOldest(t *testing.T) {
	f := newFakeFixture(t)
	now := f.clock.Now()
	active := f.srv.jsonAnswer(http.StatusOK, activeBody(now.Add(time.Hour)), nil)
	inactive := f.srv.jsonAnswer(http.StatusOK, map[string]any{"active": false}, nil)
	i := f.introspector(t, func(c *introspect.Config) { c.MaxEntries = 3 })

	oldest, short, other, next := opaque(1), opaque(2), opaque(3), opaque(4)
	f.srv.respond(active)
	introspectOK(t, i, oldest) // active for 5 minutes, the oldest entry
	f.srv.respond(inactive)
	introspectOK(t, i, short) // inactive, 10 seconds
	f.srv.respond(active)
	introspectOK(t, i, other)
	f.clock.Advance(11 * time.Second) // short's time is up
	introspectOK(t, i, next)          // the cache is full: one must go

	if got := i.CacheLen(); got != 3 {
		t.Errorf("cache holds %d entries, want 3", got)
	}
	calls := i.Calls()
	for _, token := range []string{oldest, other, next} {
		introspectOK(t, i, token)
	}
	if i.Calls() != calls {
		t.Errorf("%d calls: a live entry was evicted while an expired one was there", i.Calls()-calls)
	}
}

// Re-introspecting a token replaces its entry instead of adding one.
func TestCacheReplacesEntry(t *testing.T) {
	f := newFakeFixture(t)
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, map[string]any{"active": false}, nil))
	i := f.introspector(t, nil)
	for range 3 {
		introspectOK(t, i, opaque(1))
		f.clock.Advance(11 * time.Second)
	}
	if i.Calls() != 3 || i.CacheLen() != 1 {
		t.Errorf("Calls() = %d, CacheLen() = %d; want 3 and 1", i.Calls(), i.CacheLen())
	}
}

// The cache key covers the endpoint: the same token at another endpoint is
// another question.
func TestCacheKeyIncludesEndpoint(t *testing.T) {
	f := newFakeFixture(t)
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, activeBody(f.clock.Now().Add(time.Hour)), nil))
	endpoint := f.srv.URL + "/introspect"
	i := f.introspector(t, func(c *introspect.Config) {
		c.Endpoint = func() (string, error) { return endpoint, nil }
	})
	introspectOK(t, i, opaque(1))
	endpoint = f.srv.URL + "/introspect?tenant=2"
	introspectOK(t, i, opaque(1))
	if i.Calls() != 2 {
		t.Errorf("Calls() = %d, want 2", i.Calls())
	}
}

// Long tokens (hashed on the allocating path) are cached like short ones.
func TestCacheLongToken(t *testing.T) {
	f := newFakeFixture(t)
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, activeBody(f.clock.Now().Add(time.Hour)), nil))
	i := f.introspector(t, nil)
	long := strings.Repeat(opaque(1), introspect.MaxTokenBytes/len(opaque(1)))
	for range 3 {
		introspectOK(t, i, long)
	}
	// One character more is another token.
	introspectOK(t, i, long[:len(long)-1])
	if i.Calls() != 2 {
		t.Errorf("Calls() = %d, want 2", i.Calls())
	}
}

// An active entry's time in the cache ends at the token's exp, even when
// MaxTTL is longer: when the cache is full, it is among the first to go.
func TestCacheEntryTimeEndsAtExp(t *testing.T) {
	f := newFakeFixture(t)
	now := f.clock.Now()
	i := f.introspector(t, func(c *introspect.Config) { c.MaxEntries = 2; c.MaxTTL = 5 * time.Minute })
	older, shortLived, next := opaque(1), opaque(2), opaque(3)
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, activeBody(now.Add(time.Hour)), nil))
	introspectOK(t, i, older)
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, activeBody(now.Add(20*time.Second)), nil))
	introspectOK(t, i, shortLived)
	f.clock.Advance(21 * time.Second)
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, activeBody(now.Add(time.Hour)), nil))
	introspectOK(t, i, next) // full: the expired entry goes, not the older one
	calls := i.Calls()
	introspectOK(t, i, older)
	if i.Calls() != calls {
		t.Error("the older live entry was evicted: the short-lived token's entry outlived its exp")
	}
}
