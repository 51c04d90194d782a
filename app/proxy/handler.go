package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	stdpath "path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/apikey"
	"tokenguard/app/apperr"
	"tokenguard/app/budget"
	"tokenguard/app/enduser"
	"tokenguard/app/pricing"
	"tokenguard/app/provider"
	"tokenguard/app/usage"
)

// Causes of an upstream request's cancellation, told apart with context.Cause.
var (
	errUpstreamTimeout = errors.New("upstream did not answer in time")
	errIdleTimeout     = errors.New("upstream stream idle for too long")
)

// Row error codes for outcomes that have no contract code of their own.
const (
	codeUpstreamError      = "UPSTREAM_ERROR"      // the provider answered 4xx/5xx
	codeClientDisconnected = "CLIENT_DISCONNECTED" // the client left before the response ended
	codeStreamIdleTimeout  = "STREAM_IDLE_TIMEOUT" // the provider went quiet mid-response
)

func (p *Proxy) handler(u *upstream) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		p.inflight.Add(1)
		defer p.inflight.Done()
		p.serve(w, r, u, ps.ByName("path"))
	}
}

// credentials finds the TokenGuard key and the caller's own provider key (if any) in the
// slots of DESIGN §3, in that order: x-tokenguard-key, Authorization: Bearer, x-api-key,
// x-goog-api-key, ?key=. A value that looks like a TokenGuard key is never taken as a
// provider key, so it can never be sent upstream.
func credentials(r *http.Request) (tg, caller string) {
	tg = r.Header.Get("X-Tokenguard-Key")
	take := func(v string) {
		if v == "" {
			return
		}
		if apikey.LooksLike(v) {
			if tg == "" {
				tg = v
			}
		} else if caller == "" {
			caller = v
		}
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		take(strings.TrimSpace(a[7:]))
	}
	take(r.Header.Get("X-Api-Key"))
	take(r.Header.Get("X-Goog-Api-Key"))
	if q := r.URL.RawQuery; q != "" && strings.Contains(q, "key=") {
		take(r.URL.Query().Get("key"))
	}
	return tg, caller
}

// dropRequest lists inbound headers never forwarded upstream: every credential slot, cookies,
// hop-by-hop headers, and Accept-Encoding (the proxy must read what the provider sends).
var dropRequest = map[string]bool{
	"Authorization": true, "X-Api-Key": true, "X-Goog-Api-Key": true, "X-Tokenguard-Key": true,
	"Cookie": true, "Proxy-Authorization": true, "Accept-Encoding": true,
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Content-Length": true, "Host": true,
	"Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
}

// dropResponse lists upstream response headers not relayed (hop-by-hop, and lengths the
// relay may change).
var dropResponse = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Proxy-Authenticate": true,
}

func upstreamHeader(in http.Header) http.Header {
	out := make(http.Header, len(in))
	var named []string // headers the client marked hop-by-hop in Connection
	for _, v := range in["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				named = append(named, http.CanonicalHeaderKey(f))
			}
		}
	}
	for k, vs := range in {
		if dropRequest[k] || strings.HasPrefix(k, "X-Tokenguard-") {
			continue
		}
		out[k] = vs
	}
	for _, k := range named {
		delete(out, k)
	}
	return out
}

// outcome is what one metered request ends as; it becomes the usage row.
type outcome struct {
	status       int
	usage        pricing.Usage
	estimated    bool
	errorCode    string
	firstByte    time.Time // when a stream's first body bytes arrived (zero when not streamed)
	errorMessage string    // the provider's message in an error answer (errorMessage)
	// canRetry says the answer may be held back for a failover (failover.go); retry that it
	// was: the provider failed before sending anything, and nothing was written.
	canRetry, retry bool
}

// held is the headroom slice a cluster replica's gate admitted a request from and the worst
// case it took there (app/ledger's tickets tell): the request's usage row names them, so the
// batch storing it gives that back to the slice.
type held struct {
	id   string
	nano int64
}

// heldBy is what ticket holds in a headroom slice (nothing for the engine's tickets).
func heldBy(ticket budget.Settler) held {
	if h, ok := ticket.(interface{ Slice() (string, int64) }); ok {
		id, nano := h.Slice()
		return held{id, nano}
	}
	return held{}
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, u *upstream, path string) {
	start := p.cfg.Now()

	proj, callerKey, ok := p.authenticate(w, r)
	if !ok {
		return
	}
	proj.lastUsed.Store(start.UnixMilli())

	body, err := p.readBody(w, r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	var query url.Values
	if r.URL.RawQuery != "" {
		query = r.URL.Query()
		query.Del("key")
		if len(query) == 0 {
			query = nil
		}
	}
	// A path with dot segments or doubled slashes could name, once an upstream normalises it,
	// a different endpoint than the one the adapter vetted.
	if path == "" || stdpath.Clean(path) != path {
		apperr.WriteJSON(w, apperr.New(apperr.NotFound, "the path %q is not supported", path))
		return
	}
	var call provider.Call
	preq := &provider.Request{Method: r.Method, Path: path, Query: query, Body: body, EndUser: r.Header.Get(provider.EndUserHeader)}
	if err := u.adapter.Parse(preq, &call); err != nil {
		p.fail(w, r, err)
		return
	}

	// Every request that leaves a usage row is told its id, so it can be found in the log.
	requestID := usage.NewRequestID(start)
	if call.Metered {
		w.Header().Set("X-Tokenguard-Request-Id", requestID)
	}

	upKey := callerKey
	if upKey == "" {
		upKey = proj.keys[u.adapter.Name()]
	}
	if upKey == "" {
		upKey = u.envKey
	}
	if upKey == "" {
		apperr.WriteJSON(w, apperr.New(apperr.NoProviderKey, "No %s key: set one on the project, send your own, or configure the server's fallback key", u.adapter.Name()))
		return
	}

	// Room for the usage row is taken before anything is served: when the database has not been
	// taking writes and the bounded queue is full, the request fails closed rather than spend
	// money that could not be recorded. An unmetered call only leaves a row when it is blocked.
	slot, err := p.cfg.Usage.Acquire()
	if err != nil {
		p.fail(w, r, err)
		return
	}
	defer slot.Release()

	// The gate: every route passes it, metered or not, so an exhausted project is refused
	// everywhere. Unmetered calls reserve nothing.
	model := call.Model
	var cost budget.Cost
	wc := worstCase{prices: p.cfg.Prices, adapter: u.adapter, call: &call, fallback: proj.fallback}
	// A refused request leaves a row of its refusal and nothing else: no reservation, no upstream
	// call.
	var slice held // once admitted: a refusal's row gives it back too
	refuse := func(err error) {
		w.Header().Set("X-Tokenguard-Request-Id", requestID)
		apperr.WriteJSON(w, err)
		p.record(slot, proj, u, &call, requestID, start, call.Model, false, outcome{status: apperr.Status(err), errorCode: apperr.Code(err)}, pricing.Quote{}, slice)
	}
	// The project's fallback model can serve this call (at 80%, or failing over).
	canFallBack := call.Metered && proj.fallback != "" && proj.fallback != call.Model && proj.allowed.Allows(proj.fallback)
	var cross fallbackRoute
	if canFallBack {
		// A fallback of another provider is reserved for as it would be sent: translated, with
		// that provider's bounds (its rate for images, its hidden prompt for tools).
		if cross.x, cross.err = p.crossProvider(proj, u, &call, proj.fallback); cross.x != nil {
			wc.fallbackCall = &cross.x.call
		}
		// A project that fails over may send the fallback after reserving for the requested
		// model, so the reservation covers both.
		wc.failover = proj.fallbackOnError
	}
	if call.Metered {
		cost = budget.Cost{WorstCase: wc.cost, MaxOutput: wc.ownCap, MinOutput: wc.minOutput()}
	}
	limit, err := p.gate(w.Header(), proj, &call, &wc)
	if err != nil {
		refuse(err)
		return
	}
	// Not cut short by a client that goes away meanwhile: the gate bounds its own wait (the
	// ledger's timeout), and a refusal must not blame the database for the client.
	ticket, decision, err := p.admitter().Admit(context.WithoutCancel(r.Context()), proj.subject, requestID, cost)
	if err != nil {
		limit.Cancel()
		refuse(err)
		return
	}
	slice = heldBy(ticket)
	if decision.Blocked {
		limit.Cancel()
		refuse(&apperr.Error{Code: apperr.BudgetExceeded, Message: decision.Message,
			RetryAfter: decision.RetryAfter, ResetAt: decision.ResetAt})
		return
	}
	if decision.OutputCap > 0 {
		// A strict budget affords only this much output: it is what goes upstream, and the
		// client is told, so a cut-short answer is explained.
		call.OutputCap = decision.OutputCap
		w.Header().Set("X-Tokenguard-Max-Output-Tokens", strconv.FormatInt(decision.OutputCap, 10))
	}
	fallback := decision.Fallback && canFallBack
	if fallback {
		// The fallback is what gets sent; a model the price table places at another provider
		// is sent there, translated (crossprovider.go), and an unknown one to this provider.
		model = proj.fallback
	}
	// The end user's daily budget (the project's endUserDailyBudgetUsd) is held like the
	// project's: the worst case of what will be sent is reserved while the request is in flight.
	var endUser enduser.Ticket
	if call.Metered && call.EndUser != "" && proj.endUserDaily > 0 {
		if endUser, err = p.endUsers.Admit(proj.id, call.EndUser, proj.endUserDaily, wc.cost(fallback, call.OutputCap)); err != nil {
			limit.Cancel()
			ticket.Settle(start, 0)
			refuse(err)
			return
		}
	}

	// From here on the reservation is settled whatever happens.
	out := outcome{}
	defer func() {
		if !call.Metered {
			ticket.Settle(start, 0)
			return
		}
		// Priced once, with the prices of now; the row names their version, so a later price
		// change never rewrites what it cost.
		q := p.cfg.Prices.Quote(model, out.usage)
		q.Cost = atPercent(q.Cost, call.PricePercent)
		limit.Settle(out.usage.Input + out.usage.CacheRead + out.usage.CacheWrite + out.usage.Output)
		endUser.Settle(q.Cost)
		if cr := ticket.Settle(start, q.Cost); len(cr) > 0 && p.cfg.OnCrossing != nil {
			p.cfg.OnCrossing(cr)
		}
		p.record(slot, proj, u, &call, requestID, start, model, fallback, out, q, slice)
	}()

	out.canRetry = !fallback && canFallBack && proj.fallbackOnError
	served := p.send(w, r, proj, u, &call, upKey, model, fallback, &cross, &out)
	if out.retry {
		// The provider failed before a byte was relayed and the project fails over: the
		// failed attempt is a row of its own, and the fallback is tried once.
		model, fallback = proj.fallback, true
		if err := p.failover(w, proj, u, &call, preq, start, &out); err != nil {
			out = outcome{status: apperr.Status(err), errorCode: apperr.Code(err)}
			p.fail(w, r, err)
			return
		}
		served = p.send(w, r, proj, u, &call, upKey, model, fallback, &cross, &out)
	}
	u = served // the row names the provider that served
}

// send sends call on model and relays the answer, filling out: to the provider the price
// table places the fallback model at, translated (cross, made before the admission so that it
// reserved for the translated request), or to u. It returns the upstream that served.
func (p *Proxy) send(w http.ResponseWriter, r *http.Request, proj *project, u *upstream, call *provider.Call, upKey, model string, fallback bool, cross *fallbackRoute, out *outcome) *upstream {
	refuse := func(err error) *upstream {
		*out = outcome{status: apperr.Status(err), errorCode: apperr.Code(err)}
		p.fail(w, r, err)
		return u
	}
	if fallback && cross.err != nil {
		return refuse(cross.err)
	}
	if x := cross.x; fallback && x != nil {
		x.call.OutputCap = call.OutputCap
		if err := x.up.adapter.Prepare(&x.call, model); err != nil {
			return refuse(err)
		}
		p.forward(w, r, x.up, &x.call, x.key, model, fallback, out, x)
		return x.up
	}
	if call.Metered {
		if err := u.adapter.Prepare(call, model); err != nil {
			return refuse(err)
		}
	}
	p.forward(w, r, u, call, upKey, model, fallback, out, nil)
	return u
}

// fallbackRoute is how the project's fallback model would be served: translated for another
// provider (x), or by this one (x nil); err when it cannot be (no key for that provider, an
// endpoint that does not translate), which only matters if the fallback is used.
type fallbackRoute struct {
	x   *crossCall
	err error
}

// StrictMinOutputTokens is the smallest output cap a strict budget lowers a request to: below
// it most answers would be cut off before they say anything useful, so the request is refused
// instead. A request that itself asks for less keeps its own cap as the minimum.
const StrictMinOutputTokens = 256

// worstCase describes a call's worst case to the budget engine, on the requested model or on
// the project's fallback: the upper bound of its input, and choices × the output cap, which is
// the request's own cap clamped to the model's maximum, or the maximum when it names none. It
// is a value whose method values serve's Cost holds, so nothing is allocated per request.
type worstCase struct {
	prices   *pricing.Table
	adapter  provider.Adapter // the requested provider's
	call     *provider.Call
	fallback string // the project's fallback model ("" for none)
	// fallbackCall is the request translated for a fallback of another provider (nil for the
	// same provider): what is sent on fallback, with that provider's bounds.
	fallbackCall *provider.Call
	// failover is set when the project retries a failed request on its fallback: then the
	// reservation for the requested model covers the fallback too.
	failover bool
}

func (w *worstCase) model(fallback bool) string {
	if fallback && w.fallback != "" {
		return w.fallback
	}
	return w.call.Model
}

// cost is the worst case with output capped at outputCap per choice (0: the request's own cap).
func (w *worstCase) cost(fallback bool, outputCap int64) pricing.NanoUSD {
	c := w.costOn(fallback, outputCap)
	if !fallback && w.failover {
		c = max(c, w.costOn(true, outputCap))
	}
	return c
}

// costOn is the worst case of sending the request on the requested model or the fallback: a
// translated request's own bounds, or this provider's with each media part at the fallback's
// rate when that is higher (gpt-4o-mini bills an image eight times the tokens gpt-4o does).
func (w *worstCase) costOn(fallback bool, outputCap int64) pricing.NanoUSD {
	c, model := w.call, w.model(fallback)
	if fallback && w.fallbackCall != nil {
		c = w.fallbackCall
	}
	in := max(c.MaxInputTokens, c.InputTokens)
	if fallback && c == w.call && c.MediaParts > 0 {
		if more := w.adapter.PartTokens(model) - w.adapter.PartTokens(c.Model); more > 0 {
			in = pricing.SatAdd(in, provider.SatMul(c.MediaParts, more))
		}
	}
	if outputCap <= 0 {
		outputCap = c.MaxOutputTokens
	}
	return atPercent(w.prices.WorstCase(model, in, outputCap, c.Choices), c.PricePercent)
}

// ownCap is the request's own per-choice output cap, clamped to the model's maximum.
func (w *worstCase) ownCap(fallback bool) int64 {
	limit := w.prices.MaxOutput(w.model(fallback))
	if w.call.MaxOutputTokens > 0 {
		return min(w.call.MaxOutputTokens, limit)
	}
	return limit
}

// minOutput is the smallest cap a strict budget may lower the request to.
func (w *worstCase) minOutput() int64 {
	return max(w.call.MinOutputTokens, min(StrictMinOutputTokens, w.ownCap(false)))
}

// atPercent is n at percent of list price (0: list price), saturating.
func atPercent(n pricing.NanoUSD, percent int64) pricing.NanoUSD {
	if percent <= 0 || percent == 100 || n <= 0 {
		return n
	}
	if n > math.MaxInt64/pricing.NanoUSD(percent) {
		return math.MaxInt64
	}
	return n * pricing.NanoUSD(percent) / 100
}

// forward sends call upstream and relays the answer, filling out. x is not nil when call is a
// translation for another provider than the caller's, whose answer is translated back.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, u *upstream, call *provider.Call, upKey, model string, fallback bool, out *outcome, x *crossCall) {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)

	target := u.base + call.Path
	if len(call.Query) > 0 {
		target += "?" + call.Query.Encode()
	}
	var reqBody io.Reader
	if call.Body != nil {
		reqBody = bytes.NewReader(call.Body)
	}
	req, err := http.NewRequestWithContext(ctx, call.Method, target, reqBody)
	if err != nil {
		*out = outcome{status: http.StatusBadRequest, errorCode: apperr.InvalidRequest}
		apperr.WriteJSON(w, apperr.New(apperr.InvalidRequest, "cannot build the upstream request for this path"))
		return
	}
	req.Header = x.header(r.Header)
	u.adapter.SetKey(req.Header, upKey)

	// One timer per request: first it bounds the wait for the response headers
	// (UPSTREAM_TIMEOUT), then every gap between two reads of the body (STREAM_IDLE_TIMEOUT).
	var reading atomic.Bool
	timer := time.AfterFunc(p.cfg.UpstreamTimeout, func() {
		if reading.Load() {
			cancel(errIdleTimeout)
		} else {
			cancel(errUpstreamTimeout)
		}
	})
	defer timer.Stop()
	resp, err := p.client.Do(req)
	if err != nil {
		if p.heldBack(r, nil, sendFailed(ctx), out, nil) {
			return
		}
		*out = p.sendFailure(w, r, ctx, err)
		return
	}
	defer resp.Body.Close()
	idle := p.cfg.StreamIdleTimeout
	reading.Store(true)
	timer.Reset(idle)
	tick := func() { timer.Reset(idle) }
	if p.heldBack(r, resp, nil, out, tick) {
		return
	}
	if x != nil {
		p.relayTranslated(w, r, ctx, resp, x, model, out, tick)
		return
	}

	h := w.Header()
	for k, vs := range resp.Header {
		if !dropResponse[k] {
			h[k] = vs
		}
	}
	if model != "" {
		h.Set("X-Tokenguard-Final-Model", model)
	}
	if fallback {
		h.Set("X-Tokenguard-Fallback", "true")
	}
	out.status = resp.StatusCode
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	streaming := ok && call.Stream && (call.Framing == provider.FramingRaw ||
		strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
	if streaming {
		// Events may be dropped, so the length can change.
		h.Del("Content-Length")
		tick = func() {
			if out.firstByte.IsZero() {
				out.firstByte = p.cfg.Now()
			}
			timer.Reset(idle)
		}
	}
	w.WriteHeader(resp.StatusCode)

	if !call.Metered {
		res := copyBody(w, resp.Body, nil, tick)
		if res.ReadErr != nil || res.WriteErr != nil {
			*out = outcome{status: resp.StatusCode, errorCode: p.relayError(ctx, r, res.RelayResult)}
		}
		return
	}
	if !ok {
		// Upstream errors pass through unchanged; nothing was generated, nothing is billed.
		var kept errorBody
		copyBody(w, resp.Body, &kept, tick)
		out.errorCode, out.errorMessage = codeUpstreamError, errorMessage(kept.b)
		return
	}
	if streaming {
		m := u.adapter.NewMeter(call)
		var flush func()
		if f, ok := w.(http.Flusher); ok {
			flush = f.Flush
		}
		rr := provider.Relay(w, flush, resp.Body, call.Framing, m, tick)
		p.streamed(ctx, r, call, m.Result(), rr, out)
		return
	}

	// The body is relayed as it arrives and kept for its usage only while it is small; a larger
	// one is read through a capture of the keys that hold the usage, so a response of any size
	// costs at most keepWhole bytes of memory.
	keep := usageBodyPool.Get().(*usageBody)
	keep.reset(u.adapter.UsageKeys())
	defer usageBodyPool.Put(keep)
	res := copyBody(w, resp.Body, keep, tick)
	reported, found := u.adapter.Usage(call, keep.bytes())
	if res.ReadErr != nil || res.WriteErr != nil {
		out.errorCode = p.relayError(ctx, r, res.RelayResult)
	}
	out.usage, out.estimated = p.complete(call, reported, found, res.Bytes)
}

// complete fills what the provider did not report with estimates: the input from the request
// size and the output from what was relayed, so a broken-off response is never free.
func (p *Proxy) complete(call *provider.Call, u pricing.Usage, reported bool, outputBytes int64) (pricing.Usage, bool) {
	if reported {
		return u, false
	}
	if u.Input+u.CacheRead+u.CacheWrite == 0 {
		u.Input = call.InputTokens
	}
	if u.Output == 0 {
		u.Output = provider.EstimateTokens(int(outputBytes))
	}
	return u, true
}

// relayError names why a relay stopped early.
func (p *Proxy) relayError(ctx context.Context, r *http.Request, res provider.RelayResult) string {
	switch {
	case res.WriteErr != nil || r.Context().Err() != nil:
		return codeClientDisconnected
	case errors.Is(context.Cause(ctx), errIdleTimeout):
		return codeStreamIdleTimeout
	default:
		return apperr.UpstreamUnavailable
	}
}

// sendFailure answers a request whose upstream call failed before any response header.
func (p *Proxy) sendFailure(w http.ResponseWriter, r *http.Request, ctx context.Context, err error) outcome {
	if r.Context().Err() != nil {
		// The client left; nobody to answer. 499 is the usual log code for it.
		return outcome{status: 499, errorCode: codeClientDisconnected}
	}
	e := sendFailed(ctx)
	if e.Code == apperr.UpstreamUnavailable {
		p.log.Warn("upstream unreachable", "err", err)
	}
	apperr.WriteJSON(w, e)
	return outcome{status: apperr.Status(e), errorCode: e.Code}
}

// sendFailed is the answer to a request the provider never answered: it timed out, or could not
// be reached.
func sendFailed(ctx context.Context) *apperr.Error {
	if errors.Is(context.Cause(ctx), errUpstreamTimeout) {
		return apperr.New(apperr.UpstreamTimeout, "The provider did not answer in time")
	}
	return apperr.New(apperr.UpstreamUnavailable, "The provider could not be reached")
}

var copyPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// keepWhole is the largest non-streamed body kept whole to read its usage: every ordinary
// answer fits, and reading it with one parse is cheaper than scanning it as it streams.
const keepWhole = 64 << 10

// usageBody keeps what a non-streamed answer's usage is read from: the whole body up to
// keepWhole, past that a provider.ObjectCapture of the adapter's usage keys.
type usageBody struct {
	keys    []string
	buf     []byte
	capture *provider.ObjectCapture
}

var usageBodyPool = sync.Pool{New: func() any { return &usageBody{buf: make([]byte, 0, 4<<10)} }}

func (b *usageBody) reset(keys []string) {
	b.keys, b.buf, b.capture = keys, b.buf[:0], nil
}

// Write never fails.
func (b *usageBody) Write(p []byte) (int, error) {
	if b.capture == nil && len(b.buf)+len(p) <= keepWhole {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	if b.capture == nil {
		b.capture = provider.NewObjectCapture(b.keys...)
		b.capture.Write(b.buf)
		b.buf = b.buf[:0]
	}
	return b.capture.Write(p)
}

// bytes is the body to read the usage from: the body itself, or the captured usage keys.
func (b *usageBody) bytes() []byte {
	if b.capture != nil {
		return b.capture.Bytes()
	}
	return b.buf
}

// relayed is how a non-streamed relay ended, and how many bytes it read.
type relayed struct {
	provider.RelayResult
	Bytes int64
}

// copyBody relays a non-streamed body to w as it arrives, showing every piece to keep (when not
// nil) for the usage. After the client goes away it keeps reading into keep, so the usage still
// counts.
func copyBody(w io.Writer, src io.Reader, keep io.Writer, tick func()) relayed {
	bp := copyPool.Get().(*[]byte)
	defer copyPool.Put(bp)
	buf := *bp
	var res relayed
	for {
		n, err := src.Read(buf)
		if n > 0 {
			tick()
			res.Bytes += int64(n)
			if keep != nil {
				keep.Write(buf[:n])
			}
			if res.WriteErr == nil {
				if _, werr := w.Write(buf[:n]); werr != nil {
					res.WriteErr = werr
					if keep == nil {
						return res
					}
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				res.ReadErr = err
			}
			return res
		}
	}
}

// readBody reads the request body up to the limit. A body over it is refused with 413 as soon
// as that is known — from Content-Length before reading a byte, or after limit+1 bytes.
func (p *Proxy) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	limit := p.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, apperr.New(apperr.PayloadTooLarge, "The request body is over the %d-byte limit", limit)
	}
	size := r.ContentLength
	if size < 0 || size > 1<<20 {
		size = 4 << 10
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return nil, apperr.New(apperr.PayloadTooLarge, "The request body is over the %d-byte limit", limit)
		}
		return nil, apperr.New(apperr.InvalidRequest, "could not read the request body")
	}
	if r.Method == http.MethodGet && buf.Len() == 0 {
		return nil, nil
	}
	return buf.Bytes(), nil
}

// fail writes err in the contract's shape, logging internal errors (never a credential: none
// is ever part of an error here).
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	if apperr.Code(err) == apperr.Internal {
		if r.Context().Err() != nil {
			return
		}
		p.log.Error("proxy request failed", "path", r.URL.Path, "err", err)
	}
	apperr.WriteJSON(w, err)
}

// record queues the usage row of a metered (or blocked) request in the slot taken for it.
// slice is what the request holds in a headroom slice (only its own row, by requestID, names it:
// a failed attempt's row of a failover does not).
func (p *Proxy) record(slot *usage.Slot, proj *project, u *upstream, call *provider.Call, requestID string, start time.Time, model string, fallback bool, out outcome, q pricing.Quote, slice held) {
	in := out.usage.Input + out.usage.CacheRead + out.usage.CacheWrite
	var ttfb int64
	if !out.firstByte.IsZero() {
		ttfb = out.firstByte.Sub(start).Milliseconds()
	}
	rec := usage.Record{
		RequestID:        requestID,
		CreatedAt:        start,
		WorkspaceID:      proj.workspaceID,
		ProjectID:        proj.id,
		Provider:         u.adapter.Name(),
		OriginalModel:    call.Model,
		FinalModel:       model,
		WasFallback:      fallback,
		Status:           out.status,
		InputTokens:      in,
		OutputTokens:     out.usage.Output,
		TotalTokens:      in + out.usage.Output,
		Cost:             q.Cost,
		LatencyMs:        p.cfg.Now().Sub(start).Milliseconds(),
		ErrorCode:        out.errorCode,
		Stream:           call.Stream,
		UsageEstimated:   out.estimated,
		PricedByDefault:  q.ByDefault,
		PricesVersion:    q.Version,
		CacheReadTokens:  out.usage.CacheRead,
		CacheWriteTokens: out.usage.CacheWrite,
		ReasoningTokens:  out.usage.Reasoning,
		TTFBMs:           ttfb,
		ErrorMessage:     out.errorMessage,
		EndUser:          call.EndUser,
		SliceID:          slice.id,
		SliceNano:        slice.nano,
	}
	// Observed first, so anything that can read the stored row sees its metrics too.
	for _, o := range p.cfg.Observers {
		o.Observe(call.Endpoint, rec)
	}
	slot.Add(rec)
}
