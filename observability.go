package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"tokenguard/app/config"
	"tokenguard/app/metrics"
	"tokenguard/app/pricing"
	"tokenguard/app/proxy"
	"tokenguard/app/tracing"
)

// observability is what the server reports to: the Prometheus registry and its metrics (nil
// unless METRICS_TOKEN or METRICS_ADDR is set), the tracer (nil unless an OTLP endpoint is
// set), and the metrics listener of its own (METRICS_ADDR).
type observability struct {
	cfg      config.Metrics
	reg      *prometheus.Registry
	metrics  *metrics.Metrics
	tracer   *tracing.Tracer
	listener net.Listener
	server   *http.Server
}

// newObservability builds what cfg turns on and binds METRICS_ADDR; close releases it all.
func newObservability(ctx context.Context, cfg config.Config, prices *pricing.Table) (*observability, error) {
	o := &observability{cfg: cfg.Metrics}
	if cfg.Metrics.Token != "" || cfg.Metrics.Addr != "" {
		o.reg = prometheus.NewRegistry()
		if err := o.reg.Register(collectors.NewGoCollector()); err != nil {
			return nil, err
		}
		if err := o.reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, err
		}
		var err error
		if o.metrics, err = metrics.New(o.reg, prices); err != nil {
			return nil, err
		}
	}
	if cfg.Metrics.Addr != "" {
		var err error
		if o.listener, err = net.Listen("tcp", cfg.Metrics.Addr); err != nil {
			return nil, fmt.Errorf("METRICS_ADDR %s: %w", cfg.Metrics.Addr, err)
		}
	}
	if cfg.Tracing {
		var err error
		if o.tracer, err = tracing.New(ctx, Version); err != nil {
			o.close(ctx)
			return nil, fmt.Errorf("tracing (OTEL_*): %w", err)
		}
	}
	return o, nil
}

// onBatch is the usage writer's batch hook (nil without metrics).
func (o *observability) onBatch() func(int, time.Duration) {
	if o.metrics == nil {
		return nil
	}
	return o.metrics.ObserveBatch
}

// observers are what the proxy reports each usage row to: none when both are off, so the
// request path then pays nothing.
func (o *observability) observers() []proxy.Observer {
	var obs []proxy.Observer
	if o.metrics != nil {
		obs = append(obs, o.metrics)
	}
	if o.tracer != nil {
		obs = append(obs, o.tracer)
	}
	return obs
}

// watch registers the scrape-time collectors of m's usage writer, mailer and budgets.
func (o *observability) watch(m *Main) error {
	if o.reg == nil {
		return nil
	}
	return metrics.Watch(o.reg, metrics.Sources{Usage: m.Usage.Status, Mail: m.Mailer.Queued,
		Budgets: m.DB.ListBudgetLimits, Spend: m.Budget.Spend})
}

// register serves /metrics on the public router when METRICS_TOKEN is set and METRICS_ADDR is
// not; otherwise the public port has no /metrics (404).
func (o *observability) register(r *httprouter.Router) {
	if o.reg != nil && o.listener == nil {
		r.Handler(http.MethodGet, "/metrics", metrics.Handler(o.reg, o.cfg.Token))
	}
}

// serve starts the METRICS_ADDR listener, if any: /metrics only, behind the token when one is
// set.
func (o *observability) serve(log *slog.Logger) {
	if o.listener == nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(o.reg, o.cfg.Token))
	o.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := o.server.Serve(o.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving /metrics", "addr", o.listener.Addr().String(), "token", o.cfg.Token != "")
}

// metricsAddr is the METRICS_ADDR listener's address ("" without one).
func (o *observability) metricsAddr() string {
	if o == nil || o.listener == nil {
		return ""
	}
	return o.listener.Addr().String()
}

// close stops the metrics listener and flushes the spans still buffered. It runs last among
// the closers, after the proxy has recorded (and so observed) every request.
func (o *observability) close(ctx context.Context) error {
	var errs []error
	if o.server != nil {
		errs = append(errs, o.server.Shutdown(ctx))
	} else if o.listener != nil {
		errs = append(errs, o.listener.Close())
	}
	if o.tracer != nil {
		errs = append(errs, o.tracer.Close(ctx))
	}
	return errors.Join(errs...)
}
