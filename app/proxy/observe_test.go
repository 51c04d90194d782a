package proxy_test

import (
	"compress/gzip"
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"tokenguard/app/budget"
	"tokenguard/app/metrics"
	"tokenguard/app/metrics/metricstest"
	"tokenguard/app/pricing"
	"tokenguard/app/provider/openai/openaitest"
	"tokenguard/app/proxy"
	"tokenguard/app/tracing"
)

// TestMetricsCountProxiedTraffic ensures /metrics, read with Prometheus's own text parser after
// real traffic through the proxy to a wire-format upstream (streamed and not, refused by a
// budget, failed by the provider), counts exactly what was sent and what the usage rows hold.
func TestMetricsCountProxiedTraffic(t *testing.T) {
	m, reg := metricstest.New(t)
	a := newApp(t, appOptions{observers: []proxy.Observer{m}})
	if err := metrics.Watch(reg, metrics.Sources{Usage: a.writer.Status, Budgets: a.db.ListBudgetLimits, Spend: a.engine.Spend}); err != nil {
		t.Fatal(err)
	}
	rich := a.project(projectOptions{daily: 1000})
	poor := a.project(projectOptions{daily: 0.000001}) // the first request spends it all
	a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Prompt: 20, Completion: 5}, Chunks: []string{"Hel", "lo"}})

	send := func(p testProject, stream bool, want int) {
		t.Helper()
		if resp, body := a.chat(p.key, chatBody("gpt-4o-mini", stream, "")); resp.StatusCode != want {
			t.Fatalf("status %d, want %d: %s", resp.StatusCode, want, body)
		}
	}
	for range 3 {
		send(rich, false, 200)
	}
	for range 2 {
		send(rich, true, 200)
	}
	send(poor, false, 200)
	send(poor, false, 429)
	send(poor, true, 429)
	a.up.Set(openaitest.Behavior{Status: 503})
	send(rich, false, 503)

	rows := append(a.waitRows(rich, 6), a.waitRows(poor, 3)...)
	var input, output, cost float64
	for _, r := range rows {
		input += float64(r.InputTokens)
		output += float64(r.OutputTokens)
		cost += pricing.NanoUSD(r.CostNano).Dollars()
	}
	f := metricstest.Scrape(t, metrics.Handler(reg, "tok-tok-tok-tok"), "tok-tok-tok-tok")
	model := []string{"provider", "openai", "model", "gpt-4o-mini"}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"tokenguard_requests_total", nil, 9},
		{"tokenguard_requests_total", append(model, "status_class", "2xx", "outcome", "ok"), 6},
		{"tokenguard_requests_total", append(model, "status_class", "4xx", "outcome", "blocked"), 2},
		{"tokenguard_requests_total", append(model, "status_class", "5xx", "outcome", "upstream_error"), 1},
		{"tokenguard_upstream_errors_total", []string{"provider", "openai", "reason", "http_5xx"}, 1},
		{"tokenguard_tokens_total", append(model, "type", "input"), input},
		{"tokenguard_tokens_total", append(model, "type", "output"), output},
		{"tokenguard_request_duration_seconds", []string{"provider", "openai"}, 9},
		{"tokenguard_time_to_first_byte_seconds", []string{"provider", "openai"}, 2},
		{"tokenguard_budgets", []string{"scope", "project", "level", "at_or_over_100"}, 1},
		{"tokenguard_usage_queue_max", nil, float64(a.writer.Status().Max)},
	} {
		if got := f.Value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if input != 6*20 || output != 6*5 {
		t.Errorf("rows hold %v input and %v output tokens, want %d and %d", input, output, 6*20, 6*5)
	}
	if got := f.Value("tokenguard_cost_usd_total", model...); math.Abs(got-cost) > 1e-12 || cost == 0 {
		t.Errorf("cost = %v, rows say %v", got, cost)
	}
	if got := f.Value("tokenguard_budget_utilization_ratio", "scope", "project", "period", "daily"); got < 1 {
		t.Errorf("budget utilisation gauges sum to %v, want the spent project at 100%% or more", got)
	}
}

// otlpReceiver is an OTLP/HTTP trace collector: it decodes each protobuf export request and
// hands it to the channel.
func otlpReceiver(t testing.TB) (*httptest.Server, <-chan *coltracepb.ExportTraceServiceRequest) {
	t.Helper()
	got := make(chan *coltracepb.ExportTraceServiceRequest, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want a protobuf POST to /v1/traces", http.StatusBadRequest)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case got <- &req:
		default:
		}
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// newTracer starts tracing to an OTLP receiver named the way an operator would, through the
// standard environment variable.
func newTracer(t testing.TB) (*tracing.Tracer, <-chan *coltracepb.ExportTraceServiceRequest) {
	t.Helper()
	srv, got := otlpReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	tr, err := tracing.New(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	return tr, got
}

// TestTraceExported ensures a proxied request that went to the fallback model reaches an OTLP
// collector as one span with the GenAI semantic-convention attributes and TokenGuard's own,
// flushed when the tracer is closed.
func TestTraceExported(t *testing.T) {
	tr, got := newTracer(t)
	a := newApp(t, appOptions{observers: []proxy.Observer{tr}})
	p := a.project(projectOptions{daily: 1, fallback: "gpt-4o"})
	if err := a.engine.Load([]budget.Counter{{Scope: budget.ProjectScope, ID: p.id, Period: budget.DayKey(a.now), Spend: pricing.FromDollars(0.9)}}); err != nil {
		t.Fatal(err)
	}
	a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Prompt: 20, Completion: 5}})
	resp, body := a.chat(p.key, chatBody("gpt-4o-mini", false, ""))
	if resp.StatusCode != 200 || resp.Header.Get("X-Tokenguard-Fallback") != "true" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	row := a.waitRows(p, 1)[0]
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var req *coltracepb.ExportTraceServiceRequest
	select {
	case req = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no span reached the collector")
	}
	if n := len(req.ResourceSpans); n != 1 {
		t.Fatalf("%d resource spans, want 1", n)
	}
	rs := req.ResourceSpans[0]
	if got := attrs(rs.Resource.Attributes)["service.name"]; got != "tokenguard" {
		t.Errorf("service.name = %v, want tokenguard", got)
	}
	spans := rs.ScopeSpans[0].Spans
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	span := spans[0]
	if got, want := span.Name, "chat gpt-4o-mini"; got != want {
		t.Errorf("span name = %q, want %q", got, want)
	}
	if span.Kind != tracepb.Span_SPAN_KIND_SERVER || span.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("kind %v, status %v; want a server span without error", span.Kind, span.Status)
	}
	if got, want := span.StartTimeUnixNano, uint64(a.now.UnixNano()); got != want {
		t.Errorf("start = %d, want the request's start %d", got, want)
	}
	at := attrs(span.Attributes)
	for k, want := range map[string]any{
		"gen_ai.operation.name":      "chat",
		"gen_ai.provider.name":       "openai",
		"gen_ai.request.model":       "gpt-4o-mini",
		"gen_ai.response.model":      "gpt-4o",
		"gen_ai.usage.input_tokens":  int64(20),
		"gen_ai.usage.output_tokens": int64(5),
		"http.response.status_code":  int64(200),
		"tokenguard.project.id":      strconv.FormatInt(p.id, 10),
		"tokenguard.workspace.id":    strconv.FormatInt(p.workspaceID, 10),
		"tokenguard.fallback":        true,
		"tokenguard.request.id":      row.RequestID,
		"tokenguard.cost_usd":        pricing.NanoUSD(row.CostNano).Dollars(),
	} {
		if at[k] != want {
			t.Errorf("%s = %#v, want %#v", k, at[k], want)
		}
	}
	if row.CostNano == 0 {
		t.Error("the fallback request cost nothing")
	}
}

// attrs flattens OTLP attributes to Go values.
func attrs(kvs []*commonpb.KeyValue) map[string]any {
	out := map[string]any{}
	for _, kv := range kvs {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			out[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			out[kv.Key] = v.IntValue
		case *commonpb.AnyValue_DoubleValue:
			out[kv.Key] = v.DoubleValue
		case *commonpb.AnyValue_BoolValue:
			out[kv.Key] = v.BoolValue
		}
	}
	return out
}

// CPU per proxied request (client, proxy, fake upstream and writer, in one process) with no
// observer, with the metrics, and with the metrics and traces to a local OTLP collector: the
// sub-benchmarks of one run compare them.
func BenchmarkProxyObserved(b *testing.B) {
	b.Run("observers=none", func(b *testing.B) {
		a, p, body := benchApp(b)
		benchChat(b, a, p, body)
	})
	b.Run("observers=metrics", func(b *testing.B) {
		m, _ := metricstest.New(b)
		a, p, body := benchApp(b, m)
		benchChat(b, a, p, body)
	})
	b.Run("observers=metrics+tracing", func(b *testing.B) {
		m, _ := metricstest.New(b)
		tr, _ := newTracer(b)
		a, p, body := benchApp(b, m, tr)
		benchChat(b, a, p, body)
	})
}
