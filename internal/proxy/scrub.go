package proxy

import (
	"net/http"
	"strings"
)

// ScrubRequest removes from an upstream request's headers everything of the
// client's that no upstream may receive: its cookies, a client-sent
// Authorization, Forwarded, X-Real-IP and every X-Forwarded-* header, also
// when spelled with underscores (CGI-style servers map X_Forwarded_For and
// X-Forwarded-For to the same variable), and the named extra headers (the
// CSRF header, the API key header, ...). Every proxy of Gatehouse calls it,
// so a header the client must not pass on is named in one place.
func ScrubRequest(h http.Header, extra ...string) {
	for k := range h {
		if scrubbed(k) {
			delete(h, k)
		}
	}
	for _, e := range extra {
		if e != "" {
			h.Del(e)
			h.Del(strings.ReplaceAll(e, "-", "_"))
		}
	}
}

func scrubbed(name string) bool {
	n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	switch n {
	case "cookie", "authorization", "forwarded", "x-real-ip":
		return true
	}
	return strings.HasPrefix(n, "x-forwarded-")
}
