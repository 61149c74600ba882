package jwtverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// FuzzParseJWKS stops key confusion through the JWKS document Gatehouse
// fetches (from a compromised or misbehaving provider, or a path an attacker
// can influence): whatever the document, parsing never panics, and every key
// it keeps is a public RSA (2048 bits or more), EC or Ed25519 key for
// signatures, with no HMAC secret ("oct"), no private part, no encryption
// key and no alg outside the asymmetric signature algorithms; at most maxKeys
// are kept and the kid index holds exactly the kept keys that have a kid.
func FuzzParseJWKS(f *testing.F) {
	k := testKeys(f)
	f.Add(defaultJWKS(f))
	f.Add(jwksJSON(f, pubJWK(k.rsa1, "rsa1", "RS256"), pubJWK(k.ec384, "ec384", "ES384"), pubJWK(k.ec521, "", "")))
	// A private key published by mistake: only the public part is kept.
	priv, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.ec256, KeyID: "priv", Use: "sig"}}})
	f.Add(priv)
	for _, s := range []string{
		`{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256","kid":"rsa1"}]}`,
		`{"keys":[{"kty":"OCT","k":"c2VjcmV0"}]}`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"tiny"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`,
		`{"keys":[{"kty":"OKP","crv":"X25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
		`{"keys":[{"kty":"RSA","use":"enc","n":"x","e":"AQAB"}]}`,
		`{"keys":[{"kty":"RSA","key_ops":["encrypt"],"n":"x","e":"AQAB"}]}`,
		`{"keys":[{"kty":"RSA","alg":"none","n":"x","e":"AQAB"}]}`,
		`{"keys":null}`, `{"keys":[null,1,"x",[]]}`, `{"keys":{}}`, `[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, doc []byte) {
		snap, err := parseJWKS(context.Background(), doc, log)
		if err != nil {
			if snap != nil {
				t.Fatal("a key set returned with an error")
			}
			return
		}
		if len(snap.all) == 0 || len(snap.all) > maxKeys {
			t.Fatalf("%d keys kept", len(snap.all))
		}
		indexed := 0
		for kid, ks := range snap.byKID {
			for _, key := range ks {
				if key.kid != kid {
					t.Fatalf("key with kid %q indexed under %q", key.kid, kid)
				}
				indexed++
			}
		}
		withKID := 0
		for _, key := range snap.all {
			if key.kid != "" {
				withKID++
			}
			if key.alg != "" && !signatureAlgorithm(key.alg) {
				t.Fatalf("key %q kept with alg %q", key.kid, key.alg)
			}
			switch pub := key.key.(type) {
			case *rsa.PublicKey:
				if pub.N.BitLen() < minRSABits {
					t.Fatalf("RSA key of %d bits kept", pub.N.BitLen())
				}
			case *ecdsa.PublicKey:
			case ed25519.PublicKey:
				if len(pub) != ed25519.PublicKeySize {
					t.Fatalf("Ed25519 key of %d bytes kept", len(pub))
				}
			default:
				t.Fatalf("key %q of type %T kept", key.kid, key.key)
			}
			for _, alg := range []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512, "none"} {
				if key.usableFor(alg) {
					t.Fatalf("key %q usable for %s", key.kid, alg)
				}
			}
		}
		if indexed != withKID {
			t.Fatalf("%d keys indexed by kid, %d kept with a kid", indexed, withKID)
		}
	})
}
