package analytics

import (
	"context"
	"fmt"
	htmltemplate "html/template"
	texttemplate "text/template"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
	"tokenguard/app/mail"
	"tokenguard/store"
)

// Digest is the monthly digest of one workspace: the current UTC month up to now.
type Digest struct {
	Workspace string `json:"workspace"`
	Month     string `json:"month"` // "2006-01"
	Range
	TotalSpendUSD     float64      `json:"totalSpendUsd"`
	TotalRequests     int64        `json:"totalRequests"`
	TopProvider       *Ranked      `json:"topProvider"`
	TopModel          *Ranked      `json:"topModel"`
	TopProject        *Ranked      `json:"topProject"`
	BudgetWarnings    []BudgetRisk `json:"budgetWarnings"`
	Blocked           int64        `json:"blocked"`
	RecommendedAction string       `json:"recommendedAction"`
	// EmailDelivery is "queued" when the mail went to the outgoing queue, "skipped" when SMTP is
	// not configured.
	EmailDelivery string `json:"emailDelivery"`
	SentTo        string `json:"sentTo,omitempty"`
}

// Delivery outcomes of SendTestDigest.
const (
	DeliveryQueued  = "queued"
	DeliverySkipped = "skipped"
)

// SendTestDigest answers POST /api/analytics/monthly-digest/test: admins and owners only
// (FORBIDDEN for members). It builds the digest and mails it (text and HTML) to the caller's
// email when SMTP is configured.
func (s *Service) SendTestDigest(ctx context.Context, actor account.Actor, wsID int64, to string) (Digest, error) {
	ws, err := s.acct.Authorize(ctx, actor, wsID, account.ViewWorkspace)
	if err != nil {
		return Digest{}, err
	}
	if ws.Role != account.RoleOwner && ws.Role != account.RoleAdmin {
		return Digest{}, apperr.New(apperr.Forbidden, "Your role (%s) does not allow this action", ws.Role)
	}
	d, err := s.BuildDigest(ctx, actor, wsID)
	if err != nil {
		return Digest{}, err
	}
	d.EmailDelivery = DeliverySkipped
	if s.mail == nil || !s.mail.Configured() {
		return d, nil
	}
	msg, err := s.digest.Render(to, d)
	if err != nil {
		return Digest{}, err
	}
	if err := s.mail.Send(msg); err != nil {
		return Digest{}, fmt.Errorf("queue digest mail: %w", err)
	}
	d.EmailDelivery, d.SentTo = DeliveryQueued, to
	return d, nil
}

// BuildDigest computes the current month's digest of the workspace for a member.
func (s *Service) BuildDigest(ctx context.Context, actor account.Actor, wsID int64) (Digest, error) {
	now := s.now().UTC()
	f := Filter{From: monthStart(now), To: now.Add(time.Millisecond)}
	sc, err := s.open(ctx, actor, wsID, f)
	if err != nil {
		return Digest{}, err
	}
	d := Digest{Workspace: sc.ws.Name, Month: now.Format("2006-01"), Range: Range{f.From, f.To}}
	// The digest has no filters, so this month's per-project spend (also behind the budget
	// warnings) holds the totals and the top project.
	ps, err := s.periodSpend(ctx, sc, now)
	if err != nil {
		return Digest{}, err
	}
	all := sum(ps.month)
	d.TotalSpendUSD, d.TotalRequests, d.Blocked = usd(all.CostNano), all.Requests, all.Blocked
	if len(ps.month) > 0 {
		r := ps.month[0]
		d.TopProject = &Ranked{Name: sc.projectName(r.ProjectID), ProjectID: r.ProjectID, SpendUSD: usd(r.CostNano), Requests: r.Requests}
	}
	d.BudgetWarnings = budgetRisk(sc, ps)
	byModel, err := s.db.AggregateUsage(ctx, sc.f, store.GroupModel, 0)
	if err != nil {
		return Digest{}, err
	}
	d.TopModel, d.TopProvider = tops(byModel)
	d.RecommendedAction = recommend(d)
	return d, nil
}

// recommend picks the one thing most worth doing, most urgent first.
func recommend(d Digest) string {
	for _, w := range d.BudgetWarnings {
		if w.UtilizationPct >= 100 {
			return fmt.Sprintf("Project %q has used %.1f%% of its %s budget and is being blocked: raise the budget or set a cheaper fallback model.", w.Name, w.UtilizationPct, w.Period)
		}
	}
	if len(d.BudgetWarnings) > 0 {
		w := d.BudgetWarnings[0]
		return fmt.Sprintf("Project %q is at %.1f%% of its %s budget: review its usage or set a fallback model before it is blocked.", w.Name, w.UtilizationPct, w.Period)
	}
	if d.Blocked > 0 {
		return fmt.Sprintf("%d requests were blocked by budgets this month: check whether the limits match your needs.", d.Blocked)
	}
	if d.TotalRequests == 0 {
		return "No requests went through TokenGuard this month: point your SDK's base URL at the proxy to start tracking spend."
	}
	if d.TopModel != nil && d.TotalSpendUSD > 0 && d.TopModel.SpendUSD/d.TotalSpendUSD >= 0.5 {
		return fmt.Sprintf("%s accounts for most of your spend: consider a cheaper model for routine requests.", d.TopModel.Name)
	}
	return "Spend is within budget: no action needed."
}

const digestText = `TokenGuard monthly digest — {{.Workspace}} ({{.Month}})

Total spend: ${{printf "%.4f" .TotalSpendUSD}}
Total requests: {{.TotalRequests}}
Top provider: {{with .TopProvider}}{{.Name}} (${{printf "%.4f" .SpendUSD}}){{else}}none{{end}}
Top model: {{with .TopModel}}{{.Name}} (${{printf "%.4f" .SpendUSD}}){{else}}none{{end}}
Top project: {{with .TopProject}}{{.Name}} (${{printf "%.4f" .SpendUSD}}){{else}}none{{end}}
Blocked requests: {{.Blocked}}
Budget warnings:{{range .BudgetWarnings}}
  - {{.Name}}: {{printf "%.1f" .UtilizationPct}}% of the {{.Period}} budget (${{printf "%.2f" .SpendUSD}} of ${{printf "%.2f" .BudgetUSD}}){{else}} none{{end}}

Recommended action: {{.RecommendedAction}}
`

const digestHTML = `<!doctype html><html><body style="font-family:sans-serif">
<h1>TokenGuard monthly digest</h1>
<p>{{.Workspace}} — {{.Month}}</p>
<table>
<tr><th align="left">Total spend</th><td>${{printf "%.4f" .TotalSpendUSD}}</td></tr>
<tr><th align="left">Total requests</th><td>{{.TotalRequests}}</td></tr>
<tr><th align="left">Top provider</th><td>{{with .TopProvider}}{{.Name}} (${{printf "%.4f" .SpendUSD}}){{else}}none{{end}}</td></tr>
<tr><th align="left">Top model</th><td>{{with .TopModel}}{{.Name}} (${{printf "%.4f" .SpendUSD}}){{else}}none{{end}}</td></tr>
<tr><th align="left">Top project</th><td>{{with .TopProject}}{{.Name}} (${{printf "%.4f" .SpendUSD}}){{else}}none{{end}}</td></tr>
<tr><th align="left">Blocked requests</th><td>{{.Blocked}}</td></tr>
</table>
<h2>Budget warnings</h2>
{{if .BudgetWarnings}}<ul>{{range .BudgetWarnings}}<li>{{.Name}}: {{printf "%.1f" .UtilizationPct}}% of the {{.Period}} budget</li>{{end}}</ul>{{else}}<p>None.</p>{{end}}
<h2>Recommended action</h2>
<p>{{.RecommendedAction}}</p>
</body></html>`

// digestTemplate renders the digest; html/template escapes every name a user chose. The
// templates are constants, so a parse error is a programming error caught by any test.
func digestTemplate() mail.Template {
	return mail.Template{
		Kind:    "digest",
		Subject: texttemplate.Must(texttemplate.New("s").Parse(`TokenGuard digest for {{.Workspace}}: ${{printf "%.2f" .TotalSpendUSD}} in {{.Month}}`)),
		Text:    texttemplate.Must(texttemplate.New("t").Parse(digestText)),
		HTML:    htmltemplate.Must(htmltemplate.New("h").Parse(digestHTML)),
	}
}
