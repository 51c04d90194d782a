package api

import (
	"encoding/json"
	"math"
	"reflect"

	"tokenguard/app/account"
)

// controlsRequest are a project's controls in POST and PATCH /api/projects (DESIGN §7). Absent
// fields stay as they are (the defaults on create); null is the default: no limit, every
// model, no failover, no end-user budget.
type controlsRequest struct {
	RPMLimit              optNumber `json:"rpmLimit"`
	TPMLimit              optNumber `json:"tpmLimit"`
	AllowedModels         optList   `json:"allowedModels"`
	FallbackOnError       optBool   `json:"fallbackOnError"`
	EndUserDailyBudgetUSD optNumber `json:"endUserDailyBudgetUsd"`
}

func (c controlsRequest) patch() (account.ControlsPatch, error) {
	var p account.ControlsPatch
	var err error
	if p.RPMLimit, err = wholeLimit("rpmLimit", c.RPMLimit); err != nil {
		return p, err
	}
	if p.TPMLimit, err = wholeLimit("tpmLimit", c.TPMLimit); err != nil {
		return p, err
	}
	if c.AllowedModels.set {
		p.AllowedModels = &c.AllowedModels.v
	}
	if c.FallbackOnError.set {
		p.FallbackOnError = &c.FallbackOnError.v
	}
	if c.EndUserDailyBudgetUSD.set {
		zero := 0.0
		p.EndUserDailyBudget = &zero
		if c.EndUserDailyBudgetUSD.v != nil {
			p.EndUserDailyBudget = c.EndUserDailyBudgetUSD.v
		}
	}
	return p, nil
}

// wholeLimit turns a JSON limit into the service's: absent nil, null 0 (no limit). Fractions
// are refused; values far out of range saturate just past the bounds, so the service refuses
// them with its one message rather than overflowing int64 here.
func wholeLimit(field string, o optNumber) (*int64, error) {
	if !o.set {
		return nil, nil
	}
	var n int64
	if o.v != nil {
		v := *o.v
		if v != math.Trunc(v) {
			return nil, invalid("%s must be a whole number", field)
		}
		n = int64(max(-1, min(v, account.MaxRateLimit+1)))
	}
	return &n, nil
}

// optList is a JSON list of strings that distinguishes absent (set false) from null or a list
// (set; null is the empty list).
type optList struct {
	set bool
	v   []string
}

func (o *optList) UnmarshalJSON(b []byte) error {
	o.set = true
	if string(b) == "null" {
		o.v = []string{}
		return nil
	}
	if err := json.Unmarshal(b, &o.v); err != nil {
		return &json.UnmarshalTypeError{Value: "value", Type: reflect.TypeFor[[]string]()}
	}
	return nil
}

// optBool is a JSON boolean that distinguishes absent (set false) from null or a value (set;
// null is false).
type optBool struct {
	set bool
	v   bool
}

func (o *optBool) UnmarshalJSON(b []byte) error {
	o.set = true
	if string(b) == "null" {
		o.v = false
		return nil
	}
	if err := json.Unmarshal(b, &o.v); err != nil {
		return &json.UnmarshalTypeError{Value: "value", Type: reflect.TypeFor[bool]()}
	}
	return nil
}
