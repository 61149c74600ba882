package mint

import (
	"crypto"
	"testing"
	"time"
)

func benchSubject() Subject {
	return Subject{
		Subject:  "user-1",
		ClientID: "spa",
		Scopes:   []string{"orders:read", "orders:write"},
		Claims:   map[string]any{"roles": []string{"customer"}},
		Expiry:   t0.Add(time.Hour),
		CacheKey: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	}
}

func benchMinter(b *testing.B, key crypto.Signer) *Minter {
	return newMinter(b, newFakeClock(), func(c *Config) { c.Keys = []crypto.Signer{key} })
}

// BenchmarkMintCold signs a new token every time (caching disabled).
func BenchmarkMintCold(b *testing.B) {
	for _, k := range []struct {
		name string
		key  crypto.Signer
	}{{"ES256", newES256(b)}, {"EdDSA", newEd25519(b)}} {
		b.Run(k.name, func(b *testing.B) {
			m := benchMinter(b, k.key)
			s := benchSubject()
			s.CacheKey = ""
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Mint(s, testAudience); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMintCached returns the cached token; it signs once.
func BenchmarkMintCached(b *testing.B) {
	m := benchMinter(b, newES256(b))
	s := benchSubject()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Mint(s, testAudience); err != nil {
			b.Fatal(err)
		}
	}
	if m.Mints() != 1 {
		b.Fatalf("Mints = %d, want 1", m.Mints())
	}
}

// BenchmarkMintCachedParallel measures contention on the cache.
func BenchmarkMintCachedParallel(b *testing.B) {
	m := benchMinter(b, newES256(b))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		s := benchSubject()
		for pb.Next() {
			if _, err := m.Mint(s, testAudience); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
