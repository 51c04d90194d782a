package account

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"tokenguard/app/apperr"
	"tokenguard/app/secret"
	"tokenguard/store/storetest"
)

// newService returns a Service over a fresh temp database with a fixed clock.
func newService(tb testing.TB, cost int) *Service {
	tb.Helper()
	box, err := secret.NewBox("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	s, err := New(storetest.Open(tb), Options{
		JWTSecret: []byte("0123456789abcdef0123456789abcdef"), Box: box, AllowSignup: true,
		PasswordCost: cost, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustSignup(tb testing.TB, s *Service, email string) Session {
	tb.Helper()
	sess, err := s.Signup(context.Background(), SignupInput{Email: email, Password: "long enough pw", Name: email}, "10.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	return sess
}

// TestCan pins the role matrix of issue 4.
func TestCan(t *testing.T) {
	all := []Action{ViewWorkspace, ManageProjects, ManageInvites, ManageMembers, ViewAudit, UpdateWorkspace, DeleteWorkspace, ManageBilling}
	want := map[Role][]Action{
		RoleOwner:  all,
		RoleAdmin:  {ViewWorkspace, ManageProjects, ManageInvites, ManageMembers, ViewAudit},
		RoleMember: {ViewWorkspace},
		"":         nil,
		"root":     nil,
	}
	for role, allowed := range want {
		for _, a := range all {
			exp := false
			for _, x := range allowed {
				exp = exp || x == a
			}
			if got := Can(role, a); got != exp {
				t.Errorf("Can(%q, %d) = %v, want %v", role, a, got, exp)
			}
		}
	}
}

// TestBudgetFromUSD ensures budgets convert exactly and absurd values are refused.
func TestBudgetFromUSD(t *testing.T) {
	cases := []struct {
		usd  float64
		want int64
		ok   bool
	}{
		{0, 0, true},
		{1.5, 1_500_000_000, true},
		{0.1, 100_000_000, true},
		{0.000000001, 1, true},
		{12.34, 12_340_000_000, true},
		{MaxBudgetUSD, 1e17, true},
		{MaxBudgetUSD + 1, 0, false},
		{-0.01, 0, false},
		{math.NaN(), 0, false},
		{math.Inf(1), 0, false},
		{math.Inf(-1), 0, false},
	}
	for _, c := range cases {
		got, err := BudgetFromUSD("dailyBudgetUsd", c.usd)
		if (err == nil) != c.ok || (c.ok && int64(got) != c.want) {
			t.Errorf("BudgetFromUSD(%v) = %d, %v; want %d, ok %v", c.usd, got, err, c.want, c.ok)
		}
		if err != nil && apperr.Code(err) != apperr.InvalidRequest {
			t.Errorf("BudgetFromUSD(%v) code %s, want INVALID_REQUEST", c.usd, apperr.Code(err))
		}
	}
}

// TestNormalizeEmail ensures only bare addresses pass, lower-cased.
func TestNormalizeEmail(t *testing.T) {
	cases := map[string]string{
		"a@example.com":                  "a@example.com",
		"  Bob@Example.COM ":             "bob@example.com",
		"first.last+tag@sub.example.org": "first.last+tag@sub.example.org",
		"":                               "",
		"plain":                          "",
		"a@localhost":                    "",
		"Bob <b@example.com>":            "",
		"a@@example.com":                 "",
		"a b@example.com":                "",
		"a@example.com\n":                "a@example.com",
	}
	for in, want := range cases {
		got, err := NormalizeEmail(in)
		if want == "" && err == nil {
			t.Errorf("NormalizeEmail(%q) = %q, want an error", in, got)
		}
		if want != "" && (err != nil || got != want) {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestConcurrentOwnerDemotions ensures two owners demoting each other at the same moment
// cannot leave the workspace without an owner: exactly one change wins.
func TestConcurrentOwnerDemotions(t *testing.T) {
	s := newService(t, bcrypt.MinCost)
	ctx := context.Background()
	for round := 0; round < 10; round++ {
		a := mustSignup(t, s, fmt.Sprintf("a%d@example.com", round))
		b := mustSignup(t, s, fmt.Sprintf("b%d@example.com", round))
		ws := a.Workspace.ID
		if err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
			return s.db.InsertMembership(ctx, tx, ws, b.User.ID, "owner", 1)
		}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, pair := range [][2]int64{{a.User.ID, b.User.ID}, {b.User.ID, a.User.ID}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.ChangeRole(ctx, Actor{UserID: pair[0]}, ws, pair[1], RoleMember)
			}()
		}
		wg.Wait()
		members, err := s.Members(ctx, Actor{UserID: a.User.ID}, ws)
		if err != nil {
			members, err = s.Members(ctx, Actor{UserID: b.User.ID}, ws)
		}
		if err != nil {
			t.Fatal(err)
		}
		owners := 0
		for _, m := range members {
			if m.Role == RoleOwner {
				owners++
			}
		}
		failed := 0
		for _, e := range errs {
			if e != nil {
				failed++
			}
		}
		if owners != 1 || failed != 1 {
			t.Fatalf("round %d: owners %d, failed changes %d (%v); want exactly one of each", round, owners, failed, errs)
		}
	}
}

// TestConcurrentSignup ensures racing sign-ups with one email create one account.
func TestConcurrentSignup(t *testing.T) {
	s := newService(t, bcrypt.MinCost)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, conflict := 0, 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Signup(context.Background(), SignupInput{Email: "Same@Example.com", Password: "long enough pw"}, "")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case apperr.Code(err) == apperr.Conflict:
				conflict++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || conflict != 7 {
		t.Fatalf("ok %d, conflict %d; want 1 and 7", ok, conflict)
	}
}

// BenchmarkAuthenticate is the per-request cost of checking a session (JWT + user row).
func BenchmarkAuthenticate(b *testing.B) {
	s := newService(b, bcrypt.MinCost)
	sess := mustSignup(b, s, "bench@example.com")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate(ctx, sess.Token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorize is the per-request cost of reading a membership and checking the matrix.
func BenchmarkAuthorize(b *testing.B) {
	s := newService(b, bcrypt.MinCost)
	sess := mustSignup(b, s, "bench@example.com")
	ctx := context.Background()
	actor := Actor{UserID: sess.User.ID}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authorize(ctx, actor, sess.Workspace.ID, ManageProjects); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoginFailure compares an unknown email with a wrong password at the production
// bcrypt cost: the two must cost about the same, so timing does not reveal accounts.
func BenchmarkLoginFailure(b *testing.B) {
	s := newService(b, bcrypt.DefaultCost)
	s.throttle.limits.PerPair, s.throttle.limits.PerIP, s.throttle.limits.AccountFree = math.MaxInt, math.MaxInt, math.MaxInt
	mustSignup(b, s, "known@example.com")
	ctx := context.Background()
	for _, email := range []string{"unknown@example.com", "known@example.com"} {
		b.Run(email, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Login(ctx, email, "wrong password", ""); apperr.Code(err) != apperr.Unauthorized {
					b.Fatal(err)
				}
			}
		})
	}
}
