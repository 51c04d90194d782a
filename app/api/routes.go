package api

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// route is one line of the route table.
type route struct {
	method, path string
	handle       httprouter.Handle
}

// routes is THE list of the management API's routes (DESIGN §5).
func (a *API) routes() []route {
	pub, auth := a.Public, a.Authed
	return []route{
		{http.MethodPost, "/api/auth/signup", pub(a.signup)},
		{http.MethodPost, "/api/auth/login", pub(a.login)},
		{http.MethodPost, "/api/auth/password", auth(a.changePassword)},
		{http.MethodGet, "/api/me", auth(a.me)},

		{http.MethodGet, "/api/projects", auth(a.listProjects)},
		{http.MethodPost, "/api/projects", auth(a.createProject)},
		{http.MethodGet, "/api/projects/:id", auth(a.getProject)},
		{http.MethodPatch, "/api/projects/:id", auth(a.patchProject)},
		{http.MethodDelete, "/api/projects/:id", auth(a.deleteProject)},
		{http.MethodPost, "/api/projects/:id/regenerate-key", auth(a.regenerateKey)},
		{http.MethodPost, "/api/projects/:id/deactivate", auth(a.setActive(false))},
		{http.MethodPost, "/api/projects/:id/activate", auth(a.setActive(true))},
		{http.MethodPut, "/api/projects/:id/provider-keys", auth(a.putProviderKeys)},

		{http.MethodGet, "/api/workspaces", auth(a.listWorkspaces)},
		{http.MethodPost, "/api/workspaces", auth(a.createWorkspace)},
		{http.MethodGet, "/api/workspaces/:id", auth(a.getWorkspace)},
		{http.MethodPatch, "/api/workspaces/:id", auth(a.patchWorkspace)},
		{http.MethodDelete, "/api/workspaces/:id", auth(a.deleteWorkspace)},
		{http.MethodPut, "/api/workspaces/:id/billing", auth(a.putBilling)},
		{http.MethodGet, "/api/workspaces/:id/members", auth(a.listMembers)},
		{http.MethodPatch, "/api/workspaces/:id/members/:userId", auth(a.patchMember)},
		{http.MethodDelete, "/api/workspaces/:id/members/:userId", auth(a.deleteMember)},
		{http.MethodGet, "/api/workspaces/:id/audit", auth(a.listAudit)},

		{http.MethodGet, "/api/usage", auth(a.listUsage)},

		{http.MethodGet, "/api/analytics/overview", auth(analyticsObject(a, a.analytics.Overview))},
		{http.MethodGet, "/api/analytics/trends", auth(analyticsObject(a, a.analytics.Trends))},
		{http.MethodGet, "/api/analytics/providers", auth(analyticsList(a, a.analytics.Providers))},
		{http.MethodGet, "/api/analytics/models", auth(analyticsList(a, a.analytics.Models))},
		{http.MethodGet, "/api/analytics/projects", auth(analyticsList(a, a.analytics.Projects))},
		{http.MethodGet, "/api/analytics/export.csv", auth(a.exportCSV)},
		{http.MethodPost, "/api/analytics/monthly-digest/test", auth(a.monthlyDigestTest)},
	}
}

// Register adds every route of the management API to r, with a CORS preflight answer for each
// path.
func (a *API) Register(r *httprouter.Router) {
	seen := map[string]bool{}
	for _, rt := range a.routes() {
		r.Handle(rt.method, rt.path, rt.handle)
		if !seen[rt.path] {
			seen[rt.path] = true
			r.OPTIONS(rt.path, a.preflight)
		}
	}
}
