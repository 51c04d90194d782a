package pricing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// Swap replaces the table's snapshot with s, atomically: a lookup already under way finishes
// on the old prices, every later one uses s. It refuses s, and the old snapshot keeps serving,
// when a model name this table has priced from the data since it was built (a model in use)
// would fall to the default price under s; the error names those models.
func (t *Table) Swap(s *Snapshot) error {
	old := t.cur.Load()
	next := t.build(s)
	var lost []string
	old.inUse(func(h *hit) {
		if !h.byDefault && next.resolve(h.name).byDefault {
			lost = append(lost, h.name)
		}
	})
	if len(lost) > 0 {
		slices.Sort(lost)
		if len(lost) > 10 {
			lost = append(lost[:10], fmt.Sprintf("and %d more", len(lost)-10))
		}
		return fmt.Errorf("prices %s would no longer price models in use: %s", s.version, strings.Join(lost, ", "))
	}
	// next.resolve above marked the names in use in next, so the next swap checks them too.
	if !t.cur.CompareAndSwap(old, next) {
		return fmt.Errorf("prices %s: another swap ran at the same time; try again", s.version)
	}
	return nil
}

// inUse calls f for every name looked up in st.
func (st *state) inUse(f func(*hit)) {
	for _, h := range st.known {
		if h.used.Load() {
			f(h)
		}
	}
	st.mu.RLock()
	hits := make([]*hit, 0, len(st.cache))
	for _, h := range st.cache {
		hits = append(hits, h)
	}
	st.mu.RUnlock()
	for _, h := range hits {
		f(h)
	}
}

// LoadFile reads and validates the snapshot at path (see ParseSnapshot).
func LoadFile(path string) (*Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSnapshotBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, err := ParseSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// WatchFile checks path every interval until ctx ends and, when the file's size or
// modification time has changed (or on the first check), loads it and, unless it is the
// snapshot in use, swaps it in (LoadFile, Swap). A file that fails either step is logged and
// the prices in use keep serving; it is tried again once it changes.
func (t *Table) WatchFile(ctx context.Context, path string, every time.Duration, log *slog.Logger) {
	var seen os.FileInfo
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fi, err := os.Stat(path)
		if err != nil {
			if seen != nil {
				log.Error("prices file unreadable; the prices in use keep serving", "file", path, "err", err, "version", t.Version())
			}
			seen = nil
			continue
		}
		if seen != nil && fi.Size() == seen.Size() && fi.ModTime().Equal(seen.ModTime()) {
			continue
		}
		seen = fi
		s, err := LoadFile(path)
		if err == nil && s.Version() == t.Version() {
			continue
		}
		if err == nil {
			err = t.Swap(s)
		}
		if err != nil {
			log.Error("prices file refused; the prices in use keep serving", "file", path, "err", err, "version", t.Version())
			continue
		}
		log.Info("prices updated", "file", path, "version", s.Version())
	}
}

// Explanation is how a model name is priced, for `tokenguard prices`.
type Explanation struct {
	Quote            // of no usage: the match, provider, base tier and version
	MatchRule string // the data's match rule as JSON ("" for an override or the default)
	Comments  string // the data's notes on the model's prices
	MaxOutput int64
	Periods   []PeriodPrices
}

// PeriodPrices are a model's prices from From on (zero: from the start).
type PeriodPrices struct {
	From  time.Time
	Tiers []TierPrice
}

// TierPrice is one input-size tier: it applies to a prompt of more than Above tokens.
type TierPrice struct {
	Label string
	Above int64
	Price Price
}

// Explain says how model is priced: which rule matched, every dated price and tier, and its
// maximum output.
func (t *Table) Explain(model string) Explanation {
	st := t.cur.Load()
	h := st.resolve(model)
	x := Explanation{Quote: t.Quote(model, Usage{}), Comments: h.e.comments, MaxOutput: t.maxOutputOf(h)}
	if h.e.match != nil {
		x.MatchRule = h.e.match.text
	}
	for _, p := range h.e.periods {
		pp := PeriodPrices{}
		if p.from != 0 {
			pp.From = time.Unix(p.from, 0).UTC()
		}
		for _, tr := range p.tiers {
			pp.Tiers = append(pp.Tiers, TierPrice{Label: tr.label, Above: tr.above, Price: tr.price})
		}
		x.Periods = append(x.Periods, pp)
	}
	return x
}
