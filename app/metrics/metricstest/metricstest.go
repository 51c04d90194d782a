// Package metricstest builds metrics on a fresh registry and reads /metrics as Prometheus does,
// with the real text-format parser, for tests of the packages that feed the metrics.
package metricstest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"tokenguard/app/metrics"
	"tokenguard/app/pricing"
)

// New returns metrics on a fresh registry, labelling models by the embedded prices.
func New(t testing.TB) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	prices, err := pricing.New(nil, pricing.DefaultUnknownPrice())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, prices)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// Families are the metric families of one scrape, by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs /metrics from h with token as the bearer token ("" for none), fails the test
// unless it answers 200 in the text format, and parses the body.
func Scrape(t testing.TB, h http.Handler, token string) Families {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// Value is the value of the counter, gauge or untyped sample of family name whose labels
// include every name/value pair given (for a histogram, its sample count), summed over the
// samples that match; 0 when none does.
func (f Families) Value(name string, labels ...string) float64 {
	var sum float64
	for _, m := range f.Series(name, labels...) {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// Series are the samples of family name whose labels include every name/value pair given.
func (f Families) Series(name string, labels ...string) []*dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range fam.Metric {
		if hasLabels(m, labels) {
			out = append(out, m)
		}
	}
	return out
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range m.Label {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
