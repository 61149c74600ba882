// Package sealer seals the vault's tokens at rest with AES-256-GCM under a
// key ring, and binds each sealed value to where it is stored.
//
// Every sealed value carries the id of the key that sealed it (stored
// beside it, vault.Sealed.KeyID). The first key of the ring seals; every key
// opens, chosen by id, so keys rotate without a migration: put the new key
// first, keep the old ones, and re-seal rows lazily as they are read
// (NeedsReseal). A key can leave the ring once no row names it.
//
// Seal and Open take associated data: bytes that are authenticated but not
// stored. The vault passes the row and the field the value belongs to,
//
//	sealer.AAD("connection", issuer, subject, provider, "refresh_token")
//
// so that a sealed token copied into another user's row, another provider's
// or another field does not open: whoever can write the database still
// cannot move one user's tokens to another.
//
// The format of vault.Sealed.Data is
//
//	0x01 | 12-byte random nonce | ciphertext | 16-byte GCM tag
//
// Unlike package seal (cookies), nothing here is bound to an outside
// contract, hence the associated data and the key ids.
package sealer

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/internal/seal"
	"github.com/gatehouse-dev/gatehouse/internal/vault"
)

const (
	version   = 0x01
	nonceSize = 12
	tagSize   = 16
	overhead  = 1 + nonceSize + tagSize
	maxIDLen  = 64
)

var (
	// ErrUnknownKey: the value was sealed with a key that is not in the
	// ring (errors name the key id, never the key).
	ErrUnknownKey = errors.New("sealer: unknown key id")
	// ErrMalformed: the value is not a sealed value (too short, unknown
	// format version, or empty).
	ErrMalformed = errors.New("sealer: malformed sealed value")
	// ErrOpen: the key did not authenticate the value: it was altered, or
	// it belongs to another row or field (other associated data).
	ErrOpen = errors.New("sealer: message authentication failed")
)

// Key is one key of the ring.
type Key struct {
	// ID is stored with every value the key seals: 1 to 64 characters of
	// A–Z, a–z, 0–9, '.', '_' and '-'. Empty means KeyID(Secret).
	ID string
	// Secret is the AES-256 key (seal.ParseKey reads the 64-hex form).
	Secret seal.Key
}

// KeyID returns the default id of a key: the first 8 hexadecimal characters
// of the SHA-256 of its 32 bytes (the same as
// `echo -n KEYHEX | xxd -r -p | sha256sum | cut -c1-8`). It identifies the key
// without revealing it.
func KeyID(k seal.Key) string {
	sum := sha256.Sum256(k[:])
	return hex.EncodeToString(sum[:4])
}

// Sealer seals with the first key of its ring and opens with any. It is
// safe for concurrent use.
type Sealer struct {
	current string
	aeads   map[string]cipher.AEAD
}

// New returns a sealer over keys; keys[0] seals. It refuses an empty ring,
// weak keys (seal.Key.Weak), malformed or duplicate ids and a key listed
// twice; its errors name keys by position and id only.
func New(keys []Key) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("sealer: at least one key is required")
	}
	s := &Sealer{aeads: make(map[string]cipher.AEAD, len(keys))}
	secrets := make(map[seal.Key]string, len(keys))
	for i, k := range keys {
		id := k.ID
		if id == "" {
			id = KeyID(k.Secret)
		}
		if err := checkID(id); err != nil {
			return nil, fmt.Errorf("sealer: key %d: %w", i, err)
		}
		if why := k.Secret.Weak(); why != "" {
			return nil, fmt.Errorf("sealer: key %d (id %q) is weak: %s", i, id, why)
		}
		if _, dup := s.aeads[id]; dup {
			return nil, fmt.Errorf("sealer: key %d: id %q is used twice", i, id)
		}
		if other, dup := secrets[k.Secret]; dup {
			return nil, fmt.Errorf("sealer: key %d (id %q) is the same key as id %q", i, id, other)
		}
		block, err := aes.NewCipher(k.Secret[:])
		if err != nil {
			return nil, fmt.Errorf("sealer: key %d (id %q): %w", i, id, err)
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("sealer: key %d (id %q): %w", i, id, err)
		}
		s.aeads[id] = aead
		secrets[k.Secret] = id
		if i == 0 {
			s.current = id
		}
	}
	return s, nil
}

func checkID(id string) error {
	if len(id) > maxIDLen {
		return fmt.Errorf("key id is longer than %d characters", maxIDLen)
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("key id %q: only A-Z, a-z, 0-9, '.', '_' and '-' are allowed", id)
		}
	}
	return nil
}

// KeyID returns the id of the key that seals.
func (s *Sealer) KeyID() string { return s.current }

// Seal encrypts plaintext with the current key, authenticating aad with it
// (see AAD). Each call draws a new random nonce, so sealing the same value
// twice gives different results.
func (s *Sealer) Seal(plaintext, aad []byte) (vault.Sealed, error) {
	out := make([]byte, 1, overhead+len(plaintext))
	out[0] = version
	out = s.aeads[s.current].Seal(out, nil, plaintext, aad)
	return vault.Sealed{KeyID: s.current, Data: out}, nil
}

// Open decrypts x with the key it names, checking aad: the same bytes as
// when it was sealed. The caller should clear the plaintext after use.
func (s *Sealer) Open(x vault.Sealed, aad []byte) ([]byte, error) {
	if x.KeyID == "" && len(x.Data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	aead, ok := s.aeads[x.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w %q (sealed with a key no longer, or not yet, in the ring)", ErrUnknownKey, x.KeyID)
	}
	if len(x.Data) < overhead {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(x.Data))
	}
	if x.Data[0] != version {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrMalformed, x.Data[0])
	}
	plain, err := aead.Open(nil, nil, x.Data[1:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w (key id %q)", ErrOpen, x.KeyID)
	}
	return plain, nil
}

// NeedsReseal reports whether x was sealed with a key other than the
// current one, and should be opened and sealed again when next written.
func (s *Sealer) NeedsReseal(x vault.Sealed) bool { return x.KeyID != s.current }

// AAD encodes parts as associated data, each prefixed with its length, so
// that no two lists of parts give the same bytes ("a|b", "c" differs from
// "a", "b|c").
func AAD(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}
