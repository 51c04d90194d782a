package static

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAssets ensures every asset is served under a name holding its content hash, cached
// forever, and that a stale or unknown name is a 404 rather than new content under an old name.
func TestAssets(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"app.css", "app.js", "htmx-2.0.11.min.js"} {
		u := a.URL(name)
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, u, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d", u, rec.Code)
		}
		body, _ := io.ReadAll(rec.Body)
		sum := sha256.Sum256(body)
		if !strings.Contains(u, "."+hex.EncodeToString(sum[:6])+".") {
			t.Errorf("%s does not carry the hash of its content", u)
		}
		if got, want := rec.Header().Get("Cache-Control"), "public, max-age=31536000, immutable"; got != want {
			t.Errorf("%s: Cache-Control %q, want %q", u, got, want)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.Contains(ct, "css") && !strings.Contains(ct, "javascript") {
			t.Errorf("%s: Content-Type %q", u, ct)
		}
	}
	for path, want := range map[string]int{
		"/static/app.css":              http.StatusNotFound,
		"/static/app.000000000000.css": http.StatusNotFound,
		"/static/../static.go":         http.StatusNotFound,
	} {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: status %d, want %d", path, rec.Code, want)
		}
	}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, a.URL("app.css"), nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d", rec.Code)
	}
	defer func() {
		if recover() == nil {
			t.Error("URL of an unknown asset did not panic")
		}
	}()
	a.URL("missing.css")
}
