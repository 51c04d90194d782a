package provider

import (
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"tokenguard/app/apperr"
)

// MaxModelLen is the longest model name accepted, in bytes. Real names are well under 100;
// the bound keeps a refused request's log row small.
const MaxModelLen = 256

// CheckModel refuses a model name that is empty, longer than MaxModelLen, not UTF-8, or holds
// a control character (NUL, CR, LF, …): such a name is no model of any provider, and it could
// split a log line or a header.
func CheckModel(model string) error {
	switch {
	case model == "":
		return apperr.New(apperr.InvalidRequest, `the body must name a "model" (a non-empty string)`)
	case len(model) > MaxModelLen:
		return apperr.New(apperr.InvalidRequest, `"model" is longer than %d bytes`, MaxModelLen)
	case !utf8.ValidString(model):
		return apperr.New(apperr.InvalidRequest, `"model" is not valid UTF-8`)
	}
	for _, r := range model {
		if unicode.IsControl(r) {
			return apperr.New(apperr.InvalidRequest, `"model" holds a control character (%U)`, r)
		}
	}
	return nil
}

// StringField reads the value of field name, which must be a JSON string.
func StringField(name string, v gjson.Result) (string, error) {
	if v.Type != gjson.String {
		return "", apperr.New(apperr.InvalidRequest, "%q must be a string", name)
	}
	return v.Str, nil
}

// BoolField reads the value of field name, which must be true, false, null (false) or absent
// (false).
func BoolField(name string, v gjson.Result) (bool, error) {
	switch {
	case v.Type == gjson.True:
		return true, nil
	case v.Type == gjson.False, v.Type == gjson.Null, !v.Exists():
		return false, nil
	}
	return false, apperr.New(apperr.InvalidRequest, "%q must be a boolean", name)
}

// MaxCount is the largest count (tokens, choices) a request may name: every provider reads
// these as 32-bit integers, so a larger one is no request any of them would serve.
const MaxCount = math.MaxInt32

// CountField reads the value of field name, which must be an integer from 0 to MaxCount, null
// or absent; ok is false for null or absent.
func CountField(name string, v gjson.Result) (n int64, ok bool, err error) {
	n, ok, err = IntField(name, v)
	if err == nil && n < 0 {
		return 0, false, apperr.New(apperr.InvalidRequest, "%q must be a non-negative integer", name)
	}
	return n, ok, err
}

// IntField reads the value of field name, which must be an integer from -MaxCount to
// MaxCount (Gemini's thinkingBudget is -1 for "dynamic"), null or absent; ok is false for null
// or absent.
func IntField(name string, v gjson.Result) (n int64, ok bool, err error) {
	if !v.Exists() || v.Type == gjson.Null {
		return 0, false, nil
	}
	if v.Type != gjson.Number || v.Num != math.Trunc(v.Num) || math.Abs(v.Num) > MaxCount {
		return 0, false, apperr.New(apperr.InvalidRequest, "%q must be an integer of at most %d", name, MaxCount)
	}
	return int64(v.Num), true, nil
}

// CheckChoices refuses a count of choices above the provider's own limit for field name, and
// returns the count the provider generates (1 when the request names none).
func CheckChoices(name string, n int64, limit int64) (int64, error) {
	if n > limit {
		return 0, apperr.New(apperr.InvalidRequest, "%q is %d; the provider allows at most %d", name, n, limit)
	}
	return max(n, 1), nil
}

// MaxErrorCode is the longest error code kept from an upstream body or stream, in bytes.
const MaxErrorCode = 64

// ErrorCode returns a provider's error code bounded to MaxErrorCode bytes (cut at a rune
// boundary) and copied, since s may view a buffer that the relay reuses.
func ErrorCode(s string) string {
	if len(s) > MaxErrorCode {
		cut := MaxErrorCode
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return strings.Clone(s)
}

// TokenCount reads a token count from a provider's usage object: a number, at least 0 and at
// most math.MaxInt64 (a figure too large for int64 saturates instead of wrapping); anything
// else is 0.
func TokenCount(v gjson.Result) int64 {
	switch {
	case v.Type != gjson.Number || !(v.Num > 0):
		return 0
	case v.Num >= math.MaxInt64:
		return math.MaxInt64
	}
	return max(v.Int(), 0)
}

// SatMul is a × b for non-negative counts, saturating at math.MaxInt64.
func SatMul(a, b int64) int64 { return satMul(a, b) }

// ModelField reads the model that field i of b names and checks it (CheckModel).
func ModelField(b *Body, i int) (string, error) {
	if !b.Has(i) {
		return "", CheckModel("")
	}
	model, err := StringField("model", b.Get(i))
	if err != nil {
		return "", err
	}
	return model, CheckModel(model)
}
