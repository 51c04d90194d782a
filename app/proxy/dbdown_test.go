package proxy_test

import (
	"net/http"
	"strings"
	"testing"
)

// A key the proxy has not verified yet cannot be checked while the database fails: the request
// is refused with 503 STORAGE_UNAVAILABLE and a Retry-After — never served, and never a 500 that
// reads as a bug — and the cause reaches the log.
func TestKeyLookupDatabaseDown(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{daily: 10})
	a.db.Close()

	resp, body := a.chat(p.key, `{"model":"`+testModel+`","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"STORAGE_UNAVAILABLE"`) {
		t.Fatalf("with the database closed: %d %s, want 503 STORAGE_UNAVAILABLE", resp.StatusCode, body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After on the refusal")
	}
	if got := len(a.up.Received()); got != 0 {
		t.Errorf("upstream saw %d requests, want 0", got)
	}
	if !strings.Contains(a.logs.String(), "key lookup failed") {
		t.Errorf("the cause is not logged:\n%s", a.logs.String())
	}
}
