// Package translate converts requests, responses, stream events and errors between the three
// provider APIs TokenGuard serves — OpenAI chat completions, Anthropic messages and Gemini
// generateContent — so that a project's fallback model of another provider can answer a
// caller in the caller's own wire format.
//
// The design is one provider-neutral model with a decoder and an encoder per API, not nine
// pairwise adapters: a caller's body is decoded into a Request, which is encoded for the
// target; the target's answer is decoded into a Response (or, streamed, into Events one
// upstream event at a time), which is encoded in the caller's format. Adding a provider is one
// decoder and one encoder on each side.
//
// What the neutral model keeps: every system message (in order, hoisted to the top: Anthropic
// and Gemini have one system slot, so OpenAI system messages in the middle of a conversation
// move to the front), user and assistant turns with text, images (base64, and URLs where the
// target accepts them), tool calls and tool results, tool definitions and tool choice,
// temperature, top-p, stop sequences, the output cap and JSON / schema output. A field with
// no counterpart is either refused (Error, a 400 naming the field: the request would mean
// something else without it, e.g. n > 1, audio, server-side tools, stored state) or dropped
// and named in Request.Dropped (the answer is still an answer to the same question without
// it: sampling seeds, penalties, metadata, cache hints, thinking settings), which the proxy
// reports in the X-Tokenguard-Dropped-Fields header.
//
// Streams are translated event by event with no buffering beyond what the caller's format
// needs: text and tool-call argument deltas are copied as the JSON string literals they
// arrived as (no unescaping, no allocation), except for a Gemini caller, whose functionCall
// carries the arguments as one object, so they are gathered until the call is complete.
// Gemini thought signatures ride in the tool-call id given to OpenAI and Anthropic callers
// (URL-safe, after idSignature), so they come back with the tool result and are restored on
// the next Gemini request; they are stripped before any id reaches another provider.
//
// Usage is translated for the caller's SDK (input, cached, cache writes, output, reasoning);
// what TokenGuard meters is read by the serving provider's own adapter from what that provider
// sent, never from the translation.
package translate

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"tokenguard/app/apperr"

	"tokenguard/app/pricing"
)

// API names a provider API, spelled as the provider's name in routes and usage rows.
type API string

// The APIs translated.
const (
	OpenAI    API = "openai"
	Anthropic API = "anthropic"
	Gemini    API = "gemini"
)

// Bounds on what a translation holds. Request bodies are already bounded by the proxy's body
// limit; these bound what an upstream answer can make the translation keep.
const (
	// MaxResponseBytes is the largest non-streamed upstream answer translated.
	MaxResponseBytes = 32 << 20
	// MaxToolArgsBytes is the most tool-call argument text gathered for a Gemini caller's
	// functionCall (the only format that needs the whole arguments at once).
	MaxToolArgsBytes = 4 << 20
	// MaxToolCalls is the most tool calls one streamed answer may open.
	MaxToolCalls = 512
	// MaxErrorMessage is the longest upstream error message relayed, in bytes.
	MaxErrorMessage = 2048
)

// Role is who speaks a Message.
type Role uint8

// Roles. System text is not a message: it is Request.System.
const (
	User Role = iota
	Assistant
)

// PartKind is what a Part holds.
type PartKind uint8

// Part kinds.
const (
	Text PartKind = iota
	Image
	ToolCall
	ToolResult
)

// Part is one piece of a message or of a response.
type Part struct {
	Kind PartKind
	// Text is the text of a Text part, or a ToolResult's content.
	Text string
	// MIME and Data are an inline image (Data is base64); URL is an image by address.
	MIME, Data, URL string
	// ID and Name identify a tool call, and the call a ToolResult answers.
	ID, Name string
	// Args is a ToolCall's arguments: one JSON object, as text.
	Args string
	// IsError marks a ToolResult that reports a failure.
	IsError bool
	// Signature is a Gemini thought signature that came with a tool call.
	Signature string
}

// Message is one turn of the conversation.
type Message struct {
	Role  Role
	Parts []Part
}

// Tool is a function the model may call.
type Tool struct {
	Name, Description string
	// Schema is the parameters' JSON Schema, as JSON text ("" for none).
	Schema string
}

// ToolMode is how the model may use the tools.
type ToolMode uint8

// Tool modes.
const (
	ToolAuto  ToolMode = iota // the model decides (every API's default)
	ToolNone                  // no tool calls
	ToolAny                   // at least one tool call
	ToolNamed                 // a call of ToolChoice.Name
)

// ToolChoice is the request's tool choice.
type ToolChoice struct {
	Mode ToolMode
	Name string
	// NoParallel asks for at most one tool call (OpenAI parallel_tool_calls: false,
	// Anthropic disable_parallel_tool_use).
	NoParallel bool
}

// FormatKind is the output format asked for.
type FormatKind uint8

// Output formats.
const (
	FormatText   FormatKind = iota
	FormatJSON              // any JSON object
	FormatSchema            // JSON matching Format.Schema
)

// Format is the request's output format.
type Format struct {
	Kind   FormatKind
	Name   string
	Schema string // JSON Schema text, for FormatSchema
	Strict bool
}

// Request is a chat request in no provider's shape.
type Request struct {
	// System holds the text of every system message, in order.
	System   []string
	Messages []Message
	Tools    []Tool
	Choice   ToolChoice
	// Temperature, TopP and TopK are JSON numbers as the caller wrote them ("" when absent).
	Temperature, TopP, TopK string
	Stop                    []string
	// MaxTokens is the output cap the caller named (0: none).
	MaxTokens int64
	Format    Format
	Stream    bool
	// IncludeUsage is an OpenAI caller's stream_options.include_usage: its stream ends with a
	// usage chunk only when it asked for one.
	IncludeUsage bool
	// GeminiArray is a Gemini caller's streamGenerateContent without alt=sse: its stream is
	// one JSON array sent element by element.
	GeminiArray bool
	// Dropped names the caller's fields that have no translation and were left out: at most
	// MaxDropped, then "...".
	Dropped []string

	calls   map[string]string   // tool call id → function name, for results
	pending map[string][]string // function name → unanswered call ids of the latest model turn
}

// MaxDropped is the most dropped fields named (the header stays short whatever the body holds).
const MaxDropped = 16

func (r *Request) drop(field string) {
	// A name from the body goes into a header: printable ASCII only.
	field = strings.Map(func(c rune) rune {
		if c < 0x20 || c > 0x7e {
			return '?'
		}
		return c
	}, field)
	for _, d := range r.Dropped {
		if d == field {
			return
		}
	}
	switch {
	case len(r.Dropped) < MaxDropped:
		r.Dropped = append(r.Dropped, field)
	case len(r.Dropped) == MaxDropped:
		r.Dropped = append(r.Dropped, "...")
	}
}

// DroppedHeader is the response header that names the dropped fields.
const DroppedHeader = "X-Tokenguard-Dropped-Fields"

// Finish is why an answer ended.
type Finish uint8

// Finish reasons.
const (
	FinishNone Finish = iota // not said (a stream that broke off)
	FinishStop
	FinishStopSequence
	FinishLength
	FinishToolUse
	FinishFilter
)

// Usage is what an answer cost, in tokens. Input excludes the cached and cache-written tokens;
// Output includes the reasoning tokens.
type Usage struct {
	Input, CacheRead, CacheWrite, Output, Reasoning int64
}

func (u Usage) prompt() int64 {
	return pricing.SatAdd(pricing.SatAdd(u.Input, u.CacheRead), u.CacheWrite)
}

// Response is a non-streamed answer in no provider's shape.
type Response struct {
	ID, Model string
	// Parts are the answer's Text and ToolCall parts, in order.
	Parts  []Part
	Finish Finish
	Usage  Usage
}

// invalid is the 400 a request gets when it cannot be translated.
func invalid(format string, args ...any) error {
	return apperr.New(apperr.InvalidRequest, format, args...)
}

// unsupported is the 400 for a field that has no translation and cannot be dropped.
func unsupported(target API, field string) error {
	return invalid("%s cannot be translated for the fallback model's provider (%s): send the request without it, or choose a fallback model of the same provider", field, target)
}

// idSignature separates a tool-call id from the Gemini thought signature carried in it.
const idSignature = "__tgsig_"

// withSignature is the tool-call id an OpenAI or Anthropic caller sees for a Gemini call:
// the id, then the signature in URL-safe base64 without padding (ids must match
// [A-Za-z0-9_-]+ for Anthropic).
func withSignature(id, sig string) string {
	if sig == "" {
		return id
	}
	var b strings.Builder
	b.Grow(len(id) + len(idSignature) + len(sig))
	b.WriteString(id)
	b.WriteString(idSignature)
	for i := 0; i < len(sig); i++ {
		switch c := sig[i]; c {
		case '+':
			b.WriteByte('-')
		case '/':
			b.WriteByte('_')
		case '=':
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// splitSignature undoes withSignature.
func splitSignature(id string) (base, sig string) {
	i := strings.Index(id, idSignature)
	if i < 0 {
		return id, ""
	}
	enc := id[i+len(idSignature):]
	b := make([]byte, 0, len(enc)+3)
	for j := 0; j < len(enc); j++ {
		switch c := enc[j]; c {
		case '-':
			b = append(b, '+')
		case '_':
			b = append(b, '/')
		default:
			b = append(b, c)
		}
	}
	for len(b)%4 != 0 {
		b = append(b, '=')
	}
	return id[:i], string(b)
}

// skipSignature is what Gemini documents for a function call in the history that no Gemini
// model produced (so it has no thought signature): Gemini 3 refuses such a call without one.
const skipSignature = "skip_thought_signature_validator"

// appendString appends s as a JSON string literal. Invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendInt appends n in decimal.
func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// bound cuts s to at most n bytes, at a rune boundary.
func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
