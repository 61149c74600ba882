package mint

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/keyfile"
)

func writePEM(t *testing.T, path string, key crypto.Signer) []byte {
	t.Helper()
	data, err := keyfile.EncodePEM(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func equalKeys(a, b crypto.Signer) bool {
	eq, ok := a.(interface{ Equal(crypto.PrivateKey) bool })
	return ok && eq.Equal(b)
}

func TestLoadOrCreateKeyCreates(t *testing.T) {
	tests := []struct {
		alg  string
		want string // key type
	}{
		{"ES256", "*ecdsa.PrivateKey"},
		{"EdDSA", "ed25519.PrivateKey"},
		{"", "*ecdsa.PrivateKey"},
	}
	for _, tt := range tests {
		t.Run("alg "+tt.alg, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "mint.pem")
			key, err := LoadOrCreateKey(path, tt.alg)
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(key); got != tt.want {
				t.Fatalf("key type = %s, want %s", got, tt.want)
			}
			if e, ok := key.(*ecdsa.PrivateKey); ok && e.Curve != elliptic.P256() {
				t.Fatalf("curve = %s, want P-256", e.Curve.Params().Name)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
				t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if block, _ := pem.Decode(data); block == nil || block.Type != "PRIVATE KEY" {
				t.Errorf("file is not a PKCS#8 PEM block:\n%s", data)
			}
			parsed, err := keyfile.ParsePrivateKey(data)
			if err != nil || !equalKeys(parsed, key) {
				t.Fatalf("file holds another key (%v)", err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the key file (no temporary file left)", len(entries))
			}
			// The created key signs tokens that verify.
			clock := newFakeClock()
			m := newMinter(t, clock, func(c *Config) { c.Keys = []crypto.Signer{key} })
			verify(t, newUpstream(t, clock, m).verifier(testAudience), mustMint(t, m, user(), testAudience))
		})
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *ecdsa.PrivateKey:
		return "*ecdsa.PrivateKey"
	case ed25519.PrivateKey:
		return "ed25519.PrivateKey"
	}
	return "other"
}

func TestLoadOrCreateKeyReuses(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mint.pem")
			first, err := LoadOrCreateKey(path, alg)
			if err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, again := range []string{alg, ""} { // "" accepts the file's type
				second, err := LoadOrCreateKey(path, again)
				if err != nil {
					t.Fatal(err)
				}
				if !equalKeys(first, second) {
					t.Fatalf("LoadOrCreateKey(%q) returned another key", again)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatal("the key file was rewritten")
			}
		})
	}
}

func TestLoadOrCreateKeyReadsSEC1(t *testing.T) {
	key := newES256(t)
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ec.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadOrCreateKey(path, "ES256")
	if err != nil || !equalKeys(got, key) {
		t.Fatalf("LoadOrCreateKey = %v", err)
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		file  func(t *testing.T, path string) // writes the file, or nil for none
		alg   string
		want  []string // substrings of the error besides the path
		noDir bool
	}{
		{name: "RSA key", file: func(t *testing.T, p string) { writePEM(t, p, rsaKey) }, alg: "ES256", want: []string{"an RSA key", "ES256 (EC P-256) and EdDSA (Ed25519)"}},
		{name: "P-384 key", file: func(t *testing.T, p string) { writePEM(t, p, p384) }, alg: "", want: []string{"an EC P-384 key", "ES256 (EC P-256) and EdDSA (Ed25519)"}},
		{name: "Ed25519 key configured as ES256", file: func(t *testing.T, p string) { writePEM(t, p, newEd25519(t)) }, alg: "ES256", want: []string{"EdDSA key, not ES256"}},
		{name: "P-256 key configured as EdDSA", file: func(t *testing.T, p string) { writePEM(t, p, newES256(t)) }, alg: "EdDSA", want: []string{"ES256 key, not EdDSA"}},
		{name: "not PEM", file: func(t *testing.T, p string) { writeFile(t, p, "hello") }, alg: "ES256", want: []string{"no PEM block"}},
		{name: "empty file", file: func(t *testing.T, p string) { writeFile(t, p, "") }, alg: "ES256", want: []string{"no PEM block"}},
		{name: "unsupported algorithm, no file", alg: "RS256", want: []string{`"RS256"`, "ES256 (EC P-256) and EdDSA (Ed25519)"}},
		{name: "missing directory", alg: "ES256", noDir: true, want: []string{"creating key file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "mint.pem")
			if tt.noDir {
				path = filepath.Join(dir, "missing", "mint.pem")
			}
			var before []byte
			if tt.file != nil {
				tt.file(t, path)
				before, _ = os.ReadFile(path)
			}
			key, err := LoadOrCreateKey(path, tt.alg)
			if err == nil {
				t.Fatalf("LoadOrCreateKey returned a %T key", key)
			}
			for _, w := range append([]string{path}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			after, statErr := os.ReadFile(path)
			switch {
			case tt.file == nil && !errors.Is(statErr, fs.ErrNotExist):
				t.Error("a key file was created")
			case tt.file != nil && !bytes.Equal(before, after):
				t.Error("the refused key file was overwritten")
			}
		})
	}
}

// TestCreateFileNeverOverwrites: the file is linked into place, so an
// existing file — even one created after LoadOrCreateKey looked — is kept.
func TestCreateFileNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mint.pem")
	if err := os.WriteFile(path, []byte("existing"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := createFile(path, []byte("new")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("createFile over an existing file = %v, want %v", err, fs.ErrExist)
	}
	if b, _ := os.ReadFile(path); string(b) != "existing" {
		t.Fatalf("file now holds %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d directory entries, want 1 (temporary file removed)", len(entries))
	}
}

// TestLoadOrCreateKeyDoesNotFollowDanglingSymlink: a symlink at the key
// path to a file that does not exist is an error; no key is written through
// it to wherever it points.
func TestLoadOrCreateKeyDoesNotFollowDanglingSymlink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere.pem")
	path := filepath.Join(dir, "mint.pem")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path, "ES256"); err == nil {
		t.Fatal("LoadOrCreateKey succeeded through a dangling symlink")
	}
	if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the symlink's target was created (%v)", err)
	}
}

// TestLoadOrCreateKeyConcurrentStarts: instances starting together on one
// path all end up with the one key that was written.
func TestLoadOrCreateKeyConcurrentStarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mint.pem")
	const n = 8
	keys := make([]crypto.Signer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKey(path, "EdDSA") })
	}
	wg.Wait()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := keyfile.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if !equalKeys(keys[i], onDisk) {
			t.Fatalf("caller %d got a key that is not the one on disk", i)
		}
	}
}
