package keyfile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"testing"
)

func TestEncodePEMRoundTrip(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]crypto.Signer{"ES256": ec, "EdDSA": ed} {
		t.Run(name, func(t *testing.T) {
			data, err := EncodePEM(key)
			if err != nil {
				t.Fatal(err)
			}
			if block, _ := pem.Decode(data); block == nil || block.Type != "PRIVATE KEY" {
				t.Fatalf("not a PKCS#8 PEM block: %q", data)
			}
			got, err := ParsePrivateKey(data)
			if err != nil {
				t.Fatal(err)
			}
			eq, ok := got.(interface{ Equal(crypto.PrivateKey) bool })
			if !ok || !eq.Equal(key) {
				t.Fatal("parsed key differs from the encoded one")
			}
			algs, err := Algorithms(got)
			if err != nil || algs[0] != name {
				t.Fatalf("Algorithms = %v, %v; want %s first", algs, err, name)
			}
		})
	}
}

func TestEncodePEMRefusesUnsupportedCurve(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EncodePEM(k); err == nil {
		t.Fatal("EncodePEM accepted a P-224 key")
	}
}
