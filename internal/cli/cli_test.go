package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func run(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, Env{
		Stdout: &out, Stderr: &errb,
		Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	return code, out.String(), errb.String()
}

// The documented example configurations must stay valid.
func TestExampleConfigsPassCheck(t *testing.T) {
	env := map[string]string{
		"SPA_CLIENT_SECRET":    "example-secret",
		"INTROSPECTION_SECRET": "example-introspection-secret",
		"COOKIE_KEY":           "0c1d2e3f405162738495a6b7c8d9eafb0c1d2e3f405162738495a6b7c8d9eaf1",
		"VAULT_KEY":            "5e0a9b71c3d2f48e6a17b0c9d3e52f8a41c6b7d09e2f3a5c8b1d4e7f60a2c9b3",
		"GITHUB_CLIENT_SECRET": "example-github-secret",
		"GOOGLE_CLIENT_SECRET": "example-google-secret",
	}

	// partners.yaml and orders.yaml: Gatehouse's token client, and the TLS
	// files they name (listener, partners' CA, upstream mTLS).
	pki := writeTestPKI(t, t.TempDir())
	for k, v := range map[string]string{
		"GATEHOUSE_CLIENT_SECRET": "example-token-client-secret",
		"TLS_CERT_FILE":           pki.cert,
		"TLS_KEY_FILE":            pki.key,
		"PARTNER_CA_FILE":         pki.ca,
		"BILLING_CA_FILE":         pki.ca,
		"BILLING_CLIENT_CERT":     pki.cert,
		"BILLING_CLIENT_KEY":      pki.key,
	} {
		env[k] = v
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, out, errOut := run(t, env, "config", "check", "--config", f)
			if code != 0 {
				t.Fatalf("config check failed (exit %d):\n%s", code, errOut)
			}
			if !strings.Contains(out, "configuration OK") {
				t.Errorf("unexpected output %q", out)
			}
			if strings.Contains(errOut, "warning") {
				t.Errorf("the example configuration produces warnings:\n%s", errOut)
			}
		})
	}
}

func TestConfigCheckReportsFieldPaths(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yaml")
	bad := `
public_url: "https://api.example.com"
authorization_server: { issuer: "https://login.example.com" }
oauth_agent:
  client_id: spa
  client_secret: s
  redirect_uri: "https://www.example.com/"
  trusted_web_origins: ["https://www.example.com"]
  cookie: { encryption_keys: ["abc"] }
routes:
  - { path: "/api", upstream: "not a url", entry: [cookie], timout: "1s" }
`
	if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, nil, "config", "check", "--config", p)
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	for _, want := range []string{"routes[0].timout", "oauth_agent.cookie.encryption_keys[0]"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("output does not name %s:\n%s", want, errOut)
		}
	}
}

func TestKeysGenerate(t *testing.T) {
	code, out, _ := run(t, nil, "keys", "generate")
	if code != 0 || !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(out) {
		t.Fatalf("keys generate: exit %d, output %q", code, out)
	}
	_, out2, _ := run(t, nil, "keys", "generate")
	if out == out2 {
		t.Fatal("two generated keys are equal")
	}
}

func TestUsage(t *testing.T) {
	if code, _, _ := run(t, nil); code != 2 {
		t.Errorf("no arguments: exit %d, want 2", code)
	}
	if code, _, errOut := run(t, nil, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, out, _ := run(t, nil, "version"); code != 0 || !strings.HasPrefix(out, "gatehouse ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	if code, _, _ := run(t, nil, "serve"); code != 2 {
		t.Errorf("serve without --config: exit %d, want 2", code)
	}
}
