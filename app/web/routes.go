package web

import "net/http"

// routes is the dashboard's one route table. Every state change is a POST; GET never changes
// state.
func (s *Server) routes() []route {
	const get, post = http.MethodGet, http.MethodPost
	return []route{
		{get, "/", public, s.home},
		{get, "/login", public, s.loginPage},
		{post, "/login", public, s.login},
		{get, "/signup", public, s.signupPage},
		{post, "/signup", public, s.signup},
		{post, "/logout", signedIn, s.logout},
		{post, "/workspaces", signedIn, s.createWorkspace},

		{get, "/invites/:token", public, s.invitePage},
		{post, "/invites/:token/accept", signedIn, s.acceptInvite},

		{get, "/w/:wid/projects", workspace, s.projectsPage},
		{post, "/w/:wid/projects", workspace, s.createProject},
		{get, "/w/:wid/new-project", workspace, s.newProjectPage},
		{get, "/w/:wid/projects/:id", workspace, s.projectPage},
		{post, "/w/:wid/projects/:id", workspace, s.updateProject},
		{post, "/w/:wid/projects/:id/provider-keys", workspace, s.setProviderKey},
		{post, "/w/:wid/projects/:id/regenerate", workspace, s.regenerateKey},
		{post, "/w/:wid/projects/:id/deactivate", workspace, s.deactivateProject},
		{post, "/w/:wid/projects/:id/activate", workspace, s.activateProject},
		{post, "/w/:wid/projects/:id/delete", workspace, s.deleteProject},

		{get, "/w/:wid/usage", workspace, s.usagePage},
		{get, "/w/:wid/usage/:rid", workspace, s.requestPage},
		{get, "/w/:wid/request", workspace, s.findRequest},
		{get, "/w/:wid/analytics", workspace, s.analyticsPage},
		{post, "/w/:wid/analytics/export.csv", workspace, s.exportCSV},

		{get, "/w/:wid/team", workspace, s.teamPage},
		{post, "/w/:wid/team/invites", workspace, s.createInvite},
		{post, "/w/:wid/team/invites/:iid/resend", workspace, s.resendInvite},
		{post, "/w/:wid/team/invites/:iid/cancel", workspace, s.cancelInvite},
		{post, "/w/:wid/team/members/:uid/role", workspace, s.changeRole},
		{post, "/w/:wid/team/members/:uid/remove", workspace, s.removeMember},
		{get, "/w/:wid/audit", workspace, s.auditPage},

		{get, "/w/:wid/settings", workspace, s.settingsPage},
		{post, "/w/:wid/settings", workspace, s.updateWorkspace},
		{post, "/w/:wid/settings/billing", workspace, s.setPlan},
		{post, "/w/:wid/settings/delete", workspace, s.deleteWorkspace},
		{post, "/w/:wid/settings/webhook", workspace, s.saveWebhook},
		{post, "/w/:wid/settings/webhook/test", workspace, s.testWebhook},
		{post, "/w/:wid/settings/webhook/delete", workspace, s.deleteWebhook},

		{get, "/w/:wid/quickstart", workspace, s.quickstartPage},
	}
}
