package provider

import (
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"tokenguard/app/apperr"
)

// EndUserHeader names the end user a request is for; it wins over the body's own fields.
const EndUserHeader = "X-Tokenguard-User"

// MaxEndUser is the longest end user accepted, in bytes: Anthropic's metadata.user_id limit
// (OpenAI's safety_identifier allows 64 characters). A longer one is refused rather than cut,
// since cutting could make two end users one, on the usage rows and in their daily budget.
const MaxEndUser = 256

// CheckEndUser refuses an end user (from is where it came from, for the message) that is
// longer than MaxEndUser, not UTF-8, or holds a control character: it is stored on the usage
// row and shown in the dashboard, and would split a log line or a CSV row.
func CheckEndUser(from, user string) error {
	switch {
	case len(user) > MaxEndUser:
		return apperr.New(apperr.InvalidRequest, "the end user in %s is %d bytes; at most %d are accepted", from, len(user), MaxEndUser)
	case !utf8.ValidString(user):
		return apperr.New(apperr.InvalidRequest, "the end user in %s is not valid UTF-8", from)
	}
	for _, r := range user {
		if unicode.IsControl(r) {
			return apperr.New(apperr.InvalidRequest, "the end user in %s holds a control character (%U)", from, r)
		}
	}
	return nil
}

// EndUserField reads body field i as an end user: a string checked by CheckEndUser; null,
// absent and "" are no end user.
func EndUserField(b *Body, i int, spec *BodySpec) (string, error) {
	v := b.Get(i)
	if !v.Exists() || v.Type == gjson.Null {
		return "", nil
	}
	name := spec.Name(i)
	user, err := StringField(name, v)
	if err != nil {
		return "", err
	}
	return user, CheckEndUser(`"`+name+`"`, user)
}

// EndUser is the end user of a request: the EndUserHeader value when it is set, else the first
// of the body's end-user fields (in the adapter's order of preference) that is. Each is checked
// by CheckEndUser.
func EndUser(header string, body *Body, spec *BodySpec, fields ...int) (string, error) {
	if header != "" {
		return header, CheckEndUser("the "+EndUserHeader+" header", header)
	}
	for _, i := range fields {
		u, err := EndUserField(body, i, spec)
		if err != nil || u != "" {
			return u, err
		}
	}
	return "", nil
}
