// Package provider is the seam between the proxy and each LLM provider. The proxy owns
// everything that is the same for every provider (key auth, budgets, credential hygiene, the
// relay loop, usage rows); an Adapter owns what differs: the shape of a request, where the
// model and the key go, and where usage hides in a response or a stream.
//
// One Adapter per provider, each in its own package (provider/openai, provider/anthropic,
// provider/gemini), and every one of them must pass providertest.Run against an upstream that
// speaks the provider's real wire format.
//
// This package also owns what the adapters share: the one-pass scan of a request body
// (ScanBody: duplicate and misspelled keys refused, the fields an adapter reads, the input
// upper bound), the bounded readers of counts, model names and error codes, the SSE reader and
// relay, and the streaming capture of a response's top-level keys (StreamScanner,
// ObjectCapture) that lets a large non-streamed body be relayed without holding it whole.
package provider

import (
	"net/http"
	"net/url"

	"tokenguard/app/pricing"
)

// Adapter is what the proxy needs to know about one provider. Implementations hold no
// per-request state (that lives in Call and Meter), so one Adapter serves every request.
type Adapter interface {
	// Name is the provider's name as it appears in routes (/proxy/<name>/…) and usage rows:
	// "openai", "anthropic" or "gemini".
	Name() string

	// Parse validates an inbound request and fills c: the endpoint, the model, whether it
	// streams, whether it is metered, the worst-case inputs of the budget reservation, and the
	// upstream request as it would go out unchanged. It returns an *apperr.Error with
	// INVALID_REQUEST for a body that is not the provider's shape and NOT_FOUND for a path
	// the adapter does not serve. Parse must price the model that will be sent: a body in which
	// the model is ambiguous (duplicate or case-variant keys) is rejected, never guessed.
	Parse(r *Request, c *Call) error

	// Prepare readies c's upstream request for sending with model as the model (the
	// requested one, or the fallback): it rewrites the model wherever the provider keeps it
	// (body or path) and makes any change the metering needs (OpenAI asks for the usage
	// chunk of a stream). It is called exactly once per metered call, after Parse.
	Prepare(c *Call, model string) error

	// SetKey puts the upstream provider key in the provider's usual slot of h.
	SetKey(h http.Header, key string)

	// Usage extracts the usage that a successful non-streamed response body reports. ok is
	// false when the body carries none. body may be the whole response or only its UsageKeys,
	// as an ObjectCapture of the response keeps them.
	Usage(c *Call, body []byte) (u pricing.Usage, ok bool)

	// PartTokens is the most input tokens the provider bills for one inline media part (an
	// image) sent to model: what MaxInputTokens counts each of the call's MediaParts at.
	PartTokens(model string) int64

	// UsageKeys are the top-level keys of a non-streamed response body that Usage reads, for
	// NewObjectCapture. The slice is shared: callers must not change it.
	UsageKeys() []string

	// NewMeter returns a meter for one streamed response to c.
	NewMeter(c *Call) Meter
}

// Request is an inbound proxy request as an adapter sees it, after the proxy has stripped
// every credential from it.
type Request struct {
	Method string
	// Path is the provider's own path: what follows /proxy/<name>, starting with "/".
	Path string
	// Query is the inbound query without ?key=. Adapters may keep it for the upstream.
	Query url.Values
	// Body is the whole request body (nil for GET).
	Body []byte
	// EndUser is the EndUserHeader value ("" when absent), which wins over the body's fields.
	EndUser string
}

// Framing says how a streamed response is cut into the pieces a Meter sees.
type Framing uint8

const (
	// FramingSSE is text/event-stream: the relay parses events and hands each to
	// Meter.Event, then forwards it unless the meter drops it.
	FramingSSE Framing = iota
	// FramingRaw is any other incremental body (Gemini's JSON-array stream): the relay hands
	// each chunk read from upstream to Meter.Raw and forwards it unchanged.
	FramingRaw
)

// Call is one proxied request, as parsed by an adapter. The proxy reads the exported fields;
// the upstream request fields are the adapter's to rewrite in Prepare.
type Call struct {
	// Endpoint is the provider path pattern served, e.g. "/v1/chat/completions"; it names the
	// call in logs.
	Endpoint string
	// Model is the model the client asked for ("" for unmetered calls that name none).
	Model string
	// EndUser is who the request is for: the EndUserHeader, else the body's own end-user field
	// (OpenAI safety_identifier or user, Anthropic metadata.user_id); "" when none. At most
	// MaxEndUser bytes, without control characters.
	EndUser string
	// Stream is true when the response will be streamed.
	Stream bool
	// Framing is how a streamed response is relayed.
	Framing Framing
	// Metered is false for calls that cost nothing and are not logged (listing models).
	Metered bool
	// InputTokens is a typical estimate of the prompt's tokens (about four bytes a token), for a
	// response whose usage never arrives.
	InputTokens int64
	// MaxInputTokens is an upper bound of the prompt tokens the provider can bill for this body
	// (text at one token a byte, media parts at their provider's per-part maximum, plus hidden
	// prompt overhead), for the budget reservation. See EstimateInput for what it excludes.
	MaxInputTokens int64
	// MediaParts is how many inline media parts MaxInputTokens counts, each at the adapter's
	// PartTokens of the requested model: a fallback model of the same provider may bill them
	// higher, and the reservation for it counts them at its own rate.
	MediaParts int64
	// MaxOutputTokens is the output cap the request names (per choice), or 0 when it names none
	// (the proxy then assumes the model's maximum). It covers everything the provider bills as
	// output for one choice, reasoning and thinking included (each adapter says why).
	MaxOutputTokens int64
	// Choices is how many completions the provider generates and bills for one request (OpenAI
	// n and best_of, Gemini candidateCount); at least 1 for metered calls.
	Choices int64
	// MinOutputTokens is the smallest output cap (per choice) the adapter can send for this
	// request in strict mode (Anthropic's extended thinking needs room for its budget, say);
	// 0 means no floor of the adapter's own.
	MinOutputTokens int64
	// PricePercent, when positive, is the percentage of list price the provider bills this
	// request at: OpenAI's priority processing (service_tier "priority") bills above the list
	// prices the price table holds. 0 means list price.
	PricePercent int64
	// OutputCap, when positive, is the output cap (per choice) the proxy wants sent upstream
	// instead of the request's own: strict budgets lower it to what the remaining budget
	// affords. The proxy sets it before Prepare; Prepare writes it where the provider reads the
	// cap (keeping the client's spelling of the field) and lowers anything that must stay below
	// it (a thinking budget).
	OutputCap int64

	// Method, Path, Query and Body are the upstream request (Path relative to the upstream
	// base URL). Parse sets them to the inbound values; Prepare rewrites them.
	Method string
	Path   string
	Query  url.Values
	Body   []byte

	// State is the adapter's own per-call data (what the client asked for, say); the proxy
	// never looks at it.
	State any
}

// Meter watches one streamed response as it is relayed. It is used by one goroutine.
type Meter interface {
	// Event sees one SSE event (name may be empty; data is the joined data lines). It returns
	// false to drop the event instead of forwarding it. Slices are valid only during the call.
	Event(name, data []byte) (forward bool)
	// Raw sees one chunk of a FramingRaw stream, in order. p is valid only during the call.
	Raw(p []byte)
	// Result reports what the stream said so far; it is called once, after the last event,
	// whether the stream completed or broke off.
	Result() StreamResult
}

// StreamResult is what a meter learned from a stream.
type StreamResult struct {
	// Usage is the usage the provider reported (possibly partial, e.g. input only).
	Usage pricing.Usage
	// Complete is true when the provider's final usage figure arrived. When false, the proxy
	// fills the missing parts with estimates and flags the row as estimated.
	Complete bool
	// OutputBytes counts the generated text seen (content, reasoning, tool arguments), for the
	// output estimate of a stream that broke off before its usage.
	OutputBytes int64
	// ErrorCode is set when the provider signalled an error inside a 200 stream (Anthropic's
	// "event: error", an OpenAI error chunk); the row is logged as an error.
	ErrorCode string
}

// EstimateTokens turns a byte count of text or JSON into a token estimate. About four bytes
// per token is the usual figure for English text; rounding up keeps the estimate from ever
// being zero for a non-empty input, so a broken-off stream is never free by accident.
func EstimateTokens(n int) int64 {
	if n <= 0 {
		return 0
	}
	return int64(n+3) / 4
}
