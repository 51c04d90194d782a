package provider

import (
	"encoding/base64"
	"math"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"tokenguard/app/apperr"

	"tokenguard/app/pricing"
)

// MaxDepth is how deeply a request body may nest objects and arrays. No provider request
// needs more (a tool's JSON schema is a few levels), and the bound keeps every later parse of
// the body (gjson's, the upstream's) away from its own recursion limits.
const MaxDepth = 512

// Media says how a provider bills the parts of a prompt that are not text, for the input upper
// bound of ScanBody.
type Media struct {
	// RefKeys are the keys whose string value names a media part by reference ("url",
	// "file_id", "fileUri"…); each such string counts as one image part.
	RefKeys []string
	// ToolTokens is the hidden system prompt the provider adds when a request declares tools
	// (a top-level "tools" key).
	ToolTokens int64
}

// BodySpec is what ScanBody looks for in one adapter's request bodies: the fields the adapter
// reads or injects, and how the provider bills media. Build it once with NewBodySpec.
type BodySpec struct {
	root  node
	n     int
	names []string // the path of each field, for messages
	media Media
}

// node is one watched key and the watched keys inside its object value.
type node struct {
	id       int      // index of the field in the spec; -1 for the root
	aliases  []string // accepted spellings; the first is the canonical one
	parent   *node
	children []*node
}

// NewBodySpec returns a spec for the given field paths. A path is dot-separated keys from the
// top level ("stream_options.include_usage"); a key may list spellings the provider treats as
// one field, separated by "|" ("generationConfig|generation_config"). Field i of a Body is
// paths[i]; every prefix of a path must itself be listed before it.
func NewBodySpec(media Media, paths ...string) *BodySpec {
	s := &BodySpec{root: node{id: -1}, n: len(paths), names: make([]string, len(paths)), media: media}
	for i, p := range paths {
		parent := &s.root
		segs := strings.Split(p, ".")
		for j, seg := range segs {
			aliases := strings.Split(seg, "|")
			var found *node
			for _, c := range parent.children {
				if c.aliases[0] == aliases[0] {
					found = c
				}
			}
			if j == len(segs)-1 {
				if found != nil {
					panic("provider: field listed twice: " + p)
				}
				found = &node{id: i, aliases: aliases, parent: parent}
				parent.children = append(parent.children, found)
			} else if found == nil {
				panic("provider: the parent of " + p + " is not listed before it")
			}
			parent = found
		}
		names := make([]string, len(segs))
		for j, seg := range segs {
			names[j], _, _ = strings.Cut(seg, "|")
		}
		s.names[i] = strings.Join(names, ".")
	}
	return s
}

// Name is field i's path, canonically spelled: the name error messages use.
func (s *BodySpec) Name(i int) string { return s.names[i] }

// Body is what ScanBody found in one request body: the values of the spec's fields and the
// sizes the input estimates are made of.
type Body struct {
	raw    []byte
	spec   *BodySpec
	fields []span
	// textBytes is the body's size less the inline images counted as parts.
	textBytes int64
	parts     int64
	tools     bool
}

type span struct {
	start, end int // value bytes; end == 0 when absent
	alias      int // which spelling the client used
}

// Has reports whether the body holds field i.
func (b *Body) Has(i int) bool { return b.fields[i].end > 0 }

// Get returns field i's value (the zero Result, whose Exists is false, when absent).
func (b *Body) Get(i int) gjson.Result {
	f := b.fields[i]
	if f.end == 0 {
		return gjson.Result{}
	}
	return gjson.ParseBytes(b.raw[f.start:f.end])
}

// Key is field i's key as the client spelled it, so a rewrite of the field keeps the client's
// spelling. For an absent field it is the spelling in the same place of its list as the one the
// client used for the nearest enclosing field present (snake_case inside a snake_case object),
// else the canonical one.
func (b *Body) Key(i int) string {
	n := b.spec.find(i)
	for p := n; p != nil && p.id >= 0; p = p.parent {
		if b.fields[p.id].end > 0 {
			return n.aliases[min(b.fields[p.id].alias, len(n.aliases)-1)]
		}
	}
	return n.aliases[0]
}

func (s *BodySpec) find(i int) *node {
	var walk func(n *node) *node
	walk = func(n *node) *node {
		if n.id == i {
			return n
		}
		for _, c := range n.children {
			if f := walk(c); f != nil {
				return f
			}
		}
		return nil
	}
	return walk(&s.root)
}

// Estimate returns the input estimates of the body, given the most input tokens the provider
// bills for one image part (per model: OpenAI's gpt-4o-mini bills far more than gpt-4o).
//
// typical is about four bytes a token for the text (EstimateTokens) plus partTokens a media
// part; it prices a response whose usage never arrives.
//
// upper is an upper bound of the prompt tokens the provider can bill for this body, for the
// budget reservation: one token per byte of the JSON body (every token of a byte-level BPE or
// SentencePiece vocabulary is at least one byte of text, and the JSON around the text is
// longer than the chat template's markers), except that an inline image (a data:image/ URL, or
// base64 that starts with a PNG, JPEG, GIF or WebP header) counts partTokens instead of its
// bytes; every string under a Media.RefKeys key counts partTokens too; and a request that
// declares tools (a top-level "tools" array) adds Media.ToolTokens of hidden system prompt.
//
// upper excludes what the body does not say: content the provider fetches or holds
// server-side (the tokens of a PDF, audio or video named by URL or file id, which depend on
// its length; a stored prompt, previous_response_id or conversation of the Responses API;
// Gemini's cachedContent); results of server-side tools (web search, web fetch, code
// execution, file search, MCP servers), which the provider bills as input of its own later
// turns; and media sent inline that costs more than its bytes: a PDF of many near-empty pages
// (each page is billed as an image), or audio or video encoded at less than their per-second
// price (Gemini bills 32 tokens a second of audio and about 263 of video, so a recording of
// silence or of a still picture at a few hundred bytes a second). Every ordinary encoding of
// audio and video is far above that, and so is counted safely by its bytes.
func (b *Body) Estimate(partTokens int64) (typical, upper int64) {
	media := satMul(b.parts, partTokens)
	typical = pricing.SatAdd(EstimateTokens(int(b.textBytes)), media)
	upper = pricing.SatAdd(b.textBytes, media)
	if b.tools {
		upper = pricing.SatAdd(upper, b.spec.media.ToolTokens)
	}
	return typical, upper
}

// MediaParts is how many inline media parts Estimate counts at partTokens each.
func (b *Body) MediaParts() int64 { return b.parts }

// ScanBody reads a request body in one pass. It returns an INVALID_REQUEST *apperr.Error when
// the body is not one JSON object, nests deeper than MaxDepth, holds the same key twice in any
// object at any depth (after unescaping: providers, like most JSON parsers, take the last of
// duplicates, so a guard that read the first would meter a request other than the one sent),
// or spells a field of spec differently from its listed spellings (case or escapes) or more
// than once. The Body's values view body, which must not change while the Body is used.
func ScanBody(body []byte, spec *BodySpec) (*Body, error) {
	sc := scannerPool.Get().(*bodyScanner)
	defer func() {
		sc.reset()
		scannerPool.Put(sc)
	}()
	b := &Body{raw: body, spec: spec, fields: make([]span, spec.n)}
	if err := sc.scan(body, spec, b); err != nil {
		return nil, err
	}
	return b, nil
}

var scannerPool = sync.Pool{New: func() any { return &bodyScanner{} }}

// frame is one open object or array.
type frame struct {
	obj      bool
	node     *node // the watched object this is, nil if none
	keys     int   // where this object's keys start in bodyScanner.keys
	set      map[string]struct{}
	field    int // the field this container is the value of, -1 if none
	start    int // where this container starts in the body
	ref      bool
	child    *node // the watched field the current value belongs to
	alias    int
	rootTool bool // the current key is the top-level "tools"
}

type bodyScanner struct {
	stack []frame
	keys  []string
}

func (sc *bodyScanner) reset() {
	clear(sc.stack[:cap(sc.stack)])
	sc.stack = sc.stack[:0]
	clear(sc.keys[:cap(sc.keys)])
	sc.keys = sc.keys[:0]
}

// linearKeys is how many keys an object may have before its duplicate check uses a map.
const linearKeys = 16

func invalid(format string, args ...any) error {
	return apperr.New(apperr.InvalidRequest, format, args...)
}

var errNotObject = apperr.New(apperr.InvalidRequest, "the body must be a JSON object")

func (sc *bodyScanner) scan(p []byte, spec *BodySpec, b *Body) error {
	i := skipWS(p, 0)
	if i >= len(p) || p[i] != '{' {
		return errNotObject
	}
	var imageBytes int64
	// Each turn of the loop reads one value at i, then what follows it up to the next value.
	for {
		i = skipWS(p, i)
		if i >= len(p) {
			return errNotObject
		}
		var top *frame
		if len(sc.stack) > 0 {
			top = &sc.stack[len(sc.stack)-1]
		}
		field := -1
		if top != nil && top.child != nil {
			field = top.child.id
			b.fields[field] = span{start: i, alias: top.alias}
		}
		switch c := p[i]; {
		case c == '{' || c == '[':
			if top != nil && top.rootTool && c == '[' {
				b.tools = true
			}
			if len(sc.stack) >= MaxDepth {
				return invalid("the body nests deeper than %d levels", MaxDepth)
			}
			if j := skipWS(p, i+1); j < len(p) && (c == '{' && p[j] == '}' || c == '[' && p[j] == ']') {
				i = j + 1
				break
			}
			f := frame{obj: c == '{', keys: len(sc.keys), field: field}
			if top == nil {
				f.node = &spec.root
			} else if top.child != nil && len(top.child.children) > 0 && f.obj {
				f.node = top.child
			}
			sc.stack = append(sc.stack, f)
			i++
			if c == '[' {
				continue
			}
			var err error
			if i, err = sc.key(p, skipWS(p, i), spec, b); err != nil {
				return err
			}
			continue
		case c == '"':
			end, _, err := scanString(p, i)
			if err != nil {
				return err
			}
			if end-i-2 >= minImage && isInlineImage(p[i+1:end-1]) {
				imageBytes += int64(end - i)
				b.parts++
			} else if top != nil && top.ref {
				b.parts++
			}
			i = end
		case c == 't':
			if i = literal(p, i, "true"); i < 0 {
				return errNotObject
			}
		case c == 'f':
			if i = literal(p, i, "false"); i < 0 {
				return errNotObject
			}
		case c == 'n':
			if i = literal(p, i, "null"); i < 0 {
				return errNotObject
			}
		case c == '-' || c >= '0' && c <= '9':
			if i = number(p, i); i < 0 {
				return errNotObject
			}
		default:
			return errNotObject
		}
		if field >= 0 {
			b.fields[field].end = i
		}
		// After a value: close every container it ends, then move to the next value.
		for {
			i = skipWS(p, i)
			if len(sc.stack) == 0 {
				if i != len(p) {
					return errNotObject
				}
				b.textBytes = int64(len(p)) - imageBytes
				return nil
			}
			if i >= len(p) {
				return errNotObject
			}
			top = &sc.stack[len(sc.stack)-1]
			closer := byte(']')
			if top.obj {
				closer = '}'
			}
			if p[i] == closer {
				i++
				if top.field >= 0 {
					b.fields[top.field].end = i
				}
				sc.keys = sc.keys[:top.keys]
				*top = frame{}
				sc.stack = sc.stack[:len(sc.stack)-1]
				continue
			}
			if p[i] != ',' {
				return errNotObject
			}
			i++
			if top.obj {
				var err error
				if i, err = sc.key(p, skipWS(p, i), spec, b); err != nil {
					return err
				}
			}
			break
		}
	}
}

// key reads `"key":` at i in the innermost object, checks it, and returns where its value
// starts.
func (sc *bodyScanner) key(p []byte, i int, spec *BodySpec, b *Body) (int, error) {
	if i >= len(p) || p[i] != '"' {
		return 0, errNotObject
	}
	end, esc, err := scanString(p, i)
	if err != nil {
		return 0, err
	}
	raw := p[i+1 : end-1]
	var k string
	if esc {
		k = unescape(raw)
	} else {
		k = unsafe.String(unsafe.SliceData(raw), len(raw))
	}
	top := &sc.stack[len(sc.stack)-1]
	if err := sc.unique(top, k); err != nil {
		return 0, err
	}
	top.child, top.ref, top.rootTool = nil, false, false
	if top.node != nil {
		for _, c := range top.node.children {
			for a, name := range c.aliases {
				if !strings.EqualFold(k, name) {
					continue
				}
				if string(raw) != name {
					return 0, invalid("the body spells %q as %q (case or escapes differ); send it exactly as %q", spec.names[c.id], string(raw), name)
				}
				if b.fields[c.id].end > 0 {
					return 0, invalid("the body has more than one %q key (in more than one spelling); send it once", spec.names[c.id])
				}
				top.child, top.alias = c, a
			}
		}
		if top.node.id < 0 && k == "tools" {
			top.rootTool = true
		}
	}
	for _, rk := range spec.media.RefKeys {
		if k == rk {
			top.ref = true
		}
	}
	i = skipWS(p, end)
	if i >= len(p) || p[i] != ':' {
		return 0, errNotObject
	}
	return i + 1, nil
}

// unique records k as a key of the object f, refusing a duplicate.
func (sc *bodyScanner) unique(f *frame, k string) error {
	keys := sc.keys[f.keys:]
	if f.set != nil {
		if _, dup := f.set[k]; dup {
			return duplicate(k)
		}
		f.set[k] = struct{}{}
		return nil
	}
	for _, prev := range keys {
		if prev == k {
			return duplicate(k)
		}
	}
	if len(keys) < linearKeys {
		sc.keys = append(sc.keys, k)
		return nil
	}
	f.set = make(map[string]struct{}, 2*linearKeys)
	for _, prev := range keys {
		f.set[prev] = struct{}{}
	}
	f.set[k] = struct{}{}
	return nil
}

func duplicate(k string) error {
	if len(k) > 64 {
		k = k[:64] + "…"
	}
	return invalid("the body has the key %q more than once in one object; send each key once", k)
}

func skipWS(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

func literal(p []byte, i int, lit string) int {
	if len(p)-i < len(lit) || string(p[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// number reads a JSON number at i and returns where it ends, or -1.
func number(p []byte, i int) int {
	if p[i] == '-' {
		i++
	}
	digits := func() bool {
		s := i
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		return i > s
	}
	if i < len(p) && p[i] == '0' {
		i++
	} else if !digits() {
		return -1
	}
	if i < len(p) && p[i] == '.' {
		i++
		if !digits() {
			return -1
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		if !digits() {
			return -1
		}
	}
	return i
}

// scanString reads the JSON string starting at p[i] == '"' and returns the index after its
// closing quote and whether it holds escapes.
func scanString(p []byte, i int) (end int, esc bool, err error) {
	for i++; i < len(p); {
		// Most of a body is string content: skip plain bytes in a tight loop.
		for i < len(p) && plain[p[i]] {
			i++
		}
		if i >= len(p) {
			break
		}
		switch c := p[i]; {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(p) {
				return 0, false, errNotObject
			}
			switch p[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(p) || !isHex(p[i+2:i+6]) {
					return 0, false, errNotObject
				}
				i += 6
			default:
				return 0, false, errNotObject
			}
		default: // a control character
			return 0, false, errNotObject
		}
	}
	return 0, false, errNotObject
}

// plain marks the bytes a JSON string holds as they are: all but '"', '\\' and controls.
var plain = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

func isHex(h []byte) bool {
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// unescape decodes the content of a JSON string already checked by scanString. Unpaired
// surrogates become U+FFFD, as in encoding/json.
func unescape(raw []byte) string {
	var sb strings.Builder
	sb.Grow(len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			sb.WriteByte(c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			if i+6 > len(raw) {
				sb.Write(raw[i:])
				return sb.String()
			}
			r := rune(hexVal(raw[i+2 : i+6]))
			i += 6
			if r >= 0xD800 && r < 0xDC00 && i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
				if r2 := rune(hexVal(raw[i+2 : i+6])); r2 >= 0xDC00 && r2 < 0xE000 {
					r = (r-0xD800)<<10 | (r2 - 0xDC00) + 0x10000
					i += 6
				}
			}
			if r >= 0xD800 && r < 0xE000 {
				r = utf8.RuneError
			}
			sb.WriteRune(r)
			continue
		default: // '"', '\\', '/'
			sb.WriteByte(raw[i+1])
		}
		i += 2
	}
	return sb.String()
}

func hexVal(h []byte) int {
	v := 0
	for _, c := range h {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= int(c - '0')
		case c >= 'a' && c <= 'f':
			v |= int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			v |= int(c-'A') + 10
		}
	}
	return v
}

// minImage is the shortest string checked for an image header: shorter ones are counted as
// text, which costs at most minImage tokens more than the part would.
const minImage = 64

// isInlineImage reports whether the content of a JSON string is an image sent inline: a
// data:image/ URL, or base64 that decodes to a PNG, JPEG, GIF or WebP header (the image types
// every provider accepts; the provider bills the part by the media type the request names, and
// an image header under another media type fails to decode). Escaped slashes ("\/", as some
// encoders write them) are read as slashes.
func isInlineImage(content []byte) bool {
	var head [24]byte
	n := 0
	for i := 0; i < len(content) && n < len(head); i++ {
		c := content[i]
		if c == '\\' {
			if i+1 < len(content) && content[i+1] == '/' {
				i++
				c = '/'
			} else {
				return false
			}
		}
		head[n] = c
		n++
	}
	h := head[:n]
	if len(h) >= 11 && strings.EqualFold(string(h[:11]), "data:image/") {
		return true
	}
	if n < 16 {
		return false
	}
	var dec [12]byte
	if _, err := base64.StdEncoding.Decode(dec[:], h[:16]); err != nil {
		return false
	}
	switch {
	case string(dec[:8]) == "\x89PNG\r\n\x1a\n",
		dec[0] == 0xFF && dec[1] == 0xD8 && dec[2] == 0xFF,
		string(dec[:4]) == "GIF8",
		string(dec[:4]) == "RIFF" && string(dec[8:12]) == "WEBP":
		return true
	}
	return false
}

func satMul(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// Edit rewrites a request body field by field for Prepare, keeping the first error, so a
// sequence of rewrites reads as one.
type Edit struct {
	body []byte
	err  error
}

// NewEdit starts rewriting body (which is not changed: each rewrite copies).
func NewEdit(body []byte) *Edit { return &Edit{body: body} }

// Set sets the value at path (sjson syntax) to v.
func (e *Edit) Set(path string, v any) {
	if e.err == nil {
		e.body, e.err = sjson.SetBytes(e.body, path, v)
	}
}

// SetRaw sets the value at path to the raw JSON raw.
func (e *Edit) SetRaw(path string, raw []byte) {
	if e.err == nil {
		e.body, e.err = sjson.SetRawBytes(e.body, path, raw)
	}
}

// Body returns the rewritten body, or an INVALID_REQUEST *apperr.Error when a rewrite failed.
func (e *Edit) Body() ([]byte, error) {
	if e.err != nil {
		return nil, apperr.New(apperr.InvalidRequest, "cannot prepare the upstream body: %v", e.err)
	}
	return e.body, nil
}
