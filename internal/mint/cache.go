package mint

import (
	"container/heap"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Reuse margin: a cached token is served while more than
// max(minMargin, lifetime/marginDivisor) of it is left.
const (
	minMargin     = 10 * time.Second
	marginDivisor = 5 // 20 %
)

// cacheKey identifies a cached token: the source credential, the audience
// and the normalized scope string.
type cacheKey struct {
	cred, aud, scope string
}

// entry is a cached token. Every field but index is immutable once the
// entry is in the cache; a renewal stores a new entry.
type entry struct {
	token         string
	sub, clientID string
	exp           time.Time
	staleAt       time.Time // from then on the token is not served
	seq           uint64    // insertion order, breaks staleAt ties
	key           cacheKey
	index         int // position in the heap; guarded by cache.mu
}

func newEntry(token string, s *Subject, iat, exp int64) *entry {
	lifetime := time.Duration(exp-iat) * time.Second
	margin := max(minMargin, lifetime/marginDivisor)
	e := time.Unix(exp, 0)
	return &entry{token: token, sub: s.Subject, clientID: s.ClientID, exp: e, staleAt: e.Add(-margin)}
}

// usable reports whether e may be served for s at now.
func (e *entry) usable(now time.Time, s *Subject) bool {
	return e != nil && now.Before(e.staleAt) && e.matches(s)
}

// matches reports whether e was minted for the same caller as s and does not
// outlive s's credential: a guard against a CacheKey reused by mistake.
func (e *entry) matches(s *Subject) bool {
	return e.sub == s.Subject && e.clientID == s.ClientID && (s.Expiry.IsZero() || !e.exp.After(s.Expiry))
}

// call is a mint in flight for one key; waiters block on done.
type call struct {
	done chan struct{}
	e    *entry
	err  error
}

var errMintPanicked = errors.New("mint: minting panicked")

// cache is a bounded map of tokens with an index by staleAt (a min-heap) for
// eviction, and a table of mints in flight so that concurrent misses for one
// key sign once.
type cache struct {
	max int

	mu       sync.RWMutex
	entries  map[cacheKey]*entry
	order    entryHeap
	seq      uint64
	inflight map[cacheKey]*call

	waiting atomic.Int64 // goroutines waiting for another's mint (for tests)
}

func newCache(maxEntries int) *cache {
	return &cache{max: maxEntries, entries: make(map[cacheKey]*entry), inflight: make(map[cacheKey]*call)}
}

// lookup returns the usable entry for k, or nil.
func (c *cache) lookup(k cacheKey, now time.Time, s *Subject) *entry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.entries[k]; e.usable(now, s) {
		return e
	}
	return nil
}

// get returns the usable entry for k, or the result of mint, which runs once
// for all the callers that miss k at the same time.
func (c *cache) get(k cacheKey, now time.Time, s *Subject, mint func() (*entry, error)) (*entry, error) {
	c.mu.Lock()
	if e := c.entries[k]; e.usable(now, s) {
		c.mu.Unlock()
		return e, nil
	}
	if cl := c.inflight[k]; cl != nil {
		c.mu.Unlock()
		c.waiting.Add(1)
		<-cl.done
		c.waiting.Add(-1)
		if cl.err != nil {
			return nil, cl.err
		}
		if cl.e.matches(s) {
			return cl.e, nil
		}
		// Another caller under the same key: mint for this one, uncached.
		return mint()
	}
	cl := &call{done: make(chan struct{}), err: errMintPanicked}
	c.inflight[k] = cl
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		delete(c.inflight, k)
		if cl.err == nil {
			c.put(k, cl.e, now)
		}
		c.mu.Unlock()
		close(cl.done)
	}()
	cl.e, cl.err = mint()
	return cl.e, cl.err
}

// put stores e under k, first dropping the entries no longer served and then,
// while the cache is full, the ones that stop being served soonest. c.mu is
// held.
func (c *cache) put(k cacheKey, e *entry, now time.Time) {
	if old := c.entries[k]; old != nil {
		heap.Remove(&c.order, old.index)
		delete(c.entries, k)
	}
	for len(c.order) > 0 && !now.Before(c.order[0].staleAt) {
		c.evict()
	}
	for len(c.order) >= c.max {
		c.evict()
	}
	c.seq++
	e.seq = c.seq
	e.key = k
	c.entries[k] = e
	heap.Push(&c.order, e)
}

func (c *cache) evict() {
	e := heap.Pop(&c.order).(*entry)
	delete(c.entries, e.key)
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// entryHeap orders entries by staleAt, then insertion.
type entryHeap []*entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if !h[i].staleAt.Equal(h[j].staleAt) {
		return h[i].staleAt.Before(h[j].staleAt)
	}
	return h[i].seq < h[j].seq
}
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil
	e.index = -1
	*h = old[:n-1]
	return e
}
