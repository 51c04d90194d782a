package health

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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
		{"writer backed up", func(t *testing.T) []Check {
			db := storetest.Open(t)
			w := newWriter(t, db, 10)
			// A write transaction held elsewhere: the writer's batch waits for the connection,
			// without failing, while rows pile up behind it.
			tx, err := db.Write.BeginTx(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tx.Rollback() })
			for range 5 {
				if err := w.Add(usage.Record{CreatedAt: time.Now(), ProjectID: 1, WorkspaceID: 1, Status: 200}); err != nil {
					t.Fatal(err)
				}
			}
			return []Check{UsageWriter(w)}
		}, 503, map[string]string{"usageWriter": "backed up: 5 rows waiting"}},
		{"an upstream host does not resolve", func(t *testing.T) []Check {
			db := storetest.Open(t)
			dns, _ := fakeDNS(t)
			return []Check{Database(db), UsageWriter(newWriter(t, db, 10)),
				UpstreamDNS(dns, "https://api.up.test", "https://api.gone.test/v1", "http://127.0.0.1:9")}
		}, 503, map[string]string{"upstreamDNS": "upstream host api.gone.test does not resolve"}},
		{"every upstream host resolves", func(t *testing.T) []Check {
			db := storetest.Open(t)
			dns, _ := fakeDNS(t)
			return []Check{Database(db), UsageWriter(newWriter(t, db, 10)), UpstreamDNS(dns, "https://api.up.test", "http://[::1]:8080")}
		}, 200, nil},
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
			if d, ok := body.Checks["usageWriter"]; ok && (d.Detail["max"] == nil || d.Detail["queued"] == nil) {
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

// fakeDNS is a DNS server on loopback that answers api.up.test with 127.0.0.1 and every other
// name with NXDOMAIN, and a resolver that asks only it; queries counts the questions it got.
func fakeDNS(t *testing.T) (r *net.Resolver, queries *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	queries = new(atomic.Int64)
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			queries.Add(1)
			q := buf[:n]
			// The question: labels up to the zero byte, then type and class.
			end := 12
			for end < n && q[end] != 0 {
				end += int(q[end]) + 1
			}
			if end+5 > n {
				continue
			}
			name, qtype := string(q[12:end]), binary.BigEndian.Uint16(q[end+1:])
			resp := append([]byte(nil), q[:end+5]...)
			binary.BigEndian.PutUint16(resp[2:], 0x8183) // a response, NXDOMAIN
			binary.BigEndian.PutUint16(resp[6:], 0)      // no answers
			if name == "\x03api\x02up\x04test" {
				binary.BigEndian.PutUint16(resp[2:], 0x8180) // NOERROR
				if qtype == 1 {
					binary.BigEndian.PutUint16(resp[6:], 1)
					resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1)
				}
			}
			pc.WriteTo(resp, from)
		}
	}()
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}, queries
}

// TestUpstreamDNSIsCached ensures a flood of /readyz requests looks each upstream host up at
// most once per interval, failures included, so /readyz cannot be used to hammer DNS.
func TestUpstreamDNSIsCached(t *testing.T) {
	dns, queries := fakeDNS(t)
	h := Ready(UpstreamDNS(dns, "https://api.up.test", "https://api.gone.test"))
	for range 50 {
		if status, body := get(t, h); status != 503 || !strings.Contains(body.Checks["upstreamDNS"].Error, "api.gone.test") {
			t.Fatalf("%d %+v", status, body)
		}
	}
	// One A and one AAAA question per host, at most, for the first request only.
	if got := queries.Load(); got == 0 || got > 4 {
		t.Errorf("%d DNS questions for 50 requests, want at most 4", got)
	}
}

// TestLive ensures /healthz answers 200 with a JSON status while the process serves.
func TestLive(t *testing.T) {
	rec := httptest.NewRecorder()
	Live().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	var body struct{ Status string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 200 || body.Status != "ok" {
		t.Errorf("/healthz = %d %s, want 200 {\"status\":\"ok\"}", rec.Code, rec.Body)
	}
	if got, want := rec.Header().Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
}

// TestCachedIgnoresAClientThatLeft ensures a request that is cancelled at once (a client that
// hung up) does not make the shared, cached result a failure.
func TestCachedIgnoresAClientThatLeft(t *testing.T) {
	c := cached(Check{Name: "x", Run: func(ctx context.Context) Result {
		if err := ctx.Err(); err != nil {
			return Result{Error: err.Error()}
		}
		return Result{OK: true}
	}}, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := c.Run(ctx); !r.OK {
		t.Errorf("result after a cancelled request = %+v, want ok", r)
	}
}
