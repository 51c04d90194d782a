package web

import (
	"net/http"
	"net/url"
	"strings"

	"tokenguard/app/apperr"
	"tokenguard/store"
	"tokenguard/views"
)

// maxRequestIDLen bounds a request id typed into the search box; the proxy's ids are 32 hex
// digits, older rows' ids no longer than this either.
const maxRequestIDLen = 64

// requestPage shows one usage row in full. The lookup is by the workspace and the id together,
// so another workspace's request id is a 404 like an unknown one.
func (s *Server) requestPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	id := c.ps.ByName("rid")
	if !validRequestID(id) {
		return apperr.New(apperr.NotFound, "request not found")
	}
	row, found, err := s.opt.DB.UsageByRequestID(r.Context(), c.ws.ID, id)
	if err != nil {
		return err
	}
	if !found {
		return apperr.New(apperr.NotFound, "No request %s in this workspace", id)
	}
	d := views.RequestDetail{Row: usageRows([]store.UsageRow{row}, nil)[0],
		CacheReadTokens: row.CacheReadTokens, CacheWriteTokens: row.CacheWriteTokens, ReasoningTokens: row.ReasoningTokens,
		TTFBMs: row.TTFBMs, ErrorMessage: row.ErrorMessage, EndUser: row.EndUser, CurrentPrices: s.opt.Prices.Version()}
	ps, err := s.opt.Accounts.Projects(r.Context(), c.actor(r), c.ws.ID)
	if err != nil {
		return err
	}
	d.Row.Project = "deleted project"
	for _, p := range ps {
		if p.ID == row.ProjectID {
			d.Row.Project, d.ProjectLive = p.Name, true
		}
	}
	// The table's prices for the model now; the row's cost stays what its own version gave.
	price, byDefault := s.opt.Prices.Lookup(row.FinalModel)
	d.Price = views.PriceView{Input: price.Input, CacheRead: price.CacheRead, CacheWrite: price.CacheWrite, Output: price.Output, ByDefault: byDefault}
	return s.render(w, r, http.StatusOK, views.RequestPage(s.layout(r, c, "Request "+row.RequestID, "usage"), d))
}

// findRequest answers the request search box: the request's page, or the search again with
// what went wrong.
func (s *Server) findRequest(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	problem := ""
	switch {
	case id == "":
		problem = "Paste a request id: every response carries it in x-tokenguard-request-id."
	case !validRequestID(id):
		problem = "That is not a request id: ids are up to 64 letters, digits, '-' or '_'."
	default:
		_, found, err := s.opt.DB.UsageByRequestID(r.Context(), c.ws.ID, id)
		if err != nil {
			return err
		}
		if found {
			http.Redirect(w, r, views.WSPath(c.ws.ID, "/usage/"+url.PathEscape(id)), http.StatusSeeOther)
			return nil
		}
		problem = "No request with that id in this workspace."
	}
	return s.render(w, r, http.StatusNotFound, views.RequestSearchPage(s.layout(r, c, "Find a request", "usage"), id, problem))
}

// validRequestID accepts what the proxy's ids (and any id a client may have seen) are made of.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for _, ch := range id {
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch == '-' || ch == '_') {
			return false
		}
	}
	return true
}
