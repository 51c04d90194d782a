// Command tokenguard is a self-hosted spend guard for LLM APIs: one binary with an embedded
// SQLite database, a dashboard, a management API and an OpenAI/Anthropic/Gemini compatible proxy
// that meters every request and holds it to daily and monthly budgets.
//
// Usage:
//
//	tokenguard [serve] [--config tokenguard.toml]   run the server (the default)
//	tokenguard backup OUT.db [--config …]           write an online, consistent copy of the SQLite database
//	tokenguard prices MODEL… [--input N …]          how a model is priced, and what it would cost
//	tokenguard version                              print the version (also --version)
//	tokenguard help                                 every command and flag (also -h, --help)
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/julienschmidt/httprouter"

	"tokenguard/app/account"
	"tokenguard/app/alert"
	"tokenguard/app/analytics"
	"tokenguard/app/api"
	"tokenguard/app/bodyguard"
	"tokenguard/app/budget"
	"tokenguard/app/cluster"
	"tokenguard/app/config"
	"tokenguard/app/enduser"
	"tokenguard/app/health"
	"tokenguard/app/invite"
	"tokenguard/app/ledger"
	"tokenguard/app/mail"
	"tokenguard/app/pricing"
	"tokenguard/app/provider/anthropic"
	"tokenguard/app/provider/gemini"
	"tokenguard/app/provider/openai"
	"tokenguard/app/proxy"
	"tokenguard/app/retention"
	"tokenguard/app/secret"
	usagelog "tokenguard/app/usage"
	"tokenguard/app/web"
	"tokenguard/app/webhook"
	"tokenguard/static"
	"tokenguard/store"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "dev"

//go:embed schema.sql
var schema string

// schemaPostgres is the same schema for a PostgreSQL DATABASE_URL.
//
//go:embed schema_postgres.sql
var schemaPostgres string

// schemaFor is the schema of the database location names.
func schemaFor(location string) string {
	if store.IsPostgres(location) {
		return schemaPostgres
	}
	return schema
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tokenguard:", err)
		os.Exit(1)
	}
}

// run dispatches a subcommand; serve blocks until ctx is cancelled, then shuts down gracefully.
// Help (for the program or one command) goes to stdout and is a success.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, stdout, stderr)
	if errors.Is(err, errHelped) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			args[0] = "help"
		case "-version", "--version":
			args[0] = "version"
		}
		if args[0] != "" && args[0][0] != '-' {
			cmd, args = args[0], args[1:]
		}
	}
	switch cmd {
	case "serve":
		m := NewMain(stderr)
		if err := m.parseFlags(args, stdout); err != nil {
			return err
		}
		if err := m.Run(ctx); err != nil {
			m.Close(context.Background())
			return err
		}
		<-ctx.Done()
		m.Logger.Info("shutting down: draining in-flight requests")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		return m.Close(shutdownCtx)
	case "backup":
		return runBackup(ctx, args, stdout)
	case "prices":
		return runPrices(args, stdout)
	case "version":
		fmt.Fprintln(stdout, "tokenguard", version())
		return nil
	case "help":
		writeUsage(stdout)
		return nil
	default:
		var b strings.Builder
		writeUsage(&b)
		return fmt.Errorf("unknown command %q\n\n%s", cmd, b.String())
	}
}

// commands are the subcommands in the order help lists them, each with its arguments, what it
// does and its flag set (built by the same function the command parses its flags with, so help
// can never leave a flag out).
var commands = []struct {
	name, args, what string
	flags            func() *flag.FlagSet
}{
	{"serve", "", "run the server (the default command)", func() *flag.FlagSet { return new(Main).flagSet() }},
	{"backup", "OUT.db", "write an online, consistent copy of the SQLite database to OUT.db (on PostgreSQL it says how to use pg_dump instead)", func() *flag.FlagSet {
		fs, _ := backupFlags()
		return fs
	}},
	{"prices", "MODEL…", "show how each model is priced, and what the token counts given would cost", func() *flag.FlagSet {
		fs, _ := pricesFlags(new(pricing.Usage))
		return fs
	}},
	{"version", "", "print the version (also --version)", nil},
	{"help", "", "print this help (also -h, --help; COMMAND -h for one command)", nil},
}

// writeUsage prints every command with its flags, and where the server's settings come from.
func writeUsage(w io.Writer) {
	fmt.Fprintf(w, "TokenGuard %s: a self-hosted spend guard for LLM APIs.\n\nusage: tokenguard [COMMAND] [ARGS] [FLAGS]\n\ncommands:\n", version())
	for _, c := range commands {
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace(c.name+" "+c.args), c.what)
		if c.flags != nil {
			writeFlags(w, c.flags())
		}
	}
	fmt.Fprint(w, `
The server reads its settings from the environment and from a TOML file (--config, or
./tokenguard.toml when present; see tokenguard.example.toml): DATABASE_URL, LISTEN_ADDR,
FRONTEND_URL, JWT_SECRET, ENCRYPTION_KEY, the provider keys and more, listed in the README.
`)
}

// errHelped says -h or --help was given and the usage printed: the command succeeded.
var errHelped = errors.New("help printed")

// parseFlags parses args into fs. -h or --help prints the command's usage to stdout and returns
// errHelped; a bad flag returns an error carrying the usage.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if err == nil {
		return nil
	}
	var b strings.Builder
	for _, c := range commands {
		if c.name == fs.Name() {
			fmt.Fprintf(&b, "usage: tokenguard %s [FLAGS]\n      %s\n", strings.TrimSpace(c.name+" "+c.args), c.what)
		}
	}
	writeFlags(&b, fs)
	if errors.Is(err, flag.ErrHelp) {
		io.WriteString(stdout, b.String())
		return errHelped
	}
	return fmt.Errorf("%s: %w\n%s", fs.Name(), err, b.String())
}

// writeFlags lists fs's flags, indented under their command.
func writeFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		kind, what := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "      --%s %s\n          %s\n", f.Name, kind, what)
	})
}

// version is the build's version: Version when set with -ldflags, else the module version the
// go tool stamped; then the VCS revision and the Go version, from the build info.
func version() string {
	v := Version
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value[:min(len(s.Value), 12)]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev != "" {
		v += " (" + rev + dirty + ")"
	}
	return v + " " + bi.GoVersion
}

// shutdownGrace bounds how long shutdown waits for in-flight requests (long streams included)
// before cutting them off; cut-off requests are still metered.
const shutdownGrace = 30 * time.Second

// backupFlags are backup's flags.
func backupFlags() (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	return fs, fs.String("config", "", "TOML config file (the database is its DATABASE_URL)")
}

func runBackup(ctx context.Context, args []string, stdout io.Writer) error {
	fs, configPath := backupFlags()
	var out string
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		out, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if out == "" && fs.NArg() == 1 {
		out = fs.Arg(0)
	}
	if out == "" {
		return errors.New("usage: tokenguard backup OUT.db [--config tokenguard.toml]")
	}
	cfg, err := config.Load(*configPath, os.LookupEnv)
	if err != nil {
		return err
	}
	if err := store.Backup(ctx, cfg.DatabaseURL, out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written to %s (integrity_check ok)\n", out)
	return nil
}

// Main is the server program as a value, so tests can start the real thing on 127.0.0.1:0 with
// a temp database and stop it again.
type Main struct {
	Config     config.Config
	ConfigPath string
	Logger     *slog.Logger
	// Getenv reads the environment; tests replace it.
	Getenv func(string) (string, bool)
	// Now is the clock every component shares; tests replace it.
	Now func() time.Time

	DB *store.DB
	// Prices, Budget and Usage are the metering core the proxy and the API use.
	Prices *pricing.Table
	Budget *budget.Engine
	Usage  *usagelog.Writer
	// Ledger is the budget gate shared by every replica on PostgreSQL (Budget is then its
	// mirror of the database's counters); nil on SQLite, where Budget is the gate.
	Ledger *ledger.Ledger
	// Proxy serves /proxy/<provider>/…; its key cache is what the account service evicts.
	Proxy *proxy.Proxy
	// Cluster carries key and budget changes to the other replicas' caches; nil on SQLite.
	Cluster *cluster.Notifier
	// Mailer queues outgoing mail (invites, alerts, digests) and records each outcome.
	Mailer *mail.Mailer
	// Alerts mails the 80% / 100% budget alerts the proxy reports; Webhooks posts them to the
	// workspace's webhook.
	Alerts   *alert.Alerter
	Webhooks *webhook.Service
	// Accounts is the service under both the JSON API and the dashboard; Invites sends and
	// accepts invites; Web is the dashboard.
	Accounts *account.Service
	Invites  *invite.Service
	Web      *web.Server

	listener net.Listener
	server   *http.Server
	// obs is the metrics and traces the server reports to (observability.go).
	obs *observability
	// closers run in order on Close, after the HTTP server has drained.
	closers []func(context.Context) error
}

// NewMain returns a Main that logs to w and reads the process environment.
func NewMain(w io.Writer) *Main {
	return &Main{
		Logger: slog.New(slog.NewTextHandler(w, nil)),
		Getenv: os.LookupEnv,
		Now:    time.Now,
	}
}

// flagSet is serve's flags, bound to m.
func (m *Main) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&m.ConfigPath, "config", "", "TOML config file (default: ./tokenguard.toml if present)")
	return fs
}

// ParseFlags reads serve's flags; a tokenguard.toml in the working directory is used when
// --config is not given. -h prints serve's usage to stdout and returns an error that run treats
// as success.
func (m *Main) ParseFlags(args []string) error { return m.parseFlags(args, os.Stdout) }

func (m *Main) parseFlags(args []string, stdout io.Writer) error {
	fs := m.flagSet()
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if m.ConfigPath == "" {
		if _, err := os.Stat("tokenguard.toml"); err == nil {
			m.ConfigPath = "tokenguard.toml"
		}
	}
	return nil
}

// Run loads the configuration, opens the database, wires every component and starts serving. It
// returns once the server is listening; Close stops it.
func (m *Main) Run(ctx context.Context) error {
	cfg, err := config.Load(m.ConfigPath, m.Getenv)
	if err != nil {
		return err
	}
	// Everything that can be checked is checked before anything is written: the database path,
	// then the listen address (bound now, served at the end), then the database is created or
	// opened, and only then are generated secrets written beside it.
	if err := checkDatabasePath(cfg.DatabaseURL); err != nil {
		return err
	}
	m.listener, err = net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR %s: %w", cfg.ListenAddr, err)
	}
	m.DB, err = store.Open(ctx, cfg.DatabaseURL, schemaFor(cfg.DatabaseURL))
	if err != nil {
		return err
	}
	generated, secretsPath, err := config.EnsureSecrets(&cfg)
	if err != nil {
		return err
	}
	for _, name := range generated {
		m.Logger.Warn("generated a secret; set it in the environment for production and back this file up with the database", "name", name, "file", secretsPath)
	}
	m.Config = cfg
	box, err := secret.NewBox(cfg.EncryptionKey)
	if err != nil {
		return err
	}
	if err := m.DB.CheckEncryptionKey(ctx, box); err != nil {
		return err
	}

	// Metering: the price table, the budget engine with the persisted counters of the current
	// day and month loaded back (fail closed: without them every budget would look unspent), and
	// the usage writer, closed after the server has drained so it flushes every row.
	if m.Prices, err = newPriceTable(cfg.Pricing); err != nil {
		return err
	}
	m.closers = append(m.closers, watchPrices(m.Prices, cfg.Pricing, m.Logger))
	// Metrics and traces, when configured; closed after the proxy, so every request's span is
	// flushed.
	if m.obs, err = newObservability(ctx, cfg, m.Prices); err != nil {
		return err
	}
	m.closers = append(m.closers, m.obs.close)
	m.Budget = budget.New(m.Now)
	if err := usagelog.LoadCounters(ctx, m.DB, m.Budget, m.Now()); err != nil {
		return fmt.Errorf("refusing to start without budget counters: %w", err)
	}
	endUsers := enduser.New(m.Now, 0)
	if err := endUsers.Load(ctx, m.DB); err != nil {
		return fmt.Errorf("refusing to start without end-user budget counters: %w", err)
	}
	m.Usage = usagelog.NewWriter(m.DB, m.Logger, usagelog.WriterOptions{FlushInterval: cfg.FlushInterval.Duration, MaxQueue: cfg.UsageQueueMax,
		OnBatch: m.obs.onBatch()})
	m.closers = append(m.closers, m.Usage.Close)
	// Retention prunes in the background beside the writer; closed before it. New converts the
	// file for incremental vacuum first when USAGE_RETENTION is newly set, before anything is
	// served (see retention.New).
	pruner, err := retention.New(ctx, retention.Options{DB: m.DB, Usage: cfg.UsageRetention.Duration,
		Hourly: cfg.HourlyRetention.Duration, Log: m.Logger, Now: m.Now})
	if err != nil {
		return err
	}
	pruner.Start()
	m.closers = slices.Insert(m.closers, len(m.closers)-1, pruner.Close)

	// Mail is queued and retried in the background, so no request waits on SMTP; Close (after
	// the server has drained) gives waiting messages one last attempt within the flush deadline.
	m.Mailer, err = mail.New(m.DB, mail.Options{SMTP: cfg.SMTP, Log: m.Logger, Now: m.Now})
	if err != nil {
		return err
	}
	m.closers = append(m.closers, m.Mailer.Close)
	if !m.Mailer.Configured() {
		m.Logger.Info("SMTP_HOST not set: emails are recorded as skipped; invite links still work")
	}
	// Budget alerts are only queued on the request path; a worker claims each one in
	// budget_alerts (once per budget, period and threshold) and hands it to the mailer. Closed
	// just before the mailer, so alerts still queued at shutdown are mailed.
	if m.Alerts, err = alert.New(alert.Options{DB: m.DB, Mailer: m.Mailer, FrontendURL: cfg.FrontendURL, Log: m.Logger, Now: m.Now}); err != nil {
		return err
	}
	m.closers = slices.Insert(m.closers, len(m.closers)-1, m.Alerts.Close)

	// Crossings go to the alert mails and to the workspace's webhook. The webhook service needs
	// the account service, which needs the proxy, so it is made below, before anything is served.
	onCrossing := func(cs []budget.Crossing) {
		m.Alerts.OnCrossing(cs)
		m.Webhooks.OnCrossing(cs)
	}
	// On PostgreSQL every replica admits against the database's counters (app/ledger), and the
	// ledger's watcher reports the crossings; it starts once the webhook service exists.
	var gate proxy.Gate
	if m.DB.Postgres() {
		if m.Ledger, err = ledger.New(m.DB, m.Budget, ledger.Options{OnCrossing: onCrossing, Logger: m.Logger, Now: m.Now,
			Lease: cfg.BudgetLease.Duration, Timeout: cfg.BudgetLedgerTimeout.Duration}); err != nil {
			return err
		}
		gate = m.Ledger
	}

	// The proxy: key auth (cached), budget gate, relay and metering for every provider.
	m.Proxy, err = proxy.New(proxy.Config{
		DB: m.DB, Prices: m.Prices, Budget: m.Budget, Gate: gate, Usage: m.Usage, Logger: m.Logger, Box: box, Now: m.Now,
		MaxBodyBytes: cfg.MaxBodyBytes, UpstreamTimeout: cfg.UpstreamTimeout.Duration,
		StreamIdleTimeout: cfg.StreamIdleTimeout.Duration, OnCrossing: onCrossing,
		Observers: m.obs.observers(), EndUsers: endUsers,
	},
		proxy.Upstream{Adapter: openai.New(), BaseURL: cfg.Upstreams.OpenAI, EnvKey: cfg.ProviderKeys.OpenAI},
		proxy.Upstream{Adapter: anthropic.New(), BaseURL: cfg.Upstreams.Anthropic, EnvKey: cfg.ProviderKeys.Anthropic},
		proxy.Upstream{Adapter: gemini.New(), BaseURL: cfg.Upstreams.Gemini, EnvKey: cfg.ProviderKeys.Gemini},
	)
	if err != nil {
		return err
	}
	// First of the closers: cut-off requests record their usage before the writer closes.
	m.closers = append([]func(context.Context) error{m.Proxy.Close}, m.closers...)

	// On PostgreSQL other replicas cache keys too: the account service's evictions go through
	// the change notifier, which evicts here and publishes to every replica (app/cluster).
	var keys account.KeyCache = m.Proxy
	if m.DB.Postgres() {
		if m.Cluster, err = cluster.Start(ctx, cluster.Options{DB: m.DB, URL: cfg.DatabaseURL, Cache: m.Proxy, Log: m.Logger}); err != nil {
			return err
		}
		m.closers = append(m.closers, m.Cluster.Close)
		keys = m.Cluster
	}

	// Accounts, the JSON API and invites on it, and the dashboard: the same service layer under
	// both surfaces, which evicts the proxy's cached keys whenever a project or workspace changes.
	m.Accounts, err = account.New(m.DB, account.Options{JWTSecret: []byte(cfg.JWTSecret), Box: box, Keys: keys,
		AllowSignup: cfg.AllowSignup, Now: m.Now, Logger: m.Logger})
	if err != nil {
		return err
	}
	m.Invites = invite.New(m.DB, m.Accounts, invite.Options{FrontendURL: cfg.FrontendURL, Mailer: m.Mailer, Now: m.Now, Log: m.Logger})
	// Webhook events wait in their outbox table, so Close (after the proxy has drained) only
	// writes the crossings still queued; retries resume on the next start.
	if m.Webhooks, err = webhook.New(webhook.Options{DB: m.DB, Box: box, Accounts: m.Accounts, FrontendURL: cfg.FrontendURL,
		AllowPrivate: cfg.WebhookAllowPrivate, Log: m.Logger, Now: m.Now}); err != nil {
		return err
	}
	m.closers = append(m.closers, m.Webhooks.Close)
	reports := analytics.New(analytics.Options{Store: m.DB, Accounts: m.Accounts, Mailer: m.Mailer, Now: m.Now})
	apiServer := api.New(api.Deps{Accounts: m.Accounts, Usage: m.DB, Analytics: reports, Logger: m.Logger, CORSOrigin: cfg.CORSOrigin})
	assets, err := static.New()
	if err != nil {
		return err
	}
	m.Web, err = web.New(web.Options{
		FrontendURL: cfg.FrontendURL, JWTSecret: cfg.JWTSecret, AllowSignup: cfg.AllowSignup,
		Accounts: m.Accounts, Invites: web.InviteService(m.Invites), Budget: m.Budget, Prices: m.Prices,
		DB: m.DB, Assets: assets, MailConfigured: m.Mailer.Configured(), Logger: m.Logger, Now: m.Now,
		Webhooks: m.Webhooks, Analytics: reports,
	})
	if err != nil {
		return err
	}

	if m.Ledger != nil {
		// Last of the closers: it stops renewing and sweeping once the writer has stored every
		// row (settling their reservations), so none of this replica's are left behind.
		if err := m.Ledger.Start(ctx); err != nil {
			return fmt.Errorf("refusing to start without the shared budget counters: %w", err)
		}
		m.closers = append(m.closers, func(context.Context) error { return m.Ledger.Close() })
	}

	router := httprouter.New()
	router.Handler(http.MethodGet, "/healthz", health.Live())
	router.Handler(http.MethodGet, "/readyz", health.Ready(health.Database(m.DB), health.UsageWriter(m.Usage),
		health.UpstreamDNS(nil, cfg.Upstreams.OpenAI, cfg.Upstreams.Anthropic, cfg.Upstreams.Gemini)))
	if err := m.obs.watch(m); err != nil {
		return err
	}
	m.obs.register(router)
	m.Proxy.Register(router)
	apiServer.Register(router)
	invite.NewHandler(m.Invites, apiServer, m.Logger).Register(router)
	webhook.NewHandler(m.Webhooks, apiServer).Register(router)
	m.Web.Register(router)

	m.server = &http.Server{
		// Outermost, so every route's body (unauthenticated sign-in included) has read deadlines.
		Handler:           bodyguard.Wrap(router, bodyguard.DefaultLimits),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := m.server.Serve(m.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("http server stopped", "err", err)
		}
	}()
	m.obs.serve(m.Logger)
	m.Logger.Info("TokenGuard is serving", "addr", m.Addr(), "dashboard", cfg.FrontendURL, "database", m.DB.Path(), "version", Version)
	return nil
}

// Addr is the address the server listens on (useful with port 0).
func (m *Main) Addr() string {
	if m.listener == nil {
		return ""
	}
	return m.listener.Addr().String()
}

// Close stops accepting connections, waits for in-flight requests (until ctx ends, after which
// they are cut off and still metered), then flushes every pending usage row and counter and
// closes the database.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	if m.server != nil {
		if err := m.server.Shutdown(ctx); err != nil {
			m.Logger.Warn("in-flight requests cut off at shutdown deadline", "err", err)
			m.server.Close()
		}
	} else if m.listener != nil {
		// Run failed after binding the address and before serving on it.
		m.listener.Close()
	}
	flushCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range m.closers {
		errs = append(errs, c(flushCtx))
	}
	if m.DB != nil {
		errs = append(errs, m.DB.Close())
	}
	return errors.Join(errs...)
}
