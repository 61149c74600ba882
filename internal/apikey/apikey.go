// Package apikey defines Gatehouse's API keys: their format, how they are
// generated and the hash under which the configuration stores them.
//
// A key is "gkey.<id>.<secret>": a fixed prefix (so that secret scanners
// can recognize leaked keys), a public id of 72 random bits (12 base64url
// characters) that names the key in the configuration and in logs, and a
// secret of 256 random bits (43 base64url characters). The configuration,
// or a Store for keys created at run time, holds only the id and
// "sha256:<hex>", the SHA-256 of the whole key. With
// 256 bits of entropy in every key a fast hash is enough: there is nothing to
// guess and no dictionary to try. Checking a key looks it up by its id and
// compares hashes in constant time, so the time a check takes says nothing
// about the secret.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Prefix starts every key.
const Prefix = "gkey"

// Sizes of the parts of a key.
const (
	idBytes     = 9  // 12 base64url characters
	secretBytes = 32 // 43 base64url characters
	// IDLen and SecretLen are the lengths of the encoded parts.
	IDLen     = 12
	SecretLen = 43
	// KeyLen is the length of a whole key.
	KeyLen = len(Prefix) + 1 + IDLen + 1 + SecretLen
	// HashPrefix starts a stored hash.
	HashPrefix = "sha256:"
)

// ErrMalformed reports a string that is not an API key of this format.
var ErrMalformed = errors.New("apikey: not a Gatehouse API key")

// Key is a newly generated key.
type Key struct {
	// Value is the whole key, shown to its owner once.
	Value string
	// ID is the key's public id.
	ID string
	// Hash is what the configuration stores: "sha256:<64 hex characters>".
	Hash string
}

// Generate returns a new key with randomness from r (crypto/rand when nil).
func Generate(r io.Reader) (Key, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [idBytes + secretBytes]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return Key{}, fmt.Errorf("apikey: reading randomness: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:idBytes])
	sec := base64.RawURLEncoding.EncodeToString(b[idBytes:])
	v := Prefix + "." + id + "." + sec
	return Key{Value: v, ID: id, Hash: Hash(v)}, nil
}

// Parse returns the id of key, or ErrMalformed. It does not say whether the
// key is known or valid.
func Parse(key string) (id string, err error) {
	if len(key) != KeyLen || !strings.HasPrefix(key, Prefix+".") || key[len(Prefix)+1+IDLen] != '.' {
		return "", ErrMalformed
	}
	id = key[len(Prefix)+1 : len(Prefix)+1+IDLen]
	if !isB64URL(id) || !isB64URL(key[len(key)-SecretLen:]) {
		return "", ErrMalformed
	}
	return id, nil
}

// Sum is the SHA-256 of key.
func Sum(key string) [sha256.Size]byte { return sha256.Sum256([]byte(key)) }

// Hash is the stored form of key's hash: "sha256:<hex>".
func Hash(key string) string {
	s := Sum(key)
	return HashPrefix + hex.EncodeToString(s[:])
}

// ParseHash decodes a stored hash.
func ParseHash(h string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	rest, ok := strings.CutPrefix(h, HashPrefix)
	if !ok || len(rest) != 2*sha256.Size || strings.ToLower(rest) != rest {
		return out, fmt.Errorf("apikey: a hash is %q followed by 64 lower-case hexadecimal characters", HashPrefix)
	}
	if _, err := hex.Decode(out[:], []byte(rest)); err != nil {
		return out, fmt.Errorf("apikey: a hash is %q followed by 64 lower-case hexadecimal characters", HashPrefix)
	}
	return out, nil
}

// ValidID reports whether id has the form of a key id.
func ValidID(id string) bool { return len(id) == IDLen && isB64URL(id) }

func isB64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}
