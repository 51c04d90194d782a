package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"tokenguard/app/budget"
	"tokenguard/store"
)

// Event names, sent in the body's "event" and the X-Tokenguard-Event header.
const (
	EventBudgetCrossed = "budget.threshold_crossed"
	EventTest          = "webhook.test"
)

// Body is what every delivery posts. Text is Slack's incoming-webhook field (mrkdwn, with &, <
// and > escaped), so a Slack URL works as it is; the rest is for receivers of one's own. ID
// stays the same across the retries of one event.
type Body struct {
	Text      string    `json:"text"`
	ID        string    `json:"id"`
	Event     string    `json:"event"`
	CreatedAt string    `json:"createdAt"`
	Data      *Crossing `json:"data,omitempty"`
}

// Crossing is a budget crossing as a webhook tells it. Money is in dollars; ResetsAt is RFC
// 3339 UTC; ProjectID and ProjectName are absent for a workspace budget.
type Crossing struct {
	Scope         string  `json:"scope"`
	WorkspaceID   int64   `json:"workspaceId"`
	WorkspaceName string  `json:"workspaceName"`
	ProjectID     int64   `json:"projectId,omitempty"`
	ProjectName   string  `json:"projectName,omitempty"`
	Budget        string  `json:"budget"`
	Period        string  `json:"period"`
	Threshold     int     `json:"threshold"`
	SpendUSD      float64 `json:"spendUsd"`
	LimitUSD      float64 `json:"limitUsd"`
	ResetsAt      string  `json:"resetsAt"`
	Link          string  `json:"link"`
}

// crossingEvent builds c's event and its dedupe key; ok is false when there is nobody to tell
// (the project or workspace was deleted since).
func (s *Service) crossingEvent(ctx context.Context, c budget.Crossing, now time.Time) (body []byte, key string, ok bool, err error) {
	at := c.At.UTC()
	d := Crossing{WorkspaceID: c.WorkspaceID, Threshold: 80, SpendUSD: c.Spend.Dollars(), LimitUSD: c.Limit.Dollars()}
	if c.Threshold >= budget.BlockLevel {
		d.Threshold = 100
	}
	var reset time.Time
	switch c.Budget {
	case budget.ProjectDaily, budget.WorkspaceDaily:
		d.Budget, d.Period = "daily", budget.DayKey(at)
		reset = time.Date(at.Year(), at.Month(), at.Day()+1, 0, 0, 0, 0, time.UTC)
	case budget.ProjectMonthly, budget.WorkspaceMonthly:
		d.Budget, d.Period = "monthly", budget.MonthKey(at)
		reset = time.Date(at.Year(), at.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	default:
		return nil, "", false, fmt.Errorf("unknown budget %d", c.Budget)
	}
	d.ResetsAt = reset.Format(time.RFC3339)
	name, _, err := s.db.WorkspaceAlertRecipients(ctx, c.WorkspaceID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, err
	}
	d.WorkspaceName = name
	ws := strconv.FormatInt(c.WorkspaceID, 10)
	var subject string
	subjectID := c.WorkspaceID
	switch c.Budget {
	case budget.ProjectDaily, budget.ProjectMonthly:
		p, err := s.db.ProjectByID(ctx, c.ProjectID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, "", false, nil
		}
		if err != nil {
			return nil, "", false, err
		}
		d.Scope, d.ProjectID, d.ProjectName, subjectID = "project", p.ID, p.Name, p.ID
		d.Link = s.frontend + "/w/" + ws + "/projects/" + strconv.FormatInt(p.ID, 10)
		subject = "Project *" + slackEscape(p.Name) + "* (workspace " + slackEscape(name) + ")"
	default:
		d.Scope = "workspace"
		d.Link = s.frontend + "/w/" + ws + "/settings"
		subject = "Workspace *" + slackEscape(name) + "*"
	}
	next := "Requests go to the fallback model where one is set."
	if d.Threshold == 100 {
		next = "Requests are refused with 429 BUDGET_EXCEEDED until the budget resets."
	}
	text := fmt.Sprintf("%s reached %d%% of its %s budget: $%.2f of $%.2f. %s Resets %s. <%s|Open in TokenGuard>",
		subject, d.Threshold, d.Budget, d.SpendUSD, d.LimitUSD, next, reset.Format("2 Jan 2006 15:04 UTC"), d.Link)
	key = strings.Join([]string{d.Scope, strconv.FormatInt(subjectID, 10),
		d.Budget, d.Period, strconv.Itoa(d.Threshold)}, ":")
	body, err = encode(Body{Text: text, Event: EventBudgetCrossed, Data: &d}, now)
	return body, key, err == nil, err
}

// testEvent is the body of a test delivery.
func testEvent(now time.Time, workspaceID int64, frontend string) ([]byte, error) {
	link := frontend + "/w/" + strconv.FormatInt(workspaceID, 10) + "/settings"
	return encode(Body{Text: "TokenGuard webhook test: budget alerts of this workspace will arrive here. <" + link + "|Open in TokenGuard>",
		Event: EventTest}, now)
}

// encode stamps b with a new event id and its creation time and marshals it, refusing bodies
// over MaxBodyBytes (names are bounded, so only a bug gets there).
func encode(b Body, now time.Time) ([]byte, error) {
	id := make([]byte, 12)
	rand.Read(id) // never fails on supported platforms (crypto/rand)
	b.ID = "evt_" + hex.EncodeToString(id)
	b.CreatedAt = now.UTC().Format(time.RFC3339)
	out, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("webhook: encode %s: %w", b.Event, err)
	}
	if len(out) > MaxBodyBytes {
		return nil, fmt.Errorf("webhook: %s body is %d bytes, over %d", b.Event, len(out), MaxBodyBytes)
	}
	return out, nil
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to, so a project named
// "<!channel>" cannot ping a channel.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
