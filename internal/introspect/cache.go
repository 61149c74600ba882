package introspect

import (
	"container/heap"
	"crypto/sha256"
	"sync"
	"time"
)

// cache holds introspection results by key, bounded at max entries. A hit
// takes a read lock only; entries are immutable once published, except for
// their bookkeeping (heap index, list links), which only put touches, under
// the write lock.
//
// Every put first drops the entries whose time is up (a min-heap on until
// finds them in O(log n) each), then, while the cache is still full, the
// oldest entry (an insertion-ordered list). A flood of distinct tokens
// therefore costs O(log n) per insert and never grows the cache past max.
type cache struct {
	max int

	mu      sync.RWMutex
	entries map[[sha256.Size]byte]*entry
	byUntil entryHeap
	oldest  *entry // head of the insertion-ordered list
	newest  *entry // tail
}

type entry struct {
	key   [sha256.Size]byte
	res   *Result
	until time.Time // end of the entry's time in the cache
	exp   time.Time // the token's exp, zero when none or inactive

	index      int    // in byUntil
	prev, next *entry // older and newer neighbours
}

func newCache(maxEntries int) *cache {
	return &cache{max: maxEntries, entries: make(map[[sha256.Size]byte]*entry)}
}

// get returns the cached result for key at now. An entry whose token has
// expired answers inactive (whatever the server said, and with no call);
// one whose time in the cache is up is a miss.
func (c *cache) get(key [sha256.Size]byte, now time.Time) (*Result, bool) {
	c.mu.RLock()
	e := c.entries[key]
	c.mu.RUnlock()
	if e == nil {
		return nil, false
	}
	if !e.exp.IsZero() && !now.Before(e.exp) {
		return &Result{Active: false}, true
	}
	if !now.Before(e.until) {
		return nil, false
	}
	return e.res, true
}

// put stores res under key until the given time, replacing any entry the
// key had.
func (c *cache) put(key [sha256.Size]byte, res *Result, now, until, exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.entries[key]; old != nil {
		c.remove(old)
	}
	for len(c.byUntil) > 0 && !now.Before(c.byUntil[0].until) {
		c.remove(c.byUntil[0])
	}
	for len(c.entries) >= c.max && c.oldest != nil {
		c.remove(c.oldest)
	}
	e := &entry{key: key, res: res, until: until, exp: exp, prev: c.newest}
	if c.newest != nil {
		c.newest.next = e
	} else {
		c.oldest = e
	}
	c.newest = e
	heap.Push(&c.byUntil, e)
	c.entries[key] = e
}

// remove unlinks e; the caller holds the write lock.
func (c *cache) remove(e *entry) {
	heap.Remove(&c.byUntil, e.index)
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.oldest = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.newest = e.prev
	}
	e.prev, e.next = nil, nil
	delete(c.entries, e.key)
}

// len returns the number of entries, expired or not.
func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// entryHeap is a min-heap of entries on until (container/heap).
type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(a, b int) bool { return h[a].until.Before(h[b].until) }
func (h entryHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].index = a
	h[b].index = b
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
