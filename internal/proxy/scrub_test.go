package proxy

import (
	"net/http"
	"testing"
)

// No client-sent credential or forwarding header survives the scrub, in any
// spelling an upstream might read as the same header.
func TestScrubRequest(t *testing.T) {
	h := http.Header{}
	for _, k := range []string{"Cookie", "Authorization", "Forwarded", "X-Real-Ip", "X-Forwarded-For", "X-Forwarded-Host",
		"X-Forwarded-Proto", "X_Forwarded_For", "X-Real_Ip", "x_forwarded_host", "X-Api-Key", "X_Api_Key", "X-Example-Csrf"} {
		h[k] = []string{"client value"}
	}
	h.Set("Accept", "application/json")
	h["X-Custom_Header"] = []string{"kept"}
	ScrubRequest(h, "X-Api-Key", "x-example-csrf", "")
	for k := range h {
		if k != "Accept" && k != "X-Custom_Header" {
			t.Errorf("%s survived the scrub", k)
		}
	}
	if len(h) != 2 {
		t.Errorf("unrelated headers removed: %v", h)
	}
}

func TestScrubRequestAllocations(t *testing.T) {
	h := http.Header{"Accept": {"a"}, "User-Agent": {"u"}, "Content-Type": {"c"}, "X-Request-Id": {"r"}, "Accept-Encoding": {"g"}}
	if n := testing.AllocsPerRun(100, func() { ScrubRequest(h, "X-Api-Key", "X-Example-Csrf") }); n != 0 {
		t.Fatalf("ScrubRequest allocates %v times", n)
	}
}
