// Package webhook posts a workspace's budget crossings (80% and 100% of a daily or monthly
// budget, project or workspace) to the one URL its owners and admins set: a Slack-compatible
// JSON body ({"text": …} plus structured fields), signed with HMAC-SHA256 over the timestamp
// and the body (SignatureHeader, Verify). The signing secret is generated here, shown once, and
// kept AES-256-GCM sealed like the URL.
//
// Nothing is posted on the request path: OnCrossing only queues the crossing, and one worker
// writes each event to the webhook_deliveries outbox (once per budget, period and threshold)
// before it makes any attempt, then delivers due rows with bounded attempts and exponential
// backoff. A restart resumes the retries from the outbox, so delivery is at least once; the
// body's "id" lets a receiver drop repeats.
//
// The worker posts only to public addresses unless the operator allows internal ones
// (WEBHOOK_ALLOW_PRIVATE): a workspace owner is anyone who signed up, not the operator, and
// must not reach the server's own network. It never follows a redirect, so a receiver cannot
// bounce it elsewhere.
package webhook

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"tokenguard/app/account"
	"tokenguard/app/apperr"
	"tokenguard/app/budget"
	"tokenguard/app/secret"
	"tokenguard/store"
)

// Audit actions this package writes, in the transaction of the change they record.
const (
	AuditUpdated = "webhook_updated"
	AuditDeleted = "webhook_deleted"
	AuditTested  = "webhook_tested"
)

// Bounds of what an admin sets and of what the worker holds.
const (
	// MaxURLBytes bounds the webhook URL.
	MaxURLBytes = 2048
	// MaxBodyBytes bounds an event's body (the schema holds the same bound).
	MaxBodyBytes = 16 << 10
	// MaxPending bounds a workspace's undelivered events, so a dead receiver (or a test button
	// pressed in a loop) cannot grow the outbox; past it new events are dropped and logged.
	MaxPending = 100
	// Retention is how long finished deliveries are kept: longer than any budget period, so an
	// event is never sent twice in its period.
	Retention = 45 * 24 * time.Hour
)

// Options configures a Service. DB, Box and Accounts are required.
type Options struct {
	DB       *store.DB
	Box      *secret.Box
	Accounts *account.Service
	// FrontendURL is the dashboard's base URL; events link to the project or workspace.
	FrontendURL string
	// Client posts the events. Default: a client that never follows redirects and, unless
	// AllowPrivate, connects to public addresses only; Timeout bounds each attempt either way.
	Client *http.Client
	// AllowPrivate lets the default client post to loopback, private, shared (CGNAT) and
	// link-local addresses (config WEBHOOK_ALLOW_PRIVATE). Off, a workspace owner — anyone,
	// with open sign-up — cannot make the server post to its own network's services or a
	// cloud metadata endpoint, and read their answers back in the delivery's last error.
	AllowPrivate bool
	// Timeout bounds one attempt, connection to the end of the response. Default: 10s.
	Timeout time.Duration
	// Backoff is the wait after failed attempt n (1-based). Default: 10s doubling, at most 1h.
	Backoff func(attempt int) time.Duration
	// MaxAttempts bounds the attempts per event; after the last it is recorded failed.
	// Default: 8 (about 21 minutes of retrying with the default backoff).
	MaxAttempts int
	// Log receives one line per attempt outcome (never a URL or a secret). Default: discard.
	Log *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// QueueSize bounds crossings waiting for the worker; past it OnCrossing drops and logs them
	// rather than hold up a request. Default: 1024.
	QueueSize int
}

// DefaultBackoff waits 10s after the first failed attempt and doubles per attempt, at most an
// hour.
func DefaultBackoff(attempt int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// Service manages workspaces' webhooks and delivers their events. Create it with New and call
// Close on shutdown.
type Service struct {
	db       *store.DB
	box      *secret.Box
	accounts *account.Service
	frontend string
	client   *http.Client
	timeout  time.Duration
	backoff  func(int) time.Duration
	attempts int
	log      *slog.Logger
	now      func() time.Time

	mu     sync.RWMutex
	closed bool
	queue  chan budget.Crossing
	wake   chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// New starts the delivery worker and returns the Service.
func New(o Options) (*Service, error) {
	if o.DB == nil || o.Box == nil || o.Accounts == nil {
		return nil, errors.New("webhook: DB, Box and Accounts are required")
	}
	s := &Service{db: o.DB, box: o.Box, accounts: o.Accounts, frontend: strings.TrimRight(o.FrontendURL, "/"),
		client: o.Client, timeout: o.Timeout, backoff: o.Backoff, attempts: o.MaxAttempts, log: o.Log, now: o.Now,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	if s.client == nil {
		dialer := &net.Dialer{Timeout: 10 * time.Second}
		if !o.AllowPrivate {
			// Checked on the address actually dialled, after DNS: a public name that resolves
			// to a private address is refused too.
			dialer.Control = refusePrivate
		}
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.DialContext = dialer.DialContext
		s.client = &http.Client{Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if s.timeout <= 0 {
		s.timeout = 10 * time.Second
	}
	if s.backoff == nil {
		s.backoff = DefaultBackoff
	}
	if s.attempts <= 0 {
		s.attempts = 8
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	s.queue = make(chan budget.Crossing, o.QueueSize)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s, nil
}

// Config is a workspace's webhook as its admins see it: never the URL itself nor the secret.
type Config struct {
	WorkspaceID int64
	URLMasked   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Recent are the latest deliveries, newest first.
	Recent []Delivery
}

// Delivery is one event in the outbox.
type Delivery struct {
	ID         int64
	Event      string
	Status     string
	Attempts   int
	LastStatus int
	LastError  string
	NextAt     time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// recentShown is how many deliveries Get lists.
const recentShown = 20

// Get returns workspaceID's webhook and its recent deliveries; NOT_FOUND when none is set (or
// the actor is not a member), FORBIDDEN for a member who is not an owner or admin.
func (s *Service) Get(ctx context.Context, actor account.Actor, workspaceID int64) (Config, error) {
	if _, err := s.accounts.Authorize(ctx, actor, workspaceID, account.ManageProjects); err != nil {
		return Config{}, err
	}
	w, err := s.db.WebhookOf(ctx, workspaceID)
	if errors.Is(err, store.ErrNotFound) {
		return Config{}, apperr.New(apperr.NotFound, "This workspace has no webhook")
	}
	if err != nil {
		return Config{}, err
	}
	rows, err := s.db.RecentWebhooks(ctx, workspaceID, recentShown)
	if err != nil {
		return Config{}, err
	}
	c := Config{WorkspaceID: workspaceID, URLMasked: w.URLMasked, CreatedAt: time.UnixMilli(w.CreatedAt).UTC(),
		UpdatedAt: time.UnixMilli(w.UpdatedAt).UTC(), Recent: make([]Delivery, len(rows))}
	for i, d := range rows {
		c.Recent[i] = Delivery{ID: d.ID, Event: d.Event, Status: d.Status, Attempts: d.Attempts, LastStatus: d.LastStatus,
			LastError: d.LastError, NextAt: time.UnixMilli(d.NextAt).UTC(), CreatedAt: time.UnixMilli(d.CreatedAt).UTC(),
			UpdatedAt: time.UnixMilli(d.UpdatedAt).UTC()}
	}
	return c, nil
}

// Set points workspaceID's webhook at rawURL. A new webhook, or rotate, gets a new secret,
// returned here and never again; otherwise the secret is kept and "" returned. The URL must be
// an absolute http or https URL without credentials, at most MaxURLBytes (INVALID_REQUEST).
// Owners and admins only; audited.
func (s *Service) Set(ctx context.Context, actor account.Actor, workspaceID int64, rawURL string, rotate bool) (Config, string, error) {
	if _, err := s.accounts.Authorize(ctx, actor, workspaceID, account.ManageProjects); err != nil {
		return Config{}, "", err
	}
	u, err := checkURL(rawURL)
	if err != nil {
		return Config{}, "", err
	}
	now := s.now().UnixMilli()
	var newSecret string
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		sealed, err := s.db.WebhookSecretTx(ctx, tx, workspaceID)
		created := errors.Is(err, store.ErrNotFound)
		if err != nil && !created {
			return err
		}
		w := store.Webhook{WorkspaceID: workspaceID, URLSealed: s.box.Seal([]byte(u.String()), urlAD(workspaceID)),
			URLMasked: mask(u), SecretSealed: sealed, CreatedAt: now, UpdatedAt: now}
		if created || rotate {
			newSecret = generateSecret()
			w.SecretSealed = s.box.Seal([]byte(newSecret), secretAD(workspaceID))
		}
		if err := s.db.PutWebhook(ctx, tx, w); err != nil {
			return err
		}
		return s.accounts.AppendAudit(ctx, tx, actor, workspaceID, account.AuditEvent{Action: AuditUpdated,
			TargetType: "webhook", TargetID: workspaceID,
			Details: map[string]any{"url": w.URLMasked, "created": created, "secretRotated": newSecret != ""}})
	})
	if err != nil {
		return Config{}, "", err
	}
	c, err := s.Get(ctx, actor, workspaceID)
	return c, newSecret, err
}

// Delete removes workspaceID's webhook; its undelivered events are recorded failed. NOT_FOUND
// when none is set. Owners and admins only; audited.
func (s *Service) Delete(ctx context.Context, actor account.Actor, workspaceID int64) error {
	if _, err := s.accounts.Authorize(ctx, actor, workspaceID, account.ManageProjects); err != nil {
		return err
	}
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.db.DeleteWebhook(ctx, tx, workspaceID, "webhook removed", s.now().UnixMilli()); err != nil {
			return err
		}
		return s.accounts.AppendAudit(ctx, tx, actor, workspaceID, account.AuditEvent{Action: AuditDeleted,
			TargetType: "webhook", TargetID: workspaceID})
	})
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "This workspace has no webhook")
	}
	return err
}

// Test queues a "webhook.test" event for workspaceID's webhook, delivered like any other (see
// Get's Recent for the outcome), and returns it. NOT_FOUND when no webhook is set,
// TOO_MANY_REQUESTS when MaxPending events already wait. Owners and admins only; audited.
func (s *Service) Test(ctx context.Context, actor account.Actor, workspaceID int64) (Delivery, error) {
	if _, err := s.accounts.Authorize(ctx, actor, workspaceID, account.ManageProjects); err != nil {
		return Delivery{}, err
	}
	if _, err := s.db.WebhookOf(ctx, workspaceID); errors.Is(err, store.ErrNotFound) {
		return Delivery{}, apperr.New(apperr.NotFound, "This workspace has no webhook")
	} else if err != nil {
		return Delivery{}, err
	}
	now := s.now()
	body, err := testEvent(now, workspaceID, s.frontend)
	if err != nil {
		return Delivery{}, err
	}
	id, err := s.db.EnqueueWebhook(ctx, store.WebhookDelivery{WorkspaceID: workspaceID, Event: EventTest, Body: string(body),
		NextAt: now.UnixMilli(), CreatedAt: now.UnixMilli()}, MaxPending)
	if err != nil {
		return Delivery{}, err
	}
	if id == 0 {
		return Delivery{}, apperr.New(apperr.TooManyRequests, "%d webhook events are already waiting to be delivered; try again once they are", MaxPending)
	}
	if err := s.accounts.Record(ctx, actor, workspaceID, account.AuditEvent{Action: AuditTested, TargetType: "webhook",
		TargetID: workspaceID, Details: map[string]any{"delivery": id}}); err != nil {
		return Delivery{}, err
	}
	s.poke()
	return Delivery{ID: id, Event: EventTest, Status: store.WebhookPending, NextAt: now.UTC(), CreatedAt: now.UTC(), UpdatedAt: now.UTC()}, nil
}

// checkURL accepts an absolute http or https URL with a host and no user info (credentials
// would be shown, masked or not, wherever the URL is), at most MaxURLBytes.
func checkURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > MaxURLBytes {
		return nil, apperr.New(apperr.InvalidRequest, "url must be an http or https URL of at most %d bytes", MaxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return nil, apperr.New(apperr.InvalidRequest, "url must be an absolute http or https URL (such as https://hooks.slack.com/services/…)")
	}
	if u.User != nil {
		return nil, apperr.New(apperr.InvalidRequest, "url must not contain a user name or password; the signature authenticates TokenGuard")
	}
	if len(u.Host) > MaxHostBytes {
		return nil, apperr.New(apperr.InvalidRequest, "url's host must be at most %d bytes", MaxHostBytes)
	}
	return u, nil
}

// MaxHostBytes bounds a webhook URL's host (a DNS name is at most 253 bytes; a port and IPv6
// brackets add a few), so its masked form fits where it is stored.
const MaxHostBytes = 260

// sharedSpace is 100.64.0.0/10, the carrier-grade NAT space some clouds serve metadata from.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// refusePrivate refuses a connection to anything but a public unicast address.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook receiver address %q: %w", address, err)
	}
	ip := ap.Addr().Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || sharedSpace.Contains(ip) {
		return fmt.Errorf("webhook receiver address %s is not public; set WEBHOOK_ALLOW_PRIVATE=true to post to internal receivers", ip)
	}
	return nil
}

// mask shows the scheme and host and the last four characters of the rest (a Slack URL's path
// is its token): enough to recognise the URL, not to use it.
func mask(u *url.URL) string {
	rest := strings.TrimPrefix(u.RequestURI(), "/")
	tail := ""
	if len(rest) > 12 {
		tail = rest[len(rest)-4:]
	}
	if rest == "" {
		return u.Scheme + "://" + u.Host + "/"
	}
	return u.Scheme + "://" + u.Host + "/…" + tail
}

// generateSecret returns "whsec_" and 32 random bytes in base64url: 256 bits.
func generateSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails on supported platforms (crypto/rand)
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b)
}

func urlAD(workspaceID int64) string { return "webhook_url:" + strconv.FormatInt(workspaceID, 10) }
func secretAD(workspaceID int64) string {
	return "webhook_secret:" + strconv.FormatInt(workspaceID, 10)
}
