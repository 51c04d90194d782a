package api

import (
	"fmt"
	"net/http"
	"testing"
)

// BenchmarkListProjects is one authenticated API read end to end over loopback HTTP: JWT check,
// user and membership reads, 20 projects with their provider-key masks, JSON encoding.
func BenchmarkListProjects(b *testing.B) {
	a := newApp(b)
	alice := a.signup("alice@example.com")
	for i := 0; i < 20; i++ {
		alice.createProject(alice.ws, fmt.Sprint("project ", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := alice.call(http.MethodGet, "/api/projects", nil); r.status != http.StatusOK {
			b.Fatal(r)
		}
	}
}
