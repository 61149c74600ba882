package seal

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Known-answer vectors from Curity's OAuth Proxy test suites
// (see ../shared/reference/curity-token-handler.md, section 1).
const (
	katKey1    = "4e4636356d65563e4c73233847503e3b21436e6f7629724950526f4b5e2e4e50"
	katKey2    = "7b99279ab87533d3c238db874a842a91ee26a76027f3c03c317504963d2c9926"
	katAT      = "42665300-efe8-419d-be52-07b53e208f46"
	katCSRF    = "pQguFsD6hFjnyYjaeC5KyijcWS6AvkJHiUmY7dLUsuTKsLAITLiJHVqsCdQpaGYO"
	katCookie1 = "AcYBf995tTBVsLtQLvOuLUZXHm2c-XqP8t7SKmhBiQtzy5CAw4h_RF6rXyg6kHrvhb8x4WaLQC6h3mw6a3O3Q9A"
	katCookie2 = "AfctuC2zuBeZoQHfbopmpQyOADYU6Tp9raMEA-2EhWp4I3HtoiAtoP-H2U_PIrF7O0ZQ0nwE7VmWcl3BAY6bGlv4_EGqToyh4lOqynkSlBByxixJY-kA3bIFufJl"
	katCookie3 = "AUixxnN28w2MjVK7sMZ3GqErPlw15NwIng-V8amEv5eu43Wr1nzhif1hU2QpKbw_L55GVxD0Kz4gKVG539ywk6g"
	katCookie4 = "AcdY11SVolhDSduFnfe-83_26jWo8zA4K4x-kT2WtjTLal6PAg6GFjnB3CZqWbDHhIfYYTm_ubeDi92bJjc4CTeZXIEFGhZr3jvyXnaHDW-ZlD6Z_KgcRgcViUWa"
)

func ring(t testing.TB, hexKeys ...string) *Ring {
	t.Helper()
	var keys []Key
	for _, h := range hexKeys {
		k, err := ParseKey(h)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	r, err := NewRing(keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCurityKnownAnswerVectors(t *testing.T) {
	tests := []struct {
		name, key, cookie, want string
	}{
		{"access token, key 1", katKey1, katCookie1, katAT},
		{"csrf token, key 1", katKey1, katCookie2, katCSRF},
		{"access token, key 2", katKey2, katCookie3, katAT},
		{"csrf token, key 2", katKey2, katCookie4, katCSRF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ring(t, tc.key).OpenString(tc.cookie)
			if err != nil {
				t.Fatalf("OpenString: %v", err)
			}
			if got != tc.want {
				t.Fatalf("OpenString = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	tamper := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name, key, cookie string
		want              error
	}{
		{"not decodable", katKey1, "x", ErrMalformed},
		{"empty", katKey1, "", ErrMalformed},
		{"invalid base64 characters", katKey1, strings.Repeat("*", 60), ErrMalformed},
		{"padded base64", katKey1, katCookie1 + "=", ErrMalformed},
		{"too short", katKey1, b64.EncodeToString(make([]byte, overhead)), ErrMalformed},
		{"malicious key", katKey2, katCookie1, ErrOpen},
		{"IV tampered", katKey1, tamper(katCookie1, 4), ErrOpen},
		{"ciphertext tampered", katKey1, tamper(katCookie1, 44), ErrOpen},
		{"tag tampered", katKey1, tamper(katCookie1, len(katCookie1)-5), ErrOpen},
		{"version byte", katKey1, func() string {
			raw, _ := b64.DecodeString(katCookie1)
			raw[0] = 2
			return b64.EncodeToString(raw)
		}(), ErrVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ring(t, tc.key).OpenString(tc.cookie)
			if !errors.Is(err, tc.want) {
				t.Fatalf("OpenString(%q) = %q, %v; want error %v", tc.cookie, got, err, tc.want)
			}
		})
	}
}

func TestRingRotation(t *testing.T) {
	oldRing := ring(t, katKey1)
	sealedOld, err := oldRing.SealString("old session")
	if err != nil {
		t.Fatal(err)
	}
	rotated := ring(t, katKey2, katKey1)
	got, err := rotated.OpenString(sealedOld)
	if err != nil || got != "old session" {
		t.Fatalf("rotated ring cannot open a value sealed by the old key: %q, %v", got, err)
	}
	sealedNew, err := rotated.SealString("new session")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oldRing.OpenString(sealedNew); !errors.Is(err, ErrOpen) {
		t.Fatalf("new values must be sealed with the first key; old ring opened it: %v", err)
	}
	removed := ring(t, katKey2)
	if _, err := removed.OpenString(sealedOld); !errors.Is(err, ErrOpen) {
		t.Fatalf("a value sealed with a removed key must not open: %v", err)
	}
}

func TestSealFormat(t *testing.T) {
	r := ring(t, katKey1)
	plain := "a value"
	v1, _ := r.SealString(plain)
	v2, _ := r.SealString(plain)
	if v1 == v2 {
		t.Fatal("two seals of the same plaintext are equal: IV reused")
	}
	raw, err := b64.DecodeString(v1)
	if err != nil {
		t.Fatalf("sealed value is not base64url without padding: %v", err)
	}
	if strings.ContainsAny(v1, "=+/") {
		t.Fatalf("sealed value %q uses padding or the standard alphabet", v1)
	}
	if raw[0] != 1 || len(raw) != overhead+len(plain) || len(v1) != SealedLen(len(plain)) {
		t.Fatalf("envelope layout wrong: version %d, length %d", raw[0], len(raw))
	}
	if bytes.Contains(raw, []byte(plain)) {
		t.Fatal("plaintext visible in envelope")
	}
}

func TestParseKey(t *testing.T) {
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), strings.Repeat("a", 63), strings.Repeat("a", 66)} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted a malformed key", bad)
		}
	}
	if _, err := ParseKey(strings.ToUpper(katKey1)); err != nil {
		t.Errorf("upper-case hex rejected: %v", err)
	}
}

func TestWeakKeys(t *testing.T) {
	weak := []string{
		strings.Repeat("00", 32),
		strings.Repeat("ab", 32),
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		strings.Repeat("0102030405", 6) + "0102",
	}
	for _, h := range weak {
		k, err := ParseKey(h)
		if err != nil {
			t.Fatal(err)
		}
		if k.Weak() == "" {
			t.Errorf("key %s not reported weak", h)
		}
	}
	for _, h := range []string{katKey1, katKey2} {
		k, _ := ParseKey(h)
		if w := k.Weak(); w != "" {
			t.Errorf("random-looking key %s reported weak: %s", h, w)
		}
	}
	for range 200 {
		k, err := GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		if w := k.Weak(); w != "" {
			t.Fatalf("generated key reported weak: %s", w)
		}
	}
}

func TestOpenAllocations(t *testing.T) {
	r := ring(t, katKey1)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := r.OpenString(katCookie1); err != nil {
			t.Fatal(err)
		}
	})
	// DESIGN.md performance budget: cookie open ≤ 2 allocations.
	if allocs > 2 {
		t.Fatalf("OpenString allocates %v times per call, budget is 2", allocs)
	}
}

func BenchmarkOpen(b *testing.B) {
	r := ring(b, katKey1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.OpenString(katCookie1); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzOpen(f *testing.F) {
	for _, s := range []string{katCookie1, katCookie2, "x", "", "AAAA"} {
		f.Add(s)
	}
	r := ring(f, katKey1)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := r.OpenString(s)
		if err == nil && s != katCookie1 && s != katCookie2 {
			t.Fatalf("forged value %q opened to %q", s, got)
		}
	})
}
