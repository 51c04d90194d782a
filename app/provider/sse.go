package provider

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
)

// EventReader splits a text/event-stream into events. It keeps each event's raw bytes so the
// relay forwards exactly what the provider sent (ids, comments and all), and exposes the event
// name and data for metering. Lines may be of any length: a line longer than the read buffer
// is gathered piece by piece. Lines end in "\n" or "\r\n" (every provider we relay uses one of
// those; a lone "\r" terminator is not recognised).
type EventReader struct {
	br   *bufio.Reader
	raw  []byte   // the current event's raw bytes, terminator included
	data []byte   // joined data lines when an event has more than one
	segs [][2]int // offsets of data values in raw
	name [2]int   // offsets of the event name in raw
	err  error    // sticky: the error that ended the stream
}

// NewEventReader returns an EventReader reading from r.
func NewEventReader(r io.Reader) *EventReader {
	return &EventReader{br: bufio.NewReaderSize(r, 32<<10)}
}

// Reset makes er read from r, reusing its buffers.
func (er *EventReader) Reset(r io.Reader) {
	er.br.Reset(r)
	er.raw = er.raw[:0]
	er.data = er.data[:0]
	er.segs = er.segs[:0]
	er.name = [2]int{}
	er.err = nil
}

// Next reads the next event. raw is the event as received (ending in its blank line, unless
// the stream ended without one); name and data are its "event:" and joined "data:" values.
// All three are valid until the next call. At the end of the stream Next returns io.EOF; a
// stream that breaks off returns the read error, after first returning any complete lines of
// the unfinished event as a last event.
func (er *EventReader) Next() (raw, name, data []byte, err error) {
	if er.err != nil {
		return nil, nil, nil, er.err
	}
	er.raw = er.raw[:0]
	er.segs = er.segs[:0]
	er.name = [2]int{}
	lines := 0
	for {
		start := len(er.raw)
		line, rerr := er.readLine()
		if rerr != nil {
			er.err = rerr
			// A stream that ends without the final blank line still delivers what it had.
			if lines > 0 {
				n, d := er.fields()
				return er.raw, n, d, nil
			}
			return nil, nil, nil, rerr
		}
		content := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(content) == 0 {
			if lines == 0 {
				// Stray blank lines between events: forwarded with the next event.
				continue
			}
			n, d := er.fields()
			return er.raw, n, d, nil
		}
		lines++
		field, value := content, []byte(nil)
		if i := bytes.IndexByte(content, ':'); i >= 0 {
			field, value = content[:i], content[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		// Offsets, not slices: er.raw may move as later lines are appended. value is a suffix
		// of content, which is a prefix of the line at er.raw[start:].
		vs := start + len(content) - len(value)
		seg := [2]int{vs, vs + len(value)}
		switch string(field) {
		case "data":
			er.segs = append(er.segs, seg)
		case "event":
			er.name = seg
		}
	}
}

// readLine appends one line (with its "\n", if any) to er.raw and returns it as a slice of
// er.raw. It returns an error only when no byte of a new line could be read.
func (er *EventReader) readLine() ([]byte, error) {
	start := len(er.raw)
	for {
		frag, err := er.br.ReadSlice('\n')
		er.raw = append(er.raw, frag...)
		if err == nil {
			return er.raw[start:], nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(er.raw) > start {
			// The last line of a stream without a trailing newline.
			return er.raw[start:], nil
		}
		return nil, err
	}
}

// Ready reports whether the next event is already complete in the read buffer, so Next will
// return it without reading from the stream. The relay holds its flush only while Ready: the
// blank line that ends an event is the test, so a half-received event never delays the one
// before it. It may answer false for an event Next could return (one longer than the buffer),
// which costs only an extra flush.
func (er *EventReader) Ready() bool {
	if er.err != nil {
		return true
	}
	buf, _ := er.br.Peek(er.br.Buffered())
	// Next skips blank lines before an event; after them, the first line is not blank, so any
	// blank line that follows ends the event. The scan stops at that line, so checking after
	// every event reads each buffered byte about once.
	for blankLine(buf) {
		buf = buf[bytes.IndexByte(buf, '\n')+1:]
	}
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			return false
		}
		buf = buf[i+1:]
		if blankLine(buf) {
			return true
		}
	}
}

// blankLine reports whether b starts with a complete blank line.
func blankLine(b []byte) bool {
	return len(b) > 0 && b[0] == '\n' || len(b) > 1 && b[0] == '\r' && b[1] == '\n'
}

func (er *EventReader) fields() (name, data []byte) {
	if er.name[1] > er.name[0] {
		name = er.raw[er.name[0]:er.name[1]]
	}
	switch len(er.segs) {
	case 0:
	case 1:
		data = er.raw[er.segs[0][0]:er.segs[0][1]]
	default:
		er.data = er.data[:0]
		for i, s := range er.segs {
			if i > 0 {
				er.data = append(er.data, '\n')
			}
			er.data = append(er.data, er.raw[s[0]:s[1]]...)
		}
		data = er.data
	}
	return name, data
}

var readerPool = sync.Pool{New: func() any { return NewEventReader(nil) }}

// RelayResult says how a relay ended.
type RelayResult struct {
	// ReadErr is the error that ended reading the upstream body; nil when it ended cleanly.
	ReadErr error
	// WriteErr is the error that ended writing to the client (it went away); nil otherwise.
	WriteErr error
}

// Relay copies a streamed upstream body src to the client w piece by piece: every SSE event
// (FramingSSE) or every chunk read (FramingRaw) is shown to m and written, and the writes are
// flushed as soon as no further complete event is already waiting in the read buffer. Events
// that arrived together thus leave in one flush (one write to the client's connection), and no
// event is ever held back waiting for more input; the whole response is never buffered. tick,
// when not nil, is called after each piece arrives (the proxy resets its idle timer there).
// Relay returns when src ends or breaks, or when w fails; src is not closed.
func Relay(w io.Writer, flush func(), src io.Reader, framing Framing, m Meter, tick func()) RelayResult {
	if framing == FramingRaw {
		return relayRaw(w, flush, src, m, tick)
	}
	er := readerPool.Get().(*EventReader)
	er.Reset(src)
	defer func() {
		er.Reset(nil)
		// Don't keep a huge buffer alive because one event was huge.
		if cap(er.raw) <= 1<<20 && cap(er.data) <= 1<<20 {
			readerPool.Put(er)
		}
	}()
	unflushed := false
	for {
		raw, name, data, err := er.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			if unflushed && flush != nil {
				flush()
			}
			return RelayResult{ReadErr: err}
		}
		if tick != nil {
			tick()
		}
		if m.Event(name, data) {
			if _, err := w.Write(raw); err != nil {
				return RelayResult{WriteErr: err}
			}
			unflushed = true
		}
		if unflushed && flush != nil && !er.Ready() {
			flush()
			unflushed = false
		}
	}
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func relayRaw(w io.Writer, flush func(), src io.Reader, m Meter, tick func()) RelayResult {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if tick != nil {
				tick()
			}
			m.Raw(buf[:n])
			if _, werr := w.Write(buf[:n]); werr != nil {
				return RelayResult{WriteErr: werr}
			}
			if flush != nil {
				flush()
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return RelayResult{ReadErr: err}
		}
	}
}
