// Package alert mails the budget alerts of DESIGN §4: when a request carries a budget across 80%
// or 100%, the project's alert email (or, for a workspace budget, the workspace's owners) is told
// once per budget, period and threshold.
//
// The proxy reports crossings on the request's goroutine, so OnCrossing only queues them; one
// background worker does the SQL and hands the mail to the mailer. Which alert has been sent is
// kept in budget_alerts, whose primary key makes the claim atomic, so neither a second crossing
// in the same period nor a restart mails twice.
package alert

import (
	"context"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"tokenguard/app/budget"
	"tokenguard/app/mail"
	"tokenguard/app/pricing"
	"tokenguard/store"
)

// Options configures an Alerter. DB and Mailer are required.
type Options struct {
	DB     *store.DB
	Mailer *mail.Mailer
	// FrontendURL is the dashboard's base URL (FRONTEND_URL); mails link to its pages.
	FrontendURL string
	// Log receives a line per alert sent and per failure. Default: discard.
	Log *slog.Logger
	// Now stamps the alert record. The alert's period is the crossing's own (Crossing.At).
	// Default: time.Now.
	Now func() time.Time
	// QueueSize bounds the crossings waiting for the worker; past it OnCrossing drops (and logs)
	// rather than hold up a request. Default: 1024.
	QueueSize int
}

// Alerter turns budget crossings into alert emails. Create it with New; call Close on shutdown.
type Alerter struct {
	db       *store.DB
	mailer   *mail.Mailer
	frontend string
	log      *slog.Logger
	now      func() time.Time
	tmpl     mail.Template

	mu     sync.RWMutex
	closed bool
	queue  chan budget.Crossing

	ctx    context.Context // cancelled when Close's deadline passes
	cancel context.CancelFunc
	done   chan struct{}
}

// New starts the worker and returns the Alerter.
func New(opts Options) (*Alerter, error) {
	if opts.DB == nil || opts.Mailer == nil {
		return nil, errors.New("alert: DB and Mailer are required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1024
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Alerter{
		db:       opts.DB,
		mailer:   opts.Mailer,
		frontend: strings.TrimRight(opts.FrontendURL, "/"),
		log:      opts.Log,
		now:      opts.Now,
		tmpl:     alertTemplate(),
		queue:    make(chan budget.Crossing, opts.QueueSize),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go a.run()
	return a, nil
}

// OnCrossing queues crossings for the worker and returns at once (it is proxy.Config.OnCrossing
// and runs on the request's goroutine). When the queue is full the crossing is dropped and
// logged: a missed alert is better than a held-up request.
func (a *Alerter) OnCrossing(cs []budget.Crossing) {
	if len(cs) == 0 {
		return
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		return
	}
	for _, c := range cs {
		select {
		case a.queue <- c:
		default:
			a.log.Warn("budget alert dropped: alert queue full", "budget", c.Budget.String(),
				"project", c.ProjectID, "workspace", c.WorkspaceID, "threshold", c.Threshold)
		}
	}
}

// Close stops taking crossings and waits until the queued ones are handled (their mail queued
// with the mailer, so close the Alerter before the Mailer). If ctx ends first, the rest are
// abandoned and ctx's error returned.
func (a *Alerter) Close(ctx context.Context) error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.queue)
	}
	a.mu.Unlock()
	select {
	case <-a.done:
		a.cancel()
		return nil
	case <-ctx.Done():
		a.cancel()
		<-a.done // every step fails fast on the cancelled context
		return fmt.Errorf("alert: closing: %w", ctx.Err())
	}
}

func (a *Alerter) run() {
	defer close(a.done)
	for c := range a.queue {
		if a.ctx.Err() != nil {
			continue // abandoned at shutdown: drain without work
		}
		if err := a.handle(a.ctx, c); err != nil {
			a.log.Error("budget alert not sent", "err", err, "budget", c.Budget.String(),
				"project", c.ProjectID, "workspace", c.WorkspaceID)
		}
	}
}

// mailData is what the alert template shows.
type mailData struct {
	Scope     string // "project" or "workspace"
	Name      string
	Budget    string // "daily" or "monthly"
	Threshold int
	Percent   int
	Spend     string
	Limit     string
	Period    string
	Resets    string
	Next      string
	Link      string
}

// handle sends one crossing's alert unless it was already sent or nobody is to receive it.
func (a *Alerter) handle(ctx context.Context, c budget.Crossing) error {
	d := mailData{
		Threshold: 80,
		Percent:   percent(c.Spend, c.Limit),
		Spend:     usd(c.Spend),
		Limit:     usd(c.Limit),
	}
	if c.Threshold >= budget.BlockLevel {
		d.Threshold = 100
	}
	at := c.At.UTC()
	var period string
	switch c.Budget {
	case budget.ProjectDaily, budget.WorkspaceDaily:
		d.Budget, period = "daily", budget.DayKey(at)
		d.Period = at.Format("Monday 2 January 2006") + " (UTC)"
		next := time.Date(at.Year(), at.Month(), at.Day()+1, 0, 0, 0, 0, time.UTC)
		d.Resets = "at 00:00 UTC on " + next.Format("2 January 2006")
	case budget.ProjectMonthly, budget.WorkspaceMonthly:
		d.Budget, period = "monthly", budget.MonthKey(at)
		d.Period = at.Format("January 2006") + " (UTC)"
		next := time.Date(at.Year(), at.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		d.Resets = "at 00:00 UTC on " + next.Format("2 January 2006")
	default:
		return fmt.Errorf("unknown budget %d", c.Budget)
	}

	var recipients []string
	var scope budget.Scope
	var subject int64
	switch c.Budget {
	case budget.ProjectDaily, budget.ProjectMonthly:
		scope, subject = budget.ProjectScope, c.ProjectID
		p, err := a.db.ProjectByID(ctx, c.ProjectID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted since: nobody to tell
		}
		if err != nil {
			return err
		}
		if p.AlertEmail == "" {
			return nil // the project asked for no alerts
		}
		recipients = []string{p.AlertEmail}
		d.Scope, d.Name = "project", p.Name
		d.Link = a.frontend + "/w/" + strconv.FormatInt(p.WorkspaceID, 10) + "/projects/" + strconv.FormatInt(p.ID, 10)
		d.Next = projectNext(d.Threshold, p.FallbackModel, d.Resets)
	default:
		scope, subject = budget.WorkspaceScope, c.WorkspaceID
		name, owners, err := a.db.WorkspaceAlertRecipients(ctx, c.WorkspaceID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		recipients = owners
		d.Scope, d.Name = "workspace", name
		d.Link = a.frontend + "/w/" + strconv.FormatInt(c.WorkspaceID, 10) + "/settings"
		d.Next = workspaceNext(d.Threshold, d.Resets)
	}
	if len(recipients) == 0 {
		return nil
	}

	claimed, err := a.db.ClaimBudgetAlert(ctx, store.BudgetAlert{
		Scope: string(scope), SubjectID: subject, Budget: d.Budget, Period: period, Threshold: d.Threshold,
		SpendNano: int64(c.Spend), LimitNano: int64(c.Limit), Recipients: len(recipients), CreatedAt: a.now().UnixMilli(),
	})
	if err != nil || !claimed {
		return err
	}
	var errs []error
	for _, to := range recipients {
		msg, err := a.tmpl.Render(to, d)
		if err == nil {
			err = a.mailer.Send(msg)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("mail %s alert for %s %d: %w", d.Budget, scope, subject, err))
		}
	}
	a.log.Info("budget alert", "scope", string(scope), "id", subject, "budget", d.Budget, "period", period,
		"threshold", d.Threshold, "recipients", len(recipients))
	return errors.Join(errs...)
}

// projectNext says what the gate does from here on (DESIGN §4): the fallback model from 80% if
// one is set, 429 BUDGET_EXCEEDED from 100%.
func projectNext(threshold int, fallback, resets string) string {
	if threshold >= 100 {
		return "Requests with this project's key are now refused with 429 BUDGET_EXCEEDED until the budget resets " +
			resets + ", or until you raise the budget."
	}
	if fallback != "" {
		return "Requests now go to the fallback model " + fallback + " instead of the model they ask for. At 100% they are refused with 429 BUDGET_EXCEEDED until the budget resets " + resets + "."
	}
	return "Requests still go to the model they ask for (no fallback model is set). At 100% they are refused with 429 BUDGET_EXCEEDED until the budget resets " + resets + "."
}

func workspaceNext(threshold int, resets string) string {
	if threshold >= 100 {
		return "Requests from every project in this workspace are now refused with 429 BUDGET_EXCEEDED until the budget resets " +
			resets + ", or until an owner raises it."
	}
	return "Projects with a fallback model now send their requests to it; the others still use the model asked for. At 100% every project's requests are refused with 429 BUDGET_EXCEEDED until the budget resets " + resets + "."
}

// usd shows nano-dollars as dollars: cents for ordinary amounts, more digits below a cent so a
// small budget does not read $0.00.
func usd(n pricing.NanoUSD) string {
	d := n.Dollars()
	if d != 0 && d < 0.01 && d > -0.01 {
		s := strconv.FormatFloat(d, 'f', 6, 64)
		s = strings.TrimRight(s, "0")
		return "$" + s
	}
	return "$" + strconv.FormatFloat(d, 'f', 2, 64)
}

// percent is spend as a whole percentage of limit, rounded down (so 99.9% never reads 100%).
func percent(spend, limit pricing.NanoUSD) int {
	if limit <= 0 {
		return 100
	}
	return int(int64(spend) * 100 / int64(limit))
}

// alertTemplate renders the alert; html/template escapes the project or workspace name.
func alertTemplate() mail.Template {
	return mail.Template{
		Kind:    "budget_alert",
		Subject: texttemplate.Must(texttemplate.New("s").Parse(`TokenGuard: {{.Scope}} {{.Name}} reached {{.Threshold}}% of its {{.Budget}} budget`)),
		Text:    texttemplate.Must(texttemplate.New("t").Parse(alertText)),
		HTML:    htmltemplate.Must(htmltemplate.New("h").Parse(alertHTML)),
	}
}

const alertText = `The {{.Scope}} "{{.Name}}" has reached {{.Threshold}}% of its {{.Budget}} budget.

Spend:  {{.Spend}} of {{.Limit}} ({{.Percent}}%)
Period: {{.Period}}

What happens next: {{.Next}}

Open it in TokenGuard:
{{.Link}}
`

const alertHTML = `<!doctype html>
<html><body style="font-family: sans-serif; line-height: 1.5">
<p>The {{.Scope}} <strong>{{.Name}}</strong> has reached <strong>{{.Threshold}}%</strong> of its {{.Budget}} budget.</p>
<table>
<tr><td>Spend</td><td><strong>{{.Spend}}</strong> of {{.Limit}} ({{.Percent}}%)</td></tr>
<tr><td>Period</td><td>{{.Period}}</td></tr>
</table>
<p><strong>What happens next:</strong> {{.Next}}</p>
<p><a href="{{.Link}}">Open it in TokenGuard</a></p>
</body></html>
`
