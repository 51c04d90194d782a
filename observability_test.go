package main

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"testing"

	"tokenguard/app/metrics/metricstest"
	"tokenguard/app/provider/openai/openaitest"
)

// TestMetricsExposure ensures /metrics is never on the public port unauthenticated: off by
// default (404), behind METRICS_TOKEN on the public port (401 without it), or on METRICS_ADDR's
// own listener; and that where it is served it counts the real program's proxied requests.
func TestMetricsExposure(t *testing.T) {
	const token = "metrics-token-0123456789"
	tests := []struct {
		name string
		env  map[string]string
		// want is the status of an unauthenticated GET /metrics on the public port and on the
		// metrics listener (0: there is none).
		wantPublic, wantOwn int
		// scrapeToken is the token a scraper sends; where is "public" or "own".
		scrapeToken, where string
	}{
		{"off by default", nil, 404, 0, "", ""},
		{"token on the public port", map[string]string{"METRICS_TOKEN": token}, 401, 0, token, "public"},
		{"own listener", map[string]string{"METRICS_ADDR": "127.0.0.1:0"}, 404, 200, "", "own"},
		{"own listener with a token", map[string]string{"METRICS_ADDR": "127.0.0.1:0", "METRICS_TOKEN": token}, 404, 401, token, "own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream := openaitest.New(t)
			env := testEnv(filepath.Join(t.TempDir(), "tokenguard.db"), upstream.URL)
			maps.Copy(env, tt.env)
			app := startApp(t, env)
			own := app.obs.metricsAddr()
			if (own != "") != (tt.wantOwn != 0) {
				t.Fatalf("metrics listener %q, want one: %v", own, tt.wantOwn != 0)
			}
			if got := getStatus(t, app.URL+"/metrics"); got != tt.wantPublic {
				t.Errorf("public GET /metrics = %d, want %d", got, tt.wantPublic)
			}
			if own != "" {
				if got := getStatus(t, "http://"+own+"/metrics"); got != tt.wantOwn {
					t.Errorf("GET /metrics on %s = %d, want %d", own, got, tt.wantOwn)
				}
			}
			if tt.where == "" {
				return
			}
			o := signUpWithProject(t, app.URL, 0)
			resp, err := chat(context.Background(), http.DefaultClient, app.URL, o.Key, 1, false)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err := app.Usage.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			base := app.URL
			if tt.where == "own" {
				base = "http://" + own
			}
			u, _ := url.Parse(base)
			f := metricstest.Scrape(t, httputil.NewSingleHostReverseProxy(u), tt.scrapeToken)
			if got := f.Value("tokenguard_requests_total", "provider", "openai", "model", "gpt-4o-mini", "outcome", "ok"); got != 1 {
				t.Errorf("tokenguard_requests_total = %v, want 1", got)
			}
			if got := f.Value("tokenguard_usage_batch_rows"); got < 1 {
				t.Errorf("no usage batch observed")
			}
			if f["go_goroutines"] == nil || f["tokenguard_mail_queue_messages"] == nil {
				t.Errorf("runtime or mail queue metrics missing")
			}
		})
	}
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
