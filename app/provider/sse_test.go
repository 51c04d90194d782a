package provider_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"tokenguard/app/provider"
)

// The event reader hands the meter each event's name and data while keeping the raw bytes
// for the relay, whatever the line endings, line lengths and read sizes.
func TestEventReader(t *testing.T) {
	big := strings.Repeat("x", 2<<20) // a 2 MB line, far over the read buffer
	stream := "event: a\ndata: one\n\n" +
		": comment\r\ndata: two\r\ndata: lines\r\n\r\n" +
		"\n\ndata: " + big + "\n\n" +
		"id: 7\ndata: [DONE]" // no final blank line, no final newline
	want := []struct{ name, data string }{{"a", "one"}, {"", "two\nlines"}, {"", big}, {"", "[DONE]"}}

	for _, r := range map[string]io.Reader{
		"whole":    strings.NewReader(stream),
		"one byte": iotest.OneByteReader(strings.NewReader(stream)),
	} {
		er := provider.NewEventReader(r)
		var raw bytes.Buffer
		for i, w := range want {
			rawEv, name, data, err := er.Next()
			if err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			if string(name) != w.name || string(data) != w.data {
				t.Fatalf("event %d = %q/%.20q (len %d), want %q/%.20q (len %d)", i, name, data, len(data), w.name, w.data, len(w.data))
			}
			raw.Write(rawEv)
		}
		if _, _, _, err := er.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the last event: %v, want EOF", err)
		}
		if raw.String() != stream {
			t.Fatalf("raw events do not add up to the stream (%d bytes vs %d)", raw.Len(), len(stream))
		}
	}
}

type dropMeter struct {
	events []string
}

func (m *dropMeter) Event(name, data []byte) bool {
	m.events = append(m.events, string(data))
	return string(data) != "drop me"
}
func (m *dropMeter) Raw([]byte)                    {}
func (m *dropMeter) Result() provider.StreamResult { return provider.StreamResult{} }

// orderLog records, in order, the upstream's reads and the relay's writes and flushes.
type orderLog struct{ steps []string }

func (l *orderLog) Write(p []byte) (int, error) {
	l.steps = append(l.steps, "write "+strings.TrimSpace(string(p)))
	return len(p), nil
}

func (l *orderLog) flush() { l.steps = append(l.steps, "flush") }

// scriptedReader returns one chunk per Read, as an upstream's separate writes arrive, and
// logs each read so the test sees what the relay did before asking for more input.
type scriptedReader struct {
	chunks []string
	log    *orderLog
}

func (r *scriptedReader) Read(p []byte) (int, error) {
	r.log.steps = append(r.log.steps, "read")
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks = r.chunks[1:]
	return n, nil
}

// Events that arrive together leave in one flush, and every event is flushed before the
// relay waits for more input: an event is never held back by the next one, even when part of
// the next one has already arrived. Dropped events are not written.
func TestRelayFlushes(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   []string
	}{{
		name:   "one event per read",
		chunks: []string{"data: a\n\n", "data: b\n\n"},
		want:   []string{"read", "write data: a", "flush", "read", "write data: b", "flush", "read"},
	}, {
		name:   "several events in one read",
		chunks: []string{"data: a\n\ndata: drop me\n\ndata: b\r\n\r\ndata: c\n\n"},
		want:   []string{"read", "write data: a", "write data: b", "write data: c", "flush", "read"},
	}, {
		name:   "next event half arrived",
		chunks: []string{"data: a\n\ndata: b", "\n\n"},
		want:   []string{"read", "write data: a", "flush", "read", "write data: b", "flush", "read"},
	}, {
		name:   "blank lines after an event",
		chunks: []string{"data: a\n\n\n\r\n", "data: b\n\n"},
		want:   []string{"read", "write data: a", "flush", "read", "write data: b", "flush", "read"},
	}, {
		name:   "dropped event last in its read",
		chunks: []string{"data: a\n\ndata: drop me\n\n", "data: b\n\n"},
		want:   []string{"read", "write data: a", "flush", "read", "write data: b", "flush", "read"},
	}, {
		name:   "stream ends without a blank line",
		chunks: []string{"data: a\n\ndata: b"},
		want:   []string{"read", "write data: a", "flush", "read", "read", "write data: b", "flush"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &orderLog{}
			m := &dropMeter{}
			res := provider.Relay(log, log.flush, &scriptedReader{chunks: tt.chunks, log: log}, provider.FramingSSE, m, nil)
			if res.ReadErr != nil || res.WriteErr != nil {
				t.Fatalf("relay: %+v", res)
			}
			if got, want := strings.Join(log.steps, " | "), strings.Join(tt.want, " | "); got != want {
				t.Errorf("steps\n got %s\nwant %s", got, want)
			}
		})
	}
}
