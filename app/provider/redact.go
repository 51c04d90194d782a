package provider

import "regexp"

// credentialPattern matches what may be a credential in a provider's message: OpenAI and
// Anthropic keys (sk-…, masked ones included), TokenGuard keys, Google API keys and bearer
// tokens. Any length matches, so a key cut off at a kept prefix's end is redacted too.
var credentialPattern = regexp.MustCompile(`sk-[A-Za-z0-9_*\-]+|tg_live_[A-Za-z0-9]*|AIza[0-9A-Za-z_\-]*|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]+`)

// RedactCredentials replaces whatever may be a credential in s, a provider's error message, by
// "[redacted]": the upstream key behind a request is the project's or the server's, and a
// message that echoes it must reach neither a client nor a usage row.
func RedactCredentials(s string) string { return credentialPattern.ReplaceAllString(s, "[redacted]") }
