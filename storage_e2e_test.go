package main

// End-to-end tests of a database that stops taking writes: the real program with its SQLite
// file on a small tmpfs that the test fills up, a fake OpenAI upstream speaking the real wire
// format, and a usage queue bounded to a few rows. Metered requests must fail closed once the
// bound is reached, /readyz must say why, freeing space must bring the writer back without a
// restart, and a kill -9 during the outage must lose at most the bound and no blocked budget.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tokenguard/store/storetest"
)

// e2eQueueMax is USAGE_QUEUE_MAX in these tests: small, so the outage reaches it quickly.
const e2eQueueMax = 8

// diskFullSetup is the scene of these tests: an 8 MB tmpfs for the database, a counting
// numbered upstream, and the server's environment with the small usage queue.
func diskFullSetup(t *testing.T) (dir string, env map[string]string, upstreamHits *atomic.Int64) {
	dir = storetest.Tmpfs(t, "8m")
	upstream, hits := countingUpstream(t)
	env = testEnv(filepath.Join(dir, "tokenguard.db"), upstream)
	env["USAGE_QUEUE_MAX"] = strconv.Itoa(e2eQueueMax)
	env["FLUSH_INTERVAL"] = "20ms"
	return dir, env, hits
}

// reply is what a client sees of one proxied request.
type reply struct {
	status     int
	code       string
	retryAfter string
}

func send(t *testing.T, base, key string, n int) reply {
	t.Helper()
	resp, err := chat(context.Background(), http.DefaultClient, base, key, n, false)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if r.status != 200 {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		json.Unmarshal(raw, &e)
		r.code = e.Error.Code
	}
	return r
}

// readiness is GET /readyz as a client reads it.
type readiness struct {
	httpStatus int
	Status     string `json:"status"`
	Checks     map[string]struct {
		OK     bool   `json:"ok"`
		Error  string `json:"error"`
		Detail struct {
			Queued, Reserved, Max int
		} `json:"detail"`
	} `json:"checks"`
}

func readyz(t *testing.T, base string) readiness {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("/readyz body: %v", err)
	}
	r.httpStatus = resp.StatusCode
	return r
}

// waitReady polls /readyz until cond holds. The bound covers the writer's longest retry
// backoff (5 s) several times over.
func waitReady(t *testing.T, base, what string, cond func(readiness) bool) readiness {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := readyz(t, base)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; /readyz: %+v", what, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writerSettled: the usage writer has stored everything, or its writes are failing.
func writerSettled(r readiness) bool {
	w := r.Checks["usageWriter"]
	return (w.Detail.Queued == 0 && w.Detail.Reserved == 0) || strings.Contains(w.Error, "not being written")
}

// driveUntilRefused sends metered requests numbered from `from`, one at a time on a full disk,
// each one's row written or failed before the next (so only a failing database fills the
// queue), until one is refused. It returns the requests served and the refusal.
func driveUntilRefused(t *testing.T, base, key string, from int) (served []outcome, refused reply) {
	t.Helper()
	for n := from; n < from+5000; n++ {
		r := send(t, base, key, n)
		switch r.status {
		case 200:
			served = append(served, outcome{n: n})
			waitReady(t, base, "the row to be written or fail", writerSettled)
		case 503:
			return served, r
		default:
			t.Fatalf("request %d on a full disk: %+v, want 200 or 503", n, r)
		}
	}
	t.Fatal("no request was refused on a full disk")
	return nil, reply{}
}

// assertFailedClosed checks the refusal and what /readyz says during the outage.
func assertFailedClosed(t *testing.T, base string, refused reply) {
	t.Helper()
	if refused.code != "STORAGE_UNAVAILABLE" || refused.retryAfter == "" {
		t.Errorf("refusal = %+v, want 503 STORAGE_UNAVAILABLE with Retry-After", refused)
	}
	r := readyz(t, base)
	w := r.Checks["usageWriter"]
	if r.httpStatus != 503 || r.Status != "not ready" || w.OK || !strings.Contains(w.Error, "disk is full") {
		t.Errorf("/readyz during the outage = %+v, want 503 not ready with the writer's disk-full error", r)
	}
	if w.Detail.Queued+w.Detail.Reserved != e2eQueueMax || w.Detail.Max != e2eQueueMax {
		t.Errorf("writer detail = %+v, want the queue at its bound %d", w.Detail, e2eQueueMax)
	}
}

// countingUpstream is numberedUpstream (OpenAI's wire format; request n reports 1000+n prompt
// tokens, so each row names its request) counting the requests that reach it.
func countingUpstream(t *testing.T) (url string, hits *atomic.Int64) {
	hits = new(atomic.Int64)
	mux := numberedUpstream(0)
	return newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mux.ServeHTTP(w, r)
	})), hits
}

// storedRequests returns the numbers of the requests with a usage row of status 200 in the
// database at path.
func storedRequests(t *testing.T, path string) map[int]bool {
	t.Helper()
	rows, err := openDB(t, path).Read.Query(`SELECT input_tokens FROM usage_logs WHERE status = 200`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int]bool{}
	for rows.Next() {
		var in int
		if err := rows.Scan(&in); err != nil {
			t.Fatal(err)
		}
		got[in-1000] = true
	}
	return got
}

// TestDiskFullFailsClosedThenRecovers: with the disk full, metered requests are served while
// the usage queue has room and refused with 503 STORAGE_UNAVAILABLE from the moment it is full
// (the refused request never reaches the upstream); /readyz reports the failing writer; once
// space returns the writer catches up without a restart, every served request has exactly one
// usage row, and the counters equal the rows.
func TestDiskFullFailsClosedThenRecovers(t *testing.T) {
	dir, env, hits := diskFullSetup(t)
	app := startApp(t, env)
	o := signUpWithProject(t, app.URL, 0)
	first := send(t, app.URL, o.Key, 1)
	if first.status != 200 {
		t.Fatalf("before the outage: %+v", first)
	}
	if r := waitReady(t, app.URL, "ready", func(r readiness) bool { return r.httpStatus == 200 }); r.Status != "ready" {
		t.Fatalf("/readyz before the outage = %+v", r)
	}

	free := storetest.FillDisk(t, filepath.Join(dir, "filler"))
	served, refused := driveUntilRefused(t, app.URL, o.Key, 2)
	assertFailedClosed(t, app.URL, refused)
	if got, want := hits.Load(), int64(1+len(served)); got != want {
		t.Errorf("upstream saw %d requests, want %d: the refused one must not be sent", got, want)
	}
	t.Logf("%d requests served on the full disk before the queue of %d filled", len(served), e2eQueueMax)

	free()
	waitReady(t, app.URL, "recovery", func(r readiness) bool { return r.httpStatus == 200 && writerSettled(r) })
	after := send(t, app.URL, o.Key, 10_000)
	if after.status != 200 {
		t.Fatalf("after recovery: %+v", after)
	}
	if err := app.close(); err != nil {
		t.Fatal(err)
	}
	checkDatabase(t, env["DATABASE_URL"], append(append([]outcome{{n: 1}}, served...), outcome{n: 10_000}))
}

// TestKill9DuringDiskFullKeepsBlockedProjectBlocked: a project whose spend was stored before
// the disk filled stays blocked after the server is killed (-9) during the outage and started
// again; the rows lost to the kill are at most the queue bound.
func TestKill9DuringDiskFullKeepsBlockedProjectBlocked(t *testing.T) {
	dir, env, _ := diskFullSetup(t)
	c := startChild(t, env)

	// Project A: a budget far below one request's cost, used up before the outage.
	a := signUpWithProject(t, c.URL, 0)
	if got := apiCall(t, "PATCH", fmt.Sprintf("%s/api/projects/%d", c.URL, a.ProjectID), a.Token, map[string]any{"dailyBudgetUsd": 0.000001}, nil); got != 200 {
		t.Fatalf("set budget: status %d", got)
	}
	if r := send(t, c.URL, a.Key, 1); r.status != 200 {
		t.Fatalf("project A's first request: %+v", r)
	}
	if r := send(t, c.URL, a.Key, 2); r.status != 429 || r.code != "BUDGET_EXCEEDED" {
		t.Fatalf("project A's second request: %+v, want 429 BUDGET_EXCEEDED", r)
	}
	waitFor(t, "project A's rows to be stored", func() bool { return len(listUsage(t, c.URL, a.Token)) == 2 })
	// Project B: no budget, the traffic during the outage.
	var b struct {
		Key string `json:"key"`
	}
	if got := apiCall(t, "POST", c.URL+"/api/projects", a.Token, map[string]any{"name": "batch-jobs"}, &b); got != 201 {
		t.Fatalf("create project B: status %d", got)
	}

	free := storetest.FillDisk(t, filepath.Join(dir, "filler"))
	served, refused := driveUntilRefused(t, c.URL, b.Key, 3)
	assertFailedClosed(t, c.URL, refused)
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if code := c.wait(t); code != -1 {
		t.Fatalf("exit code = %d, want -1 (killed)", code)
	}

	free()
	c = startChild(t, env)
	if r := send(t, c.URL, a.Key, 10_000); r.status != 429 || r.code != "BUDGET_EXCEEDED" {
		t.Errorf("project A after the restart: %+v, want 429 BUDGET_EXCEEDED (spend forgotten?)", r)
	}
	if r := send(t, c.URL, b.Key, 10_001); r.status != 200 {
		t.Errorf("project B after the restart: %+v, want 200", r)
	}
	stored := storedRequests(t, env["DATABASE_URL"])
	lost := 0
	for _, o := range served {
		if !stored[o.n] {
			lost++
		}
	}
	if lost > e2eQueueMax {
		t.Errorf("%d rows of served requests lost to the kill, want at most the queue bound %d", lost, e2eQueueMax)
	}
	t.Logf("%d requests served during the outage, %d of their rows lost to kill -9 (bound %d)", len(served), lost, e2eQueueMax)
}
