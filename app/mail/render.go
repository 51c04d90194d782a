package mail

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

// Template is one kind of message in both renderings. HTML is html/template, so every value a
// user chose (a workspace or project name) is escaped and links are checked as URLs.
type Template struct {
	Kind    string
	Subject *texttemplate.Template
	Text    *texttemplate.Template
	HTML    *htmltemplate.Template
}

// Render executes t with data into a Message to to. The subject is folded onto one line, so a
// name with a line break cannot add a header.
func (t Template) Render(to string, data any) (Message, error) {
	var subject, text, html bytes.Buffer
	if err := t.Subject.Execute(&subject, data); err != nil {
		return Message{}, fmt.Errorf("mail %s subject: %w", t.Kind, err)
	}
	if err := t.Text.Execute(&text, data); err != nil {
		return Message{}, fmt.Errorf("mail %s text: %w", t.Kind, err)
	}
	if err := t.HTML.Execute(&html, data); err != nil {
		return Message{}, fmt.Errorf("mail %s html: %w", t.Kind, err)
	}
	return Message{
		Kind:    t.Kind,
		To:      to,
		Subject: strings.Join(strings.Fields(subject.String()), " "),
		Text:    text.String(),
		HTML:    html.String(),
	}, nil
}
