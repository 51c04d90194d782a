package account

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"tokenguard/app/apperr"
)

func i64(v int64) *int64         { return &v }
func f64(v float64) *float64     { return &v }
func list(v ...string) *[]string { return &v }
func yes() *bool                 { v := true; return &v }

// TestControlsValidation ensures project create and patch and workspace patch take limits of 0
// to 1e9, an allow-list of bounded well-formed entries and a non-negative end-user budget, and
// refuse anything else with INVALID_REQUEST naming the field, changing nothing.
func TestControlsValidation(t *testing.T) {
	s := newService(t, bcrypt.MinCost)
	ctx := context.Background()
	actor, ws, _ := ownerWithProject(t, s)
	cases := []struct {
		name  string
		patch ControlsPatch
		field string // "" = accepted
	}{
		{"limits at their bounds", ControlsPatch{RPMLimit: i64(MaxRateLimit), TPMLimit: i64(0)}, ""},
		{"rpm over 1e9", ControlsPatch{RPMLimit: i64(MaxRateLimit + 1)}, "rpmLimit"},
		{"negative tpm", ControlsPatch{TPMLimit: i64(-1)}, "tpmLimit"},
		{"allow-list", ControlsPatch{AllowedModels: list("gpt-4o-mini", "claude-*")}, ""},
		{"star inside", ControlsPatch{AllowedModels: list("gpt-*-mini")}, "allowedModels"},
		{"control character", ControlsPatch{AllowedModels: list("gpt\n4o")}, "allowedModels"},
		{"entry too long", ControlsPatch{AllowedModels: list(strings.Repeat("m", 129))}, "allowedModels"},
		{"end-user budget", ControlsPatch{EndUserDailyBudget: f64(2.5), FallbackOnError: yes()}, ""},
		{"negative end-user budget", ControlsPatch{EndUserDailyBudget: f64(-1)}, "endUserDailyBudgetUsd"},
	}
	for _, c := range cases {
		created, _, cerr := s.CreateProject(ctx, actor, ws, ProjectInput{Name: "new", Controls: c.patch})
		before, _, err := s.CreateProject(ctx, actor, ws, ProjectInput{Name: "patched"})
		if err != nil {
			t.Fatal(err)
		}
		p := before
		updated, uerr := s.UpdateProject(ctx, actor, p.ID, ProjectPatch{Controls: c.patch})
		for way, err := range map[string]error{"create": cerr, "patch": uerr} {
			if c.field == "" && err != nil {
				t.Errorf("%s %s: %v", c.name, way, err)
			}
			if c.field != "" && (apperr.Code(err) != apperr.InvalidRequest || !strings.Contains(apperr.Message(err), c.field)) {
				t.Errorf("%s %s: err = %v, want INVALID_REQUEST naming %s", c.name, way, err, c.field)
			}
		}
		if c.field != "" {
			after, _ := s.Project(ctx, actor, p.ID)
			if fmt.Sprint(after.Controls) != fmt.Sprint(before.Controls) {
				t.Errorf("%s: refused patch changed controls %+v → %+v", c.name, before.Controls, after.Controls)
			}
			continue
		}
		if fmt.Sprint(created.Controls) != fmt.Sprint(updated.Controls) {
			t.Errorf("%s: created %+v, patched %+v", c.name, created.Controls, updated.Controls)
		}
	}

	for _, c := range []struct {
		rpm, tpm *int64
		field    string
	}{
		{i64(100), i64(MaxRateLimit), ""},
		{i64(-1), nil, "rpmLimit"},
		{nil, i64(MaxRateLimit + 1), "tpmLimit"},
	} {
		w, err := s.UpdateWorkspace(ctx, actor, ws, WorkspacePatch{RPMLimit: c.rpm, TPMLimit: c.tpm})
		if c.field == "" {
			if err != nil || w.RPMLimit != *c.rpm || w.TPMLimit != *c.tpm {
				t.Errorf("workspace limits: %d/%d, %v", w.RPMLimit, w.TPMLimit, err)
			}
			continue
		}
		if apperr.Code(err) != apperr.InvalidRequest || !strings.Contains(apperr.Message(err), c.field) {
			t.Errorf("workspace %s: err = %v", c.field, err)
		}
	}
	if w, err := s.Workspace(ctx, actor, ws); err != nil || w.RPMLimit != 100 || w.TPMLimit != MaxRateLimit {
		t.Errorf("workspace after refused patches: %d/%d, %v", w.RPMLimit, w.TPMLimit, err)
	}
}

// TestFallbackMustBeAllowed ensures the fallback model is refused on save when the allow-list
// would refuse it, whichever field is changed, naming the field that was changed; and accepted
// when a pattern allows it.
func TestFallbackMustBeAllowed(t *testing.T) {
	s := newService(t, bcrypt.MinCost)
	ctx := context.Background()
	actor, ws, p := ownerWithProject(t, s)
	_, _, err := s.CreateProject(ctx, actor, ws, ProjectInput{
		Name: "x", FallbackModel: "gpt-4o-mini", Controls: ControlsPatch{AllowedModels: list("gpt-4o")},
	})
	if apperr.Code(err) != apperr.InvalidRequest || !strings.Contains(apperr.Message(err), "fallbackModel") {
		t.Errorf("create with a refused fallback: %v", err)
	}
	steps := []struct {
		name  string
		patch ProjectPatch
		field string // "" = accepted
	}{
		{"fallback set, no list", ProjectPatch{FallbackModel: ptr("gpt-4o-mini")}, ""},
		{"list without the fallback", ProjectPatch{Controls: ControlsPatch{AllowedModels: list("gpt-4o")}}, "allowedModels"},
		{"list with the fallback by pattern", ProjectPatch{Controls: ControlsPatch{AllowedModels: list("gpt-4o", "gpt-4o-mini*")}}, ""},
		{"fallback outside the list", ProjectPatch{FallbackModel: ptr("claude-haiku-4-5")}, "fallbackModel"},
		{"both changed together, consistent", ProjectPatch{FallbackModel: ptr("claude-haiku-4-5"), Controls: ControlsPatch{AllowedModels: list("claude-*")}}, ""},
		{"list cleared", ProjectPatch{Controls: ControlsPatch{AllowedModels: list()}}, ""},
	}
	for _, st := range steps {
		_, err := s.UpdateProject(ctx, actor, p.ID, st.patch)
		if st.field == "" && err != nil {
			t.Errorf("%s: %v", st.name, err)
		}
		if st.field != "" && (apperr.Code(err) != apperr.InvalidRequest || !strings.HasPrefix(apperr.Message(err), st.field)) {
			t.Errorf("%s: err = %v, want INVALID_REQUEST naming %s first", st.name, err, st.field)
		}
	}
	got, err := s.Project(ctx, actor, p.ID)
	if err != nil || got.FallbackModel != "claude-haiku-4-5" || got.AllowedModels != nil {
		t.Errorf("final project: fallback %q, list %q, %v", got.FallbackModel, got.AllowedModels, err)
	}
}

// TestControlsAreAuditedAndEvict ensures a change of any control is recorded as from/to in
// project_updated or workspace_updated and evicts the proxy's cached keys, reaching key auth;
// saving the same values again records and evicts nothing; and controls set at creation are
// named in project_created.
func TestControlsAreAuditedAndEvict(t *testing.T) {
	s, ev, actor, ws, p := evictingOwner(t)
	ctx := context.Background()
	proj, wsp := []string{fmt.Sprintf("project %d", p.ID)}, []string{fmt.Sprintf("workspace %d", ws)}
	all := ControlsPatch{
		RPMLimit: i64(60), TPMLimit: i64(1000), AllowedModels: list("gpt-*"), FallbackOnError: yes(),
		EndUserDailyBudget: f64(1.25),
	}
	steps := []struct {
		name    string
		do      func() error
		action  string
		fields  []string // diffed fields of the newest event of action
		evicted []string
	}{
		{"project controls", func() error {
			_, err := s.UpdateProject(ctx, actor, p.ID, ProjectPatch{Controls: all})
			return err
		}, AuditProjectUpdated, []string{"allowedModels", "endUserDailyBudgetUsd", "fallbackOnError", "rpmLimit", "tpmLimit"}, proj},
		{"same again", func() error {
			_, err := s.UpdateProject(ctx, actor, p.ID, ProjectPatch{Controls: all})
			return err
		}, AuditProjectUpdated, []string{"allowedModels", "endUserDailyBudgetUsd", "fallbackOnError", "rpmLimit", "tpmLimit"}, nil},
		{"workspace limits", func() error {
			_, err := s.UpdateWorkspace(ctx, actor, ws, WorkspacePatch{RPMLimit: i64(600), TPMLimit: i64(50000)})
			return err
		}, AuditWorkspaceUpdated, []string{"rpmLimit", "tpmLimit"}, wsp},
		{"workspace same again", func() error {
			_, err := s.UpdateWorkspace(ctx, actor, ws, WorkspacePatch{RPMLimit: i64(600)})
			return err
		}, AuditWorkspaceUpdated, []string{"rpmLimit", "tpmLimit"}, nil},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		page, err := s.Audit(ctx, actor, ws, AuditQuery{Action: st.action})
		if err != nil || len(page.Entries) == 0 {
			t.Fatalf("%s: audit %v", st.name, err)
		}
		var fields []string
		for _, f := range []string{"allowedModels", "endUserDailyBudgetUsd", "fallbackOnError", "rpmLimit", "tpmLimit"} {
			if strings.Contains(string(page.Entries[0].Details), `"`+f+`":{"from":`) {
				fields = append(fields, f)
			}
		}
		if !slices.Equal(fields, st.fields) {
			t.Errorf("%s: diffed %v in %s, want %v", st.name, fields, page.Entries[0].Details, st.fields)
		}
		if got := ev.take(); !slices.Equal(got, st.evicted) {
			t.Errorf("%s: evicted %v, want %v", st.name, got, st.evicted)
		}
	}
	k, err := s.db.KeyAuthByPrefix(ctx, p.KeyPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if k.RPMLimit != 60 || k.TPMLimit != 1000 || !slices.Equal(k.AllowedModels, []string{"gpt-*"}) || !k.FallbackOnError ||
		k.EndUserDailyBudgetNano != 1_250_000_000 || k.WorkspaceRPM != 600 || k.WorkspaceTPM != 50000 {
		t.Errorf("key auth = %+v, workspace %d/%d", k.Controls, k.WorkspaceRPM, k.WorkspaceTPM)
	}

	created, _, err := s.CreateProject(ctx, actor, ws, ProjectInput{Name: "limited", Controls: ControlsPatch{RPMLimit: i64(5)}})
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.Audit(ctx, actor, ws, AuditQuery{Action: AuditProjectCreated})
	if err != nil || !strings.Contains(string(page.Entries[0].Details), `"rpmLimit":5`) || strings.Contains(string(page.Entries[0].Details), "tpmLimit") {
		t.Errorf("project_created of %d: %s, %v", created.ID, page.Entries[0].Details, err)
	}
}
