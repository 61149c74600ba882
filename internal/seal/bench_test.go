package seal

import (
	"strings"
	"testing"
)

// BenchmarkOpenAccessToken opens a cookie of the size an -at cookie with a
// JWT access token has (about 1.2 KB sealed), with a ring of one key and
// of two keys where the second one opens it (during a key rotation).
func BenchmarkOpenAccessToken(b *testing.B) {
	token := "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0." + strings.Repeat("eyJzdWIiOiJ1c2VyLTEiLCJzY29wZSI6Im9yZGVycyJ9", 12) + ".c2lnbmF0dXJl"
	for _, rc := range []struct {
		name string
		keys []string
	}{{"one-key", []string{katKey1}}, {"second-key", []string{katKey2, katKey1}}} {
		b.Run(rc.name, func(b *testing.B) {
			sealer := ring(b, katKey1)
			v, err := sealer.SealString(token)
			if err != nil {
				b.Fatal(err)
			}
			r := ring(b, rc.keys...)
			b.ReportAllocs()
			for b.Loop() {
				if p, err := r.OpenString(v); err != nil || len(p) != len(token) {
					b.Fatal(err)
				}
			}
		})
	}
}
