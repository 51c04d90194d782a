package provider

import (
	"bytes"
	"fmt"

	"github.com/tidwall/gjson"
)

// MaxCapture is the largest value ObjectCapture keeps for a key, in bytes. A usage object is a
// few hundred bytes; a larger value is no usage and is dropped.
const MaxCapture = 64 << 10

// maxKey is the longest key, as sent, that a StreamScanner compares with its keys.
const maxKey = 64

// StreamScanner reads JSON as it arrives in pieces of any size — one object, or an array of
// objects (Gemini's streamed JSON array) — and captures, in each object, the values of a few
// top-level keys, each up to its own size limit. It never holds a whole object: everything
// else is skipped byte by byte. Within one object the first occurrence of a key counts (as
// gjson reads it); a value over its limit is dropped and only its size is counted.
type StreamScanner struct {
	keys   []string
	limits []int
	array  bool

	depth     int // 0 outside; in array mode 1 in the array; elem inside an object
	elem      int // the depth inside a captured object
	inStr     bool
	esc       bool
	inKey     bool
	expectKey bool
	afterKey  bool
	started   bool // object mode has seen the first byte of its value
	closed    bool
	key       []byte
	keyLong   bool
	cur       int // index of the key whose value is being captured, -1 for none
	limit     int // limits[cur]
	buf       []byte
	over      bool
	overBytes int64

	vals     [][]byte // captured values of the current object, by key
	seen     []bool   // keys met in the current object
	keep     [][]byte // reused storage for vals
	overflow []int64  // sizes of values dropped for their limit, by key, until taken
}

// NewStreamScanner returns a scanner capturing keys[i] up to limits[i] bytes. With array
// true it reads a top-level array of objects and hands each object's values to Feed's emit;
// otherwise it reads one top-level object (anything else captures nothing).
func NewStreamScanner(array bool, keys []string, limits []int) *StreamScanner {
	elem := 1
	if array {
		elem = 2
	}
	return &StreamScanner{
		keys: keys, limits: limits, array: array, elem: elem, cur: -1,
		vals: make([][]byte, len(keys)), seen: make([]bool, len(keys)),
		keep: make([][]byte, len(keys)), overflow: make([]int64, len(keys)),
	}
}

// Closed reports whether the top-level value has ended.
func (s *StreamScanner) Closed() bool { return s.closed }

// TakeOverflow returns the bytes of key i's values dropped for their size since the last call.
func (s *StreamScanner) TakeOverflow(i int) int64 {
	n := s.overflow[i]
	s.overflow[i] = 0
	return n
}

// Feed reads the next piece of the stream. In array mode emit (which may be nil) is called
// at the end of each object with its captured values, by key (nil for a key absent or over its
// limit); the slices are valid only during the call.
func (s *StreamScanner) Feed(p []byte, emit func(vals [][]byte)) {
	i := 0
	if !s.array && !s.started {
		// Object mode reads one object: anything else is not captured at all.
		for i < len(p) && isWS(p[i]) {
			i++
		}
		if i == len(p) {
			return
		}
		s.started, s.closed = true, p[i] != '{'
	}
	if s.closed && !s.array {
		return
	}
	for ; i < len(p); i++ {
		c := p[i]
		if s.inStr {
			if s.esc {
				s.esc = false
				s.put(p[i : i+1])
				continue
			}
			// Skip to the string's next quote or backslash at once rather than byte by byte:
			// strings (the generated text) are most of a stream.
			rest := p[i:]
			seg := rest
			q := bytes.IndexByte(rest, '"')
			if q >= 0 {
				seg = rest[:q]
			}
			if b := bytes.IndexByte(seg, '\\'); b >= 0 {
				s.put(rest[:b+1])
				s.esc = true
				i += b
				continue
			}
			if q < 0 {
				s.put(rest)
				return
			}
			s.put(rest[:q])
			i += q
			s.inStr = false
			if s.inKey {
				s.inKey = false
				s.afterKey = true
				continue
			}
			s.capture('"')
			continue
		}
		switch c {
		case ',':
			if s.depth == s.elem {
				s.endValue()
				s.expectKey = true
				continue
			}
		case ':':
			if s.depth == s.elem && s.afterKey {
				s.afterKey = false
				s.startValue()
				continue
			}
		case '}':
			if s.depth == s.elem {
				s.endValue()
				s.depth--
				s.endObject(emit)
				if s.closed {
					return // the one object of object mode has ended
				}
				continue
			}
		case ']':
			if s.array && s.depth == 1 {
				s.depth = 0
				s.closed = true
				continue
			}
		case '[':
			if s.array && s.depth == 0 {
				s.depth = 1
				continue
			}
		case '{':
			if s.depth == s.elem-1 {
				s.depth = s.elem
				s.expectKey = true
				continue
			}
		case '"':
			s.inStr = true
			if s.depth == s.elem && s.expectKey {
				s.expectKey = false
				s.inKey = true
				s.key = s.key[:0]
				s.keyLong = false
				continue
			}
		}
		switch c {
		case '{', '[':
			s.depth++
		case '}', ']':
			s.depth--
		}
		s.capture(c)
	}
}

// put takes bytes inside a string: into the key being read, or the value being captured.
func (s *StreamScanner) put(b []byte) {
	if s.inKey {
		if len(s.key)+len(b) > maxKey {
			s.keyLong = true
			return
		}
		s.key = append(s.key, b...)
		return
	}
	if s.cur < 0 {
		return
	}
	if s.over {
		s.overBytes += int64(len(b))
		return
	}
	if len(s.buf)+len(b) > s.limit {
		s.over = true
		s.overBytes += int64(len(s.buf) + len(b))
		s.buf = s.buf[:0]
		return
	}
	s.buf = append(s.buf, b...)
}

func (s *StreamScanner) capture(c byte) {
	if s.cur < 0 {
		return
	}
	if s.over {
		s.overBytes++
		return
	}
	if len(s.buf) >= s.limit {
		s.over = true
		s.overBytes += int64(len(s.buf)) + 1
		s.buf = s.buf[:0]
		return
	}
	s.buf = append(s.buf, c)
}

func (s *StreamScanner) startValue() {
	s.cur = -1
	if s.keyLong {
		return
	}
	k := s.key
	if bytes.IndexByte(k, '\\') >= 0 {
		k = []byte(unescape(k))
	}
	for i, name := range s.keys {
		if string(k) == name && !s.seen[i] {
			s.seen[i] = true
			s.cur, s.limit = i, s.limits[i]
			s.over, s.overBytes = false, 0
			s.buf = s.keep[i][:0]
			return
		}
	}
}

func (s *StreamScanner) endValue() {
	if s.cur < 0 {
		return
	}
	i := s.cur
	s.keep[i] = s.buf
	if !s.over {
		s.vals[i] = trimWS(s.buf)
	} else {
		s.vals[i] = nil
		s.overflow[i] += s.overBytes
	}
	s.cur = -1
	s.buf = nil
}

func (s *StreamScanner) endObject(emit func(vals [][]byte)) {
	s.expectKey, s.afterKey, s.inKey = false, false, false
	if !s.array {
		s.closed = true
		return
	}
	if emit != nil {
		emit(s.vals)
	}
	clear(s.vals)
	clear(s.seen)
}

// ObjectCapture keeps a few top-level keys of a JSON object written to it in pieces of any
// size, so the proxy can relay a large non-streamed response without holding it whole and still
// read its usage: tee the body into it, then pass Bytes to Adapter.Usage. Each value is kept up
// to MaxCapture bytes; a larger one is dropped.
type ObjectCapture struct {
	s *StreamScanner
}

// NewObjectCapture returns a capture of keys (an adapter's UsageKeys).
func NewObjectCapture(keys ...string) *ObjectCapture {
	limits := make([]int, len(keys))
	for i := range limits {
		limits[i] = MaxCapture
	}
	return &ObjectCapture{s: NewStreamScanner(false, keys, limits)}
}

// Write reads the next piece of the body. It never fails.
func (c *ObjectCapture) Write(p []byte) (int, error) {
	c.s.Feed(p, nil)
	return len(p), nil
}

// Bytes returns a JSON object holding the captured keys whose values were complete and valid
// JSON, in the order of NewObjectCapture's keys ("{}" when none was): at most
// len(keys) × MaxCapture bytes plus the keys.
func (c *ObjectCapture) Bytes() []byte {
	out := []byte{'{'}
	for i, v := range c.s.vals {
		if v == nil || !gjson.ValidBytes(v) {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = appendString(out, c.s.keys[i])
		out = append(out, ':')
		out = append(out, v...)
	}
	return append(out, '}')
}

// appendString appends s to out as a JSON string.
func appendString(out []byte, s string) []byte {
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == '"' || c == '\\':
			out = fmt.Appendf(out, `\u%04x`, c)
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}

// trimWS cuts the JSON whitespace around a captured value.
func trimWS(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isWS(b[i]) {
		i++
	}
	for j > i && isWS(b[j-1]) {
		j--
	}
	return b[i:j]
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
