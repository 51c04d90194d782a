package store_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// schemaBefore returns the repository's schema cut just before "-- migration: n", as a binary
// that shipped migration n-1 would have applied it.
func schemaBefore(tb testing.TB, n string) string {
	tb.Helper()
	full := storetest.Schema(tb)
	i := strings.Index(full, "\n-- migration: "+n+"\n")
	if i < 0 {
		tb.Fatalf("schema has no migration %s", n)
	}
	return full[:i+1]
}

// oldDatabase makes a database as a binary that shipped the migration before n left it, holding
// user 1, workspace 1 (theirs) and its project 1 with key prefix tg_live_old, and returns its
// path for the current schema to open.
func oldDatabase(tb testing.TB, n string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "old.db")
	old, err := store.Open(ctx, path, schemaBefore(tb, n))
	if err != nil {
		tb.Fatal(err)
	}
	defer old.Close()
	err = old.WriteTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`INSERT INTO users (id, email, password_hash, created_at) VALUES (1, 'a@example.com', 'x', 1)`,
			`INSERT INTO workspaces (id, name, created_at) VALUES (1, 'ws', 1)`,
			`INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES (1, 1, 'owner', 1)`,
			`INSERT INTO projects (id, workspace_id, name, key_prefix, key_hash, created_at, updated_at)
				VALUES (1, 1, 'p', 'tg_live_old', 'hash', 1, 1)`,
		} {
			if _, err := tx.Exec(q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestBudgetModeMigratesInPlace ensures a database made before budget modes existed upgrades on
// open: its projects and workspaces keep today's behaviour ('soft') and their keys stay
// non-strict.
func TestBudgetModeMigratesInPlace(t *testing.T) {
	storetest.SQLiteOnly(t)
	db := storetest.OpenAt(t, oldDatabase(t, "3"))
	p, err := db.ProjectByID(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.BudgetMode, "soft"; got != want {
		t.Errorf("migrated project budget mode = %q, want %q", got, want)
	}
	w, err := db.WorkspaceOfMember(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w.BudgetMode, "soft"; got != want {
		t.Errorf("migrated workspace budget mode = %q, want %q", got, want)
	}
	k, err := db.KeyAuthByPrefix(ctx, "tg_live_old")
	if err != nil {
		t.Fatal(err)
	}
	if k.ProjectStrict || k.WorkspaceStrict {
		t.Errorf("migrated key strict = %v/%v, want false/false", k.ProjectStrict, k.WorkspaceStrict)
	}
}

// TestBudgetModeRoundTrip ensures each combination of project and workspace mode is stored,
// read back by the project and workspace lookups, and reaches key auth as the two strict flags
// the proxy gates on; and that the column refuses any other value, "" included, on update.
func TestBudgetModeRoundTrip(t *testing.T) {
	db := storetest.Open(t)
	var userID int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		userID, err = db.InsertUser(ctx, tx, store.User{Email: "a@example.com", PasswordHash: "x", CreatedAt: 1})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		project, workspace string
		wantP, wantW       bool
	}{
		{"soft", "soft", false, false},
		{"strict", "soft", true, false},
		{"soft", "strict", false, true},
		{"strict", "strict", true, true},
	}
	for i, c := range cases {
		prefix := "tg_live_" + c.project + "_" + c.workspace
		var p store.Project
		var w store.Workspace
		err := db.WriteTx(ctx, func(tx *sql.Tx) error {
			// Inserted with no mode (the default), then updated: both writes are exercised.
			wsID, err := db.InsertWorkspace(ctx, tx, store.Workspace{Name: prefix, CreatedAt: 1})
			if err != nil {
				return err
			}
			if err := db.InsertMembership(ctx, tx, wsID, userID, "owner", int64(i)); err != nil {
				return err
			}
			w = store.Workspace{ID: wsID, Name: prefix, BudgetMode: c.workspace}
			if err := db.UpdateWorkspace(ctx, tx, w); err != nil {
				return err
			}
			p = store.Project{WorkspaceID: wsID, Name: "p", KeyPrefix: prefix, BudgetMode: c.project, CreatedAt: 1, UpdatedAt: 1}
			p.ID, err = db.InsertProject(ctx, tx, p, "hash")
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", prefix, err)
		}
		gotP, err := db.ProjectByID(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		gotW, err := db.WorkspaceOfMember(ctx, userID, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if gotP.BudgetMode != c.project || gotW.BudgetMode != c.workspace {
			t.Errorf("%s: read back project %q, workspace %q", prefix, gotP.BudgetMode, gotW.BudgetMode)
		}
		k, err := db.KeyAuthByPrefix(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if k.ProjectStrict != c.wantP || k.WorkspaceStrict != c.wantW {
			t.Errorf("%s: key auth strict = %v/%v, want %v/%v", prefix, k.ProjectStrict, k.WorkspaceStrict, c.wantP, c.wantW)
		}

		// Each refused write in its own transaction: PostgreSQL ends a transaction at its
		// first failed statement.
		for _, bad := range []string{"", "hard", "Strict"} {
			bp, bw := gotP, w
			bp.BudgetMode, bw.BudgetMode = bad, bad
			if err := db.WriteTx(ctx, func(tx *sql.Tx) error { return db.UpdateProject(ctx, tx, bp) }); err == nil {
				t.Errorf("project budget mode %q stored", bad)
			}
			if err := db.WriteTx(ctx, func(tx *sql.Tx) error { return db.UpdateWorkspace(ctx, tx, bw) }); err == nil {
				t.Errorf("workspace budget mode %q stored", bad)
			}
		}
	}
}
