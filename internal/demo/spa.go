package demo

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// SPAConfig is what the demo SPA learns from /config.json.
type SPAConfig struct {
	GatehouseURL string `json:"gatehouseUrl"` // e.g. http://localhost:8080
	AgentPath    string `json:"agentPath"`    // e.g. /oauth-agent
	APIPath      string `json:"apiPath"`      // e.g. /api
	CookiePrefix string `json:"cookiePrefix"` // names the CSRF header x-<prefix>-csrf
}

// NewSPA serves the SPA's static files and its /config.json. Unknown paths
// get index.html, so that links into the app (as pasted from an email) work.
// Every response carries Referrer-Policy: no-referrer and a strict Content
// Security Policy: the page loads nothing but its own files and talks only
// to Gatehouse.
func NewSPA(files fs.FS, cfg SPAConfig) http.Handler {
	cfgJSON, _ := json.Marshal(cfg)
	csp := "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src 'self' " + cfg.GatehouseURL + "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	static := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := path.Clean("/" + r.URL.Path)
		if p == "/config.json" {
			h.Set("Content-Type", "application/json")
			_, _ = w.Write(cfgJSON)
			return
		}
		name := strings.TrimPrefix(p, "/")
		if st, err := fs.Stat(files, name); name == "" || err != nil || st.IsDir() {
			// The app's own routes (and the login callback) all render index.html.
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/"
			static.ServeHTTP(w, r2)
			return
		}
		static.ServeHTTP(w, r)
	})
}
