package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
	"tokenguard/app/usage"
	"tokenguard/store"
)

// listUsage: GET /api/usage?from=&to=&provider=&projectId=&model=&status=&endUser=&limit=&cursor=
// → {data:[row…],nextCursor} of the request's workspace, newest first (DESIGN §4); endUser is
// an exact match.
func (a *API) listUsage(w http.ResponseWriter, r *http.Request, _ httprouter.Params, c Caller) error {
	if a.usage == nil {
		return apperr.New(apperr.NotFound, "usage log is not available")
	}
	wsID, err := a.workspace(r, c)
	if err != nil {
		return err
	}
	if _, err := a.acct.Authorize(r.Context(), c.Actor, wsID, account.ViewWorkspace); err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.UsageFilter{WorkspaceID: wsID, Provider: q.Get("provider"), Model: q.Get("model"), Cursor: q.Get("cursor"),
		EndUser: q.Get("endUser")}
	if len(f.EndUser) > store.MaxEndUser {
		return invalid("endUser must be at most %d bytes", store.MaxEndUser)
	}
	switch f.Provider {
	case "", "openai", "anthropic", "gemini":
	default:
		return invalid("provider must be openai, anthropic or gemini")
	}
	if f.ProjectID, err = queryInt(q.Get("projectId"), "projectId"); err != nil {
		return err
	}
	status, err := queryInt(q.Get("status"), "status")
	if err != nil {
		return err
	}
	f.Status = int(status)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxUsageLimit {
			return invalid("limit must be between 1 and %d", store.MaxUsageLimit)
		}
		f.Limit = n
	}
	from, err := queryTime(q.Get("from"), "from", false)
	if err != nil {
		return err
	}
	to, err := queryTime(q.Get("to"), "to", true)
	if err != nil {
		return err
	}
	if !from.IsZero() {
		f.From = from.UnixMilli()
	}
	if !to.IsZero() {
		f.To = to.UnixMilli()
	}
	rows, next, err := a.usage.ListUsage(r.Context(), f)
	if errors.Is(err, store.ErrBadCursor) {
		return invalid("cursor is not one this server issued")
	}
	if err != nil {
		return err
	}
	page := usagePage{Data: usage.FromRows(rows), NextCursor: next}
	if page.RawRowsSince, err = a.rawRowsSince(r, f.From); err != nil {
		return err
	}
	return Reply(w, http.StatusOK, page)
}

// usagePage is a page of the usage log. RawRowsSince is set when the range asked for reaches
// back before the rows USAGE_RETENTION kept: rows older than it are gone from the log (their
// sums stay in analytics).
type usagePage struct {
	Data         []usage.Record `json:"data"`
	NextCursor   string         `json:"nextCursor,omitempty"`
	RawRowsSince *time.Time     `json:"rawRowsSince,omitempty"`
}

// rawRowsSince is the time from which raw usage rows are kept when a range starting at from
// (unix ms, 0 for the beginning) reaches back before it, else nil.
func (a *API) rawRowsSince(r *http.Request, from int64) (*time.Time, error) {
	kept, err := a.usage.Retained(r.Context())
	if err != nil {
		return nil, err
	}
	if !kept.RawPrunedFrom(from) {
		return nil, nil
	}
	t := time.UnixMilli(kept.RawSince).UTC()
	return &t, nil
}
