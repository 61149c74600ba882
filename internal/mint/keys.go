package mint

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gatehouse-dev/gatehouse/internal/keyfile"
)

// LoadOrCreateKey returns the signing key in the PEM file at path (PKCS#8,
// or SEC 1 for EC). When the file does not exist it generates a key for alg
// — "ES256" (EC P-256, also when alg is empty) or "EdDSA" (Ed25519) —
// writes it as PKCS#8 PEM with mode 0600 and returns it.
//
// The file is created atomically and never overwritten: the key is written
// to a temporary file in the same directory, synced, and hard-linked to
// path, which fails if path exists (then the key another process created
// there meanwhile is loaded instead). The directory must exist, and its
// file system must support hard links.
//
// An existing file must hold an ES256 or EdDSA key, and the key alg names
// when alg is not empty; the error names the file.
func LoadOrCreateKey(path, alg string) (crypto.Signer, error) {
	if path == "" {
		return nil, errors.New("mint: key file path is required")
	}
	switch alg {
	case "", "ES256", "EdDSA":
	default:
		return nil, fmt.Errorf("mint: key file %s: algorithm %q: %w", path, alg, errUnsupportedKey)
	}
	key, err := loadKey(path, alg)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if key, err = generateKey(alg); err != nil {
		return nil, fmt.Errorf("mint: key file %s: generating a key: %w", path, err)
	}
	data, err := keyfile.EncodePEM(key)
	if err != nil {
		return nil, fmt.Errorf("mint: key file %s: %w", path, err)
	}
	switch err := createFile(path, data); {
	case err == nil:
		return key, nil
	case errors.Is(err, fs.ErrExist):
		return loadKey(path, alg)
	default:
		return nil, fmt.Errorf("mint: creating key file %s: %w", path, err)
	}
}

// loadKey reads the key at path. A missing file gives an error wrapping
// fs.ErrNotExist.
func loadKey(path, alg string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mint: reading key file: %w", err)
	}
	key, err := keyfile.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("mint: key file %s: %w", path, err)
	}
	got, err := algorithm(key.Public())
	if err != nil {
		return nil, fmt.Errorf("mint: key file %s holds %w", path, err)
	}
	if alg != "" && string(got) != alg {
		return nil, fmt.Errorf("mint: key file %s holds a %s key, not %s as configured", path, got, alg)
	}
	return key, nil
}

func generateKey(alg string) (crypto.Signer, error) {
	if alg == "EdDSA" {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// createFile writes data to a new file at path with mode 0600, atomically:
// readers see no file or the whole of it, and an existing path is left
// alone (the error wraps fs.ErrExist).
func createFile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if rmErr := os.Remove(tmp.Name()); rmErr != nil && err == nil {
			err = rmErr
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	// Persist the new directory entry; best effort (not every platform can
	// sync a directory).
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
