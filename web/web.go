// Package web holds the demo's single page application as static files
// embedded in the binary: plain HTML, CSS and JavaScript modules, no build
// step. It talks to Gatehouse exactly as a production SPA would: fetch with
// credentials to the OAuth Agent and the API routes, the CSRF header on
// data-changing calls, never a token in JavaScript.
package web

import (
	"embed"
	"io/fs"
)

//go:embed spa
var files embed.FS

// SPA returns the application's files (index.html, app.js, style.css).
func SPA() fs.FS {
	sub, err := fs.Sub(files, "spa")
	if err != nil {
		// The embedded tree is fixed at build time; this cannot happen.
		panic(err)
	}
	return sub
}
