// Package health owns the liveness probe, GET /healthz (the process serves HTTP), and the
// readiness probe, GET /readyz: a list of named checks — the database takes writes, the usage
// writer is neither failing, full nor backed up, every upstream's host resolves — answered
// together as JSON, 200 when every check passes and 503 otherwise, so a load balancer stops
// sending traffic that TokenGuard would refuse or could not serve. Both are unauthenticated, so
// every check that costs something (a write, a DNS lookup) runs at most once per interval.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"tokenguard/app/usage"
	"tokenguard/store"
)

// Result is one check's answer: OK, and when not, an Error an operator can act on (never a
// secret: /readyz needs no credentials). Detail, when set, is shown as is.
type Result struct {
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Detail any    `json:"detail,omitempty"`
}

// Check is one named readiness check. Run must honour its context, which ends after
// checkTimeout.
type Check struct {
	Name string
	Run  func(ctx context.Context) Result
}

// checkTimeout bounds each check, so a stuck dependency makes /readyz answer 503, not hang.
const checkTimeout = 2 * time.Second

// probeEvery is the most often the database write probe runs, whatever the request rate:
// /readyz is unauthenticated and each probe is a committed write.
const probeEvery = time.Second

// report is the /readyz body.
type report struct {
	Status string            `json:"status"` // "ready" or "not ready"
	Checks map[string]Result `json:"checks"`
}

// Live returns the /healthz handler: 200 {"status":"ok"} while the process serves HTTP. It
// checks nothing else, so a stuck dependency never gets a live process restarted.
func Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, `{"status":"ok"}`+"\n")
	})
}

// Ready returns the /readyz handler. It runs every check concurrently on each request and
// answers 200 {"status":"ready",…} when all pass, 503 {"status":"not ready",…} otherwise, with
// each check's Result under its name.
func Ready(checks ...Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		results := make([]Result, len(checks))
		var wg sync.WaitGroup
		for i, c := range checks {
			wg.Go(func() { results[i] = c.Run(ctx) })
		}
		wg.Wait()
		rep := report{Status: "ready", Checks: make(map[string]Result, len(checks))}
		for i, c := range checks {
			rep.Checks[c.Name] = results[i]
			if !results[i].OK {
				rep.Status = "not ready"
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if rep.Status != "ready" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(rep)
	})
}

// Database checks that db takes writes: a committed write probe (store.ProbeWrite), run at most
// once per second and shared by the requests in between.
func Database(db *store.DB) Check {
	return cached(Check{Name: "database", Run: func(ctx context.Context) Result {
		if err := db.ProbeWrite(ctx); err != nil {
			return Result{Error: "the database does not take writes: " + err.Error()}
		}
		return Result{OK: true}
	}}, probeEvery)
}

// UsageWriter checks that the usage writer's writes succeed, its queue has room, and it is not
// backed up: rows waiting to be written under half the queue's bound (a healthy writer stores
// each batch within FLUSH_INTERVAL, far below it). Its Status is the detail.
func UsageWriter(w *usage.Writer) Check {
	return Check{Name: "usageWriter", Run: func(context.Context) Result {
		s := w.Status()
		r := Result{OK: s.Healthy, Detail: s}
		switch {
		case !s.FailingSince.IsZero():
			r.Error = fmt.Sprintf("usage rows are not being written since %s: %s", s.FailingSince.UTC().Format(time.RFC3339), s.LastError)
		case !s.Healthy:
			r.Error = fmt.Sprintf("the usage queue is full (%d queued + %d in flight of %d): metered requests are refused", s.Queued, s.Reserved, s.Max)
		case s.Queued >= max(s.Max/2, 1):
			r.OK = false
			r.Error = fmt.Sprintf("the usage writer is backed up: %d rows waiting to be written (the queue holds %d)", s.Queued, s.Max)
		}
		return r
	}}
}

// dnsEvery is the most often UpstreamDNS looks the hosts up, whatever the request rate:
// /readyz is unauthenticated and must not be a way to make TokenGuard flood its resolver.
const dnsEvery = 30 * time.Second

// UpstreamDNS checks that the host of every upstream base URL resolves, looked up with r
// (net.DefaultResolver when nil) at most once per dnsEvery; the detail maps each host to "ok"
// or its lookup error. An IP address needs no lookup.
func UpstreamDNS(r *net.Resolver, baseURLs ...string) Check {
	if r == nil {
		r = net.DefaultResolver
	}
	var hosts []string
	for _, b := range baseURLs {
		if u, err := url.Parse(b); err == nil && u.Hostname() != "" && net.ParseIP(u.Hostname()) == nil && !slices.Contains(hosts, u.Hostname()) {
			hosts = append(hosts, u.Hostname())
		}
	}
	return cached(Check{Name: "upstreamDNS", Run: func(ctx context.Context) Result {
		detail := make(map[string]string, len(hosts))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, h := range hosts {
			wg.Go(func() {
				v := "ok"
				if _, err := r.LookupHost(ctx, h); err != nil {
					v = err.Error()
				}
				mu.Lock()
				detail[h] = v
				mu.Unlock()
			})
		}
		wg.Wait()
		res := Result{OK: true, Detail: detail}
		for _, h := range hosts {
			if detail[h] != "ok" {
				res.OK = false
				res.Error = fmt.Sprintf("upstream host %s does not resolve: %s", h, detail[h])
				break
			}
		}
		return res
	}}, dnsEvery)
}

// cached runs c at most once per ttl; callers in between get its last result, and callers
// during a run wait for it rather than start another. The run does not end with the request
// that started it (only after checkTimeout): a client that hangs up at once must not leave a
// failure behind for everyone else to read until the ttl passes.
func cached(c Check, ttl time.Duration) Check {
	var mu sync.Mutex
	var last Result
	var at time.Time
	return Check{Name: c.Name, Run: func(ctx context.Context) Result {
		mu.Lock()
		defer mu.Unlock()
		if at.IsZero() || time.Since(at) >= ttl {
			runCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkTimeout)
			last, at = c.Run(runCtx), time.Now()
			cancel()
		}
		return last
	}}
}
