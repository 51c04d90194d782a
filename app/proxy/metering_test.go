package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/app/provider/openai/openaitest"
	"tokenguard/app/proxy"
)

// counterSpend is the persisted spend counter of a project for the test's day.
func (a *app) counterSpend(scope string, id int64) int64 {
	a.t.Helper()
	var v int64
	err := a.db.Read.QueryRow(`SELECT COALESCE(SUM(spend_nano), 0) FROM spend_counters WHERE scope = ? AND scope_id = ? AND period = ?`,
		scope, id, budget.DayKey(a.now)).Scan(&v)
	if err != nil {
		a.t.Fatal(err)
	}
	return v
}

// A burst of concurrent requests against a nearly spent budget cannot overshoot it by more
// than about one request: with $0.90 of $1.00 spent and 50 requests of $0.05 released together,
// at most two are admitted. After they settle nothing stays reserved and the counters equal the
// sum of the usage rows — also for a project created a moment before.
func TestBudgetUnderConcurrency(t *testing.T) {
	a := newApp(t, appOptions{})
	for _, name := range []string{"first project", "project created a moment before"} {
		t.Run(name, func(t *testing.T) {
			p := a.project(projectOptions{daily: 1.00})
			// $0.90 spent through the proxy itself: 900,000 output tokens of the test model.
			a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Completion: 900_000}, Chunks: []string{"x"}})
			if resp, body := a.chat(p.key, chatBody(testModel, false, "")); resp.StatusCode != 200 {
				t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
			}
			a.waitRows(p, 1) // settled

			// Each request: max_tokens 50,000 → reserves ≈ $0.05 and really costs $0.05. The
			// upstream holds every answer a moment, so all 50 are in flight together.
			a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Completion: 50_000}, Chunks: []string{"x"}, HeaderDelay: 200 * time.Millisecond})
			var wg sync.WaitGroup
			var mu sync.Mutex
			statuses := map[int]int{}
			start := make(chan struct{})
			for range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					resp, _ := a.chat(p.key, chatBody(testModel, false, `,"max_tokens":50000`))
					mu.Lock()
					statuses[resp.StatusCode]++
					mu.Unlock()
				}()
			}
			close(start)
			wg.Wait()

			a.waitRows(p, 51) // every request settled and logged
			if admitted := statuses[200]; admitted < 1 || admitted > 2 || statuses[429] != 50-admitted {
				t.Fatalf("statuses %v: want 1–2 admitted (budget $1.00, $0.90 spent, $0.05 each), the rest 429", statuses)
			}
			if got := a.engine.Reserved(budget.ProjectScope, p.id); got != 0 {
				t.Fatalf("still reserved after every request settled: %d", got)
			}
			rows := a.waitRows(p, 51)
			var sum int64
			blocked := 0
			for _, r := range rows {
				sum += r.CostNano
				if r.Status == 429 {
					blocked++
					if r.ErrorCode != "BUDGET_EXCEEDED" || r.CostNano != 0 {
						t.Fatalf("blocked row %+v: want BUDGET_EXCEEDED, cost 0", r)
					}
				}
			}
			if blocked != statuses[429] {
				t.Fatalf("%d blocked rows, %d blocked requests", blocked, statuses[429])
			}
			if got := a.counterSpend("project", p.id); got != sum {
				t.Fatalf("project counter %d != sum of rows %d", got, sum)
			}
			if got := a.counterSpend("workspace", p.workspaceID); got != sum {
				t.Fatalf("workspace counter %d != sum of rows %d", got, sum)
			}
			if mem := a.engine.Spend(budget.ProjectScope, p.id).Day; int64(mem) != sum {
				t.Fatalf("in-memory spend %d != sum of rows %d", mem, sum)
			}
			if over := sum - int64(pricing.FromDollars(1)); over > int64(pricing.FromDollars(0.05)) {
				t.Fatalf("spend %d overshoots the budget by more than one request", sum)
			}
		})
	}
}

// Every reservation is settled, whatever the outcome, and every outcome is logged.
func TestReservationsSettledOnEveryOutcome(t *testing.T) {
	a := newApp(t, appOptions{upTimeout: 300 * time.Millisecond})
	p := a.project(projectOptions{daily: 100})
	tests := []struct {
		name     string
		behavior openaitest.Behavior
		cancel   time.Duration // the client gives up after this long
		status   int
		code     string
	}{
		{"success", openaitest.Behavior{Usage: openaitest.Usage{Prompt: 10, Completion: 5}, Chunks: []string{"ok"}}, 0, 200, ""},
		{"upstream 500", openaitest.Behavior{Status: 500}, 0, 500, "UPSTREAM_ERROR"},
		{"upstream 429", openaitest.Behavior{Status: 429}, 0, 429, "UPSTREAM_ERROR"},
		{"upstream timeout", openaitest.Behavior{HeaderDelay: 5 * time.Second}, 0, 504, "UPSTREAM_TIMEOUT"},
		{"client cancel", openaitest.Behavior{HeaderDelay: 5 * time.Second}, 100 * time.Millisecond, 499, "CLIENT_DISCONNECTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.up.Set(tt.behavior)
			ctx := context.Background()
			if tt.cancel > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.cancel)
				defer cancel()
			}
			req, _ := http.NewRequestWithContext(ctx, "POST", a.srv.URL+"/proxy/openai/v1/chat/completions", strings.NewReader(chatBody(testModel, false, "")))
			req.Header.Set("x-tokenguard-key", p.key)
			resp, err := http.DefaultClient.Do(req)
			if tt.cancel == 0 {
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tt.status)
				}
				if tt.behavior.Status != 0 && resp.Header.Get("Retry-After") != "7" {
					t.Fatalf("upstream's Retry-After not passed through: %v", resp.Header)
				}
			}
			// The row arrives once the proxy has finished with the request.
			var last []string
			deadline := time.Now().Add(3 * time.Second)
			for {
				rows := a.rows(p)
				if len(rows) > 0 {
					r := rows[len(rows)-1]
					last = []string{fmt.Sprint(r.Status), r.ErrorCode}
					if r.Status == tt.status && r.ErrorCode == tt.code {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("last row %v, want status %d code %q", last, tt.status, tt.code)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if got := a.engine.Reserved(budget.ProjectScope, p.id); got != 0 {
				t.Fatalf("reserved after %s: %d, want 0", tt.name, got)
			}
		})
	}
}

// A client that goes away mid-stream still gets a usage row — estimated from what was
// streamed, since the provider's figure never came — within a second, and the upstream request
// is cancelled.
func TestClientDisconnectMidStream(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{daily: 10})
	a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Prompt: 10, Completion: 500}, Chunks: []string{"one ", "two ", "three ", "four"}, HangAfter: 3})

	ctx, cancel := context.WithCancel(context.Background())
	resp := a.do(ctx, "POST", "/proxy/openai/v1/chat/completions", chatBody(testModel, true, ""), "x-tokenguard-key", p.key)
	buf := make([]byte, 4096)
	var got strings.Builder
	for !strings.Contains(got.String(), "three") {
		n, err := resp.Body.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("stream ended early: %v (%q)", err, got.String())
		}
	}
	cancel()
	resp.Body.Close()

	select {
	case <-a.up.Cancelled:
	case <-time.After(10 * time.Second): // a liveness bound, generous for a loaded machine
		t.Fatal("the upstream request was not cancelled after the client left")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows := a.rows(p)
		if len(rows) == 1 {
			r := rows[0]
			if !r.UsageEstimated || r.OutputTokens <= 0 || r.InputTokens <= 0 || r.CostNano <= 0 || r.ErrorCode != "CLIENT_DISCONNECTED" || !r.Stream {
				t.Fatalf("row %+v: want an estimated, non-free, streamed row flagged CLIENT_DISCONNECTED", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no usage row after the disconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := a.engine.Reserved(budget.ProjectScope, p.id); got != 0 {
		t.Fatalf("reserved %d after the disconnect", got)
	}
}

// A stream whose provider goes quiet is cut after STREAM_IDLE_TIMEOUT and still metered.
func TestStreamIdleTimeout(t *testing.T) {
	a := newApp(t, appOptions{idleTimeout: 200 * time.Millisecond})
	p := a.project(projectOptions{})
	a.up.Set(openaitest.Behavior{Chunks: []string{"a", "b", "c"}, HangAfter: 2})
	resp, body := a.chat(p.key, chatBody(testModel, true, ""))
	if resp.StatusCode != 200 || !strings.Contains(body, `"b"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	rows := a.waitRows(p, 1)
	if len(rows) != 1 || rows[0].ErrorCode != "STREAM_IDLE_TIMEOUT" || !rows[0].UsageEstimated || rows[0].CostNano <= 0 {
		t.Fatalf("rows %+v", rows)
	}
}

// From 80% of a budget the fallback model is sent, priced and reported; at 100% the request is
// refused with 429 BUDGET_EXCEEDED naming the budget, and logged at cost 0.
func TestFallbackAndBlock(t *testing.T) {
	a := newApp(t, appOptions{})
	tests := []struct {
		name, fallback string
	}{
		{"same provider", "gpt-4o-mini"},
		// Another provider's model is forwarded as is and the provider answers for it.
		{"other provider", "claude-haiku-4-5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := a.project(projectOptions{daily: 1, fallback: tt.fallback})
			a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Completion: 850_000}, Chunks: []string{"x"}})
			a.chat(p.key, chatBody(testModel, false, ""))
			a.waitRows(p, 1)

			a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Prompt: 10, Completion: 10}, Chunks: []string{"x"}})
			resp, body := a.chat(p.key, chatBody(testModel, false, `,"max_tokens":10`))
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if got := a.up.Last().Model; got != tt.fallback {
				t.Fatalf("upstream got model %q, want the fallback %q", got, tt.fallback)
			}
			if resp.Header.Get("X-Tokenguard-Fallback") != "true" || resp.Header.Get("X-Tokenguard-Final-Model") != tt.fallback {
				t.Fatalf("headers %v", resp.Header)
			}
			rows := a.waitRows(p, 2)
			r := rows[len(rows)-1]
			if !r.WasFallback || r.OriginalModel != testModel || r.FinalModel != tt.fallback {
				t.Fatalf("row %+v", r)
			}

			// Spend it all: then everything is refused.
			tk, _ := a.engine.Admit(budget.Subject{ProjectID: p.id, WorkspaceID: p.workspaceID}, nil)
			tk.Settle(a.now, pricing.FromDollars(0.5))
			for _, path := range []string{"/proxy/openai/v1/chat/completions", "/proxy/openai/v1/responses", "/proxy/openai/v1/embeddings", "/proxy/openai/v1/completions"} {
				resp := a.do(context.Background(), "POST", path, chatBody(testModel, false, ""), "x-tokenguard-key", p.key)
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 429 || errorCode(t, string(b)) != "BUDGET_EXCEEDED" || !strings.Contains(string(b), "Daily spend limit reached") {
					t.Fatalf("%s on an exhausted project: %d %s", path, resp.StatusCode, b)
				}
			}
			resp = a.do(context.Background(), "GET", "/proxy/openai/v1/models", "", "x-tokenguard-key", p.key)
			resp.Body.Close()
			if resp.StatusCode != 429 {
				t.Fatalf("GET /v1/models on an exhausted project: %d", resp.StatusCode)
			}
		})
	}
}

// The model list is relayed and not metered.
func TestModelsRelayedNotMetered(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{})
	resp := a.do(context.Background(), "GET", "/proxy/openai/v1/models", "", "Authorization", "Bearer "+p.key)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "gpt-4o-mini") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if rows := a.rows(p); len(rows) != 0 {
		t.Fatalf("model listing logged %d rows", len(rows))
	}
	for _, path := range []string{"/proxy/openai/v1/files", "/proxy/openai/v1/models/%2e%2e/files", "/proxy/openai/v1/models/..%2Ffiles", "/proxy/openai//v1/models"} {
		resp = a.do(context.Background(), "GET", path, "", "Authorization", "Bearer "+p.key)
		resp.Body.Close()
		if resp.StatusCode != 404 && resp.StatusCode != 405 && resp.StatusCode != 301 {
			t.Fatalf("%s answered %d, want it refused", path, resp.StatusCode)
		}
	}
	for _, r := range a.up.Received() {
		if r.Path != "/v1/models" {
			t.Fatalf("upstream got %s", r.Path)
		}
	}
}

// The official OpenAI Go SDK, configured as a user would (base URL + TokenGuard key), works
// through the proxy, streaming and not, and both calls are metered from the provider's usage.
func TestOpenAIGoSDK(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{daily: 5})
	a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Prompt: 20, Cached: 0, Completion: 7}, Chunks: []string{"Hi", " from", " fake"}})
	client := openai.NewClient(option.WithBaseURL(a.srv.URL+"/proxy/openai/v1"), option.WithAPIKey(p.key))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
	}
	c, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Choices[0].Message.Content, "Hi from fake"; got != want {
		t.Fatalf("content %q, want %q", got, want)
	}
	if got, want := c.Usage.PromptTokens, int64(20); got != want {
		t.Fatalf("usage seen by the SDK %d, want %d", got, want)
	}

	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := acc.Choices[0].Message.Content, "Hi from fake"; got != want {
		t.Fatalf("streamed content %q, want %q", got, want)
	}
	rows := a.waitRows(p, 2)
	if len(rows) != 2 || rows[0].CostNano != rows[1].CostNano || rows[0].CostNano <= 0 || rows[1].UsageEstimated {
		t.Fatalf("rows %+v", rows)
	}
	if !a.up.Last().IncludeUsage {
		t.Fatal("the SDK stream was not asked for usage upstream")
	}
}

// benchApp is an app with one project and a fake upstream answering a small chat completion.
// cpuTime is the CPU (user + system) this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU per operation (every goroutine: client, TokenGuard, fake
// upstream, usage writer), which wall time per op on 2 cores does not show.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

func benchApp(b *testing.B, observers ...proxy.Observer) (*app, testProject, string) {
	a := newApp(b, appOptions{observers: observers})
	p := a.project(projectOptions{daily: 1_000_000, monthly: 1_000_000, wsDaily: 1_000_000})
	a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Prompt: 20, Completion: 5}, Chunks: []string{"Hello", "!"}})
	body := chatBody("gpt-4o-mini", false, `,"max_tokens":100`)
	// Warm up: the key's one bcrypt check and the connection pools are not per request.
	for range 3 {
		if resp, b := a.chat(p.key, body); resp.StatusCode != 200 {
			a.t.Fatal(resp.Status, b)
		}
	}
	return a, p, body
}

// A proxied non-streaming request end to end: client → TokenGuard (auth, gate, relay, usage
// row) → fake OpenAI, all in this process. Compare with BenchmarkDirectUpstream: the
// difference is what TokenGuard adds.
func BenchmarkProxyChat(b *testing.B) {
	a, p, body := benchApp(b)
	benchChat(b, a, p, body)
}

// benchChat sends body as p's chat completion through a's proxy b.N times, reporting the
// process CPU per request.
func benchChat(b *testing.B, a *app, p testProject, body string) {
	url := a.srv.URL + "/proxy/openai/v1/chat/completions"
	b.ReportAllocs()
	cpu0 := cpuTime()
	defer func() { reportCPU(b, cpu0) }()
	for b.Loop() {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+p.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

// The same request sent straight to the fake upstream: the baseline for BenchmarkProxyChat.
func BenchmarkDirectUpstream(b *testing.B) {
	a, _, body := benchApp(b)
	url := a.up.URL + "/v1/chat/completions"
	b.ReportAllocs()
	cpu0 := cpuTime()
	defer func() { reportCPU(b, cpu0) }()
	for b.Loop() {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer sk-direct")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// The proxy's handler alone (no client connection to TokenGuard): auth, gate, upstream call
// to the fake, relay, usage row.
func BenchmarkProxyHandler(b *testing.B) {
	a, p, body := benchApp(b)
	h := a.srv.Config.Handler
	b.ReportAllocs()
	cpu0 := cpuTime()
	defer func() { reportCPU(b, cpu0) }()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/proxy/openai/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+p.key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// An unreachable provider gets 502 UPSTREAM_UNAVAILABLE, a logged row, and no reservation left.
func TestUpstreamUnreachable(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{daily: 10})
	a.up.Close()
	resp, body := a.chat(p.key, chatBody(testModel, false, ""))
	if resp.StatusCode != 502 || errorCode(t, body) != "UPSTREAM_UNAVAILABLE" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	rows := a.waitRows(p, 1)
	if len(rows) != 1 || rows[0].Status != 502 || rows[0].ErrorCode != "UPSTREAM_UNAVAILABLE" || rows[0].CostNano != 0 {
		t.Fatalf("rows %+v", rows)
	}
	if got := a.engine.Reserved(budget.ProjectScope, p.id); got != 0 {
		t.Fatalf("reserved %d", got)
	}
}

// Every metered OpenAI endpoint is priced from the provider's reported usage through the proxy.
func TestOpenAIEndpointsMetered(t *testing.T) {
	a := newApp(t, appOptions{})
	p := a.project(projectOptions{})
	a.up.Set(openaitest.Behavior{Usage: openaitest.Usage{Prompt: 100, Cached: 40, Completion: 30, Reasoning: 10}, Chunks: []string{"a", "b"}})
	tests := []struct {
		path, body string
		in, out    int64
	}{
		{"/proxy/openai/v1/responses", `{"model":"tg-test-model","input":"hi"}`, 100, 30},
		{"/proxy/openai/v1/responses", `{"model":"tg-test-model","input":"hi","stream":true}`, 100, 30},
		{"/proxy/openai/v1/embeddings", `{"model":"tg-test-model","input":"hi"}`, 100, 0},
	}
	for i, tt := range tests {
		resp := a.do(context.Background(), "POST", tt.path, tt.body, "x-tokenguard-key", p.key)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tt.path, resp.StatusCode, b)
		}
		rows := a.waitRows(p, i+1)
		r := rows[len(rows)-1]
		if r.InputTokens != tt.in || r.OutputTokens != tt.out || r.UsageEstimated || r.CostNano != (tt.in+tt.out)*1000 {
			t.Fatalf("%s %s: row %+v, want %d in / %d out at $1/M", tt.path, tt.body, r, tt.in, tt.out)
		}
	}
}
