package provider

import (
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// View is a string view of b, valid while b is unchanged: a stream meter reads each event in
// place with it, where string(b) would copy every event.
func View(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// EachField calls fn with the key (unescaped) and the raw value of every member of the JSON
// object obj, in order. It reads obj once and parses no value: a stream meter runs it on every
// event of every stream, where gjson's ForEach, which parses each value it passes (numbers
// included), cost several times as much. It stops quietly at the first byte that is not valid
// JSON, and calls nothing when obj is not an object; it never reads outside obj.
func EachField(obj string, fn func(key, value string)) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return
	}
	for i < len(obj) && obj[i] == '"' {
		end := stringEnd(obj, i)
		if end < 0 {
			return
		}
		key := obj[i+1 : end-1]
		if strings.IndexByte(key, '\\') >= 0 {
			key = gjson.Parse(obj[i:end]).Str
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return
		}
		i = skipSpace(obj, i+1)
		vend := valueEnd(obj, i)
		if vend < 0 {
			return
		}
		fn(key, obj[i:vend])
		i = skipSpace(obj, vend)
		if i >= len(obj) || obj[i] != ',' {
			return
		}
		i = skipSpace(obj, i+1)
	}
}

// EachElement calls fn with the raw value of every element of the JSON array arr, in order, as
// EachField does for an object's members.
func EachElement(arr string, fn func(value string)) {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return
	}
	i = skipSpace(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return
	}
	for i < len(arr) {
		end := valueEnd(arr, i)
		if end < 0 {
			return
		}
		fn(arr[i:end])
		i = skipSpace(arr, end)
		if i >= len(arr) || arr[i] != ',' {
			return
		}
		i = skipSpace(arr, i+1)
	}
}

func skipSpace(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd is the index just past the string that starts at s[i] (a quote), or -1 when it does
// not end.
func stringEnd(s string, i int) int {
	for j := i + 1; j < len(s); {
		q := strings.IndexByte(s[j:], '"')
		if q < 0 {
			return -1
		}
		j += q
		// The quote ends the string unless an odd run of backslashes escapes it.
		bs := 0
		for k := j - 1; k > i && s[k] == '\\'; k-- {
			bs++
		}
		if bs%2 == 0 {
			return j + 1
		}
		j++
	}
	return -1
}

// valueEnd is the index just past the JSON value that starts at s[i], or -1 when none does. It
// matches brackets and skips strings; scalars end at the next delimiter (their syntax is left to
// whoever parses them).
func valueEnd(s string, i int) int {
	if i >= len(s) {
		return -1
	}
	switch s[i] {
	case '"':
		return stringEnd(s, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(s); j++ {
			switch s[j] {
			case '"':
				end := stringEnd(s, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	case ',', '}', ']', ':':
		return -1
	}
	j := i
	for j < len(s) {
		switch s[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}

// StringLen is the length of the string a raw JSON string value holds, once unescaped; 0 for a
// value that is not a string.
func StringLen(raw string) int64 {
	if len(raw) < 2 || raw[0] != '"' {
		return 0
	}
	if strings.IndexByte(raw, '\\') < 0 {
		return int64(len(raw) - 2)
	}
	return int64(len(gjson.Parse(raw).Str))
}
