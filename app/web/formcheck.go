package web

import (
	"net/http"
	"strings"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
	"tokenguard/views"
)

// fieldLabels are the form fields as their labels name them, so that a validation message reads
// "Daily budget must be …" rather than "dailyBudgetUsd must be …".
var fieldLabels = map[string]string{
	"name": "Name", "dailyBudgetUsd": "Daily budget", "monthlyBudgetUsd": "Monthly budget",
	"budgetMode": "Budget mode", "fallbackModel": "Fallback model", "alertEmail": "Alert email",
	"rpmLimit": "Requests per minute", "tpmLimit": "Tokens per minute", "allowedModels": "Allowed models",
	"endUserDailyBudgetUsd": "Daily budget per end user",
}

// readable replaces the field name a service message starts with by the field's label.
func readable(msg string) string {
	field, rest, ok := strings.Cut(msg, " ")
	if label := fieldLabels[field]; ok && label != "" {
		return label + " " + rest
	}
	return msg
}

// maxFallbackModel bounds a fallback model name, as the account service does.
const maxFallbackModel = 200

// checkProjectFields adds to f.Errors what projectForm leaves to the service (budget mode,
// fallback model, alert email), so that the form shows every problem at once rather than one per
// submit. A fallback model the price table does not know (a typo, most often, which would be
// metered at the default price) is refused once with a warning; submitting the same name again
// confirms it.
func (s *Server) checkProjectFields(r *http.Request, f *views.ProjectForm) {
	if m := formBudgetMode(r); m != nil {
		if _, err := account.ParseBudgetMode(*m); err != nil {
			f.Errors["budgetMode"] = readable(apperr.Message(err))
		}
	}
	if fm := f.FallbackModel; fm != "" {
		switch {
		case len(fm) > maxFallbackModel || strings.ContainsAny(fm, " \t"):
			f.Errors["fallbackModel"] = "Fallback model must be a model name without spaces, at most 200 characters."
		case s.opt.Prices.Explain(fm).ByDefault && r.PostFormValue("confirmFallback") != fm:
			f.Errors["fallbackModel"] = "TokenGuard has no price for “" + fm + "”: check the spelling (the list suggests known models). " +
				"Requests to it would be metered at the default price. Save again to use it anyway."
			f.ConfirmFallback = fm
		}
	}
	if e := f.AlertEmail; e != "" {
		if _, err := account.NormalizeEmail(e); err != nil {
			f.Errors["alertEmail"] = "Alert email must be a valid address like name@example.com."
		}
	}
}
