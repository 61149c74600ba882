package sealer_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/vault"
	"github.com/gatehouse-dev/gatehouse/internal/vault/sealer"
)

const (
	hex1 = "7b99279ab87533d3c238db874a842a91ee26a76027f3c03c317504963d2c9926"
	hex2 = "4e4636356d65563e4c73233847503e3b21436e6f7629724950526f4b5e2e4e50"
	hex3 = "c0d3a1f95e27b84e6a1d0c93f7b2e58d41a6c3e9027f5b8d6e1c4a7f9b3d2e80"
)

func key(t testing.TB, h string) seal.Key {
	t.Helper()
	k, err := seal.ParseKey(h)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newSealer(t testing.TB, keys ...sealer.Key) *sealer.Sealer {
	t.Helper()
	s, err := sealer.New(keys)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func aad(u vault.User, provider, field string) []byte {
	return sealer.AAD("connection", u.Issuer, u.Subject, provider, field)
}

var alice = vault.User{Issuer: "https://login.example.com/", Subject: "alice"}

func TestRoundTrip(t *testing.T) {
	s := newSealer(t, sealer.Key{Secret: key(t, hex1)})
	for _, plain := range []string{"", "gho_16C7e42F292c6912E7710c838347Ae178B4a", strings.Repeat("x", 8192)} {
		a := aad(alice, "github", "access_token")
		x, err := s.Seal([]byte(plain), a)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if x.KeyID != s.KeyID() {
			t.Errorf("KeyID = %q, want %q", x.KeyID, s.KeyID())
		}
		if plain != "" && bytes.Contains(x.Data, []byte(plain)) {
			t.Errorf("the sealed value contains the plaintext")
		}
		got, err := s.Open(x, a)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if string(got) != plain {
			t.Errorf("Open = %q, want %q", got, plain)
		}
		y, _ := s.Seal([]byte(plain), a)
		if bytes.Equal(x.Data, y.Data) {
			t.Errorf("sealing twice gave the same bytes: the nonce is not random")
		}
	}
}

// TestSealedTokenDoesNotMove: someone who can write the database copies a
// sealed token into another row or field; it must not open there.
func TestSealedTokenDoesNotMove(t *testing.T) {
	s := newSealer(t, sealer.Key{Secret: key(t, hex1)})
	x, err := s.Seal([]byte("refresh-token-of-alice"), aad(alice, "github", "refresh_token"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		aad  []byte
	}{
		{"another subject", aad(vault.User{Issuer: alice.Issuer, Subject: "mallory"}, "github", "refresh_token")},
		{"same subject, another issuer", aad(vault.User{Issuer: "https://evil.example/", Subject: "alice"}, "github", "refresh_token")},
		{"another provider", aad(alice, "gitlab", "refresh_token")},
		{"another field", aad(alice, "github", "access_token")},
		{"a connect state", sealer.AAD("connect_state", "hash")},
		{"no associated data", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Open(x, tc.aad)
			if !errors.Is(err, sealer.ErrOpen) {
				t.Fatalf("Open elsewhere: %v, want ErrOpen", err)
			}
		})
	}
}

func TestAADUnambiguous(t *testing.T) {
	pairs := [][2][]string{
		{{"a|b", "c"}, {"a", "b|c"}},
		{{"ab", ""}, {"a", "b"}},
		{{"", "ab"}, {"ab"}},
		{{"a"}, {"a", ""}},
		{{}, {""}},
	}
	for _, p := range pairs {
		if bytes.Equal(sealer.AAD(p[0]...), sealer.AAD(p[1]...)) {
			t.Errorf("AAD(%q) == AAD(%q)", p[0], p[1])
		}
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := sealer.Key{Secret: key(t, hex1)}, sealer.Key{ID: "2026-07", Secret: key(t, hex2)}
	a := aad(alice, "github", "access_token")

	old := newSealer(t, k1)
	x, _ := old.Seal([]byte("token"), a)

	rotated := newSealer(t, k2, k1)
	if rotated.KeyID() != "2026-07" {
		t.Errorf("KeyID = %q, want the first key's", rotated.KeyID())
	}
	if !rotated.NeedsReseal(x) {
		t.Errorf("NeedsReseal(sealed with the old key) = false")
	}
	got, err := rotated.Open(x, a)
	if err != nil || string(got) != "token" {
		t.Fatalf("Open with the old key second in the ring: %q, %v", got, err)
	}
	y, _ := rotated.Seal(got, a)
	if y.KeyID != "2026-07" || rotated.NeedsReseal(y) {
		t.Errorf("re-sealed value: key id %q, NeedsReseal %v", y.KeyID, rotated.NeedsReseal(y))
	}
	if _, err := old.Open(y, a); !errors.Is(err, sealer.ErrUnknownKey) {
		t.Errorf("old ring opening a value of the new key: %v, want ErrUnknownKey", err)
	}

	retired := newSealer(t, k2)
	_, err = retired.Open(x, a)
	if !errors.Is(err, sealer.ErrUnknownKey) {
		t.Fatalf("Open after the old key left the ring: %v, want ErrUnknownKey", err)
	}
	if id := sealer.KeyID(k1.Secret); !strings.Contains(err.Error(), fmt.Sprintf("%q", id)) {
		t.Errorf("error %q does not name the key id %q", err, id)
	}
	if strings.Contains(err.Error(), hex1) {
		t.Errorf("error %q contains the key", err)
	}
}

// TestKeyIDRelabelled: a row whose key id is changed to another key of the
// ring does not open.
func TestKeyIDRelabelled(t *testing.T) {
	s := newSealer(t, sealer.Key{ID: "a", Secret: key(t, hex1)}, sealer.Key{ID: "b", Secret: key(t, hex2)})
	x, _ := s.Seal([]byte("token"), nil)
	x.KeyID = "b"
	if _, err := s.Open(x, nil); !errors.Is(err, sealer.ErrOpen) {
		t.Fatalf("Open with another key's id: %v, want ErrOpen", err)
	}
}

func TestKeyID(t *testing.T) {
	k := key(t, hex1)
	raw, _ := hex.DecodeString(hex1)
	sum := sha256.Sum256(raw)
	want := hex.EncodeToString(sum[:])[:8]
	if got := sealer.KeyID(k); got != want {
		t.Errorf("KeyID = %q, want %q", got, want)
	}
	if got := newSealer(t, sealer.Key{Secret: k}).KeyID(); got != want {
		t.Errorf("Sealer.KeyID with no explicit id = %q, want %q", got, want)
	}
}

func TestOpenRejects(t *testing.T) {
	s := newSealer(t, sealer.Key{Secret: key(t, hex1)})
	a := aad(alice, "github", "access_token")
	good, _ := s.Seal([]byte("token"), a)
	with := func(f func(d []byte) []byte) vault.Sealed {
		return vault.Sealed{KeyID: good.KeyID, Data: f(bytes.Clone(good.Data))}
	}
	tests := []struct {
		name string
		x    vault.Sealed
		want error
	}{
		{"empty", vault.Sealed{}, sealer.ErrMalformed},
		{"no data", vault.Sealed{KeyID: good.KeyID}, sealer.ErrMalformed},
		{"too short", with(func(d []byte) []byte { return d[:28] }), sealer.ErrMalformed},
		{"unknown version", with(func(d []byte) []byte { d[0] = 2; return d }), sealer.ErrMalformed},
		{"unknown key", vault.Sealed{KeyID: "nope", Data: good.Data}, sealer.ErrUnknownKey},
		{"truncated tag", with(func(d []byte) []byte { return d[:len(d)-1] }), sealer.ErrOpen},
		{"appended byte", with(func(d []byte) []byte { return append(d, 0) }), sealer.ErrOpen},
	}
	for i := 1; i < len(good.Data); i++ {
		tests = append(tests, struct {
			name string
			x    vault.Sealed
			want error
		}{fmt.Sprintf("byte %d flipped", i), with(func(d []byte) []byte { d[i] ^= 0x01; return d }), sealer.ErrOpen})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Open(tc.x, a)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %q, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	k1, k2 := key(t, hex1), key(t, hex2)
	weak := key(t, strings.Repeat("ab", 32))
	tests := []struct {
		name string
		keys []sealer.Key
		want string
	}{
		{"no keys", nil, "at least one key"},
		{"weak key", []sealer.Key{{Secret: k1}, {Secret: weak}}, "key 1"},
		{"duplicate id", []sealer.Key{{ID: "x", Secret: k1}, {ID: "x", Secret: k2}}, `id "x" is used twice`},
		{"derived id used explicitly", []sealer.Key{{Secret: k1}, {ID: sealer.KeyID(k1), Secret: k2}}, "used twice"},
		{"same key twice", []sealer.Key{{ID: "a", Secret: k1}, {ID: "b", Secret: k1}}, "same key"},
		{"id with a space", []sealer.Key{{ID: "my key", Secret: k1}}, "only A-Z"},
		{"id too long", []sealer.Key{{ID: strings.Repeat("k", 65), Secret: k1}}, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sealer.New(tc.keys)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %q, want it to mention %q", err, tc.want)
			}
			for _, h := range []string{hex1, hex2, strings.Repeat("ab", 32)} {
				if strings.Contains(err.Error(), h) {
					t.Errorf("error %q contains a key", err)
				}
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newSealer(t, sealer.Key{Secret: key(t, hex3)})
	done := make(chan error)
	for i := range 8 {
		go func() {
			a := sealer.AAD("p", fmt.Sprint(i))
			for range 100 {
				x, _ := s.Seal([]byte("token"), a)
				if _, err := s.Open(x, a); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzOpen(f *testing.F) {
	s := newSealer(f, sealer.Key{ID: "k", Secret: key(f, hex1)})
	good, _ := s.Seal([]byte("token"), []byte("aad"))
	f.Add(good.Data, []byte("aad"))
	f.Add([]byte{1}, []byte(nil))
	f.Fuzz(func(t *testing.T, data, aad []byte) {
		got, err := s.Open(vault.Sealed{KeyID: "k", Data: data}, aad)
		// The only values that open are the seed's (sealed in whichever
		// process runs this): forging a GCM tag is out of reach of a fuzzer.
		if err == nil && (string(aad) != "aad" || string(got) != "token") {
			t.Fatalf("Open accepted forged data %x", data)
		}
	})
}

func Example() {
	keyHex := "7b99279ab87533d3c238db874a842a91ee26a76027f3c03c317504963d2c9926"
	k, err := seal.ParseKey(keyHex)
	if err != nil {
		panic(err)
	}
	s, err := sealer.New([]sealer.Key{{Secret: k}})
	if err != nil {
		panic(err)
	}
	u := vault.User{Issuer: "https://login.example.com/", Subject: "alice"}
	where := sealer.AAD("connection", u.Issuer, u.Subject, "github", "access_token")

	x, _ := s.Seal([]byte("gho_example"), where)
	fmt.Println("key id:", x.KeyID)

	token, _ := s.Open(x, where)
	fmt.Println("token:", string(token))

	_, err = s.Open(x, sealer.AAD("connection", u.Issuer, "mallory", "github", "access_token"))
	fmt.Println("in mallory's row:", err)
	// Output:
	// key id: d7b4233a
	// token: gho_example
	// in mallory's row: sealer: message authentication failed (key id "d7b4233a")
}
