package invite

import (
	htmltemplate "html/template"
	texttemplate "text/template"
	"time"

	"tokenguard/app/mail"
)

// mailData is what the invite mail says.
type mailData struct {
	Inviter   string
	Workspace string
	Role      string
	Email     string
	AcceptURL string
	ExpiresAt time.Time
}

// Expires renders the expiry for both bodies.
func (d mailData) Expires() string {
	return d.ExpiresAt.UTC().Format("Monday 2 January 2006, 15:04 MST")
}

var inviteTemplate = mail.Template{
	Kind:    "invite",
	Subject: texttemplate.Must(texttemplate.New("subject").Parse(`{{.Inviter}} invited you to {{.Workspace}} on TokenGuard`)),
	Text: texttemplate.Must(texttemplate.New("text").Parse(`Hello,

{{.Inviter}} invited you to join the workspace "{{.Workspace}}" on TokenGuard as {{.Role}}.

Accept the invite here:
{{.AcceptURL}}

Sign in (or create an account) with {{.Email}} to accept. The link expires on {{.Expires}}.

If you did not expect this invite, ignore this email.
`)),
	HTML: htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html><body style="font-family:system-ui,sans-serif;line-height:1.5;color:#1f2937">
<p>Hello,</p>
<p><strong>{{.Inviter}}</strong> invited you to join the workspace <strong>{{.Workspace}}</strong> on TokenGuard as <strong>{{.Role}}</strong>.</p>
<p><a href="{{.AcceptURL}}" style="display:inline-block;padding:10px 16px;background:#2563eb;color:#fff;border-radius:6px;text-decoration:none">Accept the invite</a></p>
<p>Or open this link: <a href="{{.AcceptURL}}">{{.AcceptURL}}</a></p>
<p>Sign in (or create an account) with {{.Email}} to accept. The link expires on {{.Expires}}.</p>
<p style="color:#6b7280">If you did not expect this invite, ignore this email.</p>
</body></html>
`)),
}

// inviteMail renders the invite mail in plain text and HTML.
func inviteMail(d mailData) (mail.Message, error) { return inviteTemplate.Render(d.Email, d) }
