package translate_test

import (
	"bytes"
	"testing"

	"github.com/tidwall/gjson"

	"tokenguard/app/provider"
	"tokenguard/app/provider/providertest"
	"tokenguard/app/provider/translate"
)

// Whatever a provider streams, every chunk the caller gets is JSON and the stream closes in
// the caller's format: the translation never forwards a broken event or panics.
func FuzzStream(f *testing.F) {
	for _, api := range []string{"openai", "anthropic", "gemini"} {
		er := provider.NewEventReader(bytes.NewReader(providertest.Wire(f, api, true)))
		for {
			_, name, data, err := er.Next()
			if err != nil {
				break
			}
			f.Add(uint8(0), string(name), string(data))
		}
	}
	f.Add(uint8(3), "content_block_delta", `{"type":"content_block_delta","delta":{"type":"text_delta","text":"\u00e9\"}`)
	f.Fuzz(func(t *testing.T, pair uint8, name, data string) {
		callers := [...]translate.API{translate.OpenAI, translate.Anthropic, translate.Gemini}
		caller := callers[int(pair)%3]
		target := callers[(int(pair)/3+1+int(pair)%3)%3]
		st := translate.NewStream(caller, target, "m", &translate.Request{IncludeUsage: true}, now)
		out := append([]byte(nil), st.Event([]byte(name), []byte(data))...)
		out = append(out, st.Event([]byte(name), []byte(data))...)
		out = append(out, st.End()...)
		er := provider.NewEventReader(bytes.NewReader(out))
		for {
			_, _, d, err := er.Next()
			if err != nil {
				break
			}
			if string(d) != "[DONE]" && !gjson.ValidBytes(d) {
				t.Fatalf("%s from %s: chunk is not JSON: %s", caller, target, d)
			}
		}
	})
}

// Whatever a caller sends, decoding it either refuses it or yields a request every target
// encodes as JSON.
func FuzzRequest(f *testing.F) {
	for _, api := range []string{"openai", "anthropic", "gemini"} {
		f.Add(uint8(0), readFile(f, "testdata/request/"+api+".json"))
	}
	f.Fuzz(func(t *testing.T, pair uint8, body string) {
		callers := [...]translate.API{translate.OpenAI, translate.Anthropic, translate.Gemini}
		caller := callers[int(pair)%3]
		r, err := translate.DecodeRequest(caller, []byte(body), pair&8 != 0, false)
		if err != nil {
			return
		}
		for _, target := range callers {
			if target == caller {
				continue
			}
			up, err := translate.EncodeRequest(r, target, "m", 10)
			if err == nil && !gjson.ValidBytes(up.Body) {
				t.Fatalf("%s to %s: not JSON: %s", caller, target, up.Body)
			}
		}
	})
}
