package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
)

type testPKI struct{ ca, cert, key string }

// writeTestPKI writes a self-signed CA certificate, used as the CA and as a
// certificate with its key.
func writeTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	p := testPKI{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for f, data := range map[string][]byte{p.ca: certPEM, p.cert: certPEM, p.key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestKeysAPIKey: the key is printed once with the configuration entry
// holding its hash; the entry is valid configuration for the key.
func TestKeysAPIKey(t *testing.T) {
	code, out, errOut := run(t, nil, "keys", "api-key", "--client-id", "partner-a", "--scopes", "orders, read", "--expires-in", "30d")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	key := regexp.MustCompile(`gkey\.[A-Za-z0-9_-]{12}\.[A-Za-z0-9_-]{43}`).FindString(out)
	if key == "" || strings.Count(out, key) != 1 {
		t.Fatalf("the key is not printed exactly once:\n%s", out)
	}
	id, _ := apikey.Parse(key)
	for _, want := range []string{`id: "` + id + `"`, `hash: "` + apikey.Hash(key) + `"`, `client_id: "partner-a"`, `scopes: ["orders", "read"]`, "expires_at: "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	exp := regexp.MustCompile(`expires_at: "([^"]+)"`).FindStringSubmatch(out)
	if ts, err := time.Parse(time.RFC3339, exp[1]); err != nil || ts.Sub(time.Now()) < 29*24*time.Hour || ts.Sub(time.Now()) > 31*24*time.Hour {
		t.Errorf("expires_at %s", exp[1])
	}

	// The printed entry is a valid api_keys.keys item.
	entry := out[strings.Index(out, "    - id:"):]
	dir := t.TempDir()
	cfg := "public_url: \"https://api.example.com\"\ninternal_jwt: {key_file: k.pem}\napi_keys:\n  keys:\n" + entry +
		"routes: [{path: /k, upstream: \"http://u\", entry: [apikey], forward: internal_jwt, audience: a}]\n"
	p := filepath.Join(dir, "g.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, nil, "config", "check", "--config", p); code != 0 {
		t.Fatalf("the printed entry does not check:\n%s\n%s", cfg, errOut)
	}

	_, out2, _ := run(t, nil, "keys", "api-key", "--client-id", "partner-a")
	if strings.Contains(out2, key) || strings.Contains(out2, "expires_at") {
		t.Errorf("second key: %s", out2)
	}
	for _, args := range [][]string{
		{"keys", "api-key"},
		{"keys", "api-key", "--client-id", "a", "--expires-in", "soon"},
		{"keys", "api-key", "--client-id", "a", "--expires-in", "1d", "--expires-at", "2030-01-01T00:00:00Z"},
		{"keys", "api-key", "--client-id", "a", "--expires-at", "tomorrow"},
		{"keys", "api-key", "--client-id", "a", "--scopes", "a\"b"},
		{"keys", "api-key", "--client-id", "a\"b"},
	} {
		if code, _, _ := run(t, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
