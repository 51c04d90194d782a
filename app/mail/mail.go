// Package mail sends TokenGuard's outgoing email (invites now; budget alerts and digests later)
// through an SMTP server. Sending never blocks or fails the request that caused it: Send only
// queues the message in memory, and one worker delivers it with retries and exponential backoff,
// recording every message's outcome — never its body — in mail_log.
package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"tokenguard/app/config"
	"tokenguard/store"
)

// Message is one email to one recipient. Text and HTML are the two renderings of the same
// content; the HTML must already be escaped (render it with html/template).
type Message struct {
	// Kind names what the message is for ("invite", "budget_alert", "digest"); it is recorded.
	Kind    string
	To      string
	Subject string
	Text    string
	HTML    string
}

// Errors Send returns. A message refused by Send is not recorded in mail_log.
var (
	ErrClosed    = errors.New("mail: mailer is closed")
	ErrQueueFull = errors.New("mail: queue is full")
)

// Options configures a Mailer. Zero values take the defaults noted on each field.
type Options struct {
	// SMTP is the server; an empty Host means messages are recorded as skipped.
	SMTP config.SMTP
	// Log receives one line per attempt outcome (never a body, never a password). Default: discard.
	Log *slog.Logger
	// Now stamps mail_log rows. Default: time.Now.
	Now func() time.Time
	// Backoff is the wait after failed attempt n (1-based) before the next one.
	// Default: 5s doubling per attempt, at most 10 minutes.
	Backoff func(attempt int) time.Duration
	// MaxAttempts bounds the attempts per message; after the last one it is recorded failed.
	// Default: 8 (about 21 minutes of retrying with the default backoff).
	MaxAttempts int
	// QueueSize bounds the messages held in memory (queued or waiting to retry). Default: 1000.
	QueueSize int
	// AttemptTimeout bounds one delivery attempt, dial to QUIT. Default: 2 minutes.
	AttemptTimeout time.Duration
	// TLS is the client TLS configuration (tests set RootCAs). Default: system roots, with
	// ServerName set to SMTP.Host.
	TLS *tls.Config
	// LocalName is the name sent in EHLO. Default: "localhost".
	LocalName string
}

// DefaultBackoff waits 5s after the first failed attempt and doubles per attempt, at most 10
// minutes.
func DefaultBackoff(attempt int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < attempt && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// Mailer queues and delivers messages. It is safe for concurrent use; call Close on shutdown.
type Mailer struct {
	db     *store.DB
	opts   Options
	log    *slog.Logger
	from   *mail.Address
	sender sender

	mu      sync.Mutex
	cond    *sync.Cond
	ready   []*job
	waiting map[*job]*time.Timer
	closing bool // Close was called: no new messages, no more waiting between attempts
	abandon bool // Close's deadline passed: record what is left as failed and stop

	ctx    context.Context // cancelled when Close gives up, aborting an attempt in flight
	cancel context.CancelFunc
	done   chan struct{}
}

type job struct {
	msg      Message
	id       int64 // mail_log id, 0 until recorded
	attempts int
	lastErr  string
}

// New validates opts, starts the delivery worker and returns the Mailer. It fails only on a
// configuration that could never send (an unparsable SMTP_FROM or an unknown SMTP_TLS mode).
func New(db *store.DB, opts Options) (*Mailer, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1000
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 2 * time.Minute
	}
	if opts.LocalName == "" {
		opts.LocalName = "localhost"
	}
	m := &Mailer{
		db:      db,
		opts:    opts,
		log:     opts.Log,
		waiting: make(map[*job]*time.Timer),
		done:    make(chan struct{}),
	}
	if opts.SMTP.Host != "" {
		from, err := mail.ParseAddress(opts.SMTP.From)
		if err != nil {
			return nil, fmt.Errorf("mail: SMTP_FROM %q: %w", opts.SMTP.From, err)
		}
		m.from = from
		s, err := newSMTPSender(opts.SMTP, opts.TLS, opts.LocalName)
		if err != nil {
			return nil, err
		}
		m.sender = s
		// The usual pairings are 587+starttls and 465+tls; the other two hang until the attempt
		// times out, so say so at start rather than after minutes of retries.
		switch {
		case opts.SMTP.Port == 465 && s.mode == TLSStartTLS:
			m.log.Warn("SMTP_PORT 465 usually expects implicit TLS: set SMTP_TLS=tls")
		case opts.SMTP.Port == 587 && s.mode == TLSImplicit:
			m.log.Warn("SMTP_PORT 587 usually expects STARTTLS: set SMTP_PORT=465 for SMTP_TLS=tls, or SMTP_TLS=starttls")
		}
	}
	m.cond = sync.NewCond(&m.mu)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	go m.run()
	return m, nil
}

// Configured reports whether an SMTP server is set; without one every message is recorded as
// skipped.
func (m *Mailer) Configured() bool { return m.sender != nil }

// Queued reports the messages held in memory: ready to send, and waiting to be retried. The
// metrics read it at each scrape.
func (m *Mailer) Queued() (ready, waiting int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ready), len(m.waiting)
}

// Send queues msg for delivery and returns at once; the outcome is recorded in mail_log. It
// returns an error only when msg is malformed (an unparsable recipient, a line break in the
// subject, no body), the queue is full (ErrQueueFull) or the mailer is closed (ErrClosed) — then
// nothing is recorded, and the caller should log and carry on.
func (m *Mailer) Send(msg Message) error {
	if err := msg.validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return ErrClosed
	}
	if len(m.ready)+len(m.waiting) >= m.opts.QueueSize {
		return ErrQueueFull
	}
	m.ready = append(m.ready, &job{msg: msg})
	m.cond.Signal()
	return nil
}

func (msg Message) validate() error {
	if msg.Kind == "" || strings.ContainsAny(msg.Kind, "\r\n") {
		return errors.New("mail: message needs a kind")
	}
	addr, err := mail.ParseAddress(msg.To)
	if err != nil || strings.ContainsAny(msg.To, "\r\n") {
		return fmt.Errorf("mail: recipient %q is not an email address", msg.To)
	}
	if addr.Address != msg.To {
		return fmt.Errorf("mail: recipient %q must be a bare address", msg.To)
	}
	if msg.Subject == "" || strings.ContainsAny(msg.Subject, "\r\n") {
		return errors.New("mail: subject must be one non-empty line")
	}
	if msg.Text == "" || msg.HTML == "" {
		return errors.New("mail: message needs both a text and an HTML body")
	}
	return nil
}

// Close stops accepting messages and delivers what it can: queued messages get their attempt,
// and messages waiting to be retried get one last attempt now. Whatever is still undelivered
// when ctx ends is recorded failed. Close returns ctx.Err() in that case.
func (m *Mailer) Close(ctx context.Context) error {
	m.mu.Lock()
	if !m.closing {
		m.closing = true
		for j, t := range m.waiting {
			t.Stop()
			delete(m.waiting, j)
			m.ready = append(m.ready, j)
		}
		m.cond.Broadcast()
	}
	m.mu.Unlock()

	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
	}
	m.mu.Lock()
	m.abandon = true
	m.cond.Broadcast()
	m.mu.Unlock()
	m.cancel()
	<-m.done
	return ctx.Err()
}

// run is the delivery worker: it takes ready jobs one at a time until Close has drained them.
// It takes no cluster lock: a message and its retries live only in the memory of the replica
// that queued it (mail_log records outcomes and is never read back to send), so two replicas
// can never send one message. What must be mailed once across replicas is claimed before Send
// (budget alerts, in budget_alerts).
func (m *Mailer) run() {
	defer close(m.done)
	defer m.cancel()
	for {
		m.mu.Lock()
		for len(m.ready) == 0 && !(m.closing && len(m.waiting) == 0) {
			m.cond.Wait()
		}
		if len(m.ready) == 0 {
			m.mu.Unlock()
			return
		}
		j := m.ready[0]
		m.ready = m.ready[1:]
		abandon, closing := m.abandon, m.closing
		m.mu.Unlock()

		if abandon {
			m.finish(j, store.MailFailed, "not delivered before shutdown")
			continue
		}
		m.process(j, closing)
	}
}

// process records j when new, makes one attempt and then records the outcome or schedules the
// next attempt.
func (m *Mailer) process(j *job, closing bool) {
	if j.id == 0 {
		status := store.MailPending
		if m.sender == nil {
			status = store.MailSkipped
		}
		if err := m.insert(j, status); err != nil {
			// Still try to deliver: losing the record is better than losing the mail.
			m.log.Error("mail: record message", "kind", j.msg.Kind, "err", err)
		}
		if m.sender == nil {
			m.log.Info("mail skipped: SMTP not configured", "id", j.id, "kind", j.msg.Kind)
			return
		}
	}

	raw, err := compose(m.from, j.msg, m.opts.Now(), m.opts.SMTP.Host)
	if err == nil {
		ctx, cancel := context.WithTimeout(m.ctx, m.opts.AttemptTimeout)
		err = m.sender.send(ctx, m.from.Address, j.msg.To, raw)
		cancel()
	}
	j.attempts++
	if err == nil {
		m.finish(j, store.MailSent, "")
		return
	}
	j.lastErr = truncate(err.Error(), 500)
	if j.attempts >= m.opts.MaxAttempts || closing || permanent(err) {
		m.finish(j, store.MailFailed, j.lastErr)
		return
	}
	wait := m.opts.Backoff(j.attempts)
	m.log.Warn("mail attempt failed, will retry", "id", j.id, "kind", j.msg.Kind,
		"attempt", j.attempts, "retryIn", wait, "err", j.lastErr)
	m.update(j, store.MailPending, j.lastErr)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		// Close ran during the attempt: one more try now instead of waiting.
		m.ready = append(m.ready, j)
		m.cond.Signal()
		return
	}
	m.waiting[j] = time.AfterFunc(wait, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.waiting[j]; ok { // Close may have moved it already
			delete(m.waiting, j)
			m.ready = append(m.ready, j)
			m.cond.Signal()
		}
	})
}

func (m *Mailer) finish(j *job, status, lastErr string) {
	switch status {
	case store.MailSent:
		m.log.Info("mail sent", "id", j.id, "kind", j.msg.Kind, "attempts", j.attempts)
	default:
		m.log.Error("mail failed", "id", j.id, "kind", j.msg.Kind, "attempts", j.attempts, "err", lastErr)
	}
	if j.id == 0 {
		if err := m.insert(j, status); err != nil {
			m.log.Error("mail: record message", "kind", j.msg.Kind, "err", err)
			return
		}
	}
	m.update(j, status, lastErr)
}

func (m *Mailer) update(j *job, status, lastErr string) {
	if j.id == 0 {
		return
	}
	ctx, cancel := dbContext()
	defer cancel()
	if err := m.db.UpdateMailLog(ctx, j.id, status, j.attempts, lastErr, m.opts.Now().UnixMilli()); err != nil {
		m.log.Error("mail: record outcome", "id", j.id, "err", err)
	}
}

// insert records j's message with status and sets j.id.
func (m *Mailer) insert(j *job, status string) error {
	ctx, cancel := dbContext()
	defer cancel()
	id, err := m.db.InsertMailLog(ctx, store.MailLog{
		Kind: j.msg.Kind, To: j.msg.To, Subject: j.msg.Subject, Status: status,
		CreatedAt: m.opts.Now().UnixMilli(),
	})
	if err != nil {
		return err
	}
	j.id = id
	return nil
}

// dbContext bounds a mail_log write. It is not tied to the mailer's context, so outcomes are
// still recorded while Close gives up on deliveries.
func dbContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// permanent reports whether err is an SMTP 5xx reply (a refused address, rejected credentials):
// the same message would meet the same answer, so it is not retried. Everything else — a
// refused connection, a timeout, a 4xx "try later" — is.
func permanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500 && se.Code < 600
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
