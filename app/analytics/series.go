package analytics

import (
	"context"
	"fmt"
	"sort"
	"time"

	"tokenguard/app/account"
	"tokenguard/store"
)

// Stack is what a spend series is split by.
type Stack string

// The stackings of Series.
const (
	StackProvider Stack = "provider"
	StackModel    Stack = "model"
	StackProject  Stack = "project"
)

// ParseStack reads a stacking name; anything else is StackProvider.
func ParseStack(v string) Stack {
	switch Stack(v) {
	case StackModel, StackProject:
		return Stack(v)
	}
	return StackProvider
}

// HourlyUpTo is the longest range a series answers by the hour; longer ranges go by the UTC day.
const HourlyUpTo = 48 * time.Hour

// MaxStackKeys bounds the named parts of a series; smaller parts are summed into "other".
const MaxStackKeys = 6

// OtherKey names the part that sums every key past MaxStackKeys.
const OtherKey = "other"

// StackKey is one part of a stacked series: a provider, a model (with its provider) or a
// project.
type StackKey struct {
	Name      string
	Provider  string
	ProjectID int64
}

// Bucket is one hour or UTC day of a series. Parts holds the spend of each of the series'
// keys, in nano-dollars, in Keys order; they add up to CostNano.
type Bucket struct {
	Start        time.Time
	CostNano     int64
	Requests     int64
	Errors       int64
	Blocked      int64
	InputTokens  int64
	OutputTokens int64
	Parts        []int64
}

// Series is spend, requests and tokens over time, the spend split by Stack. Step is time.Hour
// for ranges up to HourlyUpTo and 24 h otherwise; a day bucket's figures equal the Trends entry
// of that day, and every bucket covers only the part of its period inside the range.
type Series struct {
	Range
	Step  time.Duration
	Stack Stack
	Keys  []StackKey
	Data  []Bucket
}

// Series answers the dashboard's spend-over-time chart from one AggregateUsage read grouped by
// the stacking and the hour or day, so its sums are exactly the rows' (see AggregateUsage). A range of more than MaxTrendDays days is INVALID_REQUEST, as
// it is for Trends.
func (s *Service) Series(ctx context.Context, actor account.Actor, wsID int64, f Filter, by Stack) (Series, error) {
	step := 24 * time.Hour
	if f.To.Sub(f.From) <= HourlyUpTo {
		step = time.Hour
	}
	first := f.From.UTC().Truncate(step) // UTC days and hours both start on multiples of step
	if f.To.Sub(first) > MaxTrendDays*24*time.Hour {
		return Series{}, invalid("trends cover at most %d days", MaxTrendDays)
	}
	sc, err := s.open(ctx, actor, wsID, f)
	if err != nil {
		return Series{}, err
	}
	out := Series{Range: Range{f.From, f.To}, Step: step, Stack: by}
	for start := first; start.Before(f.To); start = start.Add(step) {
		out.Data = append(out.Data, Bucket{Start: start})
	}
	// raw[i] are bucket i's groups, each named as its stacking names it: one read of the range
	// grouped by the stacking and the bucket's period.
	raw := make([][]store.UsageAggregate, len(out.Data))
	group := map[Stack]store.UsageGroup{StackProvider: store.GroupProvider, StackModel: store.GroupModel, StackProject: store.GroupProject}[by]
	if step == time.Hour {
		group |= store.PerHour
	} else {
		group |= store.PerDay
	}
	rows, err := sc.db.AggregateUsage(ctx, sc.f, group, 0)
	if err != nil {
		return Series{}, err
	}
	for _, r := range rows {
		// A day past the hourly rollups' retention comes as its first hour, which may precede
		// the range: it counts in the range's first bucket.
		i := max(int(time.UnixMilli(r.Period).Sub(first)/step), 0)
		if i >= len(raw) {
			return Series{}, fmt.Errorf("series: period %s outside the range", time.UnixMilli(r.Period).UTC())
		}
		raw[i] = append(raw[i], r)
	}
	type keyed struct {
		key  StackKey
		cost int64
	}
	totals := map[StackKey]*keyed{}
	for i, rows := range raw {
		t, b := sum(rows), &out.Data[i]
		b.CostNano, b.Requests, b.Errors, b.Blocked, b.InputTokens, b.OutputTokens = t.CostNano, t.Requests, t.Errors, t.Blocked, t.InputTokens, t.OutputTokens
		for _, r := range rows {
			k := sc.stackKey(by, r)
			if totals[k] == nil {
				totals[k] = &keyed{key: k}
			}
			totals[k].cost += r.CostNano
		}
	}
	ranked := make([]*keyed, 0, len(totals))
	for _, k := range totals {
		ranked = append(ranked, k)
	}
	sort.Slice(ranked, func(i, j int) bool {
		a, b := ranked[i], ranked[j]
		if a.cost != b.cost {
			return a.cost > b.cost
		}
		return a.key.Name < b.key.Name || a.key.Name == b.key.Name && a.key.Provider < b.key.Provider
	})
	index := map[StackKey]int{}
	for i, k := range ranked {
		if i == MaxStackKeys {
			out.Keys = append(out.Keys, StackKey{Name: OtherKey})
			break
		}
		index[k.key] = i
		out.Keys = append(out.Keys, k.key)
	}
	for i, rows := range raw {
		parts := make([]int64, len(out.Keys))
		for _, r := range rows {
			j, ok := index[sc.stackKey(by, r)]
			if !ok {
				j = MaxStackKeys
			}
			parts[j] += r.CostNano
		}
		out.Data[i].Parts = parts
	}
	return out, nil
}

// stackKey names the part of a stacking an aggregate row belongs to.
func (sc scope) stackKey(by Stack, r store.UsageAggregate) StackKey {
	switch by {
	case StackModel:
		return StackKey{Name: r.Key, Provider: r.Provider}
	case StackProject:
		return StackKey{Name: sc.projectName(r.ProjectID), ProjectID: r.ProjectID}
	}
	return StackKey{Name: r.Key, Provider: r.Key}
}
