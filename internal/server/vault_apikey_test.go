package server_test

import (
	"strings"
	"testing"
)

// TestVaultJobsWithAPIKeys: with vault.job_entries [bearer, apikey] a backend
// job may present an API key instead of a client-credentials JWT (issue 8);
// the key's client_id names the job and its entitlements apply unchanged. A
// key for a client that is no job, a job asking beyond its entitlement, a
// revoked key and a key with a bearer token at once are refused.
func TestVaultJobsWithAPIKeys(t *testing.T) {
	syncKey := newAPIKey(t, vtJobAll, "[vault.sync]", "")
	otherKey := newAPIKey(t, vtJobOther, "[]", "")
	strangerKey := newAPIKey(t, "not-a-job", "[vault.sync]", "")
	revokedKey := newAPIKey(t, vtJobAll, "[vault.sync]", "revoked: true")
	v := newVaultEnv(t, vaultOptions{yaml: func(_ int, y string) string {
		y = insertAfter(t, y, "vault:\n", "  job_entries: [bearer, apikey]\n")
		return y + apiKeysYAML("X-Job-Key", syncKey, otherKey, strangerKey, revokedKey)
	}})
	e := v.env
	v.connect(e, "tp")

	tokenAs := func(key string, extra map[string]string) (int, string) {
		t.Helper()
		h := map[string]string{"X-Job-Key": key}
		for k, val := range extra {
			h[k] = val
		}
		resp, b := v.jobCall(e, "POST", "/vault/token", "", map[string]any{
			"user": map[string]string{"issuer": v.idp.Issuer(), "subject": userID}, "provider": "tp",
		}, h)
		return resp.StatusCode, string(b)
	}
	if status, body := tokenAs(syncKey.key.Value, nil); status != 200 || !strings.Contains(body, `"access_token"`) {
		t.Fatalf("an entitled job with its API key: %d %s", status, body)
	}

	// The job's API key stays at Gatehouse: the provider's API receives the
	// user's provider token and nothing of the job's own credential (also
	// not under an underscore spelling of the header name).
	t.Run("the API key never reaches the provider", func(t *testing.T) {
		resp, b := v.jobCall(e, "GET", "/vault/proxy/tp/user/repos", "", nil, map[string]string{
			"X-Job-Key": syncKey.key.Value, "Gatehouse-User-Subject": userID,
			"X_Forwarded_For": "203.0.113.9", "X-Forwarded-Host": "evil.example",
		})
		if resp.StatusCode != 200 {
			t.Fatalf("job proxy with an API key: %d %s", resp.StatusCode, b)
		}
		got, _ := v.vtAPI.last(t)
		for name, vals := range got.Header {
			for _, val := range vals {
				if strings.Contains(val, syncKey.key.Value) || strings.Contains(val, "203.0.113.9") || strings.Contains(val, "evil.example") {
					t.Errorf("the provider received %s: %q", name, val)
				}
			}
		}
	})
	for _, tc := range []struct {
		name   string
		key    string
		extra  map[string]string
		status int
	}{
		{"job not entitled to the provider", otherKey.key.Value, nil, 403},
		{"key of a client that is no job", strangerKey.key.Value, nil, 403},
		{"revoked key", revokedKey.key.Value, nil, 401},
		{"unknown key", "gkey.AAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nil, 401},
		{"key and a bearer token at once", syncKey.key.Value, map[string]string{"Authorization": "Bearer " + v.jobToken(t, vtJobAll)}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := tokenAs(tc.key, tc.extra); status != tc.status {
				t.Fatalf("%d %s, want %d", status, body, tc.status)
			}
		})
	}
	for _, k := range []apiKeyEntry{syncKey, otherKey, strangerKey, revokedKey} {
		if strings.Contains(e.logs.String(), k.key.Value) {
			t.Errorf("the logs contain the API key of %s", k.clientID)
		}
	}
}
