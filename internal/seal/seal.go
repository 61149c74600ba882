// Package seal encrypts and authenticates short values (cookie contents) with
// AES-256-GCM in the envelope of Curity's token handler, so that cookies
// written by Gatehouse can be read by Curity's proxies and vice versa:
//
//	base64url-nopad( 0x01 | 12-byte IV | ciphertext | 16-byte tag )
//
// There is no associated data and the version byte is fixed, because the
// Curity contract fixes both. A Ring holds several keys: the first seals, all
// open, which allows key rotation without logging users out.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"unsafe"
)

const (
	version  = 0x01
	ivSize   = 12
	tagSize  = 16
	overhead = 1 + ivSize + tagSize
	// KeySize is the AES-256 key size in bytes.
	KeySize = 32
)

var (
	// ErrMalformed reports a value that is not a well-formed envelope.
	ErrMalformed = errors.New("seal: malformed envelope")
	// ErrVersion reports an envelope with an unknown version byte.
	ErrVersion = errors.New("seal: unknown envelope version")
	// ErrOpen reports an envelope that no key of the ring authenticates.
	ErrOpen = errors.New("seal: message authentication failed")
)

var b64 = base64.RawURLEncoding

// Key is a 256-bit AES key.
type Key [KeySize]byte

// ParseKey parses a key written as 64 hexadecimal characters.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 2*KeySize {
		return k, fmt.Errorf("seal: key must be %d hexadecimal characters, got %d characters", 2*KeySize, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("seal: key must be hexadecimal: %w", err)
	}
	return k, nil
}

// Weak reports why k is unfit as a key, or "" when it looks random. It catches
// keys typed by hand (repeated or sequential bytes, few distinct bytes); it
// cannot prove a key random.
func (k Key) Weak() string {
	distinct := map[byte]bool{}
	sequential := true
	for i, b := range k {
		distinct[b] = true
		if i > 0 && b != k[i-1]+1 {
			sequential = false
		}
	}
	switch {
	case len(distinct) == 1:
		return "all bytes are equal"
	case sequential:
		return "the bytes are sequential"
	case len(distinct) < 12:
		// A random 32-byte key has about 30 distinct bytes; fewer than 12 has a
		// probability far below 1e-12.
		return fmt.Sprintf("only %d distinct byte values; generate keys with `gatehouse keys generate`", len(distinct))
	}
	return ""
}

// GenerateKey returns a new random key from r (crypto/rand.Reader when nil).
func GenerateKey(r io.Reader) (Key, error) {
	if r == nil {
		r = rand.Reader
	}
	var k Key
	if _, err := io.ReadFull(r, k[:]); err != nil {
		return k, fmt.Errorf("seal: generate key: %w", err)
	}
	return k, nil
}

// String returns the key as 64 lowercase hexadecimal characters.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Ring seals with its first key and opens with any of its keys.
type Ring struct {
	aeads []cipher.AEAD
	rand  io.Reader
}

// NewRing returns a ring over keys; keys[0] seals. random supplies IVs
// (crypto/rand.Reader when nil).
func NewRing(keys []Key, random io.Reader) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("seal: at least one key is required")
	}
	if random == nil {
		random = rand.Reader
	}
	r := &Ring{rand: random}
	for i := range keys {
		block, err := aes.NewCipher(keys[i][:])
		if err != nil {
			return nil, fmt.Errorf("seal: key %d: %w", i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("seal: key %d: %w", i, err)
		}
		r.aeads = append(r.aeads, aead)
	}
	return r, nil
}

// SealedLen returns the length of the sealed, encoded form of a plaintext of n bytes.
func SealedLen(n int) int { return b64.EncodedLen(overhead + n) }

// Seal encrypts plaintext with the first key.
func (r *Ring) Seal(plaintext []byte) (string, error) {
	buf := make([]byte, 1+ivSize, overhead+len(plaintext))
	buf[0] = version
	if _, err := io.ReadFull(r.rand, buf[1:1+ivSize]); err != nil {
		return "", fmt.Errorf("seal: read IV: %w", err)
	}
	buf = r.aeads[0].Seal(buf, buf[1:1+ivSize], plaintext, nil)
	out := b64.EncodeToString(buf)
	clear(buf)
	return out, nil
}

// SealString is Seal for a string plaintext.
func (r *Ring) SealString(plaintext string) (string, error) {
	return r.Seal([]byte(plaintext))
}

// OpenString decrypts a sealed value. It makes two allocations: the decode
// buffer, which holds only the envelope (what the cookie carries anyway),
// and the plaintext, which GCM writes directly into the memory of the
// returned string. Nothing is pooled.
func (r *Ring) OpenString(value string) (string, error) {
	n := b64.DecodedLen(len(value))
	if n < overhead+1 {
		return "", ErrMalformed
	}
	env := make([]byte, n)
	// Decode reads the string's bytes in place: copying them would cost a
	// third allocation on every request.
	m, err := b64.Decode(env, unsafe.Slice(unsafe.StringData(value), len(value)))
	if err != nil || m < overhead+1 {
		return "", ErrMalformed
	}
	env = env[:m]
	if env[0] != version {
		return "", ErrVersion
	}
	iv, ct := env[1:1+ivSize], env[1+ivSize:]
	// A separate destination keeps the envelope intact while keys are
	// tried: a failed GCM open clears its destination.
	dst := make([]byte, 0, len(ct)-tagSize)
	for _, aead := range r.aeads {
		plain, err := aead.Open(dst, iv, ct, nil)
		if err == nil {
			// plain is dst's memory and nothing else refers to it: it
			// becomes the string without a copy and is never written again.
			return unsafe.String(unsafe.SliceData(plain), len(plain)), nil
		}
	}
	return "", ErrOpen
}
