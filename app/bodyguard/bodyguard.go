// Package bodyguard owns the read deadlines of request bodies: a middleware that closes a
// connection whose body stalls, so clients that send a body one byte at a time cannot hold
// connections (and file descriptors) open for ever. net/http has ReadHeaderTimeout for the
// header but nothing that suits bodies: ReadTimeout is one deadline for the whole request, too
// short for a large upload on a slow link or too long against a trickle.
//
// A guarded body must keep making progress: no gap between reads longer than Limits.Idle, and,
// after Limits.Grace, an average of at least Limits.MinRate bytes a second (byte n must arrive
// by Grace + n/MinRate after the request began). A body that falls behind has its connection's
// read deadline pass, so the handler's read fails and the server closes the connection. Once
// the body is read to its end the deadline is cleared, so a long streamed response is never
// cut off by it.
package bodyguard

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// Limits are the progress a request body must make.
type Limits struct {
	// Idle is the longest wait for the next bytes of a body.
	Idle time.Duration
	// Grace is how long after the request began the average rate is first enforced.
	Grace time.Duration
	// MinRate is the least average rate, in bytes per second, after Grace.
	MinRate int64
}

// DefaultLimits allow 10 s between reads and 64 KiB/s on average after 10 s: a 32 MiB body has
// 522 s, enough for a link of 1 Mbit/s.
var DefaultLimits = Limits{Idle: 10 * time.Second, Grace: 10 * time.Second, MinRate: 64 << 10}

// ErrStalled is the error (wrapping os.ErrDeadlineExceeded) of a read from a body that did not
// keep up with the limits.
var ErrStalled = fmt.Errorf("request body stalled: %w", os.ErrDeadlineExceeded)

// Wrap returns next with every request body guarded by l. It must wrap the server's own
// ResponseWriter (put it outermost), since it sets deadlines on the connection; a writer that
// cannot set them (http.ErrNotSupported) is served unguarded. Zero fields of l take
// DefaultLimits' values.
func Wrap(next http.Handler, l Limits) http.Handler {
	if l.Idle <= 0 {
		l.Idle = DefaultLimits.Idle
	}
	if l.Grace <= 0 {
		l.Grace = DefaultLimits.Grace
	}
	if l.MinRate <= 0 {
		l.MinRate = DefaultLimits.MinRate
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		b := &body{ReadCloser: r.Body, rc: http.NewResponseController(w), limits: l, start: time.Now()}
		// Set before the handler runs: a handler that never reads the body still leaves the
		// server to discard it afterwards, and that read must be bounded too.
		if err := b.arm(); err == nil {
			r.Body = b
		}
		next.ServeHTTP(w, r)
	})
}

// body is a request body whose every read is given a deadline.
type body struct {
	io.ReadCloser
	rc     *http.ResponseController
	limits Limits
	start  time.Time
	n      int64 // bytes read so far
	done   bool  // read to the end: no more deadlines
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	if err := b.arm(); err != nil {
		return 0, err
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		// HTTP/1 clears the deadline itself when it starts watching for the client going away;
		// an HTTP/2 stream would keep it. An error here (the connection is gone) changes
		// nothing for a body already whole.
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = ErrStalled
	}
	return n, err
}

// arm sets the connection's read deadline for the next bytes of the body: Idle from now, or
// sooner when byte n+1 is due earlier (Grace + n/MinRate after the start).
func (b *body) arm() error {
	now := time.Now()
	wait := b.limits.Idle
	// In seconds, so a huge n saturates instead of overflowing a Duration.
	ahead := float64(b.n)/float64(b.limits.MinRate) - (now.Sub(b.start) - b.limits.Grace).Seconds()
	if ahead < wait.Seconds() {
		wait = time.Duration(ahead * float64(time.Second))
	}
	return b.rc.SetReadDeadline(now.Add(wait))
}
