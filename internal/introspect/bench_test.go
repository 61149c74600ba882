package introspect_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/introspect"
)

// BenchmarkIntrospectCacheHit is the phantom-token route's per-request cost
// once the token is cached: the hash of the token, a map lookup under a read
// lock and the expiry checks.
func BenchmarkIntrospectCacheHit(b *testing.B) {
	f := newFakeFixture(b)
	f.srv.respond(f.srv.jsonAnswer(http.StatusOK, activeBody(f.clock.Now().Add(time.Hour)), nil))
	endpoint := f.srv.URL + "/introspect" // as discovery metadata holds it: no allocation per call
	i := f.introspector(b, func(c *introspect.Config) {
		c.Endpoint = func() (string, error) { return endpoint, nil }
	})
	token := opaque(1) + opaque(2) + opaque(3) // about as long as a real opaque token
	introspectOK(b, i, token)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := i.Introspect(ctx, token)
			if err != nil || !res.Active {
				b.Fatal(res, err)
			}
		}
	})
	b.StopTimer()
	if i.Calls() != 1 {
		b.Fatalf("Calls() = %d, want 1", i.Calls())
	}
}
