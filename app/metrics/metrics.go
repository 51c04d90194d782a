// Package metrics owns TokenGuard's Prometheus metrics: the per-request counters and histograms
// the proxy feeds through Observe (requests by provider, model, status class and outcome;
// tokens; cost; latency and time to first byte; upstream errors), the usage writer's batches,
// and collectors that read the usage queue, the mail queue and the budget engine when
// /metrics is scraped. Everything is registered on a *prometheus.Registry passed in: no
// default registry, no globals. Handler serves the registry behind a bearer token.
//
// Every label has a bounded set of values: a model the price table does not know is "other"
// (a key holder can send any model string), outcomes and reasons are fixed lists, and budget
// gauges are kept for the projects and workspaces of highest utilisation only.
package metrics

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/app/usage"
)

// otherModel is the model label of every model the price table does not know.
const otherModel = "other"

// maxSeries bounds the label combinations Observe resolves; past it every new combination is
// counted under the "other" model. The price table's models times the providers, outcomes and
// status classes that really occur stay far below it.
const maxSeries = 4096

// Metrics holds the request-path metrics. Observe is safe for concurrent use.
type Metrics struct {
	prices *pricing.Table

	requests       *prometheus.CounterVec
	tokens         *prometheus.CounterVec
	cost           *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	ttfb           *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	batchRows      prometheus.Histogram
	batchSeconds   prometheus.Histogram

	mu     sync.RWMutex
	series map[seriesKey]*series
}

// seriesKey is one label combination of a request. The strings are the adapter's provider name
// and the price table's model id (or otherModel), never the request's own text, so the map
// holds no per-request memory.
type seriesKey struct {
	provider, model string
	class, outcome  uint8
}

// series is every metric child one label combination touches, resolved once so that Observe
// only adds to them.
type series struct {
	requests                                        prometheus.Counter
	input, output, cacheRead, cacheWrite, reasoning prometheus.Counter
	cost                                            prometheus.Counter
	latency, ttfb                                   prometheus.Observer
	upstreamError                                   prometheus.Counter // nil: not an upstream error
	ok                                              bool               // a 2xx answer
}

// Latency buckets, in seconds: LLM calls run from tens of milliseconds (a refusal, a cached
// embedding) to minutes (a long stream).
var (
	latencyBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300}
	ttfbBuckets    = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60}
	batchBuckets   = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000}
	flushBuckets   = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
)

// New registers the request-path and usage-writer metrics on reg. Models are labelled by the
// price table's name for them (prices), "other" when it has none.
func New(reg prometheus.Registerer, prices *pricing.Table) (*Metrics, error) {
	m := &Metrics{
		prices: prices,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenguard_requests_total",
			Help: "Proxied requests that left a usage row, by provider, model, HTTP status class and outcome.",
		}, []string{"provider", "model", "status_class", "outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenguard_tokens_total",
			Help: "Tokens of proxied requests, by provider, model and type (input includes cached input).",
		}, []string{"provider", "model", "type"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenguard_cost_usd_total",
			Help: "Estimated cost of proxied requests in US dollars, by provider and model.",
		}, []string{"provider", "model"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tokenguard_request_duration_seconds", Buckets: latencyBuckets,
			Help: "Time from a proxied request's arrival to the end of its response, by provider.",
		}, []string{"provider"}),
		ttfb: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tokenguard_time_to_first_byte_seconds", Buckets: ttfbBuckets,
			Help: "Time from a streamed request's arrival to the upstream's first body byte, by provider.",
		}, []string{"provider"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenguard_upstream_errors_total",
			Help: "Proxied requests the upstream failed, by provider and reason (http_4xx, http_5xx, stream_error, unreachable, timeout, stream_idle).",
		}, []string{"provider", "reason"}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tokenguard_usage_batch_rows", Buckets: batchBuckets,
			Help: "Usage rows per batch the usage writer stored.",
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tokenguard_usage_flush_seconds", Buckets: flushBuckets,
			Help: "Time the usage writer took to store one batch (its transaction, retries included).",
		}),
		series: make(map[seriesKey]*series),
	}
	for _, c := range []prometheus.Collector{m.requests, m.tokens, m.cost, m.latency, m.ttfb, m.upstreamErrors, m.batchRows, m.batchSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observe counts one proxied request from its usage row (it is a proxy.Observer; the endpoint
// is not a label). It does not allocate once the row's label combination has been seen.
func (m *Metrics) Observe(_ string, rec usage.Record) {
	k := seriesKey{provider: rec.Provider, model: m.modelLabel(rec), class: statusClass(rec.Status), outcome: outcomeOf(rec)}
	s := m.lookup(k)
	s.requests.Inc()
	addTokens(s.input, rec.InputTokens)
	addTokens(s.output, rec.OutputTokens)
	addTokens(s.cacheRead, rec.CacheReadTokens)
	addTokens(s.cacheWrite, rec.CacheWriteTokens)
	addTokens(s.reasoning, rec.ReasoningTokens)
	if rec.Cost > 0 {
		s.cost.Add(rec.Cost.Dollars())
	}
	s.latency.Observe(float64(max(rec.LatencyMs, 0)) / 1000)
	// The row has a first byte only for a streamed answer; under a millisecond it reads 0.
	if rec.TTFBMs > 0 || rec.Stream && s.ok {
		s.ttfb.Observe(float64(max(rec.TTFBMs, 0)) / 1000)
	}
	if s.upstreamError != nil {
		s.upstreamError.Inc()
	}
}

// ObserveBatch records one batch the usage writer stored: its rows and how long it took. It is
// the writer's OnBatch hook.
func (m *Metrics) ObserveBatch(rows int, took time.Duration) {
	m.batchRows.Observe(float64(rows))
	m.batchSeconds.Observe(took.Seconds())
}

func addTokens(c prometheus.Counter, n int64) {
	if n > 0 {
		c.Add(float64(n))
	}
}

// modelLabel is the price table's id for the row's final model, or otherModel when the table
// prices it by default. A dated name ("gpt-4o-2024-08-06") is labelled by the model it prices
// as, so made-up date suffixes cannot mint new series.
func (m *Metrics) modelLabel(rec usage.Record) string {
	if rec.PricedByDefault || rec.FinalModel == "" {
		return otherModel
	}
	if q := m.prices.Quote(rec.FinalModel, pricing.Usage{}); !q.ByDefault && q.Model != "" {
		return q.Model
	}
	return otherModel
}

// lookup returns the children of k, resolving them on first sight.
func (m *Metrics) lookup(k seriesKey) *series {
	m.mu.RLock()
	s, ok := m.series[k]
	m.mu.RUnlock()
	if ok {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.series[k]; ok {
		return s
	}
	if len(m.series) >= maxSeries {
		k.model = otherModel
		if s, ok := m.series[k]; ok {
			return s
		}
	}
	s = m.resolve(k)
	m.series[k] = s
	return s
}

func (m *Metrics) resolve(k seriesKey) *series {
	tokens := func(kind string) prometheus.Counter { return m.tokens.WithLabelValues(k.provider, k.model, kind) }
	s := &series{
		requests:   m.requests.WithLabelValues(k.provider, k.model, classes[k.class], outcomes[k.outcome]),
		input:      tokens("input"),
		output:     tokens("output"),
		cacheRead:  tokens("cache_read"),
		cacheWrite: tokens("cache_write"),
		reasoning:  tokens("reasoning"),
		cost:       m.cost.WithLabelValues(k.provider, k.model),
		latency:    m.latency.WithLabelValues(k.provider),
		ttfb:       m.ttfb.WithLabelValues(k.provider),
	}
	s.ok = k.class == 2
	if reason := upstreamReason(k.outcome, k.class); reason != "" {
		s.upstreamError = m.upstreamErrors.WithLabelValues(k.provider, reason)
	}
	return s
}

// Status classes, by index.
var classes = [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func statusClass(status int) uint8 {
	if c := status / 100; c >= 1 && c <= 5 {
		return uint8(c)
	}
	return 0
}

// Outcomes, by index: what a request ended as, from its row's error code.
const (
	outcomeOK uint8 = iota
	outcomeFallback
	outcomeBlocked
	outcomeRateLimited
	outcomeModelNotAllowed
	outcomeUpstreamError
	outcomeUpstreamUnavailable
	outcomeUpstreamTimeout
	outcomeStreamIdle
	outcomeClientDisconnected
	outcomeStorageUnavailable
	outcomeInvalidRequest
	outcomeError
)

var outcomes = [...]string{
	outcomeOK:                  "ok",
	outcomeFallback:            "fallback",
	outcomeBlocked:             "blocked",
	outcomeRateLimited:         "rate_limited",
	outcomeModelNotAllowed:     "model_not_allowed",
	outcomeUpstreamError:       "upstream_error",
	outcomeUpstreamUnavailable: "upstream_unavailable",
	outcomeUpstreamTimeout:     "upstream_timeout",
	outcomeStreamIdle:          "stream_idle_timeout",
	outcomeClientDisconnected:  "client_disconnected",
	outcomeStorageUnavailable:  "storage_unavailable",
	outcomeInvalidRequest:      "invalid_request",
	outcomeError:               "error",
}

// outcomeByCode maps the row error codes TokenGuard itself writes. The proxy's own row codes
// (UPSTREAM_ERROR, CLIENT_DISCONNECTED, STREAM_IDLE_TIMEOUT) are its unexported constants,
// spelled here as the rows store them.
var outcomeByCode = map[string]uint8{
	apperr.BudgetExceeded:      outcomeBlocked,
	apperr.RateLimited:         outcomeRateLimited,
	apperr.ModelNotAllowed:     outcomeModelNotAllowed,
	"UPSTREAM_ERROR":           outcomeUpstreamError,
	apperr.UpstreamUnavailable: outcomeUpstreamUnavailable,
	apperr.UpstreamTimeout:     outcomeUpstreamTimeout,
	"STREAM_IDLE_TIMEOUT":      outcomeStreamIdle,
	"CLIENT_DISCONNECTED":      outcomeClientDisconnected,
	apperr.StorageUnavailable:  outcomeStorageUnavailable,
	apperr.InvalidRequest:      outcomeInvalidRequest,
	apperr.PayloadTooLarge:     outcomeInvalidRequest,
	apperr.NoProviderKey:       outcomeInvalidRequest,
}

// outcomeOf derives the outcome from the row alone, so a refusal the proxy adds later is
// counted by its error code without a change here. A code TokenGuard does not write comes from
// the upstream: an error event inside a 2xx stream is an upstream error.
func outcomeOf(rec usage.Record) uint8 {
	if rec.ErrorCode == "" {
		if rec.Status >= 400 {
			return outcomeError
		}
		if rec.WasFallback {
			return outcomeFallback
		}
		return outcomeOK
	}
	if o, ok := outcomeByCode[rec.ErrorCode]; ok {
		return o
	}
	if rec.Status < 400 || strings.ContainsFunc(rec.ErrorCode, func(r rune) bool { return r >= 'a' && r <= 'z' }) {
		return outcomeUpstreamError
	}
	return outcomeError
}

// upstreamReason names an upstream failure for tokenguard_upstream_errors_total ("" when the
// outcome is none).
func upstreamReason(outcome, class uint8) string {
	switch outcome {
	case outcomeUpstreamError:
		switch class {
		case 4:
			return "http_4xx"
		case 5:
			return "http_5xx"
		}
		return "stream_error"
	case outcomeUpstreamUnavailable:
		return "unreachable"
	case outcomeUpstreamTimeout:
		return "timeout"
	case outcomeStreamIdle:
		return "stream_idle"
	}
	return ""
}

// Handler serves reg in the Prometheus text format to requests that carry
// "Authorization: Bearer <token>"; any other request gets 401 UNAUTHORIZED in the contract's
// error shape. An empty token serves without authentication: only for a listener of its own
// (METRICS_ADDR), never the public port.
func Handler(reg *prometheus.Registry, token string) http.Handler {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			apperr.WriteJSON(w, apperr.New(apperr.Unauthorized, "metrics need Authorization: Bearer <METRICS_TOKEN>"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
