package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/app/provider"
	"tokenguard/app/provider/anthropic"
	"tokenguard/app/provider/gemini"
	"tokenguard/app/provider/openai"
	"tokenguard/app/provider/translate"
)

// crossCall is a fallback served by another provider than the caller's: the request
// translated into the serving provider's shape, parsed and prepared by that provider's own
// adapter (so its meter reads its own answer), and what turns the answer back.
type crossCall struct {
	up     *upstream
	call   provider.Call
	key    string
	req    *translate.Request
	caller translate.API
}

// translatable reports whether a fallback of another provider can answer the caller's
// endpoint: chat completions, messages, and Gemini's generateContent in any API version.
func translatable(endpoint string) bool {
	switch endpoint {
	case openai.ChatCompletions, anthropic.Messages:
		return true
	}
	return strings.HasSuffix(endpoint, "/models/{model}:"+gemini.GenerateContent) ||
		strings.HasSuffix(endpoint, "/models/{model}:"+gemini.StreamGenerateContent)
}

// crossProvider returns the translated call when model (the fallback) belongs to a provider
// other than u's that the proxy serves, nil when it is u's own or unknown (sent to u, as any
// model). The call is parsed by that provider's adapter, for the reservation, and not yet
// prepared: send prepares it with the output cap the admission decided. Its upstream key is the project's stored key for that provider or the server's: the
// caller's own key is for the caller's provider and never goes elsewhere.
func (p *Proxy) crossProvider(proj *project, u *upstream, call *provider.Call, model string) (*crossCall, error) {
	target := p.cfg.Prices.Provider(model)
	tu := p.upstreams[target]
	if target == "" || target == u.adapter.Name() || tu == nil {
		return nil, nil
	}
	if !translatable(call.Endpoint) {
		return nil, apperr.New(apperr.InvalidRequest, "the fallback model %s is served by %s, and %s requests cannot be translated for it: choose a fallback model of the same provider", model, target, call.Endpoint)
	}
	key := proj.keys[target]
	if key == "" {
		key = tu.envKey
	}
	if key == "" {
		return nil, apperr.New(apperr.NoProviderKey, "No %s key for the fallback model %s: set one on the project or configure the server's", target, model)
	}
	x := &crossCall{up: tu, key: key, caller: translate.API(u.adapter.Name())}
	var err error
	if x.req, err = translate.DecodeRequest(x.caller, call.Body, call.Stream, call.Framing == provider.FramingRaw); err != nil {
		return nil, err
	}
	// The cap sent is the one reserved: the caller's own, clamped to the fallback's maximum;
	// with none, Anthropic (which requires one) gets the maximum the reservation assumed.
	limit := p.cfg.Prices.MaxOutput(model)
	maxTokens := min(x.req.MaxTokens, limit)
	if maxTokens == 0 && target == pricing.Anthropic {
		maxTokens = limit
	}
	up, err := translate.EncodeRequest(x.req, translate.API(target), model, maxTokens)
	if err != nil {
		return nil, err
	}
	if err := tu.adapter.Parse(&provider.Request{Method: http.MethodPost, Path: up.Path, Query: up.Query, Body: up.Body}, &x.call); err != nil {
		return nil, err
	}
	return x, nil
}

// header is the upstream request's header: the caller's (credentials and hop-by-hop headers
// stripped) for its own provider; for another provider none of the caller's headers, which
// are meant for its own API (anthropic-version, openai-organization, …).
func (x *crossCall) header(in http.Header) http.Header {
	if x == nil {
		return upstreamHeader(in)
	}
	return http.Header{"Content-Type": {"application/json"}}
}

// errTooLarge ends the read of an answer too large to translate.
var errTooLarge = errors.New("the provider's answer is too large to translate")

// boundedBuffer keeps an answer to translate, up to translate.MaxResponseBytes.
type boundedBuffer struct{ b []byte }

func (x *boundedBuffer) Write(p []byte) (int, error) {
	if len(x.b)+len(p) > translate.MaxResponseBytes {
		return 0, errTooLarge
	}
	x.b = append(x.b, p...)
	return len(p), nil
}

// relayTranslated answers the caller in its own provider's format from the serving provider's
// answer resp: errors in the caller's error shape, a body translated whole, a stream event by
// event. The serving provider's adapter meters what it sent.
func (p *Proxy) relayTranslated(w http.ResponseWriter, r *http.Request, ctx context.Context, resp *http.Response, x *crossCall, model string, out *outcome, tick func()) {
	h := w.Header()
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		h.Set("Retry-After", ra)
	}
	h.Set("X-Tokenguard-Final-Model", model)
	h.Set("X-Tokenguard-Fallback", "true")
	h.Set("X-Tokenguard-Served-By", x.up.adapter.Name())
	if len(x.req.Dropped) > 0 {
		h.Set(translate.DroppedHeader, strings.Join(x.req.Dropped, ", "))
	}
	h.Set("Content-Type", "application/json")
	out.status = resp.StatusCode
	call := &x.call
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var kept errorBody
		copyBody(io.Discard, resp.Body, &kept, tick)
		out.errorCode, out.errorMessage = codeUpstreamError, errorMessage(kept.b)
		msg := translate.ErrorMessage(kept.b)
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(translate.EncodeError(nil, x.caller, resp.StatusCode, x.up.adapter.Name()+": "+msg))
		return
	}
	if call.Stream {
		if x.caller != translate.Gemini || !x.req.GeminiArray {
			h.Set("Content-Type", "text/event-stream")
		}
		h.Set("Cache-Control", "no-cache")
		w.WriteHeader(resp.StatusCode)
		var flush func()
		if f, ok := w.(http.Flusher); ok {
			flush = f.Flush
		}
		tm := &translatingMeter{Meter: x.up.adapter.NewMeter(call), st: translate.NewStream(x.caller, translate.API(x.up.adapter.Name()), model, x.req, p.cfg.Now()), w: w, flush: flush}
		rr := provider.Relay(w, flush, resp.Body, call.Framing, tm, func() {
			if out.firstByte.IsZero() {
				out.firstByte = p.cfg.Now()
			}
			tick()
		})
		tm.write(tm.st.End())
		rr.WriteErr = tm.werr
		p.streamed(ctx, r, call, tm.Result(), rr, out)
		return
	}
	var body boundedBuffer
	res := copyBody(&body, resp.Body, nil, tick)
	reported, found := x.up.adapter.Usage(call, body.b)
	out.usage, out.estimated = p.complete(call, reported, found, res.Bytes)
	tr, ok := translate.DecodeResponse(translate.API(x.up.adapter.Name()), body.b)
	switch {
	case res.ReadErr != nil:
		out.errorCode = p.relayError(ctx, r, res.RelayResult)
		fallthrough
	case !ok:
		out.status = http.StatusBadGateway
		if out.errorCode == "" {
			out.errorCode = apperr.UpstreamUnavailable
		}
		apperr.WriteJSON(w, apperr.New(apperr.UpstreamUnavailable, "The fallback model's provider (%s) sent an answer that could not be translated", x.up.adapter.Name()))
		return
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := w.Write(translate.EncodeResponse(nil, x.caller, &tr, model, p.cfg.Now())); err != nil {
		out.errorCode = codeClientDisconnected
	}
}

// translatingMeter meters a translated stream with the serving provider's own meter and
// sends the caller the translation of each event instead of the event (so Relay forwards
// nothing itself).
type translatingMeter struct {
	provider.Meter
	st    *translate.Stream
	w     io.Writer
	flush func()
	werr  error
}

func (t *translatingMeter) Event(name, data []byte) bool {
	t.Meter.Event(name, data)
	t.write(t.st.Event(name, data))
	return false
}

// write sends b to the caller and flushes it; after a failed write nothing more is sent,
// while the stream is still read to the end for its usage.
func (t *translatingMeter) write(b []byte) {
	if len(b) == 0 || t.werr != nil {
		return
	}
	if _, t.werr = t.w.Write(b); t.werr == nil && t.flush != nil {
		t.flush()
	}
}

// streamed fills out from how a relayed stream ended: the meter's result sr (estimates for
// what the provider never reported) and the relay's rr.
func (p *Proxy) streamed(ctx context.Context, r *http.Request, call *provider.Call, sr provider.StreamResult, rr provider.RelayResult, out *outcome) {
	out.usage, out.estimated = p.complete(call, sr.Usage, sr.Complete, sr.OutputBytes)
	if sr.ErrorCode != "" {
		out.errorCode = sr.ErrorCode
	}
	if rr.ReadErr != nil || rr.WriteErr != nil {
		out.errorCode = p.relayError(ctx, r, rr)
	}
}
