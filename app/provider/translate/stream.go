package translate

import (
	"bytes"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"tokenguard/app/provider"
)

// EventKind is what a stream Event says.
type EventKind uint8

// Event kinds, in the order a stream has them.
const (
	EvStart     EventKind = iota // the answer begins: ID, Model
	EvText                       // Lit is a piece of text
	EvToolStart                  // tool call Index begins: ID, Name
	EvToolArgs                   // Lit is a piece of tool call Index's arguments
	EvFinish                     // Finish says why the answer ended
	EvUsage                      // Usage is the usage so far (each one replaces the last)
	EvError                      // the provider failed mid-stream: Message
)

// Event is one neutral stream event. Its strings are valid only during the call that gets it.
type Event struct {
	Kind EventKind
	// Index numbers the answer's tool calls from 0, in the order they begin.
	Index int
	// Lit is a JSON string literal, quotes and escapes as they came: copied into the caller's
	// format without decoding.
	Lit      string
	ID, Name string
	Model    string
	Finish   Finish
	Usage    Usage
	Message  string
}

// Stream translates one streamed answer of the target provider, an SSE event at a time,
// into caller's wire format. It is used by one goroutine.
type Stream struct {
	caller, target API
	model          string // the model the caller is told answered
	created        int64
	includeUsage   bool
	array          bool // a Gemini caller's JSON-array stream

	out     []byte
	scratch []byte // a Gemini call's arguments, quoted
	chunk   []byte // a Gemini caller's chunk, before framing

	// What the target said so far.
	started bool
	sawTool bool
	tools   int
	curTool int // the tool call of Anthropic's current content block (-1: none)
	geminiN int
	finish  Finish
	usage   Usage
	// usageRaw is the latest usageMetadata of a Gemini stream, unread.
	usageRaw []byte
	upstream string // the answer's id
	ended    bool

	// Caller-side state.
	head      []byte // OpenAI: the prefix of every chunk, up to the delta
	block     int    // Anthropic: the next content block's index
	openKind  PartKind
	openBlock bool
	openTool  int
	elements  int // Gemini: chunks written
	pending   bool
	pendID    string
	pendName  string
	pendArgs  []byte
}

// NewStream returns the translation of one streamed answer from target to caller, naming
// model as the model that answered. r is the caller's decoded request (for its stream options).
func NewStream(caller, target API, model string, r *Request, now time.Time) *Stream {
	return &Stream{caller: caller, target: target, model: model, created: now.Unix(),
		includeUsage: r.IncludeUsage, array: r.GeminiArray, curTool: -1}
}

// Event takes one SSE event of the target's stream and returns what the caller is to be sent
// for it (often nothing), valid until the next call.
func (s *Stream) Event(name, data []byte) []byte {
	s.out = s.out[:0]
	if s.ended || len(data) == 0 || data[0] != '{' {
		return s.out
	}
	js := unsafe.String(unsafe.SliceData(data), len(data))
	if !gjson.Valid(js) {
		// What is copied into the caller's chunks verbatim must be JSON; no provider sends
		// anything else, and a broken event is better dropped than passed on broken.
		return s.out
	}
	switch s.target {
	case OpenAI:
		s.fromOpenAI(js)
	case Anthropic:
		s.fromAnthropic(name, js)
	case Gemini:
		s.fromGemini(js)
	}
	return s.out
}

// End returns what closes the caller's stream (the last usage, the stop event, "[DONE]" or
// the array's end), whether the target finished or broke off. Later events are ignored.
func (s *Stream) End() []byte {
	s.out = s.out[:0]
	if s.ended {
		return s.out
	}
	s.ended = true
	s.start()
	switch s.caller {
	case OpenAI:
		if s.includeUsage {
			s.out = append(s.out, "data: "...)
			o := open(s.out).str("id", openaiID(s.upstream)).str("object", "chat.completion.chunk").num("created", s.created).str("model", s.model)
			o.raw("choices", "[]").key("usage")
			o.b = appendOpenAIUsage(o.b, s.usageNow())
			s.out = append(o.close(), "\n\n"...)
		}
		s.out = append(s.out, "data: [DONE]\n\n"...)
	case Anthropic:
		s.closeBlock()
		o := open(append(s.out, "event: message_delta\ndata: "...)).str("type", "message_delta").key("delta")
		o.b = open(o.b).str("stop_reason", anthropicReason(s.finish)).raw("stop_sequence", "null").close()
		o.key("usage")
		o.b = appendAnthropicUsage(o.b, s.usageNow())
		s.out = append(o.close(), "\n\n"...)
		s.out = append(s.out, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
	case Gemini:
		s.geminiChunk("", true)
		if s.array {
			if s.elements == 0 {
				s.out = append(s.out, '[')
			}
			s.out = append(s.out, ']')
		}
	}
	return s.out
}

// emit hands one neutral event to the caller's encoder.
func (s *Stream) emit(e *Event) {
	switch e.Kind {
	case EvStart:
		if s.started {
			return
		}
		s.upstream = strings.Clone(bound(e.ID, maxID))
		s.start()
		return
	case EvUsage:
		s.usage = e.Usage
		return
	case EvFinish:
		if s.sawTool && (e.Finish == FinishStop || e.Finish == FinishNone) {
			e.Finish = FinishToolUse
		}
		s.finish = e.Finish
	case EvToolStart:
		if s.tools >= MaxToolCalls {
			return
		}
		s.sawTool = true
		s.tools++
	case EvToolArgs:
		// The arguments of a call past MaxToolCalls belong to no call the caller was told of
		// (appended to the last one's, they would corrupt it).
		if e.Index >= MaxToolCalls {
			return
		}
	}
	s.start()
	switch s.caller {
	case OpenAI:
		s.toOpenAI(e)
	case Anthropic:
		s.toAnthropic(e)
	case Gemini:
		s.toGemini(e)
	}
}

// usageNow is the usage the target has reported so far.
func (s *Stream) usageNow() Usage {
	if len(s.usageRaw) > 0 {
		s.usage = geminiUsage(gjson.ParseBytes(s.usageRaw))
		s.usageRaw = s.usageRaw[:0]
	}
	return s.usage
}

// start writes the caller's opening, once.
func (s *Stream) start() {
	if s.started {
		return
	}
	s.started = true
	switch s.caller {
	case OpenAI:
		o := open(append(s.head[:0], "data: "...)).str("id", openaiID(s.upstream)).str("object", "chat.completion.chunk").
			num("created", s.created).str("model", s.model).key("choices")
		s.head = append(o.b, `[{"index":0,"delta":`...)
		s.out = append(s.out, s.head...)
		s.out = append(s.out, `{"role":"assistant","content":""},"finish_reason":null}]}`+"\n\n"...)
	case Anthropic:
		o := open(append(s.out, "event: message_start\ndata: "...)).str("type", "message_start").key("message")
		m := open(o.b).str("id", anthropicID(s.upstream)).str("type", "message").str("role", "assistant").str("model", s.model).
			raw("content", "[]").raw("stop_reason", "null").raw("stop_sequence", "null").key("usage")
		u := s.usageNow()
		m.b = appendAnthropicUsage(m.b, Usage{Input: u.Input, CacheRead: u.CacheRead, CacheWrite: u.CacheWrite})
		o.b = m.close()
		s.out = append(o.close(), "\n\n"...)
	}
}

// topLevel reads the keys of a chunk's object in one pass (a Get per key would scan it once
// each, and this runs for every event).
func topLevel(js string, keys *[4]string, vals *[4]gjson.Result) {
	gjson.Parse(js).ForEach(func(k, v gjson.Result) bool {
		for i, want := range keys {
			if k.Str == want && !vals[i].Exists() {
				vals[i] = v
			}
		}
		return true
	})
}

var openaiKeys = [4]string{"error", "id", "choices", "usage"}

func (s *Stream) fromOpenAI(js string) {
	var v [4]gjson.Result
	topLevel(js, &openaiKeys, &v)
	if e := v[0]; e.Exists() && e.Type != gjson.Null {
		s.emit(&Event{Kind: EvError, Message: errorText(e.Get("message").Str)})
		return
	}
	if !s.started {
		s.emit(&Event{Kind: EvStart, ID: v[1].Str})
	}
	var ev Event
	if ch := v[2].Get("0"); ch.Exists() {
		var delta, finish gjson.Result
		ch.ForEach(func(k, e gjson.Result) bool {
			switch k.Str {
			case "delta":
				delta = e
			case "finish_reason":
				finish = e
			}
			return true
		})
		delta.ForEach(func(k, d gjson.Result) bool {
			switch k.Str {
			case "content", "refusal":
				if d.Type == gjson.String && len(d.Raw) > 2 {
					ev = Event{Kind: EvText, Lit: d.Raw}
					s.emit(&ev)
				}
			case "tool_calls":
				d.ForEach(func(_, tc gjson.Result) bool {
					s.openaiToolDelta(tc)
					return true
				})
			}
			return true
		})
		if finish.Type == gjson.String {
			ev = Event{Kind: EvFinish, Finish: openaiFinish(finish.Str)}
			s.emit(&ev)
		}
	}
	if u := v[3]; u.IsObject() {
		ev = Event{Kind: EvUsage, Usage: openaiUsage(u)}
		s.emit(&ev)
	}
}

func (s *Stream) openaiToolDelta(tc gjson.Result) {
	i := int(tc.Get("index").Int())
	if i < 0 || i >= MaxToolCalls {
		return
	}
	var ev Event
	fn := tc.Get("function")
	if id := tc.Get("id").Str; id != "" {
		ev = Event{Kind: EvToolStart, Index: i, ID: id, Name: fn.Get("name").Str}
		s.emit(&ev)
	}
	if a := fn.Get("arguments"); a.Type == gjson.String && len(a.Raw) > 2 {
		ev = Event{Kind: EvToolArgs, Index: i, Lit: a.Raw}
		s.emit(&ev)
	}
}

func (s *Stream) fromAnthropic(name []byte, js string) {
	root := gjson.Parse(js)
	typ := unsafe.String(unsafe.SliceData(name), len(name))
	if typ == "" {
		typ = root.Get("type").Str
	}
	var ev Event
	switch typ {
	case "message_start":
		m := root.Get("message")
		s.usage = anthropicUsage(m.Get("usage"))
		ev = Event{Kind: EvStart, ID: m.Get("id").Str}
		s.emit(&ev)
	case "content_block_start":
		cb := root.Get("content_block")
		s.curTool = -1
		switch cb.Get("type").Str {
		case "tool_use":
			s.curTool = s.tools
			ev = Event{Kind: EvToolStart, Index: s.tools, ID: cb.Get("id").Str, Name: cb.Get("name").Str}
			s.emit(&ev)
		case "text":
			if t := cb.Get("text"); len(t.Raw) > 2 {
				ev = Event{Kind: EvText, Lit: t.Raw}
				s.emit(&ev)
			}
		}
	case "content_block_delta":
		d := root.Get("delta")
		switch d.Get("type").Str {
		case "text_delta":
			if t := d.Get("text"); len(t.Raw) > 2 {
				ev = Event{Kind: EvText, Lit: t.Raw}
				s.emit(&ev)
			}
		case "input_json_delta":
			if p := d.Get("partial_json"); len(p.Raw) > 2 && s.curTool >= 0 {
				ev = Event{Kind: EvToolArgs, Index: s.curTool, Lit: p.Raw}
				s.emit(&ev)
			}
		}
	case "message_delta":
		// message_delta's usage is cumulative; input counts appear in it only on some models.
		u := root.Get("usage")
		if v := u.Get("output_tokens"); v.Exists() {
			s.usage.Output = provider.TokenCount(v)
		}
		if v := u.Get("input_tokens"); v.Exists() {
			s.usage.Input = provider.TokenCount(v)
		}
		if v := u.Get("cache_read_input_tokens"); v.Exists() {
			s.usage.CacheRead = provider.TokenCount(v)
		}
		if v := u.Get("cache_creation_input_tokens"); v.Exists() {
			s.usage.CacheWrite = provider.TokenCount(v)
		}
		if r := root.Get("delta.stop_reason"); r.Type == gjson.String {
			ev = Event{Kind: EvFinish, Finish: anthropicFinish(r.Str)}
			s.emit(&ev)
		}
	case "error":
		ev = Event{Kind: EvError, Message: errorText(root.Get("error.message").Str)}
		s.emit(&ev)
	}
}

var geminiKeys = [4]string{"error", "usageMetadata", "responseId", "candidates"}

func (s *Stream) fromGemini(js string) {
	var v [4]gjson.Result
	topLevel(js, &geminiKeys, &v)
	var ev Event
	if e := v[0]; e.Exists() {
		ev = Event{Kind: EvError, Message: errorText(e.Get("message").Str)}
		s.emit(&ev)
		return
	}
	if u := v[1]; u.IsObject() {
		// Gemini repeats its usage in every chunk; only the latest counts, so it is kept as
		// it came and read when needed.
		s.usageRaw = append(s.usageRaw[:0], u.Raw...)
	}
	if !s.started {
		ev = Event{Kind: EvStart, ID: v[2].Str}
		s.emit(&ev)
	}
	var content, finish gjson.Result
	v[3].Get("0").ForEach(func(k, e gjson.Result) bool {
		switch k.Str {
		case "content":
			content = e
		case "finishReason":
			finish = e
		}
		return true
	})
	content.Get("parts").ForEach(func(_, p gjson.Result) bool {
		s.geminiPart(p)
		return true
	})
	if finish.Type == gjson.String {
		ev = Event{Kind: EvFinish, Finish: geminiFinish(finish.Str)}
		s.emit(&ev)
	}
}

func (s *Stream) geminiPart(p gjson.Result) {
	var text, thought, call gjson.Result
	p.ForEach(func(k, e gjson.Result) bool {
		switch k.Str {
		case "text":
			text = e
		case "thought":
			thought = e
		case "functionCall":
			call = e
		}
		return true
	})
	var ev Event
	switch {
	case thought.Bool():
	case call.Exists():
		c := geminiCall(p, &s.geminiN)
		i := s.tools
		ev = Event{Kind: EvToolStart, Index: i, ID: c.ID, Name: c.Name}
		s.emit(&ev)
		// Gemini sends a call whole; the caller's formats stream arguments as a string.
		s.scratch = appendString(s.scratch[:0], c.Args)
		ev = Event{Kind: EvToolArgs, Index: i, Lit: unsafe.String(unsafe.SliceData(s.scratch), len(s.scratch))}
		s.emit(&ev)
	case text.Type == gjson.String && len(text.Raw) > 2:
		ev = Event{Kind: EvText, Lit: text.Raw}
		s.emit(&ev)
	}
}

// maxID bounds the ids and names a stream keeps to repeat later (real ones are under 100
// bytes; Gemini ids carrying a thought signature can be a few hundred).
const maxID = 4096

const chunkTail = `,"finish_reason":null}]}` + "\n\n"

func (s *Stream) toOpenAI(e *Event) {
	switch e.Kind {
	case EvText:
		s.out = append(s.out, s.head...)
		s.out = append(s.out, `{"content":`...)
		s.out = append(s.out, e.Lit...)
		s.out = append(s.out, '}')
		s.out = append(s.out, chunkTail...)
	case EvToolStart:
		s.out = append(s.out, s.head...)
		o := open(append(s.out, `{"tool_calls":[`...)).num("index", int64(e.Index)).str("id", e.ID).str("type", "function").key("function")
		o.b = open(o.b).str("name", e.Name).raw("arguments", `""`).close()
		s.out = append(o.close(), "]}"+chunkTail...)
	case EvToolArgs:
		s.out = append(s.out, s.head...)
		s.out = append(s.out, `{"tool_calls":[{"index":`...)
		s.out = appendInt(s.out, int64(e.Index))
		s.out = append(s.out, `,"function":{"arguments":`...)
		s.out = append(s.out, e.Lit...)
		s.out = append(s.out, "}}]}"+chunkTail...)
	case EvFinish:
		s.out = append(s.out, s.head...)
		s.out = append(s.out, `{},"finish_reason":"`...)
		s.out = append(s.out, openaiReason(e.Finish)...)
		s.out = append(s.out, "\"}]}\n\n"...)
	case EvError:
		o := open(append(s.out, "data: "...)).key("error")
		o.b = open(o.b).str("message", e.Message).str("type", "server_error").raw("param", "null").raw("code", "null").close()
		s.out = append(o.close(), "\n\n"...)
	}
}

// closeBlock ends the open Anthropic content block.
func (s *Stream) closeBlock() {
	if !s.openBlock {
		return
	}
	s.openBlock = false
	s.out = append(s.out, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":"...)
	s.out = appendInt(s.out, int64(s.block))
	s.out = append(s.out, "}\n\n"...)
	s.block++
}

func (s *Stream) blockDelta(kind, field, lit string) {
	s.out = append(s.out, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"...)
	s.out = appendInt(s.out, int64(s.block))
	s.out = append(s.out, `,"delta":{"type":"`...)
	s.out = append(s.out, kind...)
	s.out = append(s.out, `","`...)
	s.out = append(s.out, field...)
	s.out = append(s.out, `":`...)
	s.out = append(s.out, lit...)
	s.out = append(s.out, "}}\n\n"...)
}

func (s *Stream) blockStart() *obj {
	s.out = append(s.out, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":"...)
	s.out = appendInt(s.out, int64(s.block))
	s.openBlock = true
	o := &obj{b: s.out}
	return o.key("content_block")
}

func (s *Stream) toAnthropic(e *Event) {
	switch e.Kind {
	case EvText:
		if !s.openBlock || s.openKind != Text {
			s.closeBlock()
			o := s.blockStart()
			s.out = append(o.b, `{"type":"text","text":""}}`+"\n\n"...)
			s.openKind = Text
		}
		s.blockDelta("text_delta", "text", e.Lit)
	case EvToolStart:
		s.closeBlock()
		o := s.blockStart()
		o.b = open(o.b).str("type", "tool_use").str("id", e.ID).str("name", e.Name).raw("input", "{}").close()
		s.out = append(o.b, "}\n\n"...)
		s.openKind, s.openTool = ToolCall, e.Index
	case EvToolArgs:
		if s.openBlock && s.openKind == ToolCall && s.openTool == e.Index {
			s.blockDelta("input_json_delta", "partial_json", e.Lit)
		}
	case EvError:
		o := open(append(s.out, "event: error\ndata: "...)).str("type", "error").key("error")
		o.b = open(o.b).str("type", "api_error").str("message", e.Message).close()
		s.out = append(o.close(), "\n\n"...)
	}
}

func (s *Stream) toGemini(e *Event) {
	switch e.Kind {
	case EvText:
		s.flushTool()
		s.geminiChunk(e.Lit, false)
	case EvToolStart:
		s.flushTool()
		s.pending, s.pendID, s.pendName, s.pendArgs = true, strings.Clone(bound(e.ID, maxID)), strings.Clone(bound(e.Name, maxID)), s.pendArgs[:0]
	case EvToolArgs:
		if !s.pending || len(s.pendArgs)+len(e.Lit) > MaxToolArgsBytes {
			return
		}
		if lit := e.Lit; strings.IndexByte(lit, '\\') < 0 {
			s.pendArgs = append(s.pendArgs, lit[1:len(lit)-1]...)
		} else {
			s.pendArgs = append(s.pendArgs, gjson.Parse(lit).Str...)
		}
	case EvError:
		s.flushTool()
		o := open(s.chunk[:0]).key("error")
		o.b = open(o.b).num("code", 500).str("message", e.Message).str("status", "INTERNAL").close()
		s.chunk = o.close()
		s.frame(s.chunk)
	}
}

// flushTool writes the gathered tool call as one functionCall chunk.
func (s *Stream) flushTool() {
	if s.pending {
		s.geminiChunk("", false)
	}
}

// geminiChunk writes one Gemini chunk: the text literal lit, or the pending tool call; last
// adds the finish reason and the usage.
func (s *Stream) geminiChunk(lit string, last bool) {
	o := open(s.chunk[:0]).key("candidates")
	c := open(append(o.b, '[')).key("content")
	c.b = append(c.b, `{"parts":[`...)
	switch {
	case s.pending:
		s.pending = false
		args := s.pendArgs
		if !gjson.ValidBytes(args) || !bytes.HasPrefix(bytes.TrimSpace(args), []byte("{")) {
			args = []byte("{}")
		}
		fc := open(append(c.b, `{"functionCall":`...)).str("id", s.pendID).str("name", s.pendName)
		fc.key("args")
		fc.b = append(fc.b, args...)
		c.b = append(fc.close(), '}')
	case lit != "":
		c.b = append(append(append(c.b, `{"text":`...), lit...), '}')
	default:
		c.b = append(c.b, `{"text":""}`...)
	}
	c.b = append(c.b, `],"role":"model"}`...)
	if last && s.finish != FinishNone {
		c.str("finishReason", geminiReason(s.finish))
	}
	c.num("index", 0)
	o.b = append(c.close(), ']')
	if last {
		o.key("usageMetadata")
		o.b = appendGeminiUsage(o.b, s.usageNow())
	}
	o.str("modelVersion", s.model).str("responseId", s.upstream)
	s.chunk = o.close()
	s.frame(s.chunk)
}

// frame writes one Gemini chunk in the caller's framing: an SSE event, or an array element.
func (s *Stream) frame(chunk []byte) {
	if !s.array {
		s.out = append(s.out, "data: "...)
		s.out = append(s.out, chunk...)
		s.out = append(s.out, "\r\n\r\n"...)
		return
	}
	if s.elements == 0 {
		s.out = append(s.out, '[')
	} else {
		s.out = append(s.out, ",\r\n"...)
	}
	s.elements++
	s.out = append(s.out, chunk...)
}
