package proxy

import (
	"net/http"
)

// ScrubRequest removes from an upstream request's headers everything of the
// client's that no upstream may receive: its cookies, a client-sent
// Authorization, Forwarded, X-Real-IP and every X-Forwarded-* header, and the
// named extra headers (the CSRF header, the API key header, ...). Names are
// compared case-insensitively with underscores read as hyphens, because
// CGI-style servers map X_Forwarded_For and X-Forwarded-For to the same
// variable. Every proxy of Gatehouse calls it, so a header the client must
// not pass on is named in one place. It does not allocate.
func ScrubRequest(h http.Header, extra ...string) {
	for k := range h {
		if scrubbed(k, extra) {
			delete(h, k)
		}
	}
}

var alwaysScrubbed = []string{"cookie", "authorization", "forwarded", "x-real-ip"}

func scrubbed(name string, extra []string) bool {
	if headerHasPrefix(name, "x-forwarded-") {
		return true
	}
	for _, s := range alwaysScrubbed {
		if headerEqual(name, s) {
			return true
		}
	}
	for _, e := range extra {
		if e != "" && headerEqual(name, e) {
			return true
		}
	}
	return false
}

// fold maps a header name byte to lower case, with '_' as '-'.
func fold(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

func headerEqual(a, b string) bool {
	return len(a) == len(b) && headerHasPrefix(a, b)
}

func headerHasPrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if fold(name[i]) != fold(prefix[i]) {
			return false
		}
	}
	return true
}
