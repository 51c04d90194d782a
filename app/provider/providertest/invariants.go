package providertest

import (
	"errors"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/app/provider"
)

// Prepared is one request through Parse, then Prepare with an OutputCap and a fallback model,
// then Parse again as the upstream would read the prepared body.
type Prepared struct {
	Before, After provider.Call
	// Reparsed is the prepared request parsed again (its Path the inbound one).
	Reparsed provider.Call
}

// CheckCall runs req through Parse and, when it is metered, through Prepare with outputCap
// (raised to the call's MinOutputTokens, as the proxy never sends less) and fallback, and checks
// what every adapter keeps: errors are the contract's codes; a metered call has Choices ≥ 1,
// input estimates with MaxInputTokens ≥ InputTokens ≥ 0 and a valid end user (the header's
// when req has one, the same again after Prepare); the prepared body is valid JSON that
// parses again to the same Choices, names the fallback (sentModel reads it where the provider
// does) and has an output cap no higher than outputCap nor than the request's own. ok is false
// when the request was refused, which is not a failure.
func CheckCall(t *testing.T, a provider.Adapter, req provider.Request, outputCap int64, fallback string, sentModel func(*provider.Call) string) (p Prepared, ok bool) {
	t.Helper()
	if err := a.Parse(&req, &p.Before); err != nil {
		checkCode(t, "Parse", err)
		return p, false
	}
	c := p.Before
	if !c.Metered {
		return p, false
	}
	if c.Choices < 1 || c.InputTokens < 0 || c.MaxInputTokens < c.InputTokens || c.MaxOutputTokens < 0 || c.MinOutputTokens < 0 {
		t.Fatalf("parsed call: choices %d, input %d, max input %d, max output %d, min output %d", c.Choices, c.InputTokens, c.MaxInputTokens, c.MaxOutputTokens, c.MinOutputTokens)
	}
	if err := provider.CheckEndUser("the parsed call", c.EndUser); err != nil {
		t.Fatalf("parsed end user %q: %v", c.EndUser, err)
	}
	if req.EndUser != "" && c.EndUser != req.EndUser {
		t.Fatalf("parsed end user %q, want the header's %q", c.EndUser, req.EndUser)
	}
	if outputCap > 0 {
		outputCap = max(outputCap, c.MinOutputTokens)
	}
	c.OutputCap = outputCap
	if err := a.Prepare(&c, fallback); err != nil {
		checkCode(t, "Prepare", err)
		return p, false
	}
	p.After = c
	if c.Body != nil && !gjson.ValidBytes(c.Body) {
		t.Fatalf("prepared body is not JSON: %q", c.Body)
	}
	if got := sentModel(&c); got != fallback {
		t.Fatalf("prepared request sends model %q, want %q", got, fallback)
	}
	again := provider.Request{Method: req.Method, Path: req.Path, Query: req.Query, Body: c.Body}
	if err := a.Parse(&again, &p.Reparsed); err != nil {
		t.Fatalf("the prepared body %q does not parse again: %v", c.Body, err)
	}
	r := p.Reparsed
	if req.EndUser == "" && r.EndUser != p.Before.EndUser {
		t.Fatalf("end user %q after Prepare, %q before", r.EndUser, p.Before.EndUser)
	}
	if r.Choices != p.Before.Choices {
		t.Fatalf("choices %d after Prepare, %d before", r.Choices, p.Before.Choices)
	}
	// A cap of 0 the client sent stays 0 (never raised); otherwise a cap is sent.
	if outputCap > 0 && (r.MaxOutputTokens <= 0 && p.Before.MaxOutputTokens > 0 || r.MaxOutputTokens > outputCap) {
		t.Fatalf("prepared cap %d, want 1..%d (the OutputCap)", r.MaxOutputTokens, outputCap)
	}
	if before := p.Before.MaxOutputTokens; before > 0 && r.MaxOutputTokens > before {
		t.Fatalf("Prepare raised the cap from %d to %d", before, r.MaxOutputTokens)
	}
	return p, true
}

func checkCode(t *testing.T, what string, err error) {
	t.Helper()
	var ae *apperr.Error
	if !errors.As(err, &ae) || ae.Message == "" {
		t.Fatalf("%s error %v is not a contract error", what, err)
	}
	switch ae.Code {
	case apperr.InvalidRequest, apperr.NotFound, apperr.MethodNotAllowed:
	default:
		t.Fatalf("%s error code %s", what, ae.Code)
	}
}

// CheckUsage checks that Usage reads body to non-negative figures, and that reading only what
// an ObjectCapture of body (fed in pieces of step bytes) keeps gives the same usage when body
// is a well-formed object.
func CheckUsage(t *testing.T, a provider.Adapter, c *provider.Call, body []byte, step int) {
	t.Helper()
	u, ok := a.Usage(c, body)
	checkUsage(t, u)
	capture := provider.NewObjectCapture(a.UsageKeys()...)
	for i := 0; i < len(body); i += step {
		capture.Write(body[i:min(i+step, len(body))])
	}
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return
	}
	for _, k := range a.UsageKeys() {
		if len(gjson.GetBytes(body, k).Raw) > provider.MaxCapture {
			return
		}
	}
	cu, cok := a.Usage(c, capture.Bytes())
	if cu != u || cok != ok {
		t.Fatalf("usage from the capture %s = %+v (%v), from the whole body %+v (%v)", capture.Bytes(), cu, cok, u, ok)
	}
}

// CheckStream checks what a meter reports: non-negative figures and a bounded error code.
func CheckStream(t *testing.T, res provider.StreamResult) {
	t.Helper()
	checkUsage(t, res.Usage)
	if res.OutputBytes < 0 || len(res.ErrorCode) > provider.MaxErrorCode {
		t.Fatalf("stream result: output bytes %d, error code %q", res.OutputBytes, res.ErrorCode)
	}
}

func checkUsage(t *testing.T, u pricing.Usage) {
	t.Helper()
	if u.Input < 0 || u.CacheRead < 0 || u.CacheWrite < 0 || u.Output < 0 {
		t.Fatalf("negative usage %+v", u)
	}
}

// Code is err's contract code, "" for nil, for tables whose successful rows want no code.
func Code(err error) string {
	if err == nil {
		return ""
	}
	return apperr.Code(err)
}

// ParseCase parses req and checks the outcome a table row wants: code "" for success, or the
// contract code with a message naming field. ok is true when req parsed, for the row's further
// checks of the call.
func ParseCase(t *testing.T, a provider.Adapter, req provider.Request, code, field string) (c provider.Call, ok bool) {
	t.Helper()
	err := a.Parse(&req, &c)
	if got := Code(err); got != code {
		t.Fatalf("Parse error = %v, want code %q", err, code)
	}
	if err != nil {
		if msg := apperr.Message(err); !strings.Contains(msg, field) {
			t.Errorf("message %q does not name %s", msg, field)
		}
		return c, false
	}
	return c, true
}
