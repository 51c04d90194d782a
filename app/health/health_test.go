package health

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tokenguard/app/usage"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

// readyz is a /readyz answer as a client reads it.
type readyz struct {
	Status string `json:"status"`
	Checks map[string]struct {
		OK     bool           `json:"ok"`
		Error  string         `json:"error"`
		Detail map[string]any `json:"detail"`
	} `json:"checks"`
}

func get(t *testing.T, h http.Handler) (int, readyz) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if got, want := rec.Header().Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	var body readyz
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	return rec.Code, body
}

// newWriter starts a real usage writer on db, closed when the test ends.
func newWriter(t *testing.T, db *store.DB, max int) *usage.Writer {
	w := usage.NewWriter(db, slog.New(slog.NewTextHandler(io.Discard, nil)), usage.WriterOptions{FlushInterval: time.Millisecond, MaxQueue: max})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		w.Close(ctx)
	})
	return w
}

// TestReady ensures /readyz answers 200 only when the database takes writes and the usage
// writer is neither failing nor full, names the failing check with an error an operator can
// act on, and takes further named checks.
func TestReady(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the checks of a server in the state under test.
		setup      func(t *testing.T) []Check
		wantStatus int
		wantFailed map[string]string // check name → part of its error
	}{
		{"healthy", func(t *testing.T) []Check {
			db := storetest.Open(t)
			return []Check{Database(db), UsageWriter(newWriter(t, db, 10))}
		}, 200, nil},
		{"database gone", func(t *testing.T) []Check {
			db := storetest.Open(t)
			w := newWriter(t, db, 10)
			db.Write.Close()
			w.Add(usage.Record{CreatedAt: time.Now(), ProjectID: 1, WorkspaceID: 1, Status: 200})
			for deadline := time.Now().Add(10 * time.Second); w.Status().FailingSince.IsZero(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the writer never reported its failing writes")
				}
			}
			return []Check{Database(db), UsageWriter(w)}
		}, 503, map[string]string{"database": "does not take writes", "usageWriter": "not being written since"}},
		{"queue full of requests in flight", func(t *testing.T) []Check {
			db := storetest.Open(t)
			w := newWriter(t, db, 2)
			for range 2 {
				if _, err := w.Acquire(); err != nil {
					t.Fatal(err)
				}
			}
			return []Check{Database(db), UsageWriter(w)}
		}, 503, map[string]string{"usageWriter": "queue is full (0 queued + 2 in flight of 2)"}},
		{"a further check fails", func(t *testing.T) []Check {
			db := storetest.Open(t)
			dns := Check{Name: "upstreamDNS", Run: func(context.Context) Result { return Result{Error: "api.openai.com: no such host"} }}
			return []Check{Database(db), UsageWriter(newWriter(t, db, 10)), dns}
		}, 503, map[string]string{"upstreamDNS": "no such host"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checks := tt.setup(t)
			status, body := get(t, Ready(checks...))
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d (%+v)", status, tt.wantStatus, body)
			}
			if want := map[int]string{200: "ready", 503: "not ready"}[tt.wantStatus]; body.Status != want {
				t.Errorf("body status = %q, want %q", body.Status, want)
			}
			if got, want := len(body.Checks), len(checks); got != want {
				t.Errorf("%d checks reported, want %d", got, want)
			}
			for name, c := range body.Checks {
				wantErr, failed := tt.wantFailed[name]
				if c.OK == failed || !strings.Contains(c.Error, wantErr) {
					t.Errorf("check %s = %+v, want ok=%v with an error containing %q", name, c, !failed, wantErr)
				}
			}
			if d := body.Checks["usageWriter"].Detail; d["max"] == nil || d["queued"] == nil {
				t.Errorf("usageWriter detail = %v, want the writer's status", d)
			}
		})
	}
}

// TestDatabaseProbeIsRateLimited ensures a flood of /readyz requests costs at most one write
// probe per interval: the later requests share the first result.
func TestDatabaseProbeIsRateLimited(t *testing.T) {
	runs := 0
	c := cached(Check{Name: "x", Run: func(context.Context) Result { runs++; return Result{OK: runs == 1} }}, time.Hour)
	for range 100 {
		if r := c.Run(context.Background()); !r.OK {
			t.Fatal("a cached result was replaced by a new run")
		}
	}
	if runs != 1 {
		t.Errorf("ran %d times, want once", runs)
	}
	again := cached(Check{Name: "y", Run: func(context.Context) Result { runs++; return Result{OK: true} }}, 0)
	again.Run(context.Background())
	again.Run(context.Background())
	if runs != 3 {
		t.Errorf("with no interval ran %d times in all, want 3", runs)
	}
}
