package oauthagent

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzEncodeComponent: an encoded value decodes back to itself in a query
// and can never add a parameter (no raw & = # ? or space).
func FuzzEncodeComponent(f *testing.F) {
	for _, s := range []string{"", "a b", "x&redirect_uri=https://evil", "é", "%41", "#frag", "a+b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := encodeComponent(s)
		if strings.ContainsAny(enc, "&=#? +") {
			t.Fatalf("encodeComponent(%q) = %q keeps a delimiter", s, enc)
		}
		q, err := url.ParseQuery("k=" + enc)
		if err != nil || len(q) != 1 || q.Get("k") != s {
			t.Fatalf("round trip of %q: %v %v", s, q, err)
		}
	})
}

func TestParseRefreshCookie(t *testing.T) {
	if rc := parseRefreshCookie(`{"refreshToken":"rt","sub":"u"}`); rc.RefreshToken != "rt" || rc.Subject != "u" {
		t.Errorf("JSON form: %+v", rc)
	}
	// A bare refresh token (a cookie written by Curity's agent) is accepted without a subject.
	if rc := parseRefreshCookie("opaque-refresh-token"); rc.RefreshToken != "opaque-refresh-token" || rc.Subject != "" {
		t.Errorf("bare form: %+v", rc)
	}
	if rc := parseRefreshCookie(`{"sub":"u"}`); rc.RefreshToken != `{"sub":"u"}` {
		t.Errorf("JSON without a refresh token must not yield an empty token: %+v", rc)
	}
}

func TestSafeDescription(t *testing.T) {
	tests := map[string]string{
		"The user denied access": "The user denied access",
		strings.Repeat("a", 257): "",
		`quote " inside`:         "",
		"back\\slash":            "",
		"line\nbreak":            "",
		"non-ascii é":            "",
		"":                       "",
	}
	for in, want := range tests {
		if got := safeDescription(in); got != want {
			t.Errorf("safeDescription(%q) = %q, want %q", in, got, want)
		}
	}
}
