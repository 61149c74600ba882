package authz

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/httperr"
)

func TestPolicy(t *testing.T) {
	pr := &authn.Principal{
		Method: "bearer",
		Scopes: []string{"read", "write"},
		Claims: map[string]any{
			"roles":          []any{"manager", "auditor"},
			"realm_access":   map[string]any{"roles": []any{"admin"}},
			"tenant":         "acme",
			"groups":         []any{"eu", "us"},
			"level":          float64(3),
			"email_verified": true,
			"spaced":         "a b",
		},
	}
	tests := []struct {
		name  string
		rules Rules
		ok    bool
	}{
		{"all scopes present", Rules{Scopes: []string{"read", "write"}}, true},
		{"a scope missing", Rules{Scopes: []string{"read", "delete"}}, false},
		{"any scope", Rules{AnyScopes: []string{"delete", "write"}}, true},
		{"no scope of any", Rules{AnyScopes: []string{"delete", "admin"}}, false},
		{"roles all", Rules{Roles: []string{"manager", "auditor"}}, true},
		{"a role missing", Rules{Roles: []string{"manager", "admin"}}, false},
		{"any role", Rules{AnyRoles: []string{"admin", "auditor"}}, true},
		{"roles from a nested claim", Rules{Roles: []string{"admin"}, RolesClaim: "realm_access.roles"}, true},
		{"nested claim path missing", Rules{Roles: []string{"admin"}, RolesClaim: "resource_access.api.roles"}, false},
		{"roles in a space-separated string", Rules{Roles: []string{"b"}, RolesClaim: "spaced"}, true},
		{"claim equals", Rules{Claims: map[string]string{"tenant": "acme"}}, true},
		{"claim differs", Rules{Claims: map[string]string{"tenant": "evil"}}, false},
		{"claim array contains", Rules{Claims: map[string]string{"groups": "us"}}, true},
		{"claim number", Rules{Claims: map[string]string{"level": "3"}}, true},
		{"claim bool", Rules{Claims: map[string]string{"email_verified": "true"}}, true},
		{"claim absent", Rules{Claims: map[string]string{"department": "x"}}, false},
		{"prefix is not equality", Rules{Claims: map[string]string{"tenant": "acm"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := New(tc.rules).Check(pr)
			if tc.ok {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				return
			}
			var he *httperr.Error
			if !errors.As(err, &he) || he.Status != http.StatusForbidden || he.Code != "forbidden" {
				t.Fatalf("want 403 forbidden, got %v", err)
			}
			if !strings.Contains(he.WWWAuthenticate, `error="insufficient_scope"`) {
				t.Errorf("WWW-Authenticate %q lacks insufficient_scope", he.WWWAuthenticate)
			}
		})
	}
}

func TestScopeChallengeNamesScopes(t *testing.T) {
	err := New(Rules{Scopes: []string{"read"}, AnyScopes: []string{"x"}}).Check(&authn.Principal{Method: "bearer"})
	var he *httperr.Error
	if !errors.As(err, &he) || !strings.Contains(he.WWWAuthenticate, `scope="read x"`) {
		t.Fatalf("challenge: %v", err)
	}
}

func TestAnonymousIsUnauthorized(t *testing.T) {
	err := New(Rules{Scopes: []string{"read"}}).Check(&authn.Principal{Method: "anonymous"})
	var he *httperr.Error
	if !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
		t.Fatalf("anonymous caller: %v", err)
	}
}
