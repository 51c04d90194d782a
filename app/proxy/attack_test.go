package proxy_test

// The budget attacks of issue 8, tried as the holder of one leaked project key would, against an
// upstream that generates and bills the way the providers do. Each checks the stated bound:
// spend passes a soft budget by at most one request's worst case, and a strict budget not at
// all (the upstream here never bills more input than the proxy's upper bound), for project and
// workspace budgets; nothing stays reserved; no row is $0 for work the upstream billed.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"tokenguard/app/budget"
	"tokenguard/app/pricing"
	"tokenguard/app/provider/anthropic"
	"tokenguard/app/provider/gemini"
	"tokenguard/app/provider/openai"
	"tokenguard/app/proxy"
)

// billingUpstream speaks the three providers' wire formats and bills like them: every choice
// writes `want` output tokens unless the request's cap stops it sooner, all n / candidateCount
// choices are billed, and the prompt costs a token per four bytes of body. While a gate is set,
// each request waits at the upstream until the test opens it, so a burst is in flight together.
type billingUpstream struct {
	*httptest.Server
	want    atomic.Int64
	arrived chan struct{}
	calls   atomic.Int64

	mu     sync.Mutex
	gate   chan struct{}
	caps   []int64  // the per-choice cap each request was sent with (0: none)
	bodies [][]byte // every request body as it arrived
}

func newBillingUpstream(t testing.TB) *billingUpstream {
	u := &billingUpstream{arrived: make(chan struct{}, 1024)}
	u.want.Store(500)
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

// hold makes the next requests wait; the returned func lets them all go.
func (u *billingUpstream) hold() (release func()) {
	g := make(chan struct{})
	u.mu.Lock()
	u.gate = g
	u.mu.Unlock()
	return func() {
		u.mu.Lock()
		u.gate = nil
		u.mu.Unlock()
		close(g)
	}
}

func (u *billingUpstream) sentCaps() []int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]int64(nil), u.caps...)
}

func (u *billingUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.calls.Add(1)
	u.mu.Lock()
	g := u.gate
	u.mu.Unlock()
	u.arrived <- struct{}{}
	if g != nil {
		<-g
	}
	b := gjson.ParseBytes(body)
	prompt := int64(len(body) / 4)
	var choices, capTokens int64 = 1, 0
	switch {
	case strings.HasSuffix(r.URL.Path, ":generateContent"):
		gc := b.Get("generationConfig")
		choices, capTokens = max(gc.Get("candidateCount").Int(), 1), gc.Get("maxOutputTokens").Int()
	case r.URL.Path == "/v1/messages":
		capTokens = b.Get("max_tokens").Int()
	default: // OpenAI chat completions
		choices = max(b.Get("n").Int(), 1)
		capTokens = b.Get("max_completion_tokens").Int()
		if mt := b.Get("max_tokens").Int(); mt > 0 && (capTokens == 0 || mt < capTokens) {
			capTokens = mt
		}
	}
	u.mu.Lock()
	u.caps = append(u.caps, capTokens)
	u.bodies = append(u.bodies, body)
	u.mu.Unlock()
	per := u.want.Load()
	if capTokens > 0 {
		per = min(per, capTokens)
	}
	out := per * choices
	model := b.Get("model").Str
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasSuffix(r.URL.Path, ":generateContent"):
		fmt.Fprintf(w, `{"candidates":[{"content":{"parts":[{"text":"ok"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":%d,"candidatesTokenCount":%d,"totalTokenCount":%d},"modelVersion":"gemini-2.0-flash"}`,
			prompt, out, prompt+out)
	case r.URL.Path == "/v1/messages":
		fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":%d}}`,
			model, prompt, out)
	case b.Get("stream").Bool():
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":null}]}\n\n", model)
		if b.Get("stream_options.include_usage").Bool() {
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":%q,\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", model, prompt, out, prompt+out)
		}
		io.WriteString(w, "data: [DONE]\n\n")
	default:
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			model, prompt, out, prompt+out)
	}
}

// newAttackApp is the proxy as main wires it, with the real price table, in front of one
// billing upstream serving all three providers.
func newAttackApp(t testing.TB) (*app, *billingUpstream, *pricing.Table) {
	t.Helper()
	a := newBaseApp(t)
	prices := mustPrices(t)
	up := newBillingUpstream(t)
	a.serve(proxy.Config{Prices: prices},
		proxy.Upstream{Adapter: openai.New(), BaseURL: up.URL, EnvKey: envKey},
		proxy.Upstream{Adapter: anthropic.New(), BaseURL: up.URL, EnvKey: anthropicEnvKey},
		proxy.Upstream{Adapter: gemini.New(), BaseURL: up.URL, EnvKey: geminiEnvKey},
	)
	return a, up, prices
}

// setMode sets the budget mode of a test project and its workspace.
func (a *app) setMode(p testProject, mode string) {
	a.t.Helper()
	if _, err := a.db.Write.Exec(`UPDATE projects SET budget_mode = ? WHERE id = ?`, mode, p.id); err != nil {
		a.t.Fatal(err)
	}
	if _, err := a.db.Write.Exec(`UPDATE workspaces SET budget_mode = ? WHERE id = ?`, mode, p.workspaceID); err != nil {
		a.t.Fatal(err)
	}
}

// burstResult is what one burst of concurrent requests came to.
type burstResult struct {
	admitted, refused int
	capHeaders        []string
}

// burst sends n identical requests at once, holds the admitted ones at the upstream until every
// request has either arrived there or been refused, then lets them finish.
func (a *app) burst(up *billingUpstream, key, path, body string, n int) burstResult {
	a.t.Helper()
	release := up.hold()
	var res burstResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	refused := make(chan struct{}, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := a.do(context.Background(), "POST", path, body, "x-tokenguard-key", key)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			switch resp.StatusCode {
			case http.StatusOK:
				res.admitted++
				if h := resp.Header.Get("X-Tokenguard-Max-Output-Tokens"); h != "" {
					res.capHeaders = append(res.capHeaders, h)
				}
			case http.StatusTooManyRequests:
				res.refused++
				if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"resetAt"`) {
					a.t.Errorf("429 without Retry-After or resetAt: %v %s", resp.Header, b)
				}
				refused <- struct{}{}
			default:
				a.t.Errorf("status %d: %s", resp.StatusCode, b)
				refused <- struct{}{}
			}
		}()
	}
	for got := 0; got < n; got++ {
		select {
		case <-up.arrived:
		case <-refused:
		case <-time.After(10 * time.Second):
			a.t.Fatalf("burst stuck after %d of %d", got, n)
		}
	}
	release()
	wg.Wait()
	return res
}

// The attacks: each scenario is sent in bursts until the budget refuses everything, soft and
// strict, against a project budget and against a workspace budget shared with another project.
func TestAttacksHoldTheBudget(t *testing.T) {
	scenarios := []struct {
		name, path, model, body string
		want                    int64 // output tokens the model writes per choice unless capped
		choices                 int64
		budget                  float64
	}{
		{"absurd max_tokens on an expensive model", "/proxy/openai/v1/chat/completions", "gpt-4o",
			`{"model":"gpt-4o","max_tokens":2000000000,"messages":[{"role":"user","content":"write forever"}]}`, 4000, 1, 0.02},
		{"n=8 without max_tokens", "/proxy/openai/v1/chat/completions", "gpt-4o-mini",
			`{"model":"gpt-4o-mini","n":8,"messages":[{"role":"user","content":"eight answers"}]}`, 2000, 8, 0.05},
		{"no cap and a long reasoning answer", "/proxy/openai/v1/chat/completions", "gpt-4o-mini",
			`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"think hard"}]}`, 12000, 1, 0.05},
		{"streamed, no cap, long answer", "/proxy/openai/v1/chat/completions", "gpt-4o-mini",
			`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"think hard"}]}`, 12000, 1, 0.05},
		{"priority processing billed above list price", "/proxy/openai/v1/chat/completions", "gpt-4o",
			`{"model":"gpt-4o","service_tier":"priority","messages":[{"role":"user","content":"fast please"}]}`, 3000, 1, 0.05},
		{"Anthropic max_tokens above the model's maximum", "/proxy/anthropic/v1/messages", "claude-3-5-haiku-latest",
			`{"model":"claude-3-5-haiku-latest","max_tokens":2000000000,"messages":[{"role":"user","content":"go"}]}`, 6000, 1, 0.05},
		{"Gemini candidateCount 8 without maxOutputTokens", "/proxy/gemini/v1beta/models/gemini-2.0-flash:generateContent", "gemini-2.0-flash",
			`{"contents":[{"parts":[{"text":"go"}]}],"generationConfig":{"candidateCount":8}}`, 3000, 8, 0.02},
	}
	for _, sc := range scenarios {
		for _, mode := range []string{"soft", "strict"} {
			for _, scope := range []string{"project", "workspace"} {
				t.Run(sc.name+"/"+mode+"/"+scope, func(t *testing.T) {
					a, up, prices := newAttackApp(t)
					up.want.Store(sc.want)
					opts := projectOptions{daily: sc.budget}
					if scope == "workspace" {
						opts = projectOptions{wsDaily: sc.budget}
					}
					p := a.project(opts)
					a.setMode(p, mode)
					limit := pricing.FromDollars(sc.budget)
					// The stated soft bound: one request's worst case past the budget. The
					// input bound is at most a token per byte plus the adapter's overhead.
					worst := prices.WorstCase(sc.model, int64(len(sc.body))+4096, 0, sc.choices)
					if strings.Contains(sc.body, `"priority"`) {
						worst = worst * 5 / 2
					}

					var admitted int
					for round := 0; round < 40; round++ {
						res := a.burst(up, p.key, sc.path, sc.body, 20)
						admitted += res.admitted
						if mode == "soft" && len(res.capHeaders) > 0 {
							t.Errorf("a soft budget lowered the cap: %v", res.capHeaders)
						}
						if res.admitted == 0 {
							break
						}
					}
					if admitted == 0 {
						t.Fatalf("nothing was ever admitted")
					}
					rows := a.waitRows(p, admitted)
					var spent, billed int64
					for _, r := range rows {
						spent += r.CostNano
						if r.Status == http.StatusOK {
							billed++
							if r.CostNano <= 0 {
								t.Errorf("row %s: $0 for work the upstream billed", r.RequestID)
							}
							if r.PricesVersion == "" || r.PricesVersion != prices.Version() {
								t.Errorf("row %s priced by %q, want the table's version %q", r.RequestID, r.PricesVersion, prices.Version())
							}
						}
					}
					if billed != int64(admitted) {
						t.Errorf("%d rows for %d admitted requests", billed, admitted)
					}
					bound := limit
					if mode == "soft" {
						bound += worst
					}
					if pricing.NanoUSD(spent) > bound {
						t.Errorf("spent %d on a %d budget (bound %d, %s)", spent, limit, bound, mode)
					}
					if got := a.engine.Spend(budget.WorkspaceScope, p.workspaceID).Day; got != pricing.NanoUSD(spent) {
						t.Errorf("workspace counter %d, rows sum %d", got, spent)
					}
					if got := a.engine.Reserved(budget.ProjectScope, p.id) + a.engine.Reserved(budget.WorkspaceScope, p.workspaceID); got != 0 {
						t.Errorf("left reserved: %d", got)
					}
					t.Logf("%s: %d admitted, spent $%.5f of $%.2f (bound $%.5f)", mode, admitted, pricing.NanoUSD(spent).Dollars(), sc.budget, bound.Dollars())
				})
			}
		}
	}
}

// A strict budget lowers the cap of the request that would pass it, says so, and the upstream
// gets the lowered cap in the client's own field; once even a short answer cannot be paid, the
// refusal says why and when to retry.
func TestStrictBudgetLowersTheCap(t *testing.T) {
	a, up, _ := newAttackApp(t)
	up.want.Store(100_000)
	p := a.project(projectOptions{daily: 0.01})
	a.setMode(p, "strict")
	// gpt-4o: $10 per million output tokens, so $0.01 affords about 1,000 output tokens.
	resp, body := a.chat(p.key, `{"model":"gpt-4o","max_tokens":16000,"messages":[{"role":"user","content":"long"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	h := resp.Header.Get("X-Tokenguard-Max-Output-Tokens")
	caps := up.sentCaps()
	if h == "" || len(caps) != 1 || fmt.Sprint(caps[0]) != h || caps[0] >= 1000 || caps[0] < 900 {
		t.Fatalf("cap header %q, caps sent %v; want one cap a little under 1,000 in both", h, caps)
	}
	if sent := up.lastBody(); sent.Get("max_tokens").Int() != caps[0] || sent.Get("max_completion_tokens").Exists() {
		t.Errorf("the cap did not go in the client's own field max_tokens: %s", sent.Raw)
	}
	resp, body = a.chat(p.key, `{"model":"gpt-4o","max_tokens":16000,"messages":[{"role":"user","content":"more"}]}`)
	if resp.StatusCode != 429 || errorCode(t, body) != "BUDGET_EXCEEDED" || resp.Header.Get("Retry-After") != "43200" {
		t.Fatalf("after the budget is spent: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	if !strings.Contains(body, `"resetAt":"2026-11-27T00:00:00Z"`) {
		t.Errorf("no reset time: %s", body)
	}
}

func (u *billingUpstream) lastBody() gjson.Result {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.bodies) == 0 {
		return gjson.Result{}
	}
	return gjson.ParseBytes(u.bodies[len(u.bodies)-1])
}

// Refusals caused by requests in flight say so and ask for a retry in seconds, not at midnight.
func TestRefusalNamesInFlightReservations(t *testing.T) {
	a, up, _ := newAttackApp(t)
	p := a.project(projectOptions{daily: 0.05})
	release := up.hold()
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, body := a.chat(p.key, `{"model":"gpt-4o","messages":[{"role":"user","content":"a long one"}]}`)
		if resp.StatusCode != 200 {
			t.Errorf("first request: %d %s", resp.StatusCode, body)
		}
	}()
	<-up.arrived
	resp, body := a.chat(p.key, `{"model":"gpt-4o","messages":[{"role":"user","content":"me too"}]}`)
	release()
	<-done
	if resp.StatusCode != 429 || !strings.Contains(body, "requests in flight have reserved the rest of it") || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("refusal beside a request in flight: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}

// Bad input from the key holder is refused before the gate, costs no row and no upstream call,
// and a refused request costs a bounded number of bytes on disk: twenty 429s for a 4 MB model
// name grow the database by kilobytes, not megabytes.
func TestCraftedRequestsRefused(t *testing.T) {
	a, up, _ := newAttackApp(t)
	p := a.project(projectOptions{daily: 0.000001})
	tests := []struct{ name, path, body string }{
		{"duplicate include_usage inside stream_options", "/proxy/openai/v1/chat/completions",
			`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true,"include_usage":false},"messages":[]}`},
		{"case variant of a read field", "/proxy/openai/v1/chat/completions",
			`{"model":"gpt-4o","stream":true,"stream_options":{"Include_Usage":false,"include_usage":true},"messages":[]}`},
		{"background Responses call", "/proxy/openai/v1/responses", `{"model":"gpt-4o","background":true,"input":"later"}`},
		{"NUL in the model", "/proxy/openai/v1/chat/completions", `{"model":"gpt-4o\u0000x","messages":[]}`},
		{"CR LF in the model", "/proxy/anthropic/v1/messages", `{"model":"claude\r\nx","max_tokens":5,"messages":[]}`},
		{"duplicate maxOutputTokens in generationConfig", "/proxy/gemini/v1beta/models/gemini-2.0-flash:generateContent",
			`{"contents":[],"generationConfig":{"maxOutputTokens":10,"max_output_tokens":100000}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.calls.Load()
			resp := a.do(context.Background(), "POST", tt.path, tt.body, "x-tokenguard-key", p.key)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || errorCode(t, string(b)) != "INVALID_REQUEST" {
				t.Fatalf("%d %s, want 400 INVALID_REQUEST", resp.StatusCode, b)
			}
			if up.calls.Load() != before {
				t.Errorf("the upstream was called")
			}
		})
	}

	// The project is blocked (a $0.000001 budget once spent); a 4 MB model name is refused before
	// any row is written, and ordinary 429 rows are small.
	a.chat(p.key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"spend it"}]}`)
	if err := a.writer.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		a.writer.Flush(context.Background())
		a.db.Write.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		var n int64
		for _, suffix := range []string{"", "-wal"} {
			if st, err := os.Stat(a.db.Path() + suffix); err == nil {
				n += st.Size()
			}
		}
		return n
	}
	start := size()
	huge := `{"model":"` + strings.Repeat("m", 4<<20) + `","messages":[]}`
	for range 20 {
		resp, body := a.chat(p.key, huge)
		if resp.StatusCode != 400 {
			t.Fatalf("4 MB model: %d %.200s", resp.StatusCode, body)
		}
		if resp, _ := a.chat(p.key, `{"model":"gpt-4o-mini","messages":[]}`); resp.StatusCode != 429 {
			t.Fatalf("blocked project answered %d", resp.StatusCode)
		}
	}
	if grew := size() - start; grew > 64<<10 {
		t.Errorf("20 refused requests grew the database by %d bytes", grew)
	}
}

// A 256 MB non-streamed answer is relayed without being held: the proxy allocates a small
// fraction of it while relaying (it buffered the whole body before), and the usage at its end is
// still read exactly.
func TestHugeResponseRelayedInBoundedMemory(t *testing.T) {
	const size = 256 << 20
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"`)
		chunk := []byte(strings.Repeat("a", 64<<10))
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		io.WriteString(w, `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":777,"total_tokens":788}}`)
	}))
	t.Cleanup(huge.Close)
	a := newBaseApp(t)
	a.serve(proxy.Config{Prices: mustPrices(t)}, proxy.Upstream{Adapter: openai.New(), BaseURL: huge.URL, EnvKey: envKey})
	p := a.project(projectOptions{daily: 10})

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest("POST", a.srv.URL+"/proxy/openai/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[]}`))
	req.Header.Set("x-tokenguard-key", p.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if n < size {
		t.Fatalf("relayed %d bytes, want over %d", n, size)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/8 {
		t.Errorf("relaying %d MB allocated %d MB", size>>20, alloc>>20)
	}
	rows := a.waitRows(p, 1)
	if len(rows) != 1 || rows[0].OutputTokens != 777 || rows[0].InputTokens != 11 || rows[0].UsageEstimated {
		t.Fatalf("rows %+v, want the exact usage from the end of the body", rows)
	}
}

func mustPrices(t testing.TB) *pricing.Table {
	t.Helper()
	p, err := pricing.New(nil, pricing.DefaultUnknownPrice())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A request for OpenAI's priority processing is billed at the premium, not at list price.
func TestPriorityProcessingBilledAtItsPremium(t *testing.T) {
	a, up, prices := newAttackApp(t)
	up.want.Store(1000)
	p := a.project(projectOptions{daily: 10})
	for _, tier := range []string{"default", "priority"} {
		body := `{"model":"gpt-4o","service_tier":"` + tier + `","messages":[{"role":"user","content":"hi"}]}`
		if resp, b := a.chat(p.key, body); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tier, resp.StatusCode, b)
		}
	}
	rows := a.waitRows(p, 2)
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	list := func(i int) int64 {
		return int64(prices.Quote("gpt-4o", pricing.Usage{Input: rows[i].InputTokens, Output: rows[i].OutputTokens}).Cost)
	}
	if rows[0].CostNano != list(0) || rows[1].CostNano != list(1)*5/2 {
		t.Errorf("costs %d (default) and %d (priority), want %d and %d", rows[0].CostNano, rows[1].CostNano, list(0), list(1)*5/2)
	}
}
