package mint

import (
	"crypto"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/jwtverify"
)

// TestRotationEndToEnd rotates from key A to key B through the published
// JWKS, as upstreams see it: they verify with jwtverify against a server
// that serves the current Minter's ServeJWKS.
func TestRotationEndToEnd(t *testing.T) {
	dir := t.TempDir()
	keyA, err := LoadOrCreateKey(filepath.Join(dir, "a.pem"), "ES256")
	if err != nil {
		t.Fatal(err)
	}
	keyB, err := LoadOrCreateKey(filepath.Join(dir, "b.pem"), "EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	withKeys := func(keys ...crypto.Signer) *Minter {
		return newMinter(t, clock, func(c *Config) { c.Keys = keys })
	}
	kid := func(raw string) any { return segment(t, raw, 0)["kid"] }

	// [A]: A signs.
	mA := withKeys(keyA)
	kidA := mA.KeyIDs()[0]
	u := newUpstream(t, clock, mA)
	longLived := u.verifier(testAudience) // an upstream that keeps its key set
	tokenA := mustMint(t, mA, user(), testAudience)
	if kid(tokenA) != kidA {
		t.Fatalf("kid = %v, want A's %s", kid(tokenA), kidA)
	}
	verify(t, longLived, tokenA)

	// [A, B]: B is published first; A still signs.
	mAB := withKeys(keyA, keyB)
	u.minter.Store(mAB)
	if got := kid(mustMint(t, mAB, user(), testAudience)); got != kidA {
		t.Fatalf("with [A, B], kid = %v, want A's", got)
	}

	// [B, A]: B signs, A's tokens still verify.
	mBA := withKeys(keyB, keyA)
	kidB := mBA.KeyIDs()[0]
	u.minter.Store(mBA)
	clock.Advance(time.Minute)
	tokenB := mustMint(t, mBA, user(), testAudience)
	if kid(tokenB) != kidB || kidB == kidA {
		t.Fatalf("with [B, A], kid = %v, want B's %s", kid(tokenB), kidB)
	}
	if tokenB == tokenA {
		t.Fatal("the new Minter handed out a token signed with the old key")
	}
	fresh := u.verifier(testAudience)
	verify(t, fresh, tokenA)
	verify(t, fresh, tokenB)
	verify(t, longLived, tokenA)
	verify(t, longLived, tokenB) // unknown kid: refetched

	// [B]: A is gone; a token signed with A fails with an unknown key.
	mB := withKeys(keyB)
	u.minter.Store(mB)
	verify(t, u.verifier(testAudience), tokenB)
	if _, err := u.verifier(testAudience).Verify(t.Context(), tokenA); !errors.Is(err, jwtverify.ErrUnknownKey) {
		t.Fatalf("token signed with the dropped key: error = %v, want %v", err, jwtverify.ErrUnknownKey)
	}
}

// TestVerifierChecksMintedTokens: the minted token is bound to its issuer
// and audience; an upstream for another audience or issuer refuses it.
func TestVerifierChecksMintedTokens(t *testing.T) {
	clock := newFakeClock()
	m := newMinter(t, clock, nil)
	u := newUpstream(t, clock, m)
	raw := mustMint(t, m, user(), testAudience)
	if _, err := u.verifier("billing-api").Verify(t.Context(), raw); !errors.Is(err, jwtverify.ErrAudience) {
		t.Errorf("other audience: error = %v, want %v", err, jwtverify.ErrAudience)
	}
	other := newMinter(t, clock, func(c *Config) { c.Issuer = "https://other.example.com" })
	u.minter.Store(other)
	if _, err := u.verifier(testAudience).Verify(t.Context(), mustMint(t, other, user(), testAudience)); !errors.Is(err, jwtverify.ErrIssuer) {
		t.Errorf("other issuer: error = %v, want %v", err, jwtverify.ErrIssuer)
	}
}
