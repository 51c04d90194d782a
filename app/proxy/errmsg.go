package proxy

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"tokenguard/app/provider"
	"tokenguard/store"
)

// maxErrorBody is how much of an upstream error body is kept to find the provider's message
// in: every provider puts it near the start, and the rest still reaches the client unchanged.
const maxErrorBody = 4 << 10

// errorBody keeps the first maxErrorBody bytes written to it and drops the rest.
type errorBody struct {
	b []byte
}

func (e *errorBody) Write(p []byte) (int, error) {
	if room := maxErrorBody - len(e.b); room > 0 {
		e.b = append(e.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// errorMessage is the provider's error message in a kept error body, for the usage row: the
// error.message of OpenAI, Anthropic and Gemini errors (Gemini's JSON-array stream form
// included), else the body itself as text. Credentials are redacted, whitespace and
// control characters collapse to single spaces, and the result is at most
// store.MaxErrorMessage bytes of valid UTF-8. The kept body may be a cut-off prefix: gjson reads
// what is there.
func errorMessage(body []byte) string {
	body = bytes.TrimSpace(body)
	var msg string
	switch {
	case len(body) > 0 && body[0] == '{':
		msg = gjson.GetBytes(body, "error.message").String()
	case len(body) > 0 && body[0] == '[':
		msg = gjson.GetBytes(body, "0.error.message").String()
	default:
		msg = strings.ToValidUTF8(string(body), "")
	}
	msg = provider.RedactCredentials(strings.Join(strings.FieldsFunc(msg, isSpaceOrControl), " "))
	if len(msg) <= store.MaxErrorMessage {
		return msg
	}
	cut := store.MaxErrorMessage - len("…")
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f || r >= 0x80 && r < 0xa0 || r == utf8.RuneError || r == '\u2028' || r == '\u2029'
}
