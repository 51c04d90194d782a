package proxy_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	anthropicsdk "github.com/anthropics/anthropic-sdk-go/v2"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"
	"google.golang.org/genai"

	"tokenguard/app/pricing"
	"tokenguard/app/provider/anthropic"
	"tokenguard/app/provider/gemini"
	openaiadapter "tokenguard/app/provider/openai"
	"tokenguard/app/provider/providertest"
	"tokenguard/app/proxy"
	"tokenguard/store"
)

// Models of each provider that the embedded price table knows.
const (
	crossOpenAI    = "gpt-4o-mini"
	crossAnthropic = "claude-3-5-haiku-latest"
	crossGemini    = "gemini-2.5-flash"
)

// crossApp is a proxy in front of the three providers, each a replay of its recorded wire
// answer (text, a tool call, usage with cached and reasoning tokens).
type crossApp struct {
	*multiApp
	ups map[string]*providertest.Replay
}

// crossKeys are the operator's env keys of the three providers.
var crossKeys = map[string]string{"openai": envKey, "anthropic": anthropicEnvKey, "gemini": geminiEnvKey}

func newCrossApp(t testing.TB) *crossApp {
	t.Helper()
	a := newBaseApp(t)
	prices, err := pricing.New(nil, pricing.DefaultUnknownPrice())
	if err != nil {
		t.Fatal(err)
	}
	c := &crossApp{multiApp: &multiApp{app: a}, ups: map[string]*providertest.Replay{}}
	for _, name := range []string{"openai", "anthropic", "gemini"} {
		c.ups[name] = providertest.NewReplay(t, name)
	}
	a.serve(proxy.Config{Prices: prices},
		proxy.Upstream{Adapter: openaiadapter.New(), BaseURL: c.ups["openai"].URL, EnvKey: crossKeys["openai"]},
		proxy.Upstream{Adapter: anthropic.New(), BaseURL: c.ups["anthropic"].URL, EnvKey: crossKeys["anthropic"]},
		proxy.Upstream{Adapter: gemini.New(), BaseURL: c.ups["gemini"].URL, EnvKey: crossKeys["gemini"]},
	)
	return c
}

// fallingBack is a project at 85% of its daily budget of $100, so its requests go to fallback.
func (c *crossApp) fallingBack(fallback string) testProject {
	p := c.project(projectOptions{daily: 100, fallback: fallback})
	c.spend(p, 85)
	return p
}

// checkServed checks that the row records the provider that served, both models, and the
// tokens that provider reported.
func checkServed(t *testing.T, r store.UsageRow, served, original, final string, stream bool) {
	t.Helper()
	u := providertest.WireUsage[served]
	in := u.Input + u.CacheRead + u.CacheWrite
	if r.Provider != served || r.OriginalModel != original || r.FinalModel != final || !r.WasFallback || r.Status != 200 || r.ErrorCode != "" {
		t.Errorf("row %+v: want served by %s, %s → %s, status 200", r, served, original, final)
	}
	if r.InputTokens != in || r.OutputTokens != u.Output || r.CacheReadTokens != u.CacheRead || r.CacheWriteTokens != u.CacheWrite || r.UsageEstimated || r.Stream != stream {
		t.Errorf("row tokens in %d (cached %d, written %d) out %d estimated %v stream %v; %s reported in %d (cached %d, written %d) out %d",
			r.InputTokens, r.CacheReadTokens, r.CacheWriteTokens, r.OutputTokens, r.UsageEstimated, r.Stream, served, in, u.CacheRead, u.CacheWrite, u.Output)
	}
}

// checkStreamAndCall checks p's n rows, the first a stream and the second a call, each served
// by served for original → final, and what served received.
func (c *crossApp) checkStreamAndCall(t *testing.T, p testProject, n int, served, original, final string) {
	t.Helper()
	rows := c.waitRows(p, n)
	if len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	// The stream's handler can still be settling when its client, done reading, sends the
	// call, so the two rows may be stored in either order.
	if !rows[0].Stream {
		rows[0], rows[1] = rows[1], rows[0]
	}
	checkServed(t, rows[0], served, original, final, true)
	checkServed(t, rows[1], served, original, final, false)
	c.checkUpstream(t, served, final, p.key)
}

// checkUpstream checks what the serving provider received: its own env key in its own slot,
// never the caller's key or the TokenGuard key, and the fallback model.
func (c *crossApp) checkUpstream(t *testing.T, served, model, tgKey string) {
	t.Helper()
	for _, s := range c.ups[served].Requests() {
		var key string
		switch served {
		case "openai":
			key = strings.TrimPrefix(s.Header.Get("Authorization"), "Bearer ")
		case "anthropic":
			key = s.Header.Get("X-Api-Key")
		case "gemini":
			key = s.Header.Get("X-Goog-Api-Key")
		}
		if key != crossKeys[served] {
			t.Errorf("%s received key %q, want its env key", served, key)
		}
		for _, vs := range s.Header {
			for _, v := range vs {
				if strings.Contains(v, tgKey) {
					t.Errorf("the TokenGuard key reached %s", served)
				}
			}
		}
		if !strings.Contains(string(s.Body), `"`+model+`"`) && !strings.Contains(s.Path, model) {
			t.Errorf("%s was not asked for %s: %s %s", served, model, s.Path, s.Body)
		}
	}
}

// The OpenAI Go SDK, unchanged, on a project whose fallback is an Anthropic model: the chat
// stream and the chat completion come from Anthropic, in OpenAI's wire format, with the text,
// the tool call and its arguments intact, finish_reason tool_calls and the usage Anthropic
// reported; the rows record Anthropic as the provider and those tokens.
func TestOpenAISDKAnsweredByAnthropic(t *testing.T) {
	c := newCrossApp(t)
	p := c.fallingBack(crossAnthropic)
	client := openai.NewClient(option.WithBaseURL(c.srv.URL+"/proxy/openai/v1"), option.WithAPIKey(p.key), option.WithMaxRetries(0))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model: crossOpenAI,
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("You are terse."), openai.SystemMessage("Use tools."),
			openai.UserMessage("What is the weather in Paris?"),
		},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
			Name: "get_weather", Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
		})},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		if !acc.AddChunk(stream.Current()) {
			t.Fatalf("the SDK could not accumulate chunk %s", stream.Current().RawJSON())
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	u := providertest.WireUsage["anthropic"]
	checkOpenAIAnswer(t, acc.ChatCompletion, u.Input+u.CacheRead+u.CacheWrite, u.CacheRead, u.Output)

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
	cc, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	checkOpenAIAnswer(t, *cc, u.Input+u.CacheRead+u.CacheWrite, u.CacheRead, u.Output)

	c.checkStreamAndCall(t, p, 2, "anthropic", crossOpenAI, crossAnthropic)
	if n := len(c.ups["openai"].Requests()); n != 0 {
		t.Errorf("OpenAI got %d requests, want none", n)
	}
	// Both system messages reached Anthropic's one system slot.
	sys := gjsonGet(t, c.ups["anthropic"].Last().Body, "system")
	if !strings.Contains(sys, "You are terse.") || !strings.Contains(sys, "Use tools.") {
		t.Errorf("Anthropic's system = %s", sys)
	}
}

func checkOpenAIAnswer(t *testing.T, cc openai.ChatCompletion, prompt, cached, completion int64) {
	t.Helper()
	if len(cc.Choices) != 1 {
		t.Fatalf("%d choices", len(cc.Choices))
	}
	m := cc.Choices[0].Message
	if m.Content != providertest.WireText {
		t.Errorf("content %q, want %q", m.Content, providertest.WireText)
	}
	if len(m.ToolCalls) != 1 || m.ToolCalls[0].Function.Name != providertest.WireToolName || compactJSON(t, m.ToolCalls[0].Function.Arguments) != providertest.WireToolArgs || m.ToolCalls[0].ID == "" {
		t.Errorf("tool calls %+v", m.ToolCalls)
	}
	if got, want := cc.Choices[0].FinishReason, "tool_calls"; got != want {
		t.Errorf("finish_reason %q, want %q", got, want)
	}
	if cc.Usage.PromptTokens != prompt || cc.Usage.PromptTokensDetails.CachedTokens != cached || cc.Usage.CompletionTokens != completion {
		t.Errorf("usage %+v, want prompt %d (cached %d), completion %d", cc.Usage, prompt, cached, completion)
	}
}

// The Anthropic Go SDK, unchanged, on a project whose fallback is a Gemini model: the stream
// (message_start … message_stop) and the message come from Gemini, with the text, the
// tool_use block and its input, stop_reason tool_use and Gemini's usage; the rows record
// Gemini. The thought signature Gemini sent comes back in the tool_use id, and the next turn
// returns it to Gemini with the tool result.
func TestAnthropicSDKAnsweredByGemini(t *testing.T) {
	c := newCrossApp(t)
	p := c.fallingBack(crossGemini)
	client := anthropicsdk.NewClient(anthropicoption.WithBaseURL(c.srv.URL+"/proxy/anthropic"), anthropicoption.WithAPIKey(p.key), anthropicoption.WithMaxRetries(0))
	ctx := context.Background()
	params := anthropicsdk.MessageNewParams{
		Model:     "claude-sonnet-4-5-20250929",
		MaxTokens: 1000,
		System:    []anthropicsdk.TextBlockParam{{Text: "You are terse."}, {Text: "Use tools."}},
		Messages:  []anthropicsdk.MessageParam{anthropicsdk.NewUserMessage(anthropicsdk.NewTextBlock("What is the weather in Paris?"))},
		Tools: []anthropicsdk.ToolUnionParam{{OfTool: &anthropicsdk.ToolParam{Name: "get_weather",
			InputSchema: anthropicsdk.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}}}}},
	}
	stream := client.Messages.NewStreaming(ctx, params)
	var acc anthropicsdk.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	checkAnthropicAnswer(t, &acc)
	msg, err := client.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	checkAnthropicAnswer(t, msg)

	// The next turn: the tool result for Gemini's call goes back with its signature.
	call := msg.Content[1]
	params.Messages = append(params.Messages, msg.ToParam(),
		anthropicsdk.NewUserMessage(anthropicsdk.NewToolResultBlock(call.ID, `{"temp":21}`, false)))
	if _, err := client.Messages.New(ctx, params); err != nil {
		t.Fatal(err)
	}
	sent := string(c.ups["gemini"].Last().Body)
	if !strings.Contains(sent, `"thoughtSignature":"CiQBjz1rX+/sig=="`) || !strings.Contains(sent, `"functionResponse":{"name":"get_weather","response":{"temp":21}}`) {
		t.Errorf("the next turn sent Gemini %s", sent)
	}

	c.checkStreamAndCall(t, p, 3, "gemini", params.Model, crossGemini)
}

func checkAnthropicAnswer(t *testing.T, m *anthropicsdk.Message) {
	t.Helper()
	if len(m.Content) != 2 || m.Content[0].Text != providertest.WireText || m.Content[1].Type != "tool_use" ||
		m.Content[1].Name != providertest.WireToolName || compactJSON(t, string(m.Content[1].Input)) != providertest.WireToolArgs {
		t.Fatalf("content %+v", m.Content)
	}
	if m.StopReason != anthropicsdk.StopReasonToolUse {
		t.Errorf("stop_reason %q", m.StopReason)
	}
	u := providertest.WireUsage["gemini"]
	if m.Usage.InputTokens != u.Input || m.Usage.CacheReadInputTokens != u.CacheRead || m.Usage.OutputTokens != u.Output {
		t.Errorf("usage %+v, want input %d, cache read %d, output %d", m.Usage, u.Input, u.CacheRead, u.Output)
	}
}

// The Gemini Go SDK, unchanged, on a project whose fallback is an OpenAI model: the SSE stream
// and the answer come from OpenAI, in Gemini's wire format, with the text, the functionCall
// and its args and OpenAI's usage (cached and reasoning tokens in Gemini's fields); the rows
// record OpenAI.
func TestGeminiSDKAnsweredByOpenAI(t *testing.T) {
	c := newCrossApp(t)
	p := c.fallingBack(crossOpenAI)
	ctx := context.Background()
	client, err := genai.NewClient(ctx, &genai.ClientConfig{APIKey: p.key, Backend: genai.BackendGeminiAPI,
		HTTPOptions: genai.HTTPOptions{BaseURL: c.srv.URL + "/proxy/gemini/"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &genai.GenerateContentConfig{
		SystemInstruction: &genai.Content{Parts: []*genai.Part{{Text: "You are terse."}, {Text: "Use tools."}}},
		Tools: []*genai.Tool{{FunctionDeclarations: []*genai.FunctionDeclaration{{Name: "get_weather",
			Parameters: &genai.Schema{Type: genai.TypeObject, Properties: map[string]*genai.Schema{"city": {Type: genai.TypeString}}}}}}},
	}
	var text strings.Builder
	var calls []*genai.FunctionCall
	var last *genai.GenerateContentResponse
	for chunk, err := range client.Models.GenerateContentStream(ctx, crossGemini, genai.Text("What is the weather in Paris?"), cfg) {
		if err != nil {
			t.Fatal(err)
		}
		text.WriteString(chunk.Text())
		calls = append(calls, chunk.FunctionCalls()...)
		last = chunk
	}
	checkGeminiAnswer(t, text.String(), calls, last)
	resp, err := client.Models.GenerateContent(ctx, crossGemini, genai.Text("What is the weather in Paris?"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkGeminiAnswer(t, resp.Text(), resp.FunctionCalls(), resp)

	c.checkStreamAndCall(t, p, 2, "openai", crossGemini, crossOpenAI)
	// OpenAI was asked for the stream's usage, and got both system messages.
	sent := string(c.ups["openai"].Requests()[0].Body)
	if !strings.Contains(sent, `"include_usage":true`) || !strings.Contains(sent, `{"role":"system","content":"You are terse."},{"role":"system","content":"Use tools."}`) {
		t.Errorf("OpenAI was sent %s", sent)
	}
}

func checkGeminiAnswer(t *testing.T, text string, calls []*genai.FunctionCall, last *genai.GenerateContentResponse) {
	t.Helper()
	if text != providertest.WireText {
		t.Errorf("text %q, want %q", text, providertest.WireText)
	}
	if len(calls) != 1 || calls[0].Name != providertest.WireToolName || calls[0].Args["city"] != "Paris" || calls[0].Args["unit"] != "c" {
		t.Errorf("function calls %+v", calls)
	}
	u := providertest.WireUsage["openai"]
	if last == nil || last.UsageMetadata == nil {
		t.Fatal("no usage metadata")
	}
	um := last.UsageMetadata
	if int64(um.PromptTokenCount) != u.Input+u.CacheRead || int64(um.CachedContentTokenCount) != u.CacheRead ||
		int64(um.CandidatesTokenCount+um.ThoughtsTokenCount) != u.Output || um.ThoughtsTokenCount != 12 {
		t.Errorf("usage %+v", um)
	}
	if len(last.Candidates) == 0 || last.Candidates[0].FinishReason != genai.FinishReasonStop {
		t.Errorf("last candidate %+v", last.Candidates)
	}
}

// A project at 85% of its budget whose fallback is another provider's model keeps getting 200s
// from that provider until its spend reaches 100%, then 429 BUDGET_EXCEEDED.
func TestCrossProviderFallbackBudget(t *testing.T) {
	c := newCrossApp(t)
	p := c.project(projectOptions{daily: 0.01, fallback: crossAnthropic})
	c.spend(p, 0.0085)
	body := `{"model":"` + crossOpenAI + `","max_tokens":50,"messages":[{"role":"user","content":"weather?"}]}`
	served := 0
	for i := 0; i < 100; i++ {
		resp, b := c.chat(p.key, body)
		if resp.StatusCode == http.StatusTooManyRequests {
			if got := errorCode(t, b); got != "BUDGET_EXCEEDED" {
				t.Fatalf("429 with %q", got)
			}
			break
		}
		if resp.StatusCode != 200 || resp.Header.Get("X-Tokenguard-Final-Model") != crossAnthropic || !strings.Contains(b, providertest.WireText) {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
		served++
	}
	if served == 0 || served == 100 {
		t.Fatalf("%d requests served before the budget was spent", served)
	}
	rows := c.waitRows(p, served+1)
	var spent int64 = int64(pricing.FromDollars(0.0085))
	for _, r := range rows[:served] {
		if r.Provider != "anthropic" || r.Status != 200 {
			t.Errorf("row %+v", r)
		}
		spent += r.CostNano
	}
	if last := rows[len(rows)-1]; last.Status != 429 || last.ErrorCode != "BUDGET_EXCEEDED" {
		t.Errorf("last row %+v", last)
	}
	if spent < int64(pricing.FromDollars(0.01)) {
		t.Errorf("refused at $%.6f, under the $0.01 budget", float64(spent)/1e9)
	}
}

// The fallback's provider gets the project's stored key for it, or the server's; never the
// caller's own key, which is for the caller's provider. With neither, the request is refused
// with NO_PROVIDER_KEY naming the missing provider.
func TestCrossProviderKeys(t *testing.T) {
	c := newCrossApp(t)
	body := `{"model":"` + crossOpenAI + `","messages":[{"role":"user","content":"weather?"}]}`

	p := c.fallingBack(crossAnthropic)
	const stored = "sk-ant-stored-project-key-0000000"
	c.storeKey(p, "anthropic", stored)
	resp, b := c.chat(p.key, body, "Authorization", "Bearer sk-caller-own-openai-key-00000")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if got := c.ups["anthropic"].Last().Header.Get("X-Api-Key"); got != stored {
		t.Errorf("Anthropic got key %q, want the project's stored key", got)
	}

	bare := &multiApp{app: newBaseApp(t)}
	prices, _ := pricing.New(nil, pricing.DefaultUnknownPrice())
	ant := providertest.NewReplay(t, "anthropic")
	bare.serve(proxy.Config{Prices: prices},
		proxy.Upstream{Adapter: openaiadapter.New(), BaseURL: c.ups["openai"].URL, EnvKey: envKey},
		proxy.Upstream{Adapter: anthropic.New(), BaseURL: ant.URL})
	q := bare.project(projectOptions{daily: 100, fallback: crossAnthropic})
	bare.spend(q, 85)
	resp, b = bare.chat(q.key, body, "Authorization", "Bearer sk-caller-own-openai-key-00000")
	if resp.StatusCode != 400 || errorCode(t, b) != "NO_PROVIDER_KEY" || !strings.Contains(b, "anthropic") {
		t.Errorf("without an Anthropic key: %d %s", resp.StatusCode, b)
	}
	if n := len(ant.Requests()); n != 0 {
		t.Errorf("Anthropic got %d requests without a key of its own", n)
	}
}

// An error of the fallback's provider reaches the caller in its own provider's error shape,
// with the status and the provider's message, and is logged as an upstream error.
func TestCrossProviderErrorShape(t *testing.T) {
	c := newCrossApp(t)
	p := c.fallingBack(crossAnthropic)
	c.ups["anthropic"].Fail(529)
	resp, b := c.chat(p.key, `{"model":"`+crossOpenAI+`","messages":[{"role":"user","content":"hi"}]}`)
	var e struct {
		Error struct{ Message, Type string }
	}
	if err := json.Unmarshal([]byte(b), &e); err != nil || resp.StatusCode != 529 || e.Error.Type != "server_error" || !strings.Contains(e.Error.Message, "replayed failure") {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
	rows := c.waitRows(p, 1)
	if len(rows) != 1 || rows[0].Provider != "anthropic" || rows[0].ErrorCode != "UPSTREAM_ERROR" || rows[0].CostNano != 0 {
		t.Errorf("rows %+v", rows)
	}
}

// A request field with no translation is refused with a 400 naming it, or dropped and named
// in X-Tokenguard-Dropped-Fields.
func TestCrossProviderUntranslatable(t *testing.T) {
	c := newCrossApp(t)
	p := c.fallingBack(crossAnthropic)
	resp, b := c.chat(p.key, `{"model":"`+crossOpenAI+`","n":2,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 400 || errorCode(t, b) != "INVALID_REQUEST" || !strings.Contains(b, `\"n\" other than 1`) {
		t.Errorf("n=2: %d %s", resp.StatusCode, b)
	}
	resp, b = c.chat(p.key, `{"model":"`+crossOpenAI+`","seed":7,"user":"u1","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get("X-Tokenguard-Dropped-Fields") != "seed, user" {
		t.Errorf("seed: %d %q %s", resp.StatusCode, resp.Header.Get("X-Tokenguard-Dropped-Fields"), b)
	}
}

// gjsonGet is the raw JSON of path in body.
func gjsonGet(t *testing.T, body []byte, path string) string {
	t.Helper()
	return gjson.GetBytes(body, path).Raw
}

// compactJSON is s without insignificant spaces, for comparing JSON text.
func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("%q is not JSON: %v", s, err)
	}
	return b.String()
}

// With fallbackOnError, a 429 or 5xx of the requested model's provider, before anything was
// relayed, is retried once on the fallback model (here another provider's, translated): the
// client gets the fallback's answer, told in X-Tokenguard-Failover, and the failed attempt is a
// row of its own at no cost. Other errors, and projects without the setting, pass through.
func TestFailoverOnError(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		onError    bool
		wantStatus int
	}{
		{"503 fails over", 503, true, 200},
		{"429 fails over", 429, true, 200},
		{"500 without fallbackOnError passes through", 500, false, 500},
		{"400 passes through", 400, true, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCrossApp(t)
			p := c.project(projectOptions{daily: 100, fallback: crossAnthropic})
			if tt.onError {
				err := c.db.WriteTx(context.Background(), func(tx *sql.Tx) error {
					_, err := tx.Exec(`UPDATE projects SET fallback_on_error = 1 WHERE id = ?`, p.id)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			c.ups["openai"].Fail(tt.status)
			resp, b := c.chat(p.key, `{"model":"`+crossOpenAI+`","messages":[{"role":"user","content":"weather?"}]}`)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%d %s, want %d", resp.StatusCode, b, tt.wantStatus)
			}
			rows := c.waitRows(p, 1)
			first := rows[0]
			if first.Provider != "openai" || first.Status != tt.status || first.ErrorCode != "UPSTREAM_ERROR" || first.CostNano != 0 || first.WasFallback {
				t.Errorf("first row %+v", first)
			}
			if tt.wantStatus != 200 {
				if len(rows) != 1 || len(c.ups["anthropic"].Requests()) != 0 {
					t.Errorf("%d rows, %d fallback requests; want no failover", len(rows), len(c.ups["anthropic"].Requests()))
				}
				return
			}
			if !strings.Contains(b, providertest.WireText) || resp.Header.Get("X-Tokenguard-Failover") != strconv.Itoa(tt.status) || resp.Header.Get("X-Tokenguard-Fallback") != "true" {
				t.Errorf("answer %s, headers %v", b, resp.Header)
			}
			rows = c.waitRows(p, 2)
			if len(rows) != 2 {
				t.Fatalf("%d rows, want 2", len(rows))
			}
			checkServed(t, rows[1], "anthropic", crossOpenAI, crossAnthropic, false)
			if rows[0].RequestID == rows[1].RequestID || resp.Header.Get("X-Tokenguard-Request-Id") != rows[1].RequestID {
				t.Errorf("request ids %q %q, header %q", rows[0].RequestID, rows[1].RequestID, resp.Header.Get("X-Tokenguard-Request-Id"))
			}
		})
	}
}

// The cap a cross-provider fallback sends is the one its reservation assumed: the caller's own,
// clamped to the fallback model's maximum output; the maximum when the caller named none
// (Anthropic requires a cap); and a strict budget's lowered cap, in Anthropic's field.
func TestCrossProviderCaps(t *testing.T) {
	prices, err := pricing.New(nil, pricing.DefaultUnknownPrice())
	if err != nil {
		t.Fatal(err)
	}
	limit := prices.MaxOutput(crossAnthropic)
	tests := []struct {
		name   string
		cap    string // the request's max_tokens field, "" for none
		strict bool
		want   func(header string) int64
	}{
		{"no cap", "", false, func(string) int64 { return limit }},
		{"own cap", `"max_tokens":50,`, false, func(string) int64 { return 50 }},
		{"cap above the model's maximum", `"max_completion_tokens":1000000,`, false, func(string) int64 { return limit }},
		{"strict budget", "", true, func(h string) int64 { n, _ := strconv.ParseInt(h, 10, 64); return n }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCrossApp(t)
			p := c.project(projectOptions{daily: 0.01, fallback: crossAnthropic})
			c.spend(p, 0.0085)
			if tt.strict {
				c.setMode(p, "strict")
			}
			resp, b := c.chat(p.key, `{"model":"`+crossOpenAI+`",`+tt.cap+`"messages":[{"role":"user","content":"weather?"}]}`)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			h := resp.Header.Get("X-Tokenguard-Max-Output-Tokens")
			got := gjson.GetBytes(c.ups["anthropic"].Last().Body, "max_tokens").Int()
			if want := tt.want(h); got != want || want <= 0 {
				t.Errorf("Anthropic got max_tokens %d, want %d (strict header %q)", got, want, h)
			}
			if tt.strict && (h == "" || got >= limit) {
				t.Errorf("strict: header %q, cap %d not lowered", h, got)
			}
		})
	}
}

// A Gemini caller that streams without alt=sse gets its JSON array, element by element, from
// a fallback of another provider, with the text, the function call and the usage.
func TestGeminiArrayStreamAnsweredByAnthropic(t *testing.T) {
	c := newCrossApp(t)
	p := c.fallingBack(crossAnthropic)
	resp, b := c.send("POST", "/proxy/gemini/v1beta/models/"+crossGemini+":streamGenerateContent",
		`{"contents":[{"role":"user","parts":[{"text":"weather?"}]}]}`, "x-goog-api-key", p.key)
	var chunks []map[string]any
	if err := json.Unmarshal([]byte(b), &chunks); err != nil || resp.StatusCode != 200 || len(chunks) < 2 {
		t.Fatalf("%d %v %s", resp.StatusCode, err, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var text, args strings.Builder
	for _, ch := range chunks {
		raw, _ := json.Marshal(ch)
		gjson.GetBytes(raw, "candidates.0.content.parts").ForEach(func(_, part gjson.Result) bool {
			text.WriteString(part.Get("text").Str)
			args.WriteString(part.Get("functionCall.args").Raw)
			return true
		})
	}
	if text.String() != providertest.WireText || args.String() != providertest.WireToolArgs {
		t.Errorf("text %q, args %s", text.String(), args.String())
	}
	rows := c.waitRows(p, 1)
	checkServed(t, rows[0], "anthropic", crossGemini, crossAnthropic, true)
}

// Endpoints a fallback of another provider cannot answer are refused, naming the endpoint;
// Gemini's other API versions are answered like v1beta.
func TestCrossProviderEndpoints(t *testing.T) {
	c := newCrossApp(t)
	p := c.fallingBack(crossAnthropic)
	tests := []struct {
		name, path, body string
		status           int
	}{
		{"OpenAI embeddings", "/proxy/openai/v1/embeddings", `{"model":"text-embedding-3-small","input":"hi"}`, 400},
		{"OpenAI Responses", "/proxy/openai/v1/responses", `{"model":"` + crossOpenAI + `","input":"hi"}`, 400},
		{"Gemini v1", "/proxy/gemini/v1/models/" + crossGemini + ":generateContent", `{"contents":[{"parts":[{"text":"hi"}]}]}`, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := c.send("POST", tt.path, tt.body, "x-tokenguard-key", p.key)
			if resp.StatusCode != tt.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, b, tt.status)
			}
			if tt.status == 400 && (errorCode(t, b) != "INVALID_REQUEST" || !strings.Contains(b, "cannot be translated")) {
				t.Errorf("refusal %s", b)
			}
		})
	}
}
