package main

// End-to-end tests of the real program: the server as wired in main.go, on 127.0.0.1:0 with a
// SQLite file in a temp dir, an httptest upstream speaking OpenAI's wire format, set up through
// the real JSON API. Shutdown and crash tests run the server as a child process (this test
// binary re-executed into TestHelperProcess) so they can send it real signals.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tokenguard/app/provider/openai/openaitest"
	"tokenguard/store"
)

// helperEnv marks the re-executed test binary as the server child.
const helperEnv = "TOKENGUARD_TEST_HELPER_PROCESS"

// TestHelperProcess is not a test: it is the server child of the signal tests, run exactly as
// main runs it.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("only runs as the child of the signal tests")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, []string{"serve"}, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tokenguard:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// syncBuffer is a log sink several goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testApp is the real server running in this process.
type testApp struct {
	*Main
	URL string
	log *syncBuffer
	// close stops the server (once) waiting up to 10 s for requests in flight; stop does the
	// same with the caller's deadline.
	close func() error
	stop  func(context.Context) error
}

// startApp runs the real program with env as its whole environment, stopped when the test ends
// (or earlier with Close). Its log is printed if the test fails.
func startApp(t *testing.T, env map[string]string) *testApp {
	t.Helper()
	logs := &syncBuffer{}
	m := NewMain(logs)
	m.Getenv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := m.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close(context.Background())
		t.Fatalf("start: %v\n%s", err, logs)
	}
	a := &testApp{Main: m, URL: "http://" + m.Addr(), log: logs}
	var once sync.Once
	var closeErr error
	a.stop = func(ctx context.Context) error {
		once.Do(func() { closeErr = m.Close(ctx) })
		return closeErr
	}
	a.close = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return a.stop(ctx)
	}
	t.Cleanup(func() {
		a.close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	return a
}

// Secrets the tests look for in logs.
const (
	testPassword    = "correct horse battery"
	testProviderKey = "sk-test-operator-key-3f9a"
)

// testEnv is a complete environment for the server: a temp database, the given OpenAI
// upstream with an env provider key, and a short flush interval. The other providers' upstreams
// are the same local address, so /readyz resolves no outside host.
func testEnv(dbPath, upstreamURL string) map[string]string {
	return map[string]string{
		"LISTEN_ADDR":            "127.0.0.1:0",
		"DATABASE_URL":           dbPath,
		"OPENAI_UPSTREAM_URL":    upstreamURL,
		"ANTHROPIC_UPSTREAM_URL": upstreamURL,
		"GEMINI_UPSTREAM_URL":    upstreamURL,
		"OPENAI_API_KEY":         testProviderKey,
		"FLUSH_INTERVAL":         "50ms",
	}
}

// apiCall sends a JSON request to the management API and decodes the answer into out (if not
// nil), returning the status.
func apiCall(t *testing.T, method, url, token string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// owner is a signed-up user with one project, created through the JSON API.
type owner struct {
	Token       string
	WorkspaceID int64
	ProjectID   int64
	ProjectName string
	Key         string
}

// signUpWithProject signs a new user up on the server at base and creates a project with the
// given daily budget in USD (0 = none).
func signUpWithProject(t *testing.T, base string, dailyBudgetUSD float64) owner {
	t.Helper()
	var s struct {
		Token     string `json:"token"`
		Workspace struct {
			ID int64 `json:"id"`
		} `json:"workspace"`
	}
	if got, want := apiCall(t, "POST", base+"/api/auth/signup", "",
		map[string]any{"email": "ada@example.com", "password": testPassword, "name": "Ada"}, &s), 201; got != want {
		t.Fatalf("signup status = %d, want %d", got, want)
	}
	project := map[string]any{"name": "checkout-bot"}
	if dailyBudgetUSD > 0 {
		project["dailyBudgetUsd"] = dailyBudgetUSD
	}
	var p struct {
		Project struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"project"`
		Key string `json:"key"`
	}
	if got, want := apiCall(t, "POST", base+"/api/projects", s.Token, project, &p), 201; got != want {
		t.Fatalf("create project status = %d, want %d", got, want)
	}
	if !strings.HasPrefix(p.Key, "tg_live_") {
		t.Fatalf("project key = %q, want a tg_live_ key", p.Key)
	}
	return owner{Token: s.Token, WorkspaceID: s.Workspace.ID, ProjectID: p.Project.ID, ProjectName: p.Project.Name, Key: p.Key}
}

// usageRow is the part of a GET /api/usage row these tests read.
type usageRow struct {
	Status           int     `json:"status"`
	ErrorCode        string  `json:"errorCode"`
	EstimatedCostUsd float64 `json:"estimatedCostUsd"`
	InputTokens      int64   `json:"inputTokens"`
}

func listUsage(t *testing.T, base, token string) []usageRow {
	t.Helper()
	var page struct {
		Data []usageRow `json:"data"`
	}
	if got, want := apiCall(t, "GET", base+"/api/usage?limit=1000", token, nil, &page), 200; got != want {
		t.Fatalf("GET /api/usage status = %d, want %d", got, want)
	}
	return page.Data
}

// waitFor polls cond until it holds, failing the test after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// chat sends one chat completion through the proxy; the message names the request number n,
// which the numbered upstream reports back as 1000+n prompt tokens.
func chat(ctx context.Context, client *http.Client, base, key string, n int, stream bool) (*http.Response, error) {
	body := fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"req %d"}],"stream":%t}`, n, stream)
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/proxy/openai/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	return client.Do(req)
}

// TestRestartKeepsCounters: a budget used up before the server restarts on the same database
// still blocks after it — for each of the four budgets, so every counter scope and window is
// loaded back — and the spend is still in the usage log.
func TestRestartKeepsCounters(t *testing.T) {
	// A budget far below one request's cost: the first request is admitted, the next is not.
	const tiny = 0.000001
	tests := []struct {
		name    string
		scope   string // "projects" or "workspaces"
		field   string
		message string
	}{
		{"project daily", "projects", "dailyBudgetUsd", "Daily spend limit reached"},
		{"project monthly", "projects", "monthlyBudgetUsd", "Monthly spend limit reached"},
		{"workspace daily", "workspaces", "dailyBudgetUsd", "Workspace daily spend limit reached"},
		{"workspace monthly", "workspaces", "monthlyBudgetUsd", "Workspace monthly spend limit reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream := openaitest.New(t)
			env := testEnv(filepath.Join(t.TempDir(), "tokenguard.db"), upstream.URL)
			app := startApp(t, env)
			first := app
			o := signUpWithProject(t, app.URL, 0)
			id := o.ProjectID
			if tt.scope == "workspaces" {
				id = o.WorkspaceID
			}
			if got, want := apiCall(t, "PATCH", fmt.Sprintf("%s/api/%s/%d", app.URL, tt.scope, id), o.Token,
				map[string]any{tt.field: tiny}, nil), 200; got != want {
				t.Fatalf("set budget: status %d, want %d", got, want)
			}

			if status, _, _ := proxied(t, app.URL, o.Key, 1); status != 200 {
				t.Fatalf("first request status = %d, want 200", status)
			}
			if status, code, msg := proxied(t, app.URL, o.Key, 2); status != 429 || code != "BUDGET_EXCEEDED" || msg != tt.message {
				t.Fatalf("second request = %d %s %q, want 429 BUDGET_EXCEEDED %q", status, code, msg, tt.message)
			}
			if err := app.close(); err != nil {
				t.Fatalf("close: %v", err)
			}

			app = startApp(t, env)
			if status, code, msg := proxied(t, app.URL, o.Key, 3); status != 429 || code != "BUDGET_EXCEEDED" || msg != tt.message {
				t.Fatalf("after restart: request = %d %s %q, want 429 BUDGET_EXCEEDED %q (spend forgotten?)", status, code, msg, tt.message)
			}
			if got, want := len(upstream.Received()), 1; got != want {
				t.Fatalf("upstream saw %d requests, want %d", got, want)
			}
			var rows []usageRow
			waitFor(t, "three usage rows", func() bool { rows = listUsage(t, app.URL, o.Token); return len(rows) >= 3 })
			var spent float64
			var blocked int
			for _, r := range rows {
				spent += r.EstimatedCostUsd
				if r.Status == 429 && r.ErrorCode == "BUDGET_EXCEEDED" {
					blocked++
				}
			}
			if got, want := len(rows), 3; got != want {
				t.Errorf("usage rows = %d, want %d: %+v", got, want, rows)
			}
			if got, want := blocked, 2; got != want {
				t.Errorf("blocked rows = %d, want %d", got, want)
			}
			assertNoSecrets(t, first.log.String()+app.log.String(), o)
			if spent <= tiny {
				t.Errorf("spend in usage log = %g USD, want more than the %g budget", spent, tiny)
			}
		})
	}
}

// proxied sends request n through the proxy and returns the status and, for TokenGuard's own
// errors, the code and message.
func proxied(t *testing.T, base, key string, n int) (status int, code, message string) {
	t.Helper()
	resp, err := chat(context.Background(), http.DefaultClient, base, key, n, false)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		json.Unmarshal(raw, &e)
	}
	return resp.StatusCode, e.Error.Code, e.Error.Message
}

// TestShutdownCutsOffHangingStreamAndMetersIt: a stream that is still open when the shutdown
// deadline passes is cut off, its upstream request is cancelled, and it is still metered
// (estimated from what was streamed) before the database closes, with counters equal to rows.
func TestShutdownCutsOffHangingStreamAndMetersIt(t *testing.T) {
	upstream := openaitest.New(t)
	upstream.Set(openaitest.Behavior{Chunks: []string{"one", " two", " three", " four"}, HangAfter: 2})
	dbPath := filepath.Join(t.TempDir(), "tokenguard.db")
	app := startApp(t, testEnv(dbPath, upstream.URL))
	o := signUpWithProject(t, app.URL, 0)

	resp, err := chat(context.Background(), http.DefaultClient, app.URL, o.Key, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read until the two chunks before the hang have arrived: the stream is mid-answer.
	br := bufio.NewReader(resp.Body)
	var seen strings.Builder
	for !strings.Contains(seen.String(), "two") {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before the hang: %v (%q)", err, seen.String())
		}
		seen.WriteString(line)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- app.stop(ctx) }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return after its deadline")
	}
	select {
	case <-upstream.Cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not cancelled")
	}

	db := openDB(t, dbPath)
	var status, stream, estimated int
	var output, cost int64
	err = db.Read.QueryRow(`SELECT status, stream, usage_estimated, output_tokens, cost_nano FROM usage_logs WHERE project_id = ?`, o.ProjectID).
		Scan(&status, &stream, &estimated, &output, &cost)
	if err != nil {
		t.Fatalf("usage row of the cut-off stream: %v", err)
	}
	if stream != 1 || estimated != 1 || output <= 0 || cost <= 0 {
		t.Errorf("cut-off stream row: status %d stream %d estimated %d output %d cost %d, want a stream row estimated from its output with a cost",
			status, stream, estimated, output, cost)
	}
	checkDatabase(t, dbPath, nil)
}

// numberedUpstream is an OpenAI chat completions upstream (SSE with include_usage semantics)
// that reports 1000+n prompt tokens for the message "req n", so each usage row can be matched
// to the request that caused it. Streams send their chunks delay apart; plain answers wait delay.
func numberedUpstream(delay time.Duration) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model    string `json:"model"`
			Stream   bool   `json:"stream"`
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
			StreamOptions *struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":{"message":"bad request","type":"invalid_request_error"}}`)
			return
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(req.Messages[0].Content, "req "))
		usage := fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":3,"total_tokens":%d}`, 1000+n, 1003+n)
		if !req.Stream {
			time.Sleep(delay)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"chatcmpl-%d","object":"chat.completion","created":1732600000,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"a b c"},"finish_reason":"stop"}],"usage":%s}`,
				n, req.Model, usage)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		f := w.(http.Flusher)
		chunk := func(choices string) {
			fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-%d\",\"object\":\"chat.completion.chunk\",\"created\":1732600000,\"model\":%q,\"choices\":%s}\n\n", n, req.Model, choices)
			f.Flush()
		}
		chunk(`[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`)
		for _, word := range []string{"a", " b", " c"} {
			time.Sleep(delay)
			chunk(`[{"index":0,"delta":{"content":"` + word + `"},"finish_reason":null}]`)
		}
		chunk(`[{"index":0,"delta":{},"finish_reason":"stop"}]`)
		if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
			fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-%d\",\"object\":\"chat.completion.chunk\",\"created\":1732600000,\"model\":%q,\"choices\":[],\"usage\":%s}\n\n", n, req.Model, usage)
		}
		io.WriteString(w, "data: [DONE]\n\n")
		f.Flush()
	})
	return mux
}

// child is the server running as a child process.
type child struct {
	cmd    *exec.Cmd
	URL    string
	log    *syncBuffer
	exited chan struct{}
}

// startChild runs the real program (this binary re-executed into TestHelperProcess) with env
// added to the environment, and waits for it to log the address it serves on.
func startChild(t *testing.T, env map[string]string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return runChild(t, cmd, "child")
}

// runChild starts cmd, keeps its output (stdout and stderr, one log) and waits for it to log the
// address it serves on; it is killed when the test ends, and its log shown if the test failed.
func runChild(t *testing.T, cmd *exec.Cmd, name string) *child {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr // the same pipe: one log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, log: &syncBuffer{}, exited: make(chan struct{})}
	addr := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(c.log, line)
			if strings.Contains(line, "TokenGuard is serving") {
				for _, f := range strings.Fields(line) {
					if a, ok := strings.CutPrefix(f, "addr="); ok {
						select {
						case addr <- a:
						default:
						}
					}
				}
			}
		}
	}()
	go func() {
		<-scanned // Wait must not run before the pipe is read to the end
		cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("%s %s log:\n%s", name, c.URL, c.log)
		}
	})
	select {
	case a := <-addr:
		c.URL = "http://" + a
	case <-c.exited:
		t.Fatalf("%s exited before serving:\n%s", name, c.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start serving:\n%s", name, c.log)
	}
	return c
}

// wait waits for the child to exit and returns its exit code.
func (c *child) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("child did not exit")
	}
	return c.cmd.ProcessState.ExitCode()
}

// outcome is what the client saw of one proxied request.
type outcome struct {
	n           int
	stream      bool
	headersAt   time.Time // zero if no response headers arrived
	completedAt time.Time // zero unless the whole 200 response arrived intact
}

// load drives concurrent proxied requests (every other one streamed) until stop is called.
type load struct {
	mu       sync.Mutex
	outcomes []outcome
	next     atomic.Int64
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func startLoad(base, key string, workers int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 20 * time.Second}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				n := int(l.next.Add(1))
				o := outcome{n: n, stream: n%2 == 0}
				idx := l.record(o)
				if !l.one(ctx, client, base, key, idx, o) {
					time.Sleep(5 * time.Millisecond) // the server is gone or going: don't spin
				}
			}
		}()
	}
	return l
}

func (l *load) record(o outcome) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomes = append(l.outcomes, o)
	return len(l.outcomes) - 1
}

func (l *load) update(idx int, f func(*outcome)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.outcomes[idx])
}

// one sends request o and reports whether it completed.
func (l *load) one(ctx context.Context, client *http.Client, base, key string, idx int, o outcome) bool {
	// The request itself is not cancelled by stop: a request in flight runs to its end.
	resp, err := chat(context.WithoutCancel(ctx), client, base, key, o.n, o.stream)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	l.update(idx, func(o *outcome) { o.headersAt = time.Now() })
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return false
	}
	if o.stream {
		if !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
			return false
		}
	} else {
		var r struct {
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if json.Unmarshal(body, &r) != nil || r.Usage.PromptTokens != 1000+o.n {
			return false
		}
	}
	l.update(idx, func(o *outcome) { o.completedAt = time.Now() })
	return true
}

func (l *load) snapshot() []outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]outcome(nil), l.outcomes...)
}

// stop ends the load and waits for every request in flight.
func (l *load) stop() []outcome {
	l.cancel()
	l.wg.Wait()
	return l.snapshot()
}

// dbRow is a usage row read straight from the database.
type dbRow struct {
	workspaceID, projectID int64
	status                 int
	inputTokens, costNano  int64
	createdAt              int64
}

// checkDatabase reopens the database file after the server is gone and checks what a user
// relies on: integrity_check is ok, every request in mustHave has exactly its own usage row,
// no request was counted twice, and the spend counters equal the sum of the usage rows.
func checkDatabase(t *testing.T, dbPath string, mustHave []outcome) {
	t.Helper()
	db := openDB(t, dbPath)
	ctx := context.Background()
	var integrity string
	if err := db.Read.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&integrity); err != nil {
		t.Fatal(err)
	}
	if integrity != "ok" {
		t.Fatalf("integrity_check = %q, want ok", integrity)
	}

	rs, err := db.Read.QueryContext(ctx, `SELECT workspace_id, project_id, status, input_tokens, cost_nano, created_at FROM usage_logs`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	byRequest := map[int64]dbRow{}
	sums := map[string]int64{}
	for rs.Next() {
		var r dbRow
		if err := rs.Scan(&r.workspaceID, &r.projectID, &r.status, &r.inputTokens, &r.costNano, &r.createdAt); err != nil {
			t.Fatal(err)
		}
		if _, dup := byRequest[r.inputTokens]; dup && r.status == 200 {
			t.Errorf("request %d has two usage rows", r.inputTokens-1000)
		}
		if r.status == 200 {
			byRequest[r.inputTokens] = r
		}
		at := time.UnixMilli(r.createdAt).UTC()
		for _, period := range []string{at.Format("2006-01-02"), at.Format("2006-01")} {
			sums[fmt.Sprintf("project/%d/%s", r.projectID, period)] += r.costNano
			sums[fmt.Sprintf("workspace/%d/%s", r.workspaceID, period)] += r.costNano
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}

	missing := 0
	for _, o := range mustHave {
		r, ok := byRequest[int64(1000+o.n)]
		if !ok {
			missing++
			if missing <= 5 {
				t.Errorf("request %d (stream %t) completed at %s but has no usage row", o.n, o.stream, o.completedAt.Format("15:04:05.000"))
			}
			continue
		}
		if r.costNano <= 0 {
			t.Errorf("request %d: cost %d nano-USD, want > 0", o.n, r.costNano)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d completed requests have no usage row", missing, len(mustHave))
	}

	counters := map[string]int64{}
	cs, err := db.Read.QueryContext(ctx, `SELECT scope, scope_id, period, spend_nano FROM spend_counters`)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for cs.Next() {
		var scope, period string
		var id, spend int64
		if err := cs.Scan(&scope, &id, &period, &spend); err != nil {
			t.Fatal(err)
		}
		counters[fmt.Sprintf("%s/%d/%s", scope, id, period)] = spend
	}
	if err := cs.Err(); err != nil {
		t.Fatal(err)
	}
	countersMatchRows(t, counters, sums)
	t.Logf("%d completed requests checked, %d usage rows with status 200, %d counters", len(mustHave), len(byRequest), len(counters))
}

// loadedServer is the child server with traffic running against it.
type loadedServer struct {
	child  *child
	load   *load
	dbPath string
	env    map[string]string
	owner  owner
}

// serverUnderLoad starts the child on a fresh database with a numbered upstream, creates a
// project through its API and starts concurrent traffic.
func serverUnderLoad(t *testing.T) loadedServer {
	t.Helper()
	up := newHTTPTestServer(t, numberedUpstream(15*time.Millisecond))
	dbPath := filepath.Join(t.TempDir(), "tokenguard.db")
	env := testEnv(dbPath, up)
	c := startChild(t, env)
	o := signUpWithProject(t, c.URL, 0)
	l := startLoad(c.URL, o.Key, 8)
	t.Cleanup(func() { l.stop() })
	return loadedServer{child: c, load: l, dbPath: dbPath, env: env, owner: o}
}

// TestSIGTERMUnderLoadLosesNothing: SIGTERM (or SIGINT, Ctrl-C) while requests, streams
// included, are in flight → the server finishes those requests, exits 0, and every completed
// request is in the usage log with the counters equal to the rows.
func TestSIGTERMUnderLoadLosesNothing(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			s := serverUnderLoad(t)
			l := s.load

			// Signal once traffic is flowing and a stream is mid-answer.
			waitFor(t, "completed requests and a stream in flight", func() bool {
				completed, streaming := 0, 0
				for _, o := range l.snapshot() {
					if !o.completedAt.IsZero() {
						completed++
					} else if o.stream && !o.headersAt.IsZero() {
						streaming++
					}
				}
				return completed >= 20 && streaming > 0
			})
			signalled := time.Now()
			if err := s.child.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code := s.child.wait(t)
			outcomes := l.stop()
			if code != 0 {
				t.Fatalf("exit code after %v = %d, want 0", sig, code)
			}

			var completed []outcome
			begun := 0
			for _, o := range outcomes {
				if !o.completedAt.IsZero() {
					completed = append(completed, o)
				}
				if !o.headersAt.IsZero() && o.headersAt.Before(signalled) {
					// Its response had begun before the signal: the drain must let it finish.
					begun++
					if o.completedAt.IsZero() {
						t.Errorf("request %d (stream %t) had its response headers before %v but was cut off", o.n, o.stream, sig)
					}
				}
			}
			if len(completed) == 0 || begun == 0 {
				t.Fatalf("completed %d, begun before the signal %d: load did not run", len(completed), begun)
			}
			checkDatabase(t, s.dbPath, completed)
			assertNoSecrets(t, s.child.log.String(), s.owner)
		})
	}
}

// TestKill9UnderLoad: kill -9 under load leaves a database that passes integrity_check, keeps
// every request completed well before the kill (older than the last unflushed batch) and
// counters that still equal the rows; the program starts again on it.
func TestKill9UnderLoad(t *testing.T) {
	s := serverUnderLoad(t)
	l := s.load

	// Let responses complete for over a second, so some are older than any batch the kill
	// can lose (FLUSH_INTERVAL is 50ms).
	var first time.Time
	waitFor(t, "a second of completed requests", func() bool {
		for _, o := range l.snapshot() {
			if !o.completedAt.IsZero() && (first.IsZero() || o.completedAt.Before(first)) {
				first = o.completedAt
			}
		}
		return !first.IsZero() && time.Since(first) > 1500*time.Millisecond
	})
	killed := time.Now()
	if err := s.child.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if code := s.child.wait(t); code != -1 {
		t.Fatalf("exit code = %d, want -1 (killed by a signal)", code)
	}
	outcomes := l.stop()

	var old []outcome
	for _, o := range outcomes {
		if !o.completedAt.IsZero() && o.completedAt.Before(killed.Add(-time.Second)) {
			old = append(old, o)
		}
	}
	if len(old) == 0 {
		t.Fatal("no request completed a second before the kill")
	}
	checkDatabase(t, s.dbPath, old)
	assertNoSecrets(t, s.child.log.String(), s.owner)

	// The program starts again on the crashed database and serves the log it kept.
	app := startApp(t, s.env)
	var rows []usageRow
	waitFor(t, "the usage log after the crash", func() bool { rows = listUsage(t, app.URL, s.owner.Token); return len(rows) > 0 })
	if len(rows) < min(len(old), 1000) {
		t.Errorf("after the crash the API lists %d usage rows, want at least %d", len(rows), min(len(old), 1000))
	}
}

// TestBackupWhileServing: `tokenguard backup` copies the live database while requests are
// being metered; the copy passes integrity_check and holds the project, and a second backup
// to the same name is refused without touching the first.
func TestBackupWhileServing(t *testing.T) {
	up := newHTTPTestServer(t, numberedUpstream(5*time.Millisecond))
	dbPath := filepath.Join(t.TempDir(), "tokenguard.db")
	app := startApp(t, testEnv(dbPath, up))
	o := signUpWithProject(t, app.URL, 0)
	l := startLoad(app.URL, o.Key, 2)
	defer l.stop()
	liveRows := func() int {
		var n int
		if err := app.DB.Read.QueryRow(`SELECT count(*) FROM usage_logs`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor(t, "usage rows", func() bool { return liveRows() >= 5 })

	// backup reads its configuration from the process environment, as the binary does.
	t.Setenv("DATABASE_URL", dbPath)
	out := filepath.Join(t.TempDir(), "copy.db")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"backup", out}, &stdout, &stderr); err != nil {
		t.Fatalf("backup: %v (%s)", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), out) {
		t.Errorf("backup output %q does not name %s", stdout.String(), out)
	}

	copyDB, err := sql.Open("sqlite", "file:"+out+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer copyDB.Close()
	var integrity, name string
	var rows int
	if err := copyDB.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil {
		t.Fatal(err)
	}
	if integrity != "ok" {
		t.Errorf("backup integrity_check = %q, want ok", integrity)
	}
	if err := copyDB.QueryRow(`SELECT name FROM projects WHERE id = ?`, o.ProjectID).Scan(&name); err != nil {
		t.Fatalf("project in backup: %v", err)
	}
	if name != o.ProjectName {
		t.Errorf("project name in backup = %q, want %q", name, o.ProjectName)
	}
	if err := copyDB.QueryRow(`SELECT count(*) FROM usage_logs`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows < 5 {
		t.Errorf("backup holds %d usage rows, want at least the 5 written before it", rows)
	}

	before, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), []string{"backup", out}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second backup to the same name: err = %v, want a refusal saying it exists", err)
	}
	after, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the refused backup changed the existing file")
	}

	// The live server keeps metering after the backups: rows beyond those in the copy arrive.
	waitFor(t, "usage rows written after the backup", func() bool { return liveRows() > rows })
}

// TestDefaultsStart: with no config file and no settings but a free port, the server starts
// in the working directory, generates its secrets into tokenguard.secrets (0600) with a warning
// that does not print them, answers /healthz, and reuses the same secrets on the next start.
func TestDefaultsStart(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	env := map[string]string{"LISTEN_ADDR": "127.0.0.1:0"}
	app := startApp(t, env)

	info, err := os.Stat(filepath.Join(dir, "tokenguard.secrets"))
	if err != nil {
		t.Fatalf("secrets file: %v", err)
	}
	if got, want := info.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("tokenguard.secrets mode = %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenguard.db")); err != nil {
		t.Errorf("default database: %v", err)
	}
	resp, err := http.Get(app.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("/healthz = %d %q, want 200 {\"status\":\"ok\"}", resp.StatusCode, body)
	}
	secrets, err := os.ReadFile(filepath.Join(dir, "tokenguard.secrets"))
	if err != nil {
		t.Fatal(err)
	}
	log := app.log.String()
	if !strings.Contains(log, "generated a secret") {
		t.Errorf("no warning about generated secrets in the log:\n%s", log)
	}
	for _, line := range strings.Split(string(secrets), "\n") {
		if _, v, ok := strings.Cut(line, "="); ok && len(strings.Trim(v, `" `)) >= 32 && strings.Contains(log, strings.Trim(v, `" `)) {
			t.Errorf("the log prints a generated secret")
		}
	}
	// The account made now must still work after a restart: same secrets, same JWT key.
	o := signUpWithProject(t, app.URL, 0)
	if err := app.close(); err != nil {
		t.Fatal(err)
	}

	app = startApp(t, env)
	if strings.Contains(app.log.String(), "generated a secret") {
		t.Error("second start generated new secrets instead of reading tokenguard.secrets")
	}
	again, err := os.ReadFile(filepath.Join(dir, "tokenguard.secrets"))
	if err != nil || !bytes.Equal(again, secrets) {
		t.Errorf("tokenguard.secrets changed on restart (err %v)", err)
	}
	var me struct {
		User struct {
			Email string `json:"email"`
		} `json:"user"`
	}
	if got, want := apiCall(t, "GET", app.URL+"/api/me", o.Token, nil, &me), 200; got != want {
		t.Fatalf("GET /api/me with the token from before the restart = %d, want %d", got, want)
	}
}

// assertNoSecrets fails the test if the server log holds the owner's TokenGuard key, password
// or session token, or the operator's provider key.
func assertNoSecrets(t *testing.T, log string, o owner) {
	t.Helper()
	if log == "" {
		t.Fatal("empty server log: nothing to check")
	}
	for name, secret := range map[string]string{
		"TokenGuard key": o.Key, "password": testPassword, "session token": o.Token, "provider key": testProviderKey,
	} {
		if strings.Contains(log, secret) {
			t.Errorf("the server log holds the %s", name)
		}
	}
}

// openDB reopens the database file the way the program does, with the schema embedded in this
// binary (not the working tree's schema.sql, which may be newer than what was compiled).
func openDB(t *testing.T, path string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), path, schema)
	if err != nil {
		t.Fatalf("reopen %s: %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newHTTPTestServer serves h on a local httptest server closed when the test ends, returning
// its URL.
func newHTTPTestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestHelpAndVersion ensures a first look at the program succeeds: help, for the program or one
// command, lists every command and flag on stdout, and the version prints, all without error.
func TestHelpAndVersion(t *testing.T) {
	everything := []string{"serve", "backup OUT.db", "prices MODEL…", "version", "help", "--config",
		"--input", "--cache-read", "--cache-write", "--cache-write-1h", "--output", "DATABASE_URL"}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, everything},
		{[]string{"-h"}, everything},
		{[]string{"help"}, everything},
		{[]string{"serve", "-h"}, []string{"usage: tokenguard serve", "--config"}},
		{[]string{"serve", "--help"}, []string{"usage: tokenguard serve", "--config"}},
		{[]string{"backup", "-h"}, []string{"usage: tokenguard backup OUT.db", "--config"}},
		{[]string{"prices", "-h"}, []string{"usage: tokenguard prices MODEL…", "--input", "--cache-write-1h", "--output", "--config"}},
		{[]string{"--version"}, []string{"tokenguard dev go1."}},
		{[]string{"version"}, []string{"tokenguard dev go1."}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), tc.args, &stdout, &stderr); err != nil {
				t.Fatalf("run %v: %v", tc.args, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr = %q, want nothing", stderr.String())
			}
		})
	}
	err := run(context.Background(), []string{"serve", "--bogus"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-bogus") || !strings.Contains(err.Error(), "--config") {
		t.Errorf("an unknown flag: %v, want an error naming it, with the usage", err)
	}
}

// TestStartRefusesBadPaths ensures a database path or listen address that cannot work stops the
// start with a message naming it, before anything is written: no secrets beside a folder or a
// foreign file, no database for a bad address.
func TestStartRefusesBadPaths(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup prepares root and returns DATABASE_URL and LISTEN_ADDR.
		setup func(t *testing.T, root string) (db, addr string)
		want  string
	}{
		{"folder", func(t *testing.T, root string) (string, string) {
			os.Mkdir(filepath.Join(root, "data"), 0o755)
			return filepath.Join(root, "data"), "127.0.0.1:0"
		}, "is a folder"},
		{"not SQLite", func(t *testing.T, root string) (string, string) {
			os.WriteFile(filepath.Join(root, "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
			return filepath.Join(root, "passwd"), "127.0.0.1:0"
		}, "is not a SQLite database"},
		{"missing folder", func(t *testing.T, root string) (string, string) {
			return filepath.Join(root, "nope", "tokenguard.db"), "127.0.0.1:0"
		}, "does not exist"},
		{"unwritable folder", func(t *testing.T, root string) (string, string) {
			ro := filepath.Join(root, "ro")
			os.Mkdir(ro, 0o555)
			// Root writes through permission bits; a read-only mount stops everyone.
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro).CombinedOutput(); err != nil {
				if os.Geteuid() == 0 {
					t.Skipf("cannot mount a read-only tmpfs (%v %s)", err, out)
				}
			} else {
				t.Cleanup(func() { exec.Command("umount", "-l", ro).Run() })
			}
			return filepath.Join(ro, "tokenguard.db"), "127.0.0.1:0"
		}, "create database"},
		{"bad port", func(t *testing.T, root string) (string, string) {
			return filepath.Join(root, "tokenguard.db"), "127.0.0.1:99999"
		}, "LISTEN_ADDR 127.0.0.1:99999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			db, addr := tc.setup(t, root)
			before := tree(t, root)
			m := NewMain(io.Discard)
			m.Getenv = func(k string) (string, bool) {
				v, ok := map[string]string{"DATABASE_URL": db, "LISTEN_ADDR": addr}[k]
				return v, ok
			}
			err := m.Run(context.Background())
			m.Close(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start with DATABASE_URL=%s LISTEN_ADDR=%s: %v, want an error with %q", db, addr, err, tc.want)
			}
			if after := tree(t, root); !slices.Equal(after, before) {
				t.Errorf("the failed start wrote files: before %v, after %v", before, after)
			}
		})
	}
}

// tree lists every path under root with its size, sorted.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %d", strings.TrimPrefix(p, root), info.Size()))
		return nil
	})
	return out
}

// countersMatchRows checks spend counters (by "scope/id/period") against the sums of the usage
// rows they count: each equals its rows, and none holds spend without rows.
func countersMatchRows(t *testing.T, counters, sums map[string]int64) {
	t.Helper()
	for k, sum := range sums {
		if got := counters[k]; got != sum {
			t.Errorf("counter %s = %d nano-USD, want the sum of its usage rows %d", k, got, sum)
		}
	}
	for k, got := range counters {
		if _, ok := sums[k]; !ok && got != 0 {
			t.Errorf("counter %s = %d nano-USD with no usage rows behind it", k, got)
		}
	}
}
