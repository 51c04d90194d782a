// Package proxy is TokenGuard's LLM proxy: /proxy/<provider>/… routes that authenticate a
// project key (cached, so bcrypt and SQL run once per key), hold the request to the project's
// and workspace's budgets, swap in the fallback model, relay the call to the provider with the
// right upstream key — streaming event by event — and log what it cost.
//
// What differs between providers is behind provider.Adapter; everything here is the same for
// every provider, so no route can skip the gate or the meter.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/budget"
	"tokenguard/app/enduser"
	"tokenguard/app/pricing"
	"tokenguard/app/provider"
	"tokenguard/app/ratelimit"
	"tokenguard/app/secret"
	"tokenguard/app/usage"
	"tokenguard/store"
)

// Config is what the proxy is built from. DB, Prices, Budget, Usage and Logger are required.
type Config struct {
	DB     *store.DB
	Prices *pricing.Table
	Budget *budget.Engine
	// Gate admits requests against their budgets (gate.go); nil means Budget, the single
	// node's in-memory engine. A cluster sets the shared ledger (app/ledger), and Budget is
	// then its mirror of the counters, which the budget headers and GET /proxy/budget read.
	Gate   Gate
	Usage  *usage.Writer
	Logger *slog.Logger
	// Box opens the projects' stored provider keys; nil when none can be stored.
	Box *secret.Box
	// Now is the clock (time.Now in production).
	Now func() time.Time
	// Client sends upstream requests; nil means a client with no overall timeout (streams may
	// run long; the timeouts below bound each phase instead).
	Client *http.Client

	// MaxBodyBytes bounds request bodies (MAX_BODY_BYTES); 0 means 32 MiB.
	MaxBodyBytes int64
	// UpstreamTimeout bounds the wait for the upstream's response headers (UPSTREAM_TIMEOUT);
	// 0 means 10 minutes.
	UpstreamTimeout time.Duration
	// StreamIdleTimeout bounds the gap between two reads of a response body
	// (STREAM_IDLE_TIMEOUT); 0 means 2 minutes.
	StreamIdleTimeout time.Duration
	// TouchInterval is how often the projects' last-used times are written; 0 means 10s.
	TouchInterval time.Duration
	// OnCrossing, when set, is told when a settled request carried a budget across 80% or
	// 100% (for the alert emails). It runs on the request's goroutine: keep it quick.
	OnCrossing func([]budget.Crossing)
	// Observers, when set, are told of every usage row the proxy records (metrics, traces).
	Observers []Observer
	// EndUsers holds end users to their project's daily budget, loaded with the day's spend
	// (enduser.Counter.Load) before the proxy serves; nil starts with empty counters.
	EndUsers *enduser.Counter
}

// Observer is told of every usage row the proxy records, with the endpoint pattern of its call
// (provider.Call.Endpoint). Observe runs on the request's goroutine just before the row is
// queued, so it must be quick; the metrics' must not allocate.
type Observer interface {
	Observe(endpoint string, rec usage.Record)
}

// Upstream is one provider as the proxy serves it.
type Upstream struct {
	Adapter provider.Adapter
	// BaseURL is the provider's API base, e.g. https://api.openai.com (OPENAI_UPSTREAM_URL).
	BaseURL string
	// EnvKey is the operator's fallback provider key (OPENAI_API_KEY); may be empty.
	EnvKey string
}

// Proxy serves /proxy/<provider>/… . Create it with New and stop it with Close.
type Proxy struct {
	cfg       Config
	log       *slog.Logger
	keys      *keyCache
	limits    *ratelimit.Limiter
	endUsers  *enduser.Counter
	upstreams map[string]*upstream
	client    *http.Client

	inflight  sync.WaitGroup // requests being served, so Close can wait for their usage rows
	touchMu   sync.Mutex
	touchDue  map[int64]int64 // last-used times of evicted entries, not yet written
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

type upstream struct {
	adapter provider.Adapter
	base    string // without a trailing slash
	envKey  string
}

// New returns a proxy serving ups. It starts a goroutine that writes last-used times every
// TouchInterval; Close stops it.
func New(cfg Config, ups ...Upstream) (*Proxy, error) {
	if cfg.DB == nil || cfg.Prices == nil || cfg.Budget == nil || cfg.Usage == nil || cfg.Logger == nil {
		return nil, errors.New("proxy: DB, Prices, Budget, Usage and Logger are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 32 << 20
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = 10 * time.Minute
	}
	if cfg.StreamIdleTimeout <= 0 {
		cfg.StreamIdleTimeout = 2 * time.Minute
	}
	if cfg.TouchInterval <= 0 {
		cfg.TouchInterval = 10 * time.Second
	}
	p := &Proxy{
		cfg:       cfg,
		log:       cfg.Logger,
		keys:      newKeyCache(cfg.DB.KeyAuthByPrefix, cfg.Box),
		limits:    ratelimit.New(cfg.Now),
		endUsers:  cfg.EndUsers,
		upstreams: map[string]*upstream{},
		client:    cfg.Client,
		touchDue:  map[int64]int64{},
		stop:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	if p.client == nil {
		p.client = &http.Client{Transport: defaultTransport()}
	}
	if p.endUsers == nil {
		p.endUsers = enduser.New(cfg.Now, 0)
	}
	for _, u := range ups {
		if err := p.add(u); err != nil {
			return nil, err
		}
	}
	go p.touchLoop()
	return p, nil
}

func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	t.MaxIdleConns = 1024
	// The proxy relays bytes; it asks for no compression it would have to undo.
	t.DisableCompression = true
	return t
}

func (p *Proxy) add(u Upstream) error {
	if u.Adapter == nil {
		return errors.New("proxy: upstream without adapter")
	}
	name := u.Adapter.Name()
	if _, dup := p.upstreams[name]; dup {
		return fmt.Errorf("proxy: provider %q registered twice", name)
	}
	base, err := url.Parse(u.BaseURL)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return fmt.Errorf("proxy: %s upstream URL %q is not an absolute URL", name, u.BaseURL)
	}
	p.upstreams[name] = &upstream{adapter: u.Adapter, base: strings.TrimRight(u.BaseURL, "/"), envKey: u.EnvKey}
	return nil
}

// Register adds the proxy's routes to r: GET and POST on /proxy/<provider>/*path for every
// provider given to New (the adapter decides which paths it serves, 404 otherwise), and GET
// /proxy/budget.
func (p *Proxy) Register(r *httprouter.Router) {
	for name, u := range p.upstreams {
		h := p.handler(u)
		r.Handle(http.MethodPost, "/proxy/"+name+"/*path", h)
		r.Handle(http.MethodGet, "/proxy/"+name+"/*path", h)
	}
	r.GET("/proxy/budget", p.serveBudget)
}

// EvictProject drops the cached key of project id, so the next request re-reads it. The
// projects API calls it on regenerate, deactivate, activate, delete, and any change of budgets,
// fallback model or provider keys.
func (p *Proxy) EvictProject(id int64) {
	p.remember(p.keys.evict(func(pr *project) bool { return pr.id == id }))
}

// EvictWorkspace drops the cached keys of every project of workspace id (workspace budgets
// changed, workspace deleted).
func (p *Proxy) EvictWorkspace(id int64) {
	p.remember(p.keys.evict(func(pr *project) bool { return pr.workspaceID == id }))
}

// EvictAll drops every cached key. A replica of a cluster calls it when its change listener
// reconnects: changes published while it was away are lost, so any entry may be stale. Keys
// already proven are not run through bcrypt again, so this costs each key one database read.
func (p *Proxy) EvictAll() {
	p.remember(p.keys.evict(func(*project) bool { return true }))
}

// remember keeps evicted entries' last-used times for the next write.
func (p *Proxy) remember(gone []*project) {
	p.touchMu.Lock()
	defer p.touchMu.Unlock()
	for _, pr := range gone {
		if at := pr.lastUsed.Load(); at > pr.flushed.Load() && at > p.touchDue[pr.id] {
			p.touchDue[pr.id] = at
		}
	}
}

func (p *Proxy) touchLoop() {
	defer close(p.stopped)
	t := time.NewTicker(p.cfg.TouchInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := p.FlushLastUsed(context.Background()); err != nil {
				p.log.Warn("write project last-used times", "err", err)
			}
		case <-p.stop:
			return
		}
	}
}

// FlushLastUsed writes the last-used time of every project used since the previous write, in
// one transaction. Requests only store a number in memory; this is the only SQL they cause.
func (p *Proxy) FlushLastUsed(ctx context.Context) error {
	p.touchMu.Lock()
	due := p.touchDue
	p.touchDue = map[int64]int64{}
	p.touchMu.Unlock()
	var marks []*project
	for _, pr := range p.keys.snapshot() {
		if at := pr.lastUsed.Load(); at > pr.flushed.Load() {
			if at > due[pr.id] {
				due[pr.id] = at
			}
			marks = append(marks, pr)
		}
	}
	if err := p.cfg.DB.TouchProjects(ctx, due); err != nil {
		p.touchMu.Lock()
		for id, at := range due {
			if at > p.touchDue[id] {
				p.touchDue[id] = at
			}
		}
		p.touchMu.Unlock()
		return err
	}
	for _, pr := range marks {
		pr.flushed.Store(due[pr.id])
	}
	return nil
}

// Close waits (until ctx ends) for requests still being served — streams cut off by the
// server's shutdown — to record their usage, stops the background writer and writes the
// last-used times one last time. Call it after the HTTP server has shut down and before the
// usage writer is closed.
func (p *Proxy) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		p.inflight.Wait()
		close(done)
	}()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("proxy: requests still running at shutdown: %w", ctx.Err()))
	}
	p.closeOnce.Do(func() { close(p.stop) })
	<-p.stopped
	errs = append(errs, p.FlushLastUsed(ctx))
	return errors.Join(errs...)
}
