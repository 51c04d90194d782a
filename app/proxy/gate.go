package proxy

import (
	"context"

	"tokenguard/app/budget"
)

// Gate is what the proxy admits a request through before anything is sent upstream: the
// in-memory budget engine on one node (engineGate), or the shared ledger of a cluster on
// PostgreSQL (app/ledger.Ledger). Admit decides on a request of s with id requestID (the id of
// its usage row, which is how a shared reservation is settled) and reserves its worst case
// unless it is blocked; a blocked request gets a nil settler. An error refuses the request as
// it is (the ledger's 503 STORAGE_UNAVAILABLE when the database cannot be reached in time).
type Gate interface {
	Admit(ctx context.Context, s budget.Subject, requestID string, c budget.Cost) (budget.Settler, budget.Decision, error)
}

// engineGate is the single node's gate: the engine decides and reserves in memory, and never
// fails.
type engineGate struct{ e *budget.Engine }

func (g engineGate) Admit(_ context.Context, s budget.Subject, _ string, c budget.Cost) (budget.Settler, budget.Decision, error) {
	t, d := g.e.AdmitCost(s, c)
	if t == nil {
		return nil, d, nil // a nil interface, not a nil *Ticket in one
	}
	return t, d, nil
}

// admitter is the Gate requests are admitted through: Config.Gate, else the engine.
func (p *Proxy) admitter() Gate {
	if p.cfg.Gate != nil {
		return p.cfg.Gate
	}
	return engineGate{p.cfg.Budget}
}
