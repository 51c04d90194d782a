package pricing

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"
)

// prices.json is generated from the pinned genai-prices release; see scripts/genprices.
//
//go:generate node ../../scripts/genprices/genprices.mjs -o prices.json
//go:embed prices.json
var embedded []byte

// MaxSnapshotBytes bounds a snapshot file (the embedded one is about 100 KB).
const MaxSnapshotBytes = 16 << 20

// maxDollarsPerMTok is the dearest price a snapshot may list: twenty times the dearest
// published rate ($600 per million o1-pro output tokens). Anything above is a broken file
// (a price in the wrong unit, say), refused rather than billed.
const maxDollarsPerMTok = 12_000

// maxTierStart bounds a tier threshold in tokens (no model reads ten million tokens).
const maxTierStart = 10_000_000

// Snapshot is a parsed, validated price data set. Build one with ParseSnapshot or Embedded.
type Snapshot struct {
	Release   string // the data set's release, such as "0.1.8"
	Generated string // the day the snapshot was generated, YYYY-MM-DD
	Source    string // where the data comes from
	License   string // the data's licence notice
	version   string
	providers []snapProvider
}

// Version is the snapshot's version string (see Table.Version).
func (s *Snapshot) Version() string { return s.version }

type snapProvider struct {
	provider string // OpenAI, Anthropic or Gemini
	match    *rule
	models   []*entry
}

// The snapshot file's shape, as scripts/genprices writes it.
type (
	snapshotFile struct {
		Schema           int             `json:"schema"`
		Source           string          `json:"source"`
		Repository       string          `json:"repository"`
		Package          string          `json:"package"`
		Release          string          `json:"release"`
		Generated        string          `json:"generated"`
		Generator        string          `json:"generator"`
		License          string          `json:"license"`
		OmittedPriceKeys []string        `json:"omitted_price_keys"`
		OmittedModels    json.RawMessage `json:"omitted_models"`
		Providers        []providerFile  `json:"providers"`
	}
	providerFile struct {
		ID          string      `json:"id"`
		Name        string      `json:"name"`
		PricingURLs []string    `json:"pricing_urls"`
		ModelMatch  ruleFile    `json:"model_match"`
		Models      []modelFile `json:"models"`
	}
	modelFile struct {
		ID            string       `json:"id"`
		Name          string       `json:"name"`
		Match         ruleFile     `json:"match"`
		ContextWindow int64        `json:"context_window"`
		Deprecated    bool         `json:"deprecated"`
		PriceComments string       `json:"price_comments"`
		Prices        []periodFile `json:"prices"`
	}
	periodFile struct {
		From   string                     `json:"from"`
		Prices map[string]json.RawMessage `json:"prices"`
	}
	tieredFile struct {
		Base  float64 `json:"base"`
		Tiers []struct {
			Start int64   `json:"start"`
			Price float64 `json:"price"`
		} `json:"tiers"`
	}
)

// priceKeys maps the data's price keys to the Price field each sets.
var priceKeys = map[string]func(*Price) *int64{
	"input_mtok":            func(p *Price) *int64 { return &p.Input },
	"cache_read_mtok":       func(p *Price) *int64 { return &p.CacheRead },
	"cache_write_mtok":      func(p *Price) *int64 { return &p.CacheWrite },
	"cache_write_1h_mtok":   func(p *Price) *int64 { return &p.CacheWrite1h },
	"output_mtok":           func(p *Price) *int64 { return &p.Output },
	"input_audio_mtok":      func(p *Price) *int64 { return &p.InputAudio },
	"cache_audio_read_mtok": func(p *Price) *int64 { return &p.CacheReadAudio },
	"output_audio_mtok":     func(p *Price) *int64 { return &p.OutputAudio },
	"input_image_mtok":      func(p *Price) *int64 { return &p.InputImage },
	"cache_image_read_mtok": func(p *Price) *int64 { return &p.CacheReadImage },
	"output_image_mtok":     func(p *Price) *int64 { return &p.OutputImage },
}

// providerIDs maps the data's provider ids to TokenGuard's provider names.
var providerIDs = map[string]string{"anthropic": Anthropic, "google": Gemini, "openai": OpenAI}

// Embedded returns the snapshot built into the binary.
var Embedded = sync.OnceValues(func() (*Snapshot, error) {
	s, err := ParseSnapshot(embedded)
	if err != nil {
		return nil, fmt.Errorf("embedded prices: %w", err)
	}
	return s, nil
})

// ParseSnapshot parses and validates a snapshot as scripts/genprices writes it. It refuses a
// file over MaxSnapshotBytes, unknown fields or price keys, a schema other than 1, a snapshot
// lacking any of the three providers, a model without a positive input price, a negative price
// or one above $12,000 per million tokens, tiers out of order, dated prices out of order, and
// match rules that do not compile.
func ParseSnapshot(data []byte) (*Snapshot, error) {
	if len(data) > MaxSnapshotBytes {
		return nil, fmt.Errorf("snapshot is %d bytes, over the %d-byte limit", len(data), MaxSnapshotBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f snapshotFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if dec.More() {
		return nil, errors.New("snapshot: data after the JSON object")
	}
	if f.Schema != 1 {
		return nil, fmt.Errorf("snapshot: schema %d, want 1", f.Schema)
	}
	if f.Release == "" || len(f.Release) > 32 {
		return nil, errors.New("snapshot: release must be 1 to 32 characters")
	}
	if _, err := time.Parse(time.DateOnly, f.Generated); err != nil {
		return nil, fmt.Errorf("snapshot: generated %q is not a date", f.Generated)
	}
	sum := sha256.Sum256(data)
	s := &Snapshot{Release: f.Release, Generated: f.Generated, Source: f.Source, License: f.License,
		version: "genai-prices@" + f.Release + "+" + hex.EncodeToString(sum[:4])}
	seen := map[string]bool{}
	for _, pf := range f.Providers {
		name, ok := providerIDs[pf.ID]
		if !ok || seen[pf.ID] {
			return nil, fmt.Errorf("snapshot: provider %q unknown or listed twice", pf.ID)
		}
		seen[pf.ID] = true
		p, err := parseProvider(name, pf)
		if err != nil {
			return nil, fmt.Errorf("snapshot: provider %s: %w", pf.ID, err)
		}
		s.providers = append(s.providers, p)
	}
	for id := range providerIDs {
		if !seen[id] {
			return nil, fmt.Errorf("snapshot: provider %s missing", id)
		}
	}
	return s, nil
}

func parseProvider(name string, pf providerFile) (snapProvider, error) {
	p := snapProvider{provider: name}
	var err error
	if p.match, err = pf.ModelMatch.compile(0); err != nil {
		return p, fmt.Errorf("model_match: %w", err)
	}
	if len(pf.Models) == 0 {
		return p, errors.New("no models")
	}
	ids := map[string]bool{}
	for _, mf := range pf.Models {
		e, err := parseModel(name, mf)
		if err != nil {
			return p, fmt.Errorf("model %q: %w", mf.ID, err)
		}
		if ids[e.id] {
			return p, fmt.Errorf("model %q listed twice", e.id)
		}
		ids[e.id] = true
		p.models = append(p.models, e)
	}
	return p, nil
}

func parseModel(provider string, mf modelFile) (*entry, error) {
	if mf.ID == "" || mf.ID != normalize(mf.ID) || len(mf.ID) > 256 {
		return nil, errors.New("id must be a lower-case name of at most 256 bytes")
	}
	if mf.ContextWindow < 0 {
		return nil, errors.New("negative context window")
	}
	m, err := mf.Match.compile(0)
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	e := &entry{id: mf.ID, provider: provider, match: m, contextWindow: mf.ContextWindow, comments: mf.PriceComments}
	if len(mf.Prices) == 0 {
		return nil, errors.New("no prices")
	}
	for i, pf := range mf.Prices {
		var from int64
		switch {
		case i == 0 && pf.From != "":
			return nil, errors.New("the first price set must not have a start date")
		case i > 0:
			d, err := time.Parse(time.DateOnly, pf.From)
			if err != nil {
				return nil, fmt.Errorf("price set %d: from %q is not a date", i, pf.From)
			}
			from = d.Unix()
			if i > 1 && from <= e.periods[i-1].from {
				return nil, fmt.Errorf("price set %d starts before the one it follows", i)
			}
		}
		tiers, err := parseTiers(pf.Prices)
		if err != nil {
			return nil, fmt.Errorf("price set %d: %w", i, err)
		}
		e.periods = append(e.periods, period{from: from, tiers: tiers})
	}
	e.maxOutput = dataMaxOutput(e)
	return e, nil
}

// parseTiers turns one price set, whose keys may each carry input-size tiers, into the list
// of tiers that applies as a whole: the base tier, then one per distinct threshold with every
// key's price at that threshold. A tier applies when the prompt is over its threshold, as in
// genai-prices.
func parseTiers(prices map[string]json.RawMessage) ([]tier, error) {
	type keyed struct {
		field func(*Price) *int64
		base  int64
		tiers []struct{ start, price int64 }
	}
	var keys []keyed
	starts := map[int64]bool{}
	var listed Price
	for k, raw := range prices {
		field, ok := priceKeys[k]
		if !ok {
			return nil, fmt.Errorf("unknown price key %q", k)
		}
		kd := keyed{field: field}
		var err error
		if len(raw) > 0 && raw[0] == '{' {
			var tf tieredFile
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&tf); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if kd.base, err = micro(tf.Base); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			last := int64(0)
			for _, t := range tf.Tiers {
				if t.Start <= last || t.Start > maxTierStart {
					return nil, fmt.Errorf("%s: tier starts must rise, from 1 to %d tokens", k, maxTierStart)
				}
				last = t.Start
				p, err := micro(t.Price)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", k, err)
				}
				kd.tiers = append(kd.tiers, struct{ start, price int64 }{t.Start, p})
				starts[t.Start] = true
			}
		} else {
			var v float64
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if kd.base, err = micro(v); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
		}
		*field(&listed) = 1
		keys = append(keys, kd)
	}
	thresholds := []int64{0}
	for s := range starts {
		thresholds = append(thresholds, s)
	}
	sort.Slice(thresholds, func(i, j int) bool { return thresholds[i] < thresholds[j] })
	tiers := make([]tier, len(thresholds))
	for i, above := range thresholds {
		var p Price
		for _, kd := range keys {
			v := kd.base
			for _, t := range kd.tiers {
				if t.start <= above {
					v = t.price
				}
			}
			*kd.field(&p) = v
		}
		if p.Input <= 0 {
			return nil, errors.New("input_mtok must be listed and above zero, or every model of it would be free")
		}
		tiers[i] = tier{above: above, price: p.withDefaults(listed), label: "base"}
		if above > 0 {
			tiers[i].label = "input over " + strconv.FormatInt(above, 10) + " tokens"
		}
	}
	return tiers, nil
}

// micro converts dollars per million tokens to micro-dollars, refusing negative, non-finite
// and absurd prices.
func micro(d float64) (int64, error) {
	if math.IsNaN(d) || d < 0 || d > maxDollarsPerMTok {
		return 0, fmt.Errorf("price %v is not between $0 and $%d per million tokens", d, maxDollarsPerMTok)
	}
	return int64(math.Round(d * 1e6)), nil
}
