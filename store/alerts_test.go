package store_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

func TestClaimBudgetAlertOncePerKeyAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tg.db")
	db := storetest.OpenAt(t, path)
	a := store.BudgetAlert{Scope: "project", SubjectID: 7, Budget: "daily", Period: "2026-11-26",
		Threshold: 80, SpendNano: 8e9, LimitNano: 10e9, Recipients: 1, CreatedAt: 1}
	claim := func(db *store.DB, a store.BudgetAlert) bool {
		t.Helper()
		ok, err := db.ClaimBudgetAlert(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !claim(db, a) {
		t.Fatal("first claim refused")
	}
	again := a
	again.SpendNano = 9e9 // a different spend is still the same alert
	if claim(db, again) {
		t.Error("second claim of the same alert succeeded")
	}
	// Each field of the key makes a different alert.
	for name, change := range map[string]func(*store.BudgetAlert){
		"scope":     func(b *store.BudgetAlert) { b.Scope = "workspace" },
		"subject":   func(b *store.BudgetAlert) { b.SubjectID = 8 },
		"budget":    func(b *store.BudgetAlert) { b.Budget = "monthly" },
		"period":    func(b *store.BudgetAlert) { b.Period = "2026-11-27" },
		"threshold": func(b *store.BudgetAlert) { b.Threshold = 100 },
	} {
		b := a
		change(&b)
		if !claim(db, b) {
			t.Errorf("alert differing in %s refused", name)
		}
	}
	bad := a
	bad.Threshold = 50
	if _, err := db.ClaimBudgetAlert(ctx, bad); err == nil {
		t.Error("threshold 50 accepted")
	}
	db.Close()

	reopened := storetest.OpenAt(t, path)
	if claim(reopened, a) {
		t.Error("claim after reopening the database succeeded: a restart would mail again")
	}
}

func TestWorkspaceAlertRecipients(t *testing.T) {
	db := storetest.Open(t)
	var ws, lonely int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		if ws, err = db.InsertWorkspace(ctx, tx, store.Workspace{Name: "Acme", CreatedAt: 1}); err != nil {
			return err
		}
		if lonely, err = db.InsertWorkspace(ctx, tx, store.Workspace{Name: "Empty", CreatedAt: 1}); err != nil {
			return err
		}
		for i, m := range []struct{ email, role string }{
			{"owner1@example.com", "owner"}, {"admin@example.com", "admin"},
			{"member@example.com", "member"}, {"owner2@example.com", "owner"},
		} {
			uid, err := db.InsertUser(ctx, tx, store.User{Email: m.email, PasswordHash: "x", CreatedAt: int64(i)})
			if err != nil {
				return err
			}
			if err := db.InsertMembership(ctx, tx, ws, uid, m.role, int64(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	name, owners, err := db.WorkspaceAlertRecipients(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := name, "Acme"; got != want {
		t.Errorf("name = %q, want %q", got, want)
	}
	if got, want := owners, []string{"owner1@example.com", "owner2@example.com"}; !slices.Equal(got, want) {
		t.Errorf("owners = %q, want %q", got, want)
	}
	if name, owners, err := db.WorkspaceAlertRecipients(ctx, lonely); err != nil || name != "Empty" || len(owners) != 0 {
		t.Errorf("workspace without owners = %q, %q, %v; want Empty, none, nil", name, owners, err)
	}
	if _, _, err := db.WorkspaceAlertRecipients(ctx, 999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing workspace: err = %v, want ErrNotFound", err)
	}
	if err := db.WriteTx(ctx, func(tx *sql.Tx) error { return db.SoftDeleteWorkspace(ctx, tx, ws, 5) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.WorkspaceAlertRecipients(ctx, ws); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted workspace: err = %v, want ErrNotFound", err)
	}
}
