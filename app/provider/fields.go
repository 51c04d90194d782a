package provider

import (
	"bytes"
	"strings"

	"github.com/tidwall/gjson"

	"tokenguard/app/apperr"
)

// ReadFields checks that body is a JSON object and calls set for each top-level key of names
// that it holds. Those are the keys whose values change what is priced, streamed or metered, so
// each must appear at most once and spelled exactly so: providers read keys case-sensitively and
// (like most JSON parsers) take the last of duplicates, and any ambiguity could make us price or
// meter a request other than the one sent.
func ReadFields(body []byte, names []string, set func(name string, v gjson.Result) error) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !gjson.ValidBytes(body) {
		return apperr.New(apperr.InvalidRequest, "the body must be a JSON object")
	}
	seen := make([]bool, len(names))
	var bad error
	gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
		for i, name := range names {
			if !strings.EqualFold(k.Str, name) {
				continue
			}
			if seen[i] || len(k.Raw) != len(name)+2 || k.Raw[1:len(k.Raw)-1] != name {
				bad = apperr.New(apperr.InvalidRequest, "the body has more than one %q key (duplicate, escaped or differently cased); send it once", name)
				return false
			}
			seen[i] = true
			if err := set(name, v); err != nil {
				bad = err
				return false
			}
		}
		return true
	})
	return bad
}

// StringField reads the value of key name, which must be a JSON string.
func StringField(name string, v gjson.Result) (string, error) {
	if v.Type != gjson.String {
		return "", apperr.New(apperr.InvalidRequest, "%q must be a string", name)
	}
	return v.Str, nil
}

// BoolField reads the value of key name, which must be true, false or null (false).
func BoolField(name string, v gjson.Result) (bool, error) {
	switch v.Type {
	case gjson.True:
		return true, nil
	case gjson.False, gjson.Null:
		return false, nil
	}
	return false, apperr.New(apperr.InvalidRequest, "%q must be a boolean", name)
}

// CountField reads the value of key name, which must be a non-negative integer or null; ok is
// false for null.
func CountField(name string, v gjson.Result) (n int64, ok bool, err error) {
	if v.Type == gjson.Null {
		return 0, false, nil
	}
	if v.Type != gjson.Number || v.Num < 0 || v.Num != float64(int64(v.Num)) {
		return 0, false, apperr.New(apperr.InvalidRequest, "%q must be a non-negative integer", name)
	}
	return int64(v.Num), true, nil
}
