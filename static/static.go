// Package static holds the dashboard's assets — its stylesheet, its one script and the vendored
// HTMX — embedded in the binary and served under fingerprinted names (a content hash in the file
// name), so browsers may cache them forever and a new release is fetched at once.
//
// HTMX is vendored from the npm package htmx.org@2.0.11 (dist/htmx.min.js, unmodified; npm
// tarball sha256 165a2655073e9e6e55e307a7c74e8ebcdb76afb7701f9c16cfd106a13add408e). No Node is
// needed to build or run TokenGuard.
package static

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed app.css app.js vendor/htmx-2.0.11.min.js
var files embed.FS

// Prefix is the URL path the assets are served under.
const Prefix = "/static/"

// Assets maps the logical names of the embedded files ("app.css") to their fingerprinted URLs
// ("/static/app.1a2b3c4d5e6f.css") and serves them.
type Assets struct {
	byName map[string]string // logical name → fingerprinted URL path
	byFile map[string]asset  // fingerprinted file name → content
}

type asset struct {
	body        []byte
	contentType string
}

// New fingerprints every embedded file. It fails only if the embedded tree cannot be read.
func New() (*Assets, error) {
	a := &Assets{byName: map[string]string{}, byFile: map[string]asset{}}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ext := path.Ext(p)
		base := strings.TrimSuffix(path.Base(p), ext)
		file := base + "." + hex.EncodeToString(sum[:6]) + ext
		a.byName[path.Base(p)] = Prefix + file
		ct := mime.TypeByExtension(ext)
		if ct == "" {
			ct = "application/octet-stream"
		}
		a.byFile[file] = asset{body: body, contentType: ct}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fingerprint static assets: %w", err)
	}
	return a, nil
}

// URL returns the fingerprinted URL of a logical asset name such as "app.css". An unknown name
// is a programming error and panics, so a typo shows up in the first test that renders a page.
func (a *Assets) URL(name string) string {
	u, ok := a.byName[name]
	if !ok {
		panic("static: unknown asset " + name)
	}
	return u
}

// Has reports whether urlPath (such as "/static/app.1a2b3c4d5e6f.css") names an asset
// ServeHTTP serves.
func (a *Assets) Has(urlPath string) bool {
	_, ok := a.byFile[strings.TrimPrefix(urlPath, Prefix)]
	return ok
}

// ServeHTTP serves a fingerprinted asset with a year-long immutable cache lifetime; any other
// name under Prefix is a 404 (a stale fingerprint must not be served new content forever).
func (a *Assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f, ok := a.byFile[strings.TrimPrefix(r.URL.Path, Prefix)]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
