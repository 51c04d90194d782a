package views

// Ready-to-paste snippets with this server's base URL. They are rendered as text (escaped), so
// a key or URL can never break out of the <pre>.

func envSnippet(k KeyPage) string { return EnvSnippet(k.BaseURL, k.Key) }
func curlSnippet(k KeyPage) string {
	return CurlSnippet(k.BaseURL, k.Key)
}
func nodeSnippet(k KeyPage) string      { return NodeSnippet(k.BaseURL, k.Key) }
func pythonSnippet(k KeyPage) string    { return PythonSnippet(k.BaseURL, k.Key) }
func anthropicSnippet(k KeyPage) string { return AnthropicSnippet(k.BaseURL, k.Key) }
func geminiSnippet(k KeyPage) string    { return GeminiSnippet(k.BaseURL, k.Key) }

// EnvSnippet is the two environment variables the OpenAI SDKs read.
func EnvSnippet(base, key string) string {
	return "# .env\nOPENAI_API_KEY=" + key + "\nOPENAI_BASE_URL=" + base + "/proxy/openai/v1\n"
}

// CurlSnippet is a chat completion through the OpenAI route.
func CurlSnippet(base, key string) string {
	return `curl -X POST ` + base + `/proxy/openai/v1/chat/completions \
  -H "Content-Type: application/json" \
  -H "x-tokenguard-key: ` + key + `" \
  -d '{
    "model": "gpt-4o-mini",
    "messages": [{ "role": "user", "content": "Say hello" }]
  }'
`
}

// NodeSnippet uses the official OpenAI Node SDK.
func NodeSnippet(base, key string) string {
	return `import OpenAI from 'openai';

const client = new OpenAI({
  apiKey: '` + key + `',
  baseURL: '` + base + `/proxy/openai/v1',
  defaultHeaders: {
    'x-tokenguard-key': '` + key + `',
  },
});

const response = await client.chat.completions.create({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Say hello' }],
});

console.log(response.choices[0].message.content);
`
}

// PythonSnippet uses the official OpenAI Python SDK.
func PythonSnippet(base, key string) string {
	return `from openai import OpenAI

client = OpenAI(
    api_key="` + key + `",
    base_url="` + base + `/proxy/openai/v1",
    default_headers={"x-tokenguard-key": "` + key + `"},
)

response = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Say hello"}],
)
print(response.choices[0].message.content)
`
}

// AnthropicSnippet is a Messages API call through the Anthropic route.
func AnthropicSnippet(base, key string) string {
	return `curl -X POST ` + base + `/proxy/anthropic/v1/messages \
  -H "Content-Type: application/json" \
  -H "x-tokenguard-key: ` + key + `" \
  -d '{
    "model": "claude-3-5-haiku-latest",
    "max_tokens": 300,
    "messages": [{ "role": "user", "content": "Hello" }]
  }'
`
}

// GeminiSnippet is a generateContent call through the Gemini route.
func GeminiSnippet(base, key string) string {
	return `curl -X POST ` + base + `/proxy/gemini/v1beta/models/gemini-2.0-flash/generateContent \
  -H "Content-Type: application/json" \
  -H "x-tokenguard-key: ` + key + `" \
  -d '{
    "contents": [{ "parts": [{ "text": "Hello" }] }]
  }'
`
}
