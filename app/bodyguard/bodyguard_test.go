package bodyguard_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tokenguard/app/bodyguard"
)

// testLimits are short so a stalled body is closed in well under a second.
var testLimits = bodyguard.Limits{Idle: 300 * time.Millisecond, Grace: 300 * time.Millisecond, MinRate: 4 << 10}

// failsafe is how long a test waits for the server before it calls the guard broken: far
// beyond testLimits, so it never decides a passing run.
const failsafe = 20 * time.Second

// server runs h behind the guard on a real listener and reports each handler's body read error.
func server(t *testing.T, h func(w http.ResponseWriter, r *http.Request) error) (addr string, errs <-chan error) {
	t.Helper()
	ch := make(chan error, 16)
	srv := httptest.NewServer(bodyguard.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch <- h(w, r)
	}), testLimits))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), ch
}

func readAll(w http.ResponseWriter, r *http.Request) error {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return err
	}
	fmt.Fprintf(w, "%d", n)
	return nil
}

// trickle sends a request head announcing size bytes, then the body one byte per gap (no gap:
// all at once, stall: stop after half), and returns what the server sent before closing.
func trickle(t *testing.T, addr string, size int, gap time.Duration, stall bool) (reply string, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(failsafe))
	// Keep-alive, so that only the guard can make the server close; at speed the reply is all
	// that is wanted.
	connection := "keep-alive"
	if gap == 0 {
		connection = "close"
	}
	fmt.Fprintf(conn, "POST /x HTTP/1.1\r\nHost: x\r\nConnection: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", connection, size)
	go func() {
		if gap == 0 {
			conn.Write([]byte(strings.Repeat("a", size)))
			return
		}
		for i := range size {
			if stall && i == size/2 {
				return
			}
			if _, err := conn.Write([]byte{'a'}); err != nil {
				return
			}
			time.Sleep(gap)
		}
	}()
	var sb strings.Builder
	_, err = io.Copy(&sb, conn)
	var ne net.Error
	timedOut := errors.As(err, &ne) && ne.Timeout()
	return sb.String(), !timedOut
}

// TestStalledBodiesAreClosed ensures a body that trickles below the average rate, or stops,
// has its connection closed by the server, whether or not the handler reads it; and that a
// body sent at speed is read whole.
func TestStalledBodiesAreClosed(t *testing.T) {
	for _, c := range []struct {
		name    string
		handler func(http.ResponseWriter, *http.Request) error
		size    int
		gap     time.Duration
		stall   bool
		stalled bool // the handler's read fails with ErrStalled
	}{
		{name: "trickle below the rate", handler: readAll, size: 100_000, gap: 20 * time.Millisecond, stalled: true},
		{name: "stops half way", handler: readAll, size: 64, gap: time.Millisecond, stall: true, stalled: true},
		{name: "handler ignores the body", handler: func(w http.ResponseWriter, r *http.Request) error { return nil }, size: 100_000, gap: 20 * time.Millisecond},
		{name: "at speed", handler: readAll, size: 8 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr, errs := server(t, c.handler)
			reply, closed := trickle(t, addr, c.size, c.gap, c.stall)
			if c.gap == 0 {
				if !strings.HasPrefix(reply, "HTTP/1.1 200") || !strings.HasSuffix(reply, fmt.Sprint(c.size)) {
					t.Fatalf("body sent at speed: reply %q, want 200 with its length", reply)
				}
				return
			}
			if !closed {
				t.Fatalf("the connection was still open after %v (reply %q)", failsafe, reply)
			}
			if err := <-errs; c.stalled && !errors.Is(err, bodyguard.ErrStalled) {
				t.Fatalf("handler's read error = %v, want ErrStalled", err)
			}
		})
	}
}

// TestLongResponseOutlivesTheDeadline ensures that once the body is read, a response streamed
// for longer than every limit reaches the client whole, with the request's context alive.
func TestLongResponseOutlivesTheDeadline(t *testing.T) {
	const chunks = 12 // × 100 ms: past Idle and Grace several times
	addr, errs := server(t, func(w http.ResponseWriter, r *http.Request) error {
		if _, err := io.ReadAll(r.Body); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range chunks {
			select {
			case <-r.Context().Done():
				return r.Context().Err()
			case <-time.After(100 * time.Millisecond):
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			http.NewResponseController(w).Flush()
		}
		return nil
	})
	client := &http.Client{Timeout: failsafe}
	res, err := client.Post("http://"+addr+"/stream", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got := 0
	for sc := bufio.NewScanner(res.Body); sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "data: ") {
			got++
		}
	}
	if got != chunks {
		t.Fatalf("received %d of %d events", got, chunks)
	}
	if err := <-errs; err != nil {
		t.Fatalf("handler: %v", err)
	}
}

// The guard's cost on an ordinary request: a 4 KiB JSON body over a real loopback connection,
// with and without it.
func BenchmarkRequest(b *testing.B) {
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("x", 4<<10) + `"}]}`
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { readAll(w, r) })
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"unguarded", h}, {"guarded", bodyguard.Wrap(h, bodyguard.DefaultLimits)}} {
		b.Run(c.name, func(b *testing.B) {
			srv := httptest.NewServer(c.h)
			defer srv.Close()
			client := srv.Client()
			b.ReportAllocs()
			for b.Loop() {
				res, err := client.Post(srv.URL, "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
}
