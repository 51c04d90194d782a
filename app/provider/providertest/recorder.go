package providertest

import (
	"io"
	"net/http"
	"sync"
)

// Seen is one request as a fake upstream received it.
type Seen struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// Recorder keeps the requests a fake upstream receives; fakes embed it.
type Recorder struct {
	mu   sync.Mutex
	seen []Seen
}

// Record reads r's body, keeps the request, and returns the body.
func (rec *Recorder) Record(r *http.Request) []byte {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.seen = append(rec.seen, Seen{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	rec.mu.Unlock()
	return body
}

// Requests returns the requests received so far.
func (rec *Recorder) Requests() []Seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]Seen(nil), rec.seen...)
}

// Last returns the last request received (the zero Seen if none).
func (rec *Recorder) Last() Seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) == 0 {
		return Seen{}
	}
	return rec.seen[len(rec.seen)-1]
}
