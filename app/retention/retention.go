// Package retention deletes usage data past its retention in the background: raw usage rows
// older than USAGE_RETENTION and hourly rollups older than ROLLUP_HOURLY_RETENTION (daily
// rollups and spend counters are kept). It prunes in small batches, each its own short write
// transaction, so the usage writer, which shares the one write connection, never waits for more
// than one batch; it logs each pass, audits it per workspace (usage_pruned, by the system), and
// returns the freed pages to the filesystem with incremental vacuum.
package retention

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"tokenguard/store"
)

// AuditUsagePruned is the audit action of a pass that deleted usage data of a workspace.
const AuditUsagePruned = "usage_pruned"

// Defaults of Options.
const (
	DefaultInterval = time.Hour
	// DefaultBatch rows go in one delete transaction: about 2 ms of the write connection at the
	// median on two cores, 12 ms at the 99th percentile, when the commit also runs SQLite's
	// checkpoint of the log (a usage row and its three index entries; BenchmarkPrune), so the
	// writer's next batch waits no longer than that. 1,000 rows held it 5.5 ms / 16 ms.
	DefaultBatch = 250
	// VacuumPages is how many free pages one incremental vacuum statement returns (512 KiB of
	// 4 KiB pages, about 10 ms): it too holds the write connection while it moves them.
	VacuumPages = 128
)

// Options configures a Pruner. DB is required.
type Options struct {
	DB *store.DB
	// Usage is how long raw usage rows are kept; Hourly how long hourly rollups are. 0 keeps
	// them all. Hourly rollups are never pruned before the raw rows they sum, so an hourly
	// retention shorter than Usage counts as Usage.
	Usage, Hourly time.Duration
	// Interval is the time between passes. Default: DefaultInterval.
	Interval time.Duration
	// Batch is the most rows one delete transaction removes. Default: DefaultBatch.
	Batch int
	// Log receives a line per pass that deleted something, and per failure. Default: discard.
	Log *slog.Logger
	// Now is the clock retention counts back from. Default: time.Now.
	Now func() time.Time
}

// Pruner runs the retention passes. Create it with New, then Start it; call Close on shutdown,
// before the usage writer closes.
type Pruner struct {
	o      Options
	cancel context.CancelFunc
	done   chan struct{}
}

// Result is what one pass deleted and gave back to the filesystem.
type Result struct {
	UsageRows, HourlyRows int64
	FreedBytes            int64
}

// New returns a Pruner, not yet started. With a raw retention set and a database not yet in
// auto_vacuum=INCREMENTAL mode, it first converts the file with a one-time VACUUM, which the
// caller must let finish before it serves anything: it rewrites the whole file (seconds per
// million rows; free disk about the file's size), holding the write connection throughout.
func New(ctx context.Context, o Options) (*Pruner, error) {
	if o.DB == nil {
		return nil, errors.New("retention: DB is required")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Pruner{o: o}
	if o.Usage != 0 {
		if err := p.ensureIncrementalVacuum(ctx); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Start runs the first pass at once and then one every Interval, in the background, until
// Close. With no retention at all it starts nothing.
func (p *Pruner) Start() {
	if (p.o.Usage == 0 && p.o.Hourly == 0) || p.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go p.run(ctx)
}

func (p *Pruner) ensureIncrementalVacuum(ctx context.Context) error {
	mode, err := p.o.DB.AutoVacuum(ctx)
	if err != nil || mode == 2 {
		return err
	}
	p.o.Log.Info("USAGE_RETENTION is set: converting the database to incremental vacuum (one-time VACUUM, rewrites the file)", "database", p.o.DB.Path())
	started := time.Now()
	if err := p.o.DB.EnableIncrementalVacuum(ctx); err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	p.o.Log.Info("database converted to incremental vacuum", "took", time.Since(started).Round(time.Millisecond))
	return nil
}

// Close stops the passes, waiting for the batch in progress to end (each fails fast once ctx
// is cancelled).
func (p *Pruner) Close(ctx context.Context) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("retention: closing: %w", ctx.Err())
	}
}

func (p *Pruner) run(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(p.o.Interval)
	defer t.Stop()
	for {
		if err := p.lockedPass(ctx); err != nil && ctx.Err() == nil {
			p.o.Log.Error("usage retention pass failed; retrying at the next one", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lockName is the cluster-wide lock a pass holds (store.DB.TryLock).
const lockName = "retention"

// lockedPass runs a pass unless another replica of the cluster is running one: its pass
// deletes the same rows, so this one would only compete with it for them. The next tick tries
// again. On SQLite the lock is always granted.
func (p *Pruner) lockedPass(ctx context.Context) error {
	unlock, ok, err := p.o.DB.TryLock(ctx, lockName)
	if err != nil || !ok {
		return err
	}
	defer unlock()
	_, err = p.Pass(ctx)
	return err
}

// marks are the prune marks of a pass at now: raw rows before the hour, hourly rollups before
// the day, that retention reaches back to (0: keep all).
func (p *Pruner) marks(now time.Time) (raw, hourly int64) {
	if p.o.Usage != 0 {
		raw = now.Add(-p.o.Usage).Truncate(time.Hour).UnixMilli()
	}
	if p.o.Hourly != 0 {
		keep := max(p.o.Hourly, p.o.Usage)
		hourly = now.Add(-keep).UTC().Truncate(24 * time.Hour).UnixMilli()
	}
	return raw, hourly
}

// Pass prunes every workspace once, in batches, audits what it deleted per workspace, logs the
// pass, and returns the freed pages to the filesystem. The loop runs it; tests call it directly.
func (p *Pruner) Pass(ctx context.Context) (Result, error) {
	started := time.Now()
	raw, hourly := p.marks(p.o.Now())
	wss, err := p.o.DB.UsageWorkspaces(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("retention: %w", err)
	}
	var total Result
	for _, ws := range wss {
		var r Result
		if hourly != 0 {
			if r.HourlyRows, err = p.drain(ctx, p.o.DB.PruneHourly, ws, hourly); err != nil {
				return total, err
			}
		}
		if raw != 0 {
			if r.UsageRows, err = p.drain(ctx, p.o.DB.PruneUsage, ws, raw); err != nil {
				return total, err
			}
		}
		if r.UsageRows+r.HourlyRows == 0 {
			continue
		}
		if err := p.audit(ctx, ws, r, raw, hourly); err != nil {
			return total, err
		}
		total.UsageRows += r.UsageRows
		total.HourlyRows += r.HourlyRows
	}
	if total.FreedBytes, err = p.vacuum(ctx); err != nil {
		return total, err
	}
	if total.UsageRows+total.HourlyRows > 0 {
		p.o.Log.Info("usage retention pass", "usageRows", total.UsageRows, "hourlyRows", total.HourlyRows,
			"usageBefore", stamp(raw), "hourlyBefore", stamp(hourly), "freedBytes", total.FreedBytes,
			"took", time.Since(started).Round(time.Millisecond))
	}
	return total, nil
}

// idleShare paces the batches: after each, the pruner leaves the write connection alone
// idleShare times as long as the batch took, so it holds at most a fifth of the connection's
// time however busy the usage writer is. Back to back, a busy writer lost more than half its
// throughput (the two working sets evict each other's pages); paced, a pass still prunes
// some 50,000 rows a second.
const idleShare = 4

// drain runs prune in paced batches until a batch deletes fewer than Batch rows.
func (p *Pruner) drain(ctx context.Context, prune func(context.Context, int64, int64, int) (int64, error), ws, before int64) (int64, error) {
	var n int64
	for {
		started := time.Now()
		k, err := prune(ctx, ws, before, p.o.Batch)
		if err != nil {
			return n, fmt.Errorf("retention: %w", err)
		}
		n += k
		if k < int64(p.o.Batch) {
			return n, nil
		}
		if err := sleep(ctx, idleShare*time.Since(started)); err != nil {
			return n, fmt.Errorf("retention: %w", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (p *Pruner) audit(ctx context.Context, ws int64, r Result, raw, hourly int64) error {
	details, err := json.Marshal(map[string]any{"usageRows": r.UsageRows, "hourlyRows": r.HourlyRows,
		"usageBefore": stamp(raw), "hourlyBefore": stamp(hourly)})
	if err != nil {
		return fmt.Errorf("retention: audit details: %w", err)
	}
	return p.o.DB.WriteTx(ctx, func(tx *sql.Tx) error {
		return p.o.DB.InsertAudit(ctx, tx, store.AuditEntry{WorkspaceID: ws, Action: AuditUsagePruned,
			TargetType: "workspace", TargetID: strconv.FormatInt(ws, 10), Details: string(details),
			CreatedAt: p.o.Now().UnixMilli()})
	})
}

// vacuum returns free pages in bounded steps until none are left, and how many bytes that was.
func (p *Pruner) vacuum(ctx context.Context) (int64, error) {
	var bytes int64
	for {
		started := time.Now()
		freed, left, pageSize, err := p.o.DB.IncrementalVacuum(ctx, VacuumPages)
		if err != nil {
			return bytes, fmt.Errorf("retention: %w", err)
		}
		bytes += freed * pageSize
		if left == 0 || freed == 0 {
			return bytes, nil
		}
		if err := sleep(ctx, idleShare*time.Since(started)); err != nil {
			return bytes, fmt.Errorf("retention: %w", err)
		}
	}
}

// stamp is a prune mark as RFC 3339 UTC, "" for none.
func stamp(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}
