package budget

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"tokenguard/app/pricing"
)

// linearCost is a request's worst case as the proxy builds it: input plus output tokens at a
// price, with the output capped per choice.
type linearCost struct {
	input     pricing.NanoUSD // cost of the input estimate
	perToken  pricing.NanoUSD // output price per token
	maxOutput int64
	minOutput int64
	choices   int64
}

func (l linearCost) cost() Cost {
	return Cost{
		WorstCase: func(_ bool, outputCap int64) pricing.NanoUSD {
			if outputCap <= 0 || outputCap > l.maxOutput {
				outputCap = l.maxOutput
			}
			return l.input.Plus(pricing.NanoUSD(outputCap*l.choices) * l.perToken)
		},
		MaxOutput: func(bool) int64 { return l.maxOutput },
		MinOutput: l.minOutput,
	}
}

// randomCost draws a request: mostly ordinary, sometimes enormous (a worst case that saturates),
// sometimes free.
func randomCost(r *rand.Rand) linearCost {
	l := linearCost{
		input:     pricing.NanoUSD(r.Int64N(2_000_000)),
		perToken:  pricing.NanoUSD(1 + r.Int64N(30_000)),
		maxOutput: 1 + r.Int64N(128_000),
		minOutput: 1 + r.Int64N(512),
		choices:   1 + r.Int64N(4),
	}
	switch r.IntN(20) {
	case 0:
		l.input = math.MaxInt64 // an absurd prompt: the sums must saturate, not wrap
	case 1:
		l.input, l.perToken = 0, 0
	}
	return l
}

// inflight is one admitted request the model keeps until it settles.
type inflight struct {
	t       *Ticket
	reserve pricing.NanoUSD
}

// checkBound asserts the engine's stated bound for one budget: committed spend never passes a
// strict budget, and passes a soft one by at most the largest single reservation admitted
// (real costs never exceed reservations here, so the estimate-error term is zero).
func checkBound(t *testing.T, step int, e *Engine, strict bool, limit, maxReserve pricing.NanoUSD) {
	t.Helper()
	spent := e.Spend(ProjectScope, 1).Day
	bound := limit
	if !strict {
		bound = limit.Plus(maxReserve)
	}
	if spent > bound {
		t.Fatalf("step %d: spend %d passed the bound %d (limit %d, strict %v)", step, spent, bound, limit, strict)
	}
	if ws := e.Spend(WorkspaceScope, 10).Day; ws != spent {
		t.Fatalf("step %d: workspace spend %d != project spend %d (one project)", step, ws, spent)
	}
}

// The budget invariant under random interleavings of admit and settle, with random costs and
// outcomes (settled at anything from nothing to the whole reservation): after every step spend is
// within the stated bound, and once every request has settled no reservation is left. Soft and
// strict, project and workspace budgets.
func TestPropertyRandomInterleavings(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		for _, strict := range []bool{false, true} {
			for _, scope := range []string{"project", "workspace"} {
				t.Run(fmt.Sprintf("seed%d/strict=%v/%s", seed, strict, scope), func(t *testing.T) {
					r := rand.New(rand.NewPCG(seed, 99))
					e := New(newClock(noon).Now)
					limit := pricing.NanoUSD(1 + r.Int64N(50_000_000_000))
					l := Limits{Daily: &limit, Strict: strict}
					s := Subject{ProjectID: 1, WorkspaceID: 10}
					if scope == "project" {
						s.Project = l
					} else {
						s.Workspace = l
					}
					var open []inflight
					var maxReserve pricing.NanoUSD
					for step := range 400 {
						if len(open) == 0 || r.IntN(3) > 0 {
							c := randomCost(r)
							// The model's own view of the sums, saturating, to check the
							// admission rule independently of the engine's arithmetic.
							used := e.Spend(ProjectScope, 1).Day
							for _, f := range open {
								used = used.Plus(f.reserve)
							}
							tk, d := e.AdmitCost(s, c.cost())
							if !d.Blocked && used >= limit {
								t.Fatalf("step %d: admitted with spend+reservations %d at or over the limit %d", step, used, limit)
							}
							if !d.Blocked && strict && used.Plus(tk.Reserved()) > limit {
								t.Fatalf("step %d: strict admitted a worst case %d past the %d left", step, tk.Reserved(), limit-used)
							}
							if d.Blocked {
								if tk != nil || d.RetryAfter <= 0 || d.ResetAt.IsZero() {
									t.Fatalf("step %d: refusal %+v with ticket %v", step, d, tk)
								}
								continue
							}
							if strict && d.OutputCap > 0 && (d.OutputCap < c.minOutput || d.OutputCap > c.maxOutput) {
								t.Fatalf("step %d: cap %d outside [%d, %d]", step, d.OutputCap, c.minOutput, c.maxOutput)
							}
							maxReserve = max(maxReserve, tk.Reserved())
							open = append(open, inflight{tk, tk.Reserved()})
						} else {
							i := r.IntN(len(open))
							f := open[i]
							open = append(open[:i], open[i+1:]...)
							actual := pricing.NanoUSD(0)
							if f.reserve > 0 {
								actual = pricing.NanoUSD(r.Int64N(int64(f.reserve))) + 1
							}
							if r.IntN(10) == 0 {
								actual = 0 // failed upstream: nothing billed
							}
							f.t.Settle(noon, actual)
							f.t.Settle(noon, actual) // a second settle is a no-op
						}
						checkBound(t, step, e, strict, limit, maxReserve)
					}
					for _, f := range open {
						f.t.Settle(noon, f.reserve)
						checkBound(t, -1, e, strict, limit, maxReserve)
					}
					if got := e.Reserved(ProjectScope, 1) + e.Reserved(WorkspaceScope, 10); got != 0 {
						t.Fatalf("reservations left after every request settled: %d", got)
					}
				})
			}
		}
	}
}

// The same invariant with real concurrency: goroutines admit and settle at random while a checker
// reads the counters; run under -race this also shows the engine's locking. Every request costs
// its whole reservation, the worst a provider can bill.
func TestPropertyConcurrent(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			e := New(newClock(noon).Now)
			limit := pricing.FromDollars(3)
			ws := pricing.FromDollars(2)
			s := Subject{ProjectID: 1, WorkspaceID: 10,
				Project:   Limits{Daily: &limit, Strict: strict},
				Workspace: Limits{Daily: &ws, Strict: strict}}
			var mu sync.Mutex
			var maxReserve pricing.NanoUSD
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(g), 7))
					for range 300 {
						c := randomCost(r)
						tk, d := e.AdmitCost(s, c.cost())
						if d.Blocked {
							continue
						}
						mu.Lock()
						maxReserve = max(maxReserve, tk.Reserved())
						mu.Unlock()
						if r.IntN(4) == 0 {
							time.Sleep(time.Microsecond)
						}
						tk.Settle(noon, tk.Reserved())
					}
				}()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			for {
				// Spend first: every request in it recorded its reservation before settling.
				got := e.Spend(WorkspaceScope, 10).Day
				mu.Lock()
				m := maxReserve
				mu.Unlock()
				bound := ws // the workspace budget is the tighter one
				if !strict {
					bound = ws.Plus(m)
				}
				if got > bound {
					t.Fatalf("workspace spend %d passed the bound %d", got, bound)
				}
				select {
				case <-done:
					if got := e.Reserved(ProjectScope, 1) + e.Reserved(WorkspaceScope, 10); got != 0 {
						t.Fatalf("reservations left: %d", got)
					}
					return
				default:
				}
			}
		})
	}
}
