package mail_test

import (
	htmltemplate "html/template"
	"strings"
	"testing"
	texttemplate "text/template"

	"tokenguard/app/mail"
)

// TestRenderEscapesAndFolds ensures a user-chosen name cannot inject markup into the HTML body
// or a header through the subject.
func TestRenderEscapesAndFolds(t *testing.T) {
	tmpl := mail.Template{
		Kind:    "budget_alert",
		Subject: texttemplate.Must(texttemplate.New("s").Parse(`Budget alert: {{.Name}}`)),
		Text:    texttemplate.Must(texttemplate.New("t").Parse("Project {{.Name}} is at 80%.\n")),
		HTML:    htmltemplate.Must(htmltemplate.New("h").Parse(`<p>Project <b>{{.Name}}</b> is at 80%.</p>`)),
	}
	msg, err := tmpl.Render("ops@example.com", map[string]string{"Name": "<script>x</script>\r\nBcc: victim@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(msg.HTML, "<script>") || !strings.Contains(msg.HTML, "&lt;script&gt;") {
		t.Errorf("HTML not escaped: %s", msg.HTML)
	}
	if strings.ContainsAny(msg.Subject, "\r\n") {
		t.Errorf("subject spans lines: %q", msg.Subject)
	}
	if got, want := msg.Kind, "budget_alert"; got != want {
		t.Errorf("kind = %q, want %q", got, want)
	}
}
