package api

import "testing"

// TestRedactPath ensures request logs drop invite tokens from paths.
func TestRedactPath(t *testing.T) {
	for in, want := range map[string]string{
		"/api/invites/abc":            "/api/invites/REDACTED",
		"/api/invites/abc/accept":     "/api/invites/REDACTED/accept",
		"/invites/abc":                "/invites/REDACTED",
		"/api/workspaces/1/invites/2": "/api/workspaces/1/invites/2",
		"/api/projects":               "/api/projects",
		"/api/invites/":               "/api/invites/",
	} {
		if got := RedactPath(in); got != want {
			t.Errorf("RedactPath(%q) = %q, want %q", in, got, want)
		}
	}
}
