package provider

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// gjsonFields is what gjson's ForEach yields for obj: the reference EachField must equal on
// valid JSON.
func gjsonFields(obj string) []string {
	var out []string
	r := gjson.Parse(obj)
	if !r.IsObject() {
		return nil
	}
	r.ForEach(func(k, v gjson.Result) bool {
		out = append(out, k.Str+"="+v.Raw)
		return true
	})
	return out
}

func eachFields(obj string) []string {
	var out []string
	EachField(obj, func(k, v string) { out = append(out, k+"="+v) })
	return out
}

func TestEachField(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
	}{
		{`{}`, ``},
		{` { "a" : 1 , "b":"x\"}" ,"c":{"d":[1,{"e":"]"}]},"f":null} `, `a=1|b="x\"}"|c={"d":[1,{"e":"]"}]}|f=null`},
		{`{"con\u0074ent":"hi","a":[]}`, `content="hi"|a=[]`},
		{`{"a":1,"a":2}`, `a=1|a=2`},
		{`[1,2]`, ``},
		{`{"a":1,`, `a=1`},   // cut short: what came whole is given
		{`{"a":"open`, ``},   // an unterminated string stops it
		{`{"a" 1}`, ``},      // no colon
		{`{"a":{"b":1`, ``},  // unclosed value
		{`{"a":,"b":2}`, ``}, // no value
		{`not json`, ``},
		{``, ``},
	} {
		if got := strings.Join(eachFields(c.in), "|"); got != c.want {
			t.Errorf("EachField(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	var els []string
	EachElement(` [ {"a":[1]}, "x,y", 3 ,null] `, func(v string) { els = append(els, v) })
	if got := strings.Join(els, "|"); got != `{"a":[1]}|"x,y"|3|null` {
		t.Errorf("EachElement = %s", got)
	}
}

// On every valid JSON object EachField yields what gjson's ForEach does, and on any input it
// neither panics nor reads outside it.
func FuzzEachField(f *testing.F) {
	for _, s := range []string{`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":" token"}}],"usage":null}`,
		`{"a":{"b":[1,2,{"c":"\\\""}]},"d":-1.5e3,"e":true}`, `{"k\n":"v"}`, `{`, `{"a":[}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := eachFields(s)
		var arr []string
		EachElement(s, func(v string) { arr = append(arr, v) })
		if !json.Valid([]byte(s)) {
			return
		}
		if want := gjsonFields(s); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("EachField(%q) = %q, gjson %q", s, got, want)
		}
		if r := gjson.Parse(s); r.IsArray() {
			var want []string
			r.ForEach(func(_, v gjson.Result) bool { want = append(want, v.Raw); return true })
			if strings.Join(arr, "\x00") != strings.Join(want, "\x00") {
				t.Fatalf("EachElement(%q) = %q, gjson %q", s, arr, want)
			}
		}
	})
}
