// Package tracing owns TokenGuard's opt-in OpenTelemetry traces: one span per proxied request
// that leaves a usage row, with the GenAI semantic-convention attributes and TokenGuard's own,
// exported over OTLP/HTTP. It is built only when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (config.Config.Tracing); every other standard
// OTEL_* variable (headers, compression, timeout, sampler, batch processor, service name,
// resource attributes) is read by the OpenTelemetry SDK and exporter themselves. When it is
// not built the proxy has no observer to call, so disabled tracing costs nothing.
package tracing

import (
	"context"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"tokenguard/app/usage"
)

// Tracer turns usage rows into spans and exports them in batches. Close flushes it.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
}

// New builds the OTLP/HTTP exporter and a batching tracer provider from the process
// environment (the exporter and the SDK read the OTEL_* variables), naming the service
// "tokenguard" at version unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise.
// It does not connect: an unreachable collector costs dropped spans, never a failed start.
func New(ctx context.Context, version string) (*Tracer, error) {
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "tokenguard"), attribute.String("service.version", version)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracer{provider: tp, tracer: tp.Tracer("tokenguard/app/proxy")}, nil
}

// Close exports the spans still buffered and stops the exporter, within ctx.
func (t *Tracer) Close(ctx context.Context) error { return t.provider.Shutdown(ctx) }

// providerNames maps TokenGuard's provider names to the semantic conventions' gen_ai.provider.name.
var providerNames = map[string]string{"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}

// operation is the gen_ai.operation.name of an adapter endpoint pattern.
func operation(endpoint string) string {
	switch {
	case strings.Contains(endpoint, "embeddings"):
		return "embeddings"
	case strings.HasSuffix(endpoint, "/v1/completions"):
		return "text_completion"
	case strings.Contains(endpoint, "generateContent") || strings.Contains(endpoint, "GenerateContent"):
		return "generate_content"
	}
	return "chat"
}

// Observe records the request of rec as one finished span, from its start to its end, named
// "{operation} {requested model}" as the GenAI conventions ask. endpoint is the adapter's
// endpoint pattern (provider.Call.Endpoint). A row with an error code or a status of 400 or
// more is an error span whose error.type is the code.
func (t *Tracer) Observe(endpoint string, rec usage.Record) {
	op := operation(endpoint)
	providerName := providerNames[rec.Provider]
	if providerName == "" {
		providerName = rec.Provider
	}
	attrs := []attribute.KeyValue{
		attribute.String("gen_ai.operation.name", op),
		attribute.String("gen_ai.provider.name", providerName),
		attribute.String("gen_ai.request.model", rec.OriginalModel),
		attribute.String("gen_ai.response.model", rec.FinalModel),
		attribute.Int64("gen_ai.usage.input_tokens", rec.InputTokens),
		attribute.Int64("gen_ai.usage.output_tokens", rec.OutputTokens),
		attribute.Int("http.response.status_code", rec.Status),
		attribute.String("tokenguard.request.id", rec.RequestID),
		attribute.String("tokenguard.project.id", strconv.FormatInt(rec.ProjectID, 10)),
		attribute.String("tokenguard.workspace.id", strconv.FormatInt(rec.WorkspaceID, 10)),
		attribute.Bool("tokenguard.fallback", rec.WasFallback),
		attribute.Float64("tokenguard.cost_usd", rec.Cost.Dollars()),
		attribute.Bool("tokenguard.stream", rec.Stream),
		attribute.Bool("tokenguard.usage_estimated", rec.UsageEstimated),
	}
	if rec.ErrorCode != "" {
		attrs = append(attrs, attribute.String("error.type", rec.ErrorCode))
	}
	_, span := t.tracer.Start(context.Background(), op+" "+rec.OriginalModel,
		trace.WithTimestamp(rec.CreatedAt), trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	if rec.ErrorCode != "" || rec.Status >= 400 {
		span.SetStatus(codes.Error, rec.ErrorCode)
	}
	span.End(trace.WithTimestamp(rec.CreatedAt.Add(time.Duration(max(rec.LatencyMs, 0)) * time.Millisecond)))
}
