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

type flushCounter struct {
	bytes.Buffer
	flushes int
}

// Relay forwards every event the meter keeps, flushing after each one, and drops the rest.
func TestRelayFlushesPerEventAndDrops(t *testing.T) {
	in := "data: a\n\ndata: drop me\n\ndata: b\n\n"
	var out flushCounter
	m := &dropMeter{}
	res := provider.Relay(&out, func() { out.flushes++ }, strings.NewReader(in), provider.FramingSSE, m, nil)
	if res.ReadErr != nil || res.WriteErr != nil {
		t.Fatalf("relay: %+v", res)
	}
	if got, want := out.String(), "data: a\n\ndata: b\n\n"; got != want {
		t.Fatalf("relayed %q, want %q", got, want)
	}
	if got, want := out.flushes, 2; got != want {
		t.Fatalf("flushes = %d, want %d", got, want)
	}
	if got, want := len(m.events), 3; got != want {
		t.Fatalf("meter saw %d events, want %d", got, want)
	}
}
