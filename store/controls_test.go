package store_test

import (
	"database/sql"
	"reflect"
	"testing"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// TestControlsMigrateInPlace ensures a database made before the production controls existed
// upgrades on open with today's behaviour: no rate limits, every model, no failover, no
// end-user budget.
func TestControlsMigrateInPlace(t *testing.T) {
	storetest.SQLiteOnly(t)
	db := storetest.OpenAt(t, oldDatabase(t, "6"))
	p, err := db.ProjectByID(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Controls, store.Controls{}) {
		t.Errorf("migrated project controls = %+v, want none", p.Controls)
	}
	w, err := db.WorkspaceOfMember(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if w.RPMLimit != 0 || w.TPMLimit != 0 {
		t.Errorf("migrated workspace limits = %d/%d, want 0/0", w.RPMLimit, w.TPMLimit)
	}
	k, err := db.KeyAuthByPrefix(ctx, "tg_live_old")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(k.Controls, store.Controls{}) || k.WorkspaceRPM != 0 || k.WorkspaceTPM != 0 {
		t.Errorf("migrated key auth controls = %+v, workspace %d/%d", k.Controls, k.WorkspaceRPM, k.WorkspaceTPM)
	}
}

// TestControlsRoundTrip ensures every control written on insert and on update is read back by
// the project and workspace lookups and reaches key auth, and that the columns refuse limits
// outside 0..1e9 and a negative end-user budget.
func TestControlsRoundTrip(t *testing.T) {
	db := storetest.Open(t)
	inserted := store.Controls{RPMLimit: 60, TPMLimit: 100000, AllowedModels: []string{"gpt-4o-mini", "claude-*"}}
	updated := store.Controls{
		RPMLimit: 1e9, TPMLimit: 1, AllowedModels: []string{"gemini-2.5-flash"}, FallbackOnError: true,
		EndUserDailyBudgetNano: 2_500_000_000,
	}
	var p store.Project
	var w store.Workspace
	var userID int64
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		if userID, err = db.InsertUser(ctx, tx, store.User{Email: "a@example.com", PasswordHash: "x", CreatedAt: 1}); err != nil {
			return err
		}
		w = store.Workspace{Name: "ws", CreatedAt: 1, RPMLimit: 10, TPMLimit: 20}
		if w.ID, err = db.InsertWorkspace(ctx, tx, w); err != nil {
			return err
		}
		if err := db.InsertMembership(ctx, tx, w.ID, userID, "owner", 1); err != nil {
			return err
		}
		p = store.Project{WorkspaceID: w.ID, Name: "p", KeyPrefix: "tg_live_ctl", CreatedAt: 1, UpdatedAt: 1, Controls: inserted}
		p.ID, err = db.InsertProject(ctx, tx, p, "hash")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, want store.Controls, rpm, tpm int64) {
		t.Helper()
		got, err := db.ProjectByID(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Controls, want) {
			t.Errorf("%s: project controls = %+v, want %+v", step, got.Controls, want)
		}
		gw, err := db.WorkspaceOfMember(ctx, userID, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if gw.RPMLimit != rpm || gw.TPMLimit != tpm {
			t.Errorf("%s: workspace limits = %d/%d, want %d/%d", step, gw.RPMLimit, gw.TPMLimit, rpm, tpm)
		}
		k, err := db.KeyAuthByPrefix(ctx, "tg_live_ctl")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(k.Controls, want) || k.WorkspaceRPM != rpm || k.WorkspaceTPM != tpm {
			t.Errorf("%s: key auth = %+v, workspace %d/%d", step, k.Controls, k.WorkspaceRPM, k.WorkspaceTPM)
		}
	}
	check("insert", inserted, 10, 20)

	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		p.Controls, p.BudgetMode = updated, "soft"
		if err := db.UpdateProject(ctx, tx, p); err != nil {
			return err
		}
		w.BudgetMode, w.RPMLimit, w.TPMLimit = "soft", 0, 5
		return db.UpdateWorkspace(ctx, tx, w)
	})
	if err != nil {
		t.Fatal(err)
	}
	check("update", updated, 0, 5)

	bad := []struct {
		name string
		c    store.Controls
	}{
		{"rpm over 1e9", store.Controls{RPMLimit: 1e9 + 1}},
		{"negative tpm", store.Controls{TPMLimit: -1}},
		{"negative end-user budget", store.Controls{EndUserDailyBudgetNano: -1}},
	}
	for _, c := range bad {
		err := db.WriteTx(ctx, func(tx *sql.Tx) error {
			bp := p
			bp.Controls = c.c
			return db.UpdateProject(ctx, tx, bp)
		})
		if err == nil {
			t.Errorf("%s: stored", c.name)
		}
	}
	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		bw := w
		bw.RPMLimit = -5
		return db.UpdateWorkspace(ctx, tx, bw)
	})
	if err == nil {
		t.Error("negative workspace rpm stored")
	}
	check("after refused writes", updated, 0, 5)
}
