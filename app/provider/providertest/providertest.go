// Package providertest is the conformance suite every provider adapter must pass, against an
// upstream that speaks the provider's real wire format (litestream's replica-client pattern):
// usage read from a non-streamed and a streamed response equals what the upstream reported
// (read from the whole body or from an ObjectCapture of it), the two cost the same, a stream broken off midway is still metered, the fallback model is the
// one sent, the upstream key lands in the provider's slot, and bad input is refused with the
// contract's error.
//
// An adapter's test calls Run with a Fixture that knows how to build the provider's requests
// and start its fake upstream.
package providertest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tokenguard/app/apperr"
	"tokenguard/app/pricing"
	"tokenguard/app/provider"
)

// Key is the upstream key the suite sends; a fixture's upstream reports where it found it.
const Key = "sk-conformance-test-key-0123456789"

// Fixture adapts the suite to one provider.
type Fixture struct {
	Adapter provider.Adapter
	// Model is a model the provider serves, priced in the embedded table.
	Model string
	// Fallback is another model of the same provider, for the fallback check.
	Fallback string
	// Request builds an inbound request for model, streamed or not, to the provider's main
	// metered endpoint.
	Request func(model string, stream bool) provider.Request
	// Upstream starts (for the test's lifetime) a fake of the provider that answers every
	// request with text streamed in chunks and usage u. When cut > 0 a streamed answer sends
	// cut chunks and then breaks off without ever reporting usage.
	Upstream func(tb testing.TB, u pricing.Usage, chunks []string, cut int) Upstream
	// Usage is the usage the suite asks the upstream to report. It should use every class the
	// provider reports (cached input, cache writes…), so each one is checked.
	Usage pricing.Usage
	// Invalid are requests the adapter must refuse with INVALID_REQUEST.
	Invalid map[string]provider.Request
}

// Upstream is a running fake provider.
type Upstream struct {
	URL string
	// Seen returns the model and the upstream key of the latest request, each read from where
	// the real provider reads it (the key from the provider's own slot only).
	Seen func() (model, key string)
}

// Run runs the conformance suite for fx.
func Run(t *testing.T, fx Fixture) {
	prices, err := pricing.New(nil, pricing.DefaultUnknownPrice())
	if err != nil {
		t.Fatal(err)
	}
	chunks := []string{"The", " quick", " brown", " fox", " jumps"}

	t.Run("NonStreamUsage", func(t *testing.T) {
		up := fx.Upstream(t, fx.Usage, chunks, 0)
		got, _, _ := exchange(t, fx, up.URL, fx.Model, fx.Model, false)
		if got.Usage != fx.Usage || !got.Complete {
			t.Fatalf("non-streamed usage = %+v (complete %v), want %+v", got.Usage, got.Complete, fx.Usage)
		}
		if model, key := up.Seen(); model != fx.Model || key != Key {
			t.Fatalf("upstream saw model %q key %q, want %q %q", model, key, fx.Model, Key)
		}
	})

	t.Run("UsageFromCapture", func(t *testing.T) {
		// The proxy relays a non-streamed body through an ObjectCapture of the adapter's
		// UsageKeys instead of holding it whole; the usage read from the capture is the same.
		up := fx.Upstream(t, fx.Usage, chunks, 0)
		_, body, _ := exchange(t, fx, up.URL, fx.Model, fx.Model, false)
		capture := provider.NewObjectCapture(fx.Adapter.UsageKeys()...)
		for i := 0; i < len(body); i += 7 {
			capture.Write(body[i:min(i+7, len(body))])
		}
		var c provider.Call
		req := fx.Request(fx.Model, false)
		if err := fx.Adapter.Parse(&req, &c); err != nil {
			t.Fatal(err)
		}
		got, ok := fx.Adapter.Usage(&c, capture.Bytes())
		if got != fx.Usage || !ok {
			t.Fatalf("usage from the capture %s = %+v (found %v), want %+v", capture.Bytes(), got, ok, fx.Usage)
		}
	})

	t.Run("StreamUsageAndSameCost", func(t *testing.T) {
		up := fx.Upstream(t, fx.Usage, chunks, 0)
		streamed, body, _ := exchange(t, fx, up.URL, fx.Model, fx.Model, true)
		if streamed.Usage != fx.Usage || !streamed.Complete {
			t.Fatalf("streamed usage = %+v (complete %v), want %+v", streamed.Usage, streamed.Complete, fx.Usage)
		}
		if !bytes.Contains(body, []byte("quick")) {
			t.Fatalf("relayed stream lacks the streamed text: %q", body)
		}
		plain, _, _ := exchange(t, fx, up.URL, fx.Model, fx.Model, false)
		cs, _ := prices.Cost(fx.Model, streamed.Usage)
		cp, _ := prices.Cost(fx.Model, plain.Usage)
		if cs != cp || cs <= 0 {
			t.Fatalf("streamed cost %d, non-streamed cost %d: want equal and positive", cs, cp)
		}
	})

	t.Run("BrokenOffStreamIsMetered", func(t *testing.T) {
		up := fx.Upstream(t, fx.Usage, chunks, 2)
		got, body, _ := exchange(t, fx, up.URL, fx.Model, fx.Model, true)
		if got.Complete {
			t.Fatalf("a stream cut before its usage reported complete usage %+v", got.Usage)
		}
		if got.OutputBytes <= 0 {
			t.Fatalf("meter counted no output bytes from a stream that relayed %q", body)
		}
	})

	t.Run("FallbackModelIsSent", func(t *testing.T) {
		up := fx.Upstream(t, fx.Usage, chunks, 0)
		exchange(t, fx, up.URL, fx.Model, fx.Fallback, false)
		if model, _ := up.Seen(); model != fx.Fallback {
			t.Fatalf("upstream saw model %q, want the fallback %q", model, fx.Fallback)
		}
	})

	t.Run("ModelIsParsed", func(t *testing.T) {
		req := fx.Request(fx.Model, true)
		var c provider.Call
		if err := fx.Adapter.Parse(&req, &c); err != nil {
			t.Fatal(err)
		}
		if !c.Metered || c.Model != fx.Model || !c.Stream || c.InputTokens <= 0 {
			t.Fatalf("parsed call = %+v, want metered, model %q, streamed, an input estimate", c, fx.Model)
		}
		if c.Choices < 1 || c.MaxInputTokens < c.InputTokens {
			t.Fatalf("parsed call has %d choices and an input bound %d below its estimate %d", c.Choices, c.MaxInputTokens, c.InputTokens)
		}
	})

	t.Run("InvalidRequests", func(t *testing.T) {
		for name, req := range fx.Invalid {
			t.Run(name, func(t *testing.T) {
				var c provider.Call
				err := fx.Adapter.Parse(&req, &c)
				if got, want := apperr.Code(err), apperr.InvalidRequest; got != want {
					t.Fatalf("Parse error = %v (code %s), want %s", err, got, want)
				}
			})
		}
	})
}

// exchange sends the fixture's request for model (sent as sendModel) to the upstream at base,
// as the proxy does, and meters the answer. It returns what the meter (or Usage) found and the
// relayed body.
func exchange(t *testing.T, fx Fixture, base, model, sendModel string, stream bool) (provider.StreamResult, []byte, *http.Response) {
	t.Helper()
	req := fx.Request(model, stream)
	var c provider.Call
	if err := fx.Adapter.Parse(&req, &c); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := fx.Adapter.Prepare(&c, sendModel); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	target := strings.TrimRight(base, "/") + c.Path
	if len(c.Query) > 0 {
		target += "?" + c.Query.Encode()
	}
	// A broken-off stream is ended by the client going away, as the proxy's would be.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, c.Method, target, bytes.NewReader(c.Body))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	fx.Adapter.SetKey(hreq.Header, Key)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatalf("upstream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upstream status %d: %s", resp.StatusCode, b)
	}
	if !stream {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		u, ok := fx.Adapter.Usage(&c, b)
		return provider.StreamResult{Usage: u, Complete: ok}, b, resp
	}
	m := fx.Adapter.NewMeter(&c)
	rec := httptest.NewRecorder()
	res := provider.Relay(rec, rec.Flush, &cancelOnStall{r: resp.Body, cancel: cancel}, c.Framing, m, nil)
	if res.ReadErr != nil && !errors.Is(res.ReadErr, context.Canceled) && !errors.Is(res.ReadErr, context.DeadlineExceeded) {
		t.Logf("relay ended with %v", res.ReadErr)
	}
	return m.Result(), rec.Body.Bytes(), resp
}

// cancelOnStall cancels the request when a read has waited 300ms for data: the fake upstream
// holds a cut stream open until the client leaves, as a hung provider would.
type cancelOnStall struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancelOnStall) Read(p []byte) (int, error) {
	t := time.AfterFunc(300*time.Millisecond, c.cancel)
	defer t.Stop()
	return c.r.Read(p)
}
