package mail_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tokenguard/app/config"
	"tokenguard/app/mail"
	"tokenguard/app/mail/mailtest"
	"tokenguard/store"
	"tokenguard/store/storetest"
)

// fastBackoff keeps retry tests quick: the policy under test is "retry with growing waits",
// not the production wait lengths.
func fastBackoff(attempt int) time.Duration { return time.Duration(attempt) * 5 * time.Millisecond }

type env struct {
	db     *store.DB
	mailer *mail.Mailer
	logs   *bytes.Buffer
}

// newMailer builds a Mailer over a real temp database; the test closes it.
func newMailer(t *testing.T, smtp config.SMTP, mutate func(*mail.Options)) env {
	t.Helper()
	db := storetest.Open(t)
	logs := &bytes.Buffer{}
	opts := mail.Options{
		SMTP:           smtp,
		Log:            slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil)),
		Backoff:        fastBackoff,
		MaxAttempts:    4,
		AttemptTimeout: 5 * time.Second,
	}
	if mutate != nil {
		mutate(&opts)
	}
	m, err := mail.New(db, opts)
	if err != nil {
		t.Fatalf("mail.New: %v", err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return env{db: db, mailer: m, logs: logs}
}

func message(to string) mail.Message {
	return mail.Message{
		Kind:    "invite",
		To:      to,
		Subject: "You are invited to Acme — join «Acme»",
		Text:    "Hello,\n\nOpen https://tg.example/invites/SECRET-TOKEN-123 to join.\n",
		HTML:    `<p>Hello,</p><p><a href="https://tg.example/invites/SECRET-TOKEN-123">Join Acme</a></p>`,
	}
}

// waitOutcome polls mail_log until the newest message leaves "pending" (or has the wanted
// attempts while pending) and returns it.
func waitOutcome(t *testing.T, db *store.DB, done func(store.MailLog) bool) store.MailLog {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rows, err := db.RecentMailLog(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 1 && done(rows[0]) {
			return rows[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	rows, _ := db.RecentMailLog(context.Background(), 1)
	t.Fatalf("mail_log never reached the wanted state; last: %+v", rows)
	return store.MailLog{}
}

func finished(m store.MailLog) bool { return m.Status != store.MailPending }

// TestDeliversToLocalCatcher ensures a message reaches a loopback mail catcher that offers no
// STARTTLS (the default SMTP_TLS=starttls allows that for loopback only), with both bodies intact,
// and that mail_log records it sent without its body.
func TestDeliversToLocalCatcher(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	e := newMailer(t, srv.SMTP(mail.TLSStartTLS), nil)
	msg := message("dev@example.com")
	if err := e.mailer.Send(msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.Wait(1, 10*time.Second)[0]
	if got.Subject != msg.Subject {
		t.Errorf("subject = %q, want %q", got.Subject, msg.Subject)
	}
	// Quoted-printable carries line breaks as CRLF, as SMTP requires.
	if want := strings.ReplaceAll(msg.Text, "\n", "\r\n"); got.Text != want {
		t.Errorf("text = %q, want %q", got.Text, want)
	}
	if got.HTML != msg.HTML {
		t.Errorf("html = %q, want %q", got.HTML, msg.HTML)
	}
	if got, want := strings.Join(got.To, ","), "dev@example.com"; got != want {
		t.Errorf("rcpt = %q, want %q", got, want)
	}
	if got, want := got.From, "noreply@tokenguard.test"; got != want {
		t.Errorf("envelope from = %q, want %q", got, want)
	}
	row := waitOutcome(t, e.db, finished)
	if row.Status != store.MailSent || row.Attempts != 1 || row.Kind != "invite" || row.To != "dev@example.com" {
		t.Errorf("mail_log = %+v, want sent after 1 attempt", row)
	}
	e.mailer.Close(context.Background())
	if strings.Contains(e.logs.String(), "SECRET-TOKEN") {
		t.Errorf("a log line carries the body: %s", e.logs.String())
	}
}

// TestStartTLSAndAuth ensures that with a server offering STARTTLS and requiring AUTH, the
// session is encrypted before the credentials go out, and the server sees the configured user.
func TestStartTLSAndAuth(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{StartTLS: true, User: "apikey", Pass: "s3cret"})
	e := newMailer(t, srv.SMTP(mail.TLSStartTLS), func(o *mail.Options) { o.TLS = srv.ClientTLS })
	if err := e.mailer.Send(message("dev@example.com")); err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(1, 10*time.Second)[0]
	if !got.TLS {
		t.Error("message went over an unencrypted session")
	}
	if got, want := got.AuthUser, "apikey"; got != want {
		t.Errorf("authenticated as %q, want %q", got, want)
	}
	if row := waitOutcome(t, e.db, finished); row.Status != store.MailSent {
		t.Errorf("status = %s, want sent", row.Status)
	}
}

// TestLoopbackRelayWithSelfSignedCert ensures a local relay that offers STARTTLS with a
// certificate nobody trusts (Debian's postfix default) is still used, encrypted.
func TestLoopbackRelayWithSelfSignedCert(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{StartTLS: true})
	e := newMailer(t, srv.SMTP(mail.TLSStartTLS), nil) // no trusted roots for the server's cert
	if err := e.mailer.Send(message("dev@example.com")); err != nil {
		t.Fatal(err)
	}
	if got := srv.Wait(1, 10*time.Second)[0]; !got.TLS {
		t.Error("message went over an unencrypted session although the relay offers STARTTLS")
	}
}

// TestImplicitTLS ensures SMTP_TLS=tls speaks TLS from the first byte.
func TestImplicitTLS(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{ImplicitTLS: true, User: "u", Pass: "p"})
	e := newMailer(t, srv.SMTP(mail.TLSImplicit), func(o *mail.Options) { o.TLS = srv.ClientTLS })
	if err := e.mailer.Send(message("dev@example.com")); err != nil {
		t.Fatal(err)
	}
	if got := srv.Wait(1, 10*time.Second)[0]; !got.TLS || got.AuthUser != "u" {
		t.Errorf("received tls=%v auth=%q, want an encrypted, authenticated session", got.TLS, got.AuthUser)
	}
}

// TestWrongPasswordFails ensures rejected credentials (a permanent 5xx answer) are recorded
// failed at once, with the reason and without the password, instead of being retried.
func TestWrongPasswordFails(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{StartTLS: true, User: "apikey", Pass: "right"})
	cfg := srv.SMTP(mail.TLSStartTLS)
	cfg.Pass = "wrong-password"
	e := newMailer(t, cfg, func(o *mail.Options) { o.TLS = srv.ClientTLS })
	if err := e.mailer.Send(message("dev@example.com")); err != nil {
		t.Fatal(err)
	}
	row := waitOutcome(t, e.db, finished)
	if row.Status != store.MailFailed || row.Attempts != 1 {
		t.Errorf("mail_log = %+v, want failed after 1 attempt", row)
	}
	if !strings.Contains(row.LastError, "AUTH") {
		t.Errorf("last error %q does not name AUTH", row.LastError)
	}
	if len(srv.Messages()) != 0 {
		t.Error("the server accepted a message without authentication")
	}
	e.mailer.Close(context.Background())
	if strings.Contains(e.logs.String(), "wrong-password") || strings.Contains(row.LastError, "wrong-password") {
		t.Error("the password appears in a log line or in mail_log")
	}
}

// TestRetriesUntilServerIsUp ensures a message sent while the server is down is retried with
// backoff and delivered once it is back.
func TestRetriesUntilServerIsUp(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	srv.Stop()
	e := newMailer(t, srv.SMTP(mail.TLSStartTLS), func(o *mail.Options) {
		o.MaxAttempts = 1000 // the server is down for an unknown number of attempts
	})
	if err := e.mailer.Send(message("dev@example.com")); err != nil {
		t.Fatal(err)
	}
	// Two failed attempts recorded while pending, then the server comes back.
	row := waitOutcome(t, e.db, func(m store.MailLog) bool { return m.Attempts >= 2 })
	if row.Status != store.MailPending || row.LastError == "" {
		t.Errorf("while down: %+v, want pending with the last error", row)
	}
	srv.Restart()
	srv.Wait(1, 10*time.Second)
	row = waitOutcome(t, e.db, finished)
	if row.Status != store.MailSent || row.Attempts < 3 || row.LastError != "" {
		t.Errorf("after restart: %+v, want sent after 3+ attempts", row)
	}
}

// TestTemporaryRefusalIsRetried ensures a 4xx answer (try again later) is retried: the
// third attempt is delivered.
func TestTemporaryRefusalIsRetried(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{TempFail: 2})
	e := newMailer(t, srv.SMTP(mail.TLSStartTLS), nil)
	if err := e.mailer.Send(message("dev@example.com")); err != nil {
		t.Fatal(err)
	}
	srv.Wait(1, 10*time.Second)
	if row := waitOutcome(t, e.db, finished); row.Status != store.MailSent || row.Attempts != 3 {
		t.Errorf("mail_log = %+v, want sent on the 3rd attempt", row)
	}
}

// TestGivesUpAfterBoundedAttempts ensures a server that never comes back leads to "failed"
// after MaxAttempts, not to endless retries.
func TestGivesUpAfterBoundedAttempts(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	srv.Stop()
	var waits []time.Duration
	e := newMailer(t, srv.SMTP(mail.TLSStartTLS), func(o *mail.Options) {
		o.MaxAttempts = 3
		o.Backoff = func(n int) time.Duration { waits = append(waits, fastBackoff(n)); return fastBackoff(n) }
	})
	if err := e.mailer.Send(message("dev@example.com")); err != nil {
		t.Fatal(err)
	}
	row := waitOutcome(t, e.db, finished)
	if row.Status != store.MailFailed || row.Attempts != 3 || !strings.Contains(row.LastError, "connect") {
		t.Errorf("mail_log = %+v, want failed after 3 attempts with the connect error", row)
	}
	e.mailer.Close(context.Background())
	if got, want := len(waits), 2; got != want {
		t.Errorf("backoff consulted %d times, want %d (between attempts only)", got, want)
	}
}

// TestSkippedWithoutSMTP ensures that with no SMTP_HOST nothing is sent and the message is
// recorded skipped.
func TestSkippedWithoutSMTP(t *testing.T) {
	e := newMailer(t, config.SMTP{}, nil)
	if e.mailer.Configured() {
		t.Fatal("Configured() = true without SMTP_HOST")
	}
	if err := e.mailer.Send(message("dev@example.com")); err != nil {
		t.Fatal(err)
	}
	row := waitOutcome(t, e.db, finished)
	if row.Status != store.MailSkipped || row.Attempts != 0 {
		t.Errorf("mail_log = %+v, want skipped with 0 attempts", row)
	}
}

// TestTLSPolicy pins SMTP_TLS semantics: plain SMTP is acceptable under starttls only to a
// loopback host, never under tls, always under none.
func TestTLSPolicy(t *testing.T) {
	for _, tc := range []struct {
		mode, host string
		want       bool
	}{
		{"starttls", "127.0.0.1", true},
		{"starttls", "::1", true},
		{"starttls", "localhost", true},
		{"starttls", "LOCALHOST", true},
		{"starttls", "smtp.sendgrid.net", false},
		{"starttls", "192.0.2.2", false},
		{"starttls", "127.0.0.1.evil.example", false},
		{"tls", "127.0.0.1", false},
		{"tls", "smtp.example.com", false},
		{"none", "smtp.example.com", true},
	} {
		if got := mail.PlainAllowed(tc.mode, tc.host); got != tc.want {
			t.Errorf("PlainAllowed(%q, %q) = %v, want %v", tc.mode, tc.host, got, tc.want)
		}
	}
}

// TestRefusesCleartextToRemoteHost ensures that a server reached over a non-loopback address that
// does not offer STARTTLS receives nothing under SMTP_TLS=starttls.
func TestRefusesCleartextToRemoteHost(t *testing.T) {
	ip := nonLoopbackIP(t)
	// A catcher without STARTTLS, reachable on the machine's network address.
	srv := mailtest.Start(t, mailtest.Options{Listen: net.JoinHostPort(ip, "0")})
	cfg := srv.SMTP(mail.TLSStartTLS)
	if mail.PlainAllowed(cfg.TLS, cfg.Host) {
		t.Fatalf("%s counts as loopback", cfg.Host)
	}
	e := newMailer(t, cfg, func(o *mail.Options) { o.MaxAttempts = 1 })
	if err := e.mailer.Send(message("dev@example.com")); err != nil {
		t.Fatal(err)
	}
	row := waitOutcome(t, e.db, finished)
	if row.Status != store.MailFailed || !strings.Contains(row.LastError, "STARTTLS") {
		t.Errorf("mail_log = %+v, want failed naming STARTTLS", row)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d message(s) sent in clear to a non-loopback host", n)
	}
}

// TestRemoteCertificateIsVerified ensures a non-loopback server whose certificate is not
// trusted receives nothing: STARTTLS there is only worth something when verified.
func TestRemoteCertificateIsVerified(t *testing.T) {
	ip := nonLoopbackIP(t)
	srv := mailtest.Start(t, mailtest.Options{StartTLS: true, Listen: net.JoinHostPort(ip, "0")})
	e := newMailer(t, srv.SMTP(mail.TLSStartTLS), func(o *mail.Options) { o.MaxAttempts = 1 })
	if err := e.mailer.Send(message("dev@example.com")); err != nil {
		t.Fatal(err)
	}
	row := waitOutcome(t, e.db, finished)
	if row.Status != store.MailFailed || !strings.Contains(row.LastError, "certificate") {
		t.Errorf("mail_log = %+v, want failed on the certificate", row)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d message(s) sent to a server with an untrusted certificate", n)
	}
}

// TestCloseDrains ensures Close gives a message waiting for its next retry one last attempt
// now instead of dropping it or waiting out the backoff.
func TestCloseDrains(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	srv.Stop()
	e := newMailer(t, srv.SMTP(mail.TLSStartTLS), func(o *mail.Options) {
		o.Backoff = func(int) time.Duration { return time.Hour }
	})
	if err := e.mailer.Send(message("dev@example.com")); err != nil {
		t.Fatal(err)
	}
	waitOutcome(t, e.db, func(m store.MailLog) bool { return m.Attempts == 1 })
	srv.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.mailer.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d message(s) delivered on Close, want 1", n)
	}
	row := waitOutcome(t, e.db, finished)
	if row.Status != store.MailSent || row.Attempts != 2 {
		t.Errorf("mail_log = %+v, want sent on the 2nd attempt", row)
	}
	if err := e.mailer.Send(message("late@example.com")); err != mail.ErrClosed {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
}

// TestCloseGivesUpAtDeadline ensures an unreachable server cannot hold shutdown past its
// deadline, and the undelivered message is recorded failed.
func TestCloseGivesUpAtDeadline(t *testing.T) {
	// A listener that accepts and never greets: the attempt hangs until Close aborts it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	host, p, _ := net.SplitHostPort(l.Addr().String())
	e := newMailer(t, config.SMTP{Host: host, Port: atoi(p), From: "noreply@tokenguard.test", TLS: "starttls"},
		func(o *mail.Options) { o.AttemptTimeout = time.Hour })
	if err := e.mailer.Send(message("dev@example.com")); err != nil {
		t.Fatal(err)
	}
	waitOutcome(t, e.db, func(m store.MailLog) bool { return m.Status == store.MailPending })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := e.mailer.Close(ctx); err != context.DeadlineExceeded {
		t.Errorf("Close = %v, want DeadlineExceeded", err)
	}
	if row := waitOutcome(t, e.db, finished); row.Status != store.MailFailed {
		t.Errorf("mail_log = %+v, want failed", row)
	}
}

// TestSendRejectsMalformed ensures header injection and half-built messages are refused before
// anything is queued or recorded.
func TestSendRejectsMalformed(t *testing.T) {
	e := newMailer(t, config.SMTP{}, nil)
	for name, mutate := range map[string]func(*mail.Message){
		"header injection in to":      func(m *mail.Message) { m.To = "a@example.com\r\nBcc: victim@example.com" },
		"display name in to":          func(m *mail.Message) { m.To = "Eve <eve@example.com>" },
		"not an address":              func(m *mail.Message) { m.To = "nobody" },
		"header injection in subject": func(m *mail.Message) { m.Subject = "hi\r\nBcc: victim@example.com" },
		"no html":                     func(m *mail.Message) { m.HTML = "" },
		"no text":                     func(m *mail.Message) { m.Text = "" },
		"no kind":                     func(m *mail.Message) { m.Kind = "" },
	} {
		msg := message("dev@example.com")
		mutate(&msg)
		if err := e.mailer.Send(msg); err == nil {
			t.Errorf("%s: Send accepted it", name)
		}
	}
	e.mailer.Close(context.Background())
	if rows, _ := e.db.RecentMailLog(context.Background(), 10); len(rows) != 0 {
		t.Errorf("%d malformed message(s) recorded", len(rows))
	}
}

// nonLoopbackIP returns an IPv4 address of this machine that is not loopback, or skips.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address")
	return ""
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// lockedWriter lets the worker's log lines and the test's reads share a buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
