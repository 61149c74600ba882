package apikey_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
)

func TestGenerateParseHash(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		k, err := apikey.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(k.Value) != apikey.KeyLen || !strings.HasPrefix(k.Value, "gkey.") || seen[k.ID] {
			t.Fatalf("key %q (id %q)", k.Value, k.ID)
		}
		seen[k.ID] = true
		id, err := apikey.Parse(k.Value)
		if err != nil || id != k.ID || !apikey.ValidID(id) {
			t.Fatalf("Parse(%q) = %q, %v", k.Value, id, err)
		}
		sum, err := apikey.ParseHash(k.Hash)
		if err != nil || sum != apikey.Sum(k.Value) {
			t.Fatalf("ParseHash(%q): %v", k.Hash, err)
		}
		if strings.Contains(k.Hash, k.Value[len(k.Value)-apikey.SecretLen:]) {
			t.Fatal("the hash contains the secret")
		}
	}
}

func TestGenerateIsDeterministicForItsRandomness(t *testing.T) {
	r := bytes.Repeat([]byte{7}, 41)
	k, err := apikey.Generate(bytes.NewReader(r))
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(k.Value))
	if k.Hash != "sha256:"+hex.EncodeToString(want[:]) || k.ID != "BwcHBwcHBwcH" {
		t.Errorf("key %+v", k)
	}
	if _, err := apikey.Generate(bytes.NewReader(r[:10])); err == nil {
		t.Error("short randomness accepted")
	}
}

func TestParseRefuses(t *testing.T) {
	k, _ := apikey.Generate(nil)
	for name, s := range map[string]string{
		"empty":          "",
		"other prefix":   "gkex" + k.Value[4:],
		"no separator":   strings.Replace(k.Value, ".", "_", 2),
		"short":          k.Value[:len(k.Value)-1],
		"long":           k.Value + "A",
		"bad id char":    k.Value[:6] + "+" + k.Value[7:],
		"bad secret":     k.Value[:len(k.Value)-1] + "=",
		"the hash":       k.Hash,
		"space":          k.Value[:len(k.Value)-1] + " ",
		"bearer prefixe": "Bearer " + k.Value,
	} {
		if _, err := apikey.Parse(s); err == nil {
			t.Errorf("%s: %q accepted", name, s)
		}
	}
	for name, h := range map[string]string{
		"no prefix":  strings.TrimPrefix(k.Hash, "sha256:"),
		"upper case": strings.ToUpper(k.Hash),
		"short":      k.Hash[:len(k.Hash)-2],
		"not hex":    k.Hash[:len(k.Hash)-1] + "g",
		"the key":    k.Value,
	} {
		if _, err := apikey.ParseHash(h); err == nil {
			t.Errorf("hash %s: %q accepted", name, h)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts has the key's shape.
func FuzzParse(f *testing.F) {
	k, _ := apikey.Generate(nil)
	f.Add(k.Value)
	f.Add("gkey..")
	f.Add(k.Hash)
	f.Fuzz(func(t *testing.T, s string) {
		id, err := apikey.Parse(s)
		if err != nil {
			return
		}
		if len(s) != apikey.KeyLen || !apikey.ValidID(id) || !strings.HasPrefix(s, "gkey."+id+".") {
			t.Fatalf("accepted %q with id %q", s, id)
		}
	})
}
