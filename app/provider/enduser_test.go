package provider_test

import (
	"strings"
	"testing"

	"tokenguard/app/apperr"
	"tokenguard/app/provider"
	"tokenguard/app/provider/anthropic"
	"tokenguard/app/provider/gemini"
	"tokenguard/app/provider/openai"
)

// TestEndUser ensures every adapter finds the end user where its provider's wire format keeps
// it (OpenAI safety_identifier, else user; Anthropic metadata.user_id; Gemini nowhere), that the
// x-tokenguard-user header wins over the body, and that an end user that is too long, not a
// string, or holds a control character is refused with INVALID_REQUEST before anything is sent.
func TestEndUser(t *testing.T) {
	long := strings.Repeat("é", provider.MaxEndUser/2) + "x"
	cases := []struct {
		name    string
		adapter provider.Adapter
		path    string
		body    string
		header  string
		want    string
		refused string // part of the error message; "" when accepted
	}{
		{"openai chat user", openai.New(), openai.ChatCompletions, `{"model":"gpt-4o","user":"alice"}`, "", "alice", ""},
		{"openai safety_identifier wins over user", openai.New(), openai.ChatCompletions, `{"model":"gpt-4o","user":"alice","safety_identifier":"h-1"}`, "", "h-1", ""},
		{"openai responses", openai.New(), openai.Responses, `{"model":"gpt-4o","input":"x","safety_identifier":"h-2"}`, "", "h-2", ""},
		{"openai completions", openai.New(), openai.Completions, `{"model":"gpt-3.5-turbo-instruct","prompt":"x","user":"bob"}`, "", "bob", ""},
		{"openai header wins", openai.New(), openai.ChatCompletions, `{"model":"gpt-4o","user":"alice"}`, "tenant-7", "tenant-7", ""},
		{"openai null user", openai.New(), openai.ChatCompletions, `{"model":"gpt-4o","user":null}`, "", "", ""},
		{"openai none", openai.New(), openai.ChatCompletions, `{"model":"gpt-4o"}`, "", "", ""},
		{"openai user not a string", openai.New(), openai.ChatCompletions, `{"model":"gpt-4o","user":42}`, "", "", `"user" must be a string`},
		{"openai duplicate user", openai.New(), openai.ChatCompletions, `{"model":"gpt-4o","user":"a","user":"b"}`, "", "", "more than once"},
		{"openai user spelled differently", openai.New(), openai.ChatCompletions, `{"model":"gpt-4o","User":"a"}`, "", "", "spells"},
		{"openai user with a newline", openai.New(), openai.ChatCompletions, `{"model":"gpt-4o","user":"a\nb"}`, "", "", "control character"},
		{"anthropic metadata.user_id", anthropic.New(), anthropic.Messages, `{"model":"claude-haiku-4-5","max_tokens":5,"metadata":{"user_id":"u-9"}}`, "", "u-9", ""},
		{"anthropic header wins", anthropic.New(), anthropic.Messages, `{"model":"claude-haiku-4-5","max_tokens":5,"metadata":{"user_id":"u-9"}}`, "h", "h", ""},
		{"anthropic metadata not an object", anthropic.New(), anthropic.Messages, `{"model":"claude-haiku-4-5","metadata":"u"}`, "", "", `"metadata" must be an object`},
		{"anthropic duplicate user_id", anthropic.New(), anthropic.Messages, `{"model":"claude-haiku-4-5","metadata":{"user_id":"a","user_id":"b"}}`, "", "", "more than once"},
		{"anthropic too long", anthropic.New(), anthropic.Messages, `{"model":"claude-haiku-4-5","metadata":{"user_id":"` + long + `"}}`, "", "", "at most 256"},
		{"gemini header", gemini.New(), "/v1beta/models/gemini-2.5-flash:generateContent", `{"contents":[]}`, "g-1", "g-1", ""},
		{"gemini no header", gemini.New(), "/v1beta/models/gemini-2.5-flash:generateContent", `{"contents":[]}`, "", "", ""},
		{"header too long", gemini.New(), "/v1beta/models/gemini-2.5-flash:generateContent", `{}`, long, "", "X-Tokenguard-User header is 257 bytes"},
		{"header of exactly 256 bytes", gemini.New(), "/v1beta/models/gemini-2.5-flash:generateContent", `{}`, strings.Repeat("u", 256), strings.Repeat("u", 256), ""},
		{"header not UTF-8", openai.New(), openai.ChatCompletions, `{"model":"gpt-4o"}`, "\xff", "", "not valid UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c provider.Call
			err := tc.adapter.Parse(&provider.Request{Method: "POST", Path: tc.path, Body: []byte(tc.body), EndUser: tc.header}, &c)
			if tc.refused != "" {
				if err == nil || apperr.Code(err) != apperr.InvalidRequest || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("Parse = %v, want INVALID_REQUEST saying %q", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.EndUser; got != tc.want {
				t.Errorf("end user = %q, want %q", got, tc.want)
			}
		})
	}
}
