package introspect

// CacheLen returns the number of cached results, for tests.
func (i *Introspector) CacheLen() int { return i.cache.len() }
