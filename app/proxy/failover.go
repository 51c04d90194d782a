package proxy

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/app/provider"
	"tokenguard/app/usage"
)

// heldBack reports whether an upstream answer (resp; nil when the request failed before one,
// as failed says: unreachable or timed out) is a failure a project that fails over retries on
// its fallback model — a 429, a 5xx, or no answer — and, when it is, keeps what the row needs
// and writes nothing, so the fallback's answer is the only one the client sees.
func (p *Proxy) heldBack(r *http.Request, resp *http.Response, failed *apperr.Error, out *outcome, tick func()) bool {
	if !out.canRetry || r.Context().Err() != nil {
		return false
	}
	if resp == nil {
		out.retry, out.status, out.errorCode = true, apperr.Status(failed), failed.Code
		return true
	}
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
		return false
	}
	var kept errorBody
	copyBody(io.Discard, resp.Body, &kept, tick)
	out.retry, out.status, out.errorCode, out.errorMessage = true, resp.StatusCode, codeUpstreamError, errorMessage(kept.b)
	return true
}

// failover records the failed first attempt as a row of its own (cost 0: nothing was
// generated) and readies call for the retry on the fallback model: parsed afresh from the
// client's request, as Prepare may be called once per call. The client is told in
// X-Tokenguard-Failover which status it was spared.
func (p *Proxy) failover(w http.ResponseWriter, proj *project, u *upstream, call *provider.Call, req *provider.Request, start time.Time, out *outcome) error {
	slot, err := p.cfg.Usage.Acquire()
	if err != nil {
		return err
	}
	failed := *out
	failed.canRetry, failed.retry = false, false
	p.record(slot, proj, u, call, usage.NewRequestID(start), start, call.Model, false, failed, pricing.Quote{}, held{})
	w.Header().Set("X-Tokenguard-Failover", strconv.Itoa(failed.status))
	outputCap := call.OutputCap
	if err := u.adapter.Parse(req, call); err != nil {
		return err
	}
	call.OutputCap = outputCap
	*out = outcome{}
	return nil
}
