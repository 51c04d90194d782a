package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStalledBodiesAreClosedOnEveryRoute ensures the real program closes a connection whose
// request body trickles in one byte at a time, on the unauthenticated sign-in routes of the API
// and the dashboard and on the proxy, while normal requests pass and an oversized request
// header is refused.
func TestStalledBodiesAreClosedOnEveryRoute(t *testing.T) {
	app := startApp(t, testEnv(t.TempDir()+"/tg.db", "http://127.0.0.1:9"))
	o := signUpWithProject(t, app.URL, 0)
	addr := strings.TrimPrefix(app.URL, "http://")

	// All at once: each takes the default 10 s grace.
	var wg sync.WaitGroup
	for _, c := range []struct{ path, header string }{
		{"/api/auth/login", "Content-Type: application/json"},
		{"/login", "Content-Type: application/x-www-form-urlencoded"},
		{"/proxy/openai/v1/chat/completions", "Authorization: Bearer " + o.Key},
	} {
		wg.Go(func() {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			// Far past the grace: reaching it means the guard failed.
			conn.SetDeadline(time.Now().Add(time.Minute))
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\n%s\r\nContent-Length: 100000\r\n\r\n", c.path, addr, c.header)
			go func() {
				for {
					if _, err := conn.Write([]byte{'{'}); err != nil {
						return
					}
					time.Sleep(500 * time.Millisecond)
				}
			}()
			_, err = io.Copy(io.Discard, conn)
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("POST %s: a body sent a byte every 500 ms was not closed within a minute", c.path)
			}
		})
	}
	wg.Wait()

	if got, want := apiCall(t, "POST", app.URL+"/api/auth/login", "", map[string]any{"email": "ada@example.com", "password": testPassword}, nil), http.StatusOK; got != want {
		t.Errorf("sign-in after the trickles: status %d, want %d", got, want)
	}
	req, err := http.NewRequest("GET", app.URL+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Padding", strings.Repeat("a", 100<<10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got, want := res.StatusCode, http.StatusRequestHeaderFieldsTooLarge; got != want {
		t.Errorf("100 KiB header: status %d, want %d", got, want)
	}
}
