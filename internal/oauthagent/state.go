package oauthagent

import (
	"crypto/sha256"
	"sync"
	"time"
)

// maxUsedStates bounds the used-state memory. Each entry is a SHA-256 and a
// time; a million entries is about 60 MB, reached only by a million logins
// within one login window.
const maxUsedStates = 1 << 20

// usedStates remembers the hashes of states already redeemed until their login
// window ends, so that a callback URL cannot be replayed (one instance; the
// shared store for several replicas comes later).
type usedStates struct {
	mu        sync.Mutex
	m         map[[32]byte]time.Time
	now       func() time.Time
	lastSweep time.Time
}

func newUsedStates(now func() time.Time) *usedStates {
	return &usedStates{m: map[[32]byte]time.Time{}, now: now}
}

// use marks state as used until expires; it reports false when the state was
// used before. When the memory is full it refuses new logins rather than
// forgetting used states.
func (s *usedStates) use(state string, expires time.Time) bool {
	h := sha256.Sum256([]byte(state))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) > time.Minute || len(s.m) >= maxUsedStates {
		for k, exp := range s.m {
			if now.After(exp) {
				delete(s.m, k)
			}
		}
		s.lastSweep = now
	}
	if _, used := s.m[h]; used || len(s.m) >= maxUsedStates {
		return false
	}
	s.m[h] = expires
	return true
}
