package invite_test

import (
	"fmt"
	"testing"

	"tokenguard/app/account"
)

// BenchmarkCreate measures creating an invite: permission check, token, one write transaction
// (member and duplicate checks, insert, audit row) and queueing the mail (SMTP not configured).
func BenchmarkCreate(b *testing.B) {
	a := newApp(b, appOptions{})
	owner := a.signup("owner@acme.test", "Olivia")
	actor := account.Actor{UserID: owner.ID, IP: "127.0.0.1"}
	n := 0
	for b.Loop() {
		n++
		if _, err := a.invites.Create(b.Context(), actor, owner.Workspace, fmt.Sprintf("dev%d@example.com", n), "member"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPreview measures the public token lookup behind GET /api/invites/:token.
func BenchmarkPreview(b *testing.B) {
	a := newApp(b, appOptions{})
	owner := a.signup("owner@acme.test", "Olivia")
	iss, err := a.invites.Create(b.Context(), account.Actor{UserID: owner.ID}, owner.Workspace, "dev@example.com", "member")
	if err != nil {
		b.Fatal(err)
	}
	token := iss.AcceptURL[len(iss.AcceptURL)-43:]
	for b.Loop() {
		if _, err := a.invites.Preview(b.Context(), token); err != nil {
			b.Fatal(err)
		}
	}
}
