package web

import (
	"net/http"
	"strconv"
	"strings"

	"tokenguard/app/account"
	"tokenguard/app/allowlist"
	"tokenguard/app/apperr"
	"tokenguard/views"
)

// controlFields are the form fields of a project's controls, for fieldError.
var controlFields = []string{"rpmLimit", "tpmLimit", "allowedModels", "endUserDailyBudgetUsd"}

// projectControls reads a project form's controls into f (as entered, for a re-rendered form)
// and into the service's patch, adding to f.Errors what is malformed. A field the form did not
// send stays as it is.
func projectControls(r *http.Request, f *views.ProjectForm) account.ControlsPatch {
	var c account.ControlsPatch
	c.RPMLimit = formLimit(r, "rpmLimit", &f.RPMLimit, f.Errors)
	c.TPMLimit = formLimit(r, "tpmLimit", &f.TPMLimit, f.Errors)
	if _, ok := r.PostForm["allowedModels"]; ok {
		f.AllowedModels = strings.TrimSpace(r.PostFormValue("allowedModels"))
		models := strings.FieldsFunc(f.AllowedModels, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' })
		if _, err := allowlist.Normalize(models); err != nil {
			f.Errors["allowedModels"] = readable(apperr.Message(err))
		}
		c.AllowedModels = &models
	}
	if vs := r.PostForm["fallbackOnError"]; len(vs) > 0 {
		// A hidden "off" precedes the checkbox, so an unticked box still says so.
		f.FallbackOnError = vs[len(vs)-1] == "on"
		c.FallbackOnError = &f.FallbackOnError
	}
	if _, ok := r.PostForm["endUserDailyBudgetUsd"]; ok {
		f.EndUserDailyBudget = strings.TrimSpace(r.PostFormValue("endUserDailyBudgetUsd"))
		b, msg := parseBudget("endUserDailyBudgetUsd", f.EndUserDailyBudget)
		if msg != "" {
			f.Errors["endUserDailyBudgetUsd"] = msg
		}
		zero := 0.0
		c.EndUserDailyBudget = &zero
		if b.Value != nil {
			c.EndUserDailyBudget = b.Value
		}
	}
	return c
}

// formLimit reads a per-minute limit field into *text: nil when the form did not send it; ""
// and "0" are no limit. A malformed or out-of-range value is an error in errs.
func formLimit(r *http.Request, field string, text *string, errs views.FieldErrors) *int64 {
	if _, ok := r.PostForm[field]; !ok {
		return nil
	}
	*text = strings.ReplaceAll(strings.TrimSpace(r.PostFormValue(field)), ",", "")
	var n int64
	if *text != "" {
		v, err := strconv.ParseInt(*text, 10, 64)
		if err == nil {
			_, err = account.RateLimit(field, v)
		}
		if err != nil {
			errs[field] = fieldLabels[field] + " must be a whole number from 0 (no limit) to 1,000,000,000."
		}
		n = v
	}
	return &n
}

// controlsForm is a project's controls as its settings form shows them.
func controlsForm(p account.Project, f *views.ProjectForm) {
	f.RPMLimit, f.TPMLimit = limitInput(p.RPMLimit), limitInput(p.TPMLimit)
	f.AllowedModels = strings.Join(p.AllowedModels, "\n")
	f.FallbackOnError = p.FallbackOnError
	if p.EndUserDailyBudget > 0 {
		n := int64(p.EndUserDailyBudget)
		f.EndUserDailyBudget = views.USDInput(&n)
	}
}

// limitInput shows a limit in a form field: "" for none.
func limitInput(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}
