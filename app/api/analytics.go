package api

import (
	"context"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/account"
	"tokenguard/app/analytics"
	"tokenguard/app/apperr"
)

// analyticsQuery resolves the workspace and parses the filters of an analytics request
// (from, to, provider, projectId, model).
func (a *API) analyticsQuery(r *http.Request, c Caller) (int64, analytics.Filter, error) {
	if a.analytics == nil {
		return 0, analytics.Filter{}, apperr.New(apperr.NotFound, "analytics are not available")
	}
	wsID, err := a.workspace(r, c)
	if err != nil {
		return 0, analytics.Filter{}, err
	}
	f, err := analytics.ParseFilter(r.URL.Query(), a.now())
	return wsID, f, err
}

type analyticsFunc[T any] func(ctx context.Context, actor account.Actor, wsID int64, f analytics.Filter) (T, error)

// analyticsObject answers GET /api/analytics/{overview,trends} with the query's object.
func analyticsObject[T any](a *API, q analyticsFunc[T]) AuthedFunc {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params, c Caller) error {
		wsID, f, err := a.analyticsQuery(r, c)
		if err != nil {
			return err
		}
		v, err := q(r.Context(), c.Actor, wsID, f)
		if err != nil {
			return err
		}
		return Reply(w, http.StatusOK, v)
	}
}

// analyticsList answers GET /api/analytics/{providers,models,projects} as {data:[…]}.
func analyticsList[T any](a *API, q analyticsFunc[[]T]) AuthedFunc {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params, c Caller) error {
		wsID, f, err := a.analyticsQuery(r, c)
		if err != nil {
			return err
		}
		v, err := q(r.Context(), c.Actor, wsID, f)
		if err != nil {
			return err
		}
		return Reply(w, http.StatusOK, list[T]{Data: v})
	}
}

// exportCSV: GET /api/analytics/export.csv → up to 10,000 usage rows as CSV (audited).
func (a *API) exportCSV(w http.ResponseWriter, r *http.Request, _ httprouter.Params, c Caller) error {
	wsID, f, err := a.analyticsQuery(r, c)
	if err != nil {
		return err
	}
	if a.usage != nil {
		since, err := a.rawRowsSince(r, f.From.UnixMilli())
		if err != nil {
			return err
		}
		if since != nil {
			// The file is the rows that are left; the header says where they begin.
			w.Header().Set(analytics.RawRowsSinceHeader, since.Format(time.RFC3339))
		}
	}
	// The rows are read and the export audited before the first byte is written; errors until
	// then are answered in the contract's shape (headers set but not yet sent are replaced).
	cw := &deferredCSV{w: w, name: "tokenguard-usage-" + a.now().UTC().Format("2006-01-02") + ".csv"}
	_, err = a.analytics.Export(r.Context(), c.Actor, wsID, f, "api", cw)
	if err != nil && !cw.started {
		return err
	}
	if err != nil {
		a.log.Error("csv export cut off", "err", err)
	}
	return nil
}

// deferredCSV sets the CSV response headers on the first write, so an error before any write
// still gets a JSON error answer.
type deferredCSV struct {
	w       http.ResponseWriter
	name    string
	started bool
}

func (d *deferredCSV) Write(p []byte) (int, error) {
	if !d.started {
		d.started = true
		h := d.w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+d.name+`"`)
		h.Set("X-Content-Type-Options", "nosniff")
		d.w.WriteHeader(http.StatusOK)
	}
	return d.w.Write(p)
}

// monthlyDigestTest: POST /api/analytics/monthly-digest/test → the digest preview, mailed to the
// caller when SMTP is configured (emailDelivery "queued" or "skipped"). Admins and owners only.
func (a *API) monthlyDigestTest(w http.ResponseWriter, r *http.Request, _ httprouter.Params, c Caller) error {
	if a.analytics == nil {
		return apperr.New(apperr.NotFound, "analytics are not available")
	}
	wsID, err := a.workspace(r, c)
	if err != nil {
		return err
	}
	d, err := a.analytics.SendTestDigest(r.Context(), c.Actor, wsID, c.User.Email)
	if err != nil {
		return err
	}
	return Reply(w, http.StatusOK, d)
}

func (a *API) now() time.Time {
	if a.analytics != nil {
		return a.analytics.Now()
	}
	return time.Now()
}
