// Package config loads TokenGuard's settings: embedded defaults, then an optional TOML file,
// then environment variables (DESIGN §2), then validation. With none of them set TokenGuard
// starts and is usable locally; secrets it needs are generated once and kept beside the database.
package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is every setting TokenGuard reads.
type Config struct {
	ListenAddr    string `toml:"listen_addr"`
	DatabaseURL   string `toml:"database_url"`
	JWTSecret     string `toml:"jwt_secret"`
	EncryptionKey string `toml:"encryption_key"`
	FrontendURL   string `toml:"frontend_url"`
	CORSOrigin    string `toml:"cors_origin"`
	AllowSignup   bool   `toml:"allow_signup"`
	// WebhookAllowPrivate lets workspace webhooks post to loopback, private and link-local
	// addresses (WEBHOOK_ALLOW_PRIVATE): off, any signed-up user could make the server post to
	// the services of its own network.
	WebhookAllowPrivate bool     `toml:"webhook_allow_private"`
	MaxBodyBytes        int64    `toml:"max_body_bytes"`
	UpstreamTimeout     Duration `toml:"upstream_timeout"`
	StreamIdleTimeout   Duration `toml:"stream_idle_timeout"`
	FlushInterval       Duration `toml:"flush_interval"`
	// BudgetLease and BudgetLedgerTimeout are the PostgreSQL budget ledger's (app/ledger): how
	// long a dead replica's reservations hold budget, and how long an admission may wait.
	BudgetLease         Duration  `toml:"budget_lease"`
	BudgetLedgerTimeout Duration  `toml:"budget_ledger_timeout"`
	SMTP                SMTP      `toml:"smtp"`
	ProviderKeys        Providers `toml:"provider_keys"`
	Upstreams           Providers `toml:"upstreams"`
	Pricing             Pricing   `toml:"pricing"`

	// UsageQueueMax bounds usage rows waiting in memory plus requests in flight that will
	// write one; when the database stops taking writes and it is reached, metered requests are
	// refused (503 STORAGE_UNAVAILABLE). It is also the most rows a crash can lose.
	UsageQueueMax int `toml:"usage_queue_max"`

	// UsageRetention (USAGE_RETENTION) is how long raw usage rows are kept; 0 keeps them all.
	// Spend counters and the rollups are not raw rows: budgets and whole-day analytics outlive it.
	UsageRetention Retention `toml:"usage_retention"`
	// HourlyRetention (ROLLUP_HOURLY_RETENTION) is how long hourly rollups are kept; 0 keeps
	// them all. Daily rollups are always kept.
	HourlyRetention Retention `toml:"rollup_hourly_retention"`

	// Metrics exposes /metrics; off unless its token or its address is set.
	Metrics Metrics `toml:"metrics"`
	// Tracing is true when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
	// set (and OTEL_SDK_DISABLED / OTEL_TRACES_EXPORTER=none do not turn it off): spans go to
	// that collector, configured by the standard OTEL_* variables, which have no TOML keys.
	Tracing bool `toml:"-"`
}

// Metrics says where /metrics is served. With Token (METRICS_TOKEN) set it is served on the
// public port to requests bearing it; with Addr (METRICS_ADDR) set, on a listener of its own
// (with the token too when both are set); with neither, not at all.
type Metrics struct {
	Token string `toml:"token"`
	Addr  string `toml:"addr"`
}

// MinMetricsToken is the shortest METRICS_TOKEN accepted: the token guards spend and budget
// figures of every project.
const MinMetricsToken = 16

// SMTP is the outgoing mail server. An empty Host means mail is skipped (and recorded so).
type SMTP struct {
	Host string `toml:"host"`
	Port int    `toml:"port"`
	User string `toml:"user"`
	Pass string `toml:"pass"`
	From string `toml:"from"`
	// TLS is "starttls" (required, except to a loopback host that does not offer it), "tls"
	// (implicit, port 465) or "none".
	TLS string `toml:"tls"`
}

// Providers holds one value per upstream provider.
type Providers struct {
	OpenAI    string `toml:"openai"`
	Anthropic string `toml:"anthropic"`
	Gemini    string `toml:"gemini"`
}

// Pricing adjusts the embedded price table.
type Pricing struct {
	// Default prices models the table does not know, so they are never free.
	Default Price `toml:"default"`
	// DefaultMaxOutputTokens is the most output tokens a response of a model of no known family
	// is assumed to hold, for budget reservations (known models use their own maximum).
	DefaultMaxOutputTokens int64 `toml:"default_max_output_tokens"`
	// Overrides replaces or adds prices by model name: a name of the price data's model prices
	// that model (its dated names included); any other prices the names that start with it.
	Overrides map[string]Price `toml:"overrides"`
	// File (PRICES_FILE) is a newer price snapshot (scripts/genprices) used instead of the
	// embedded one, and reloaded when it changes; empty: the embedded snapshot.
	File string `toml:"file"`
}

// Price is USD per million tokens.
type Price struct {
	Input       float64 `toml:"input"`
	CachedInput float64 `toml:"cached_input"`
	CacheWrite  float64 `toml:"cache_write"`
	Output      float64 `toml:"output"`
}

// Duration is a time.Duration written as "200ms", "2m" in TOML and env.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Retention is how long a kind of usage data is kept, written "90d", "720h" or "0" (keep
// everything, the zero value) in TOML and env.
type Retention struct{ time.Duration }

// The bounds of a non-zero Retention: less than a day would prune rows the dashboard's "today"
// still shows; a century is as good as forever and keeps every cutoff far from overflow.
const (
	MinRetention = 24 * time.Hour
	MaxRetention = 36_500 * 24 * time.Hour
)

// UnmarshalText parses a whole number of days ("90d"), a Go duration ("720h") or "0".
func (r *Retention) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "0" || s == "" {
		r.Duration = 0
		return nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%q: want a whole number of days such as 90d", s)
		}
		r.Duration = time.Duration(min(n, int64(MaxRetention/(24*time.Hour))+1)) * 24 * time.Hour
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q: want 90d, a duration such as 720h, or 0", s)
	}
	r.Duration = d
	return nil
}

// maxUsageQueue caps USAGE_QUEUE_MAX: a million queued rows already hold several hundred MB,
// and a crash could lose them all.
const maxUsageQueue = 1_000_000

// Default returns the embedded defaults of DESIGN §2.
func Default() Config {
	return Config{
		ListenAddr:        "127.0.0.1:8080",
		DatabaseURL:       "tokenguard.db",
		AllowSignup:       true,
		MaxBodyBytes:      32 << 20,
		UpstreamTimeout:   Duration{10 * time.Minute},
		StreamIdleTimeout: Duration{2 * time.Minute},
		FlushInterval:     Duration{200 * time.Millisecond},
		// ledger.DefaultLease and ledger.DefaultTimeout, which say why.
		BudgetLease:         Duration{30 * time.Second},
		BudgetLedgerTimeout: Duration{2 * time.Second},
		UsageQueueMax:       10_000, // usage.DefaultMaxQueue, which says why
		// 400 days of hourly rollups (about a million rows a year for 120 project-model pairs)
		// answer the part-day edges of any range up to a year and a month back, last year's
		// same month included, to the hour once the raw rows are gone; older ranges are
		// answered by the daily rollups, to the day.
		HourlyRetention: Retention{400 * 24 * time.Hour},
		SMTP:            SMTP{Port: 587, TLS: "starttls"},
		Upstreams: Providers{
			OpenAI:    "https://api.openai.com",
			Anthropic: "https://api.anthropic.com",
			Gemini:    "https://generativelanguage.googleapis.com",
		},
		Pricing: Pricing{
			// Priced like a premium model on purpose: an unknown model must not look cheap.
			Default:                Price{Input: 5, CachedInput: 5, CacheWrite: 5, Output: 15},
			DefaultMaxOutputTokens: 128_000, // pricing.DefaultMaxOutputTokens
		},
	}
}

// Load builds the configuration from the defaults, the TOML file at path (skipped when path is
// empty) and the environment, read through getenv. It does not generate secrets; see
// EnsureSecrets.
func Load(path string, getenv func(string) (string, bool)) (Config, error) {
	cfg := Default()
	if path != "" {
		md, err := toml.DecodeFile(path, &cfg)
		if err != nil {
			return Config{}, fmt.Errorf("read config %s: %w", path, err)
		}
		if undecoded := md.Undecoded(); len(undecoded) > 0 {
			keys := make([]string, len(undecoded))
			for i, k := range undecoded {
				keys[i] = k.String()
			}
			return Config{}, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
		}
	}
	if err := cfg.applyEnv(getenv); err != nil {
		return Config{}, err
	}
	if cfg.FrontendURL == "" {
		cfg.FrontendURL = "http://" + cfg.ListenAddr
	}
	cfg.FrontendURL = strings.TrimRight(cfg.FrontendURL, "/")
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func (c *Config) applyEnv(getenv func(string) (string, bool)) error {
	str := map[string]*string{
		"LISTEN_ADDR":            &c.ListenAddr,
		"DATABASE_URL":           &c.DatabaseURL,
		"JWT_SECRET":             &c.JWTSecret,
		"ENCRYPTION_KEY":         &c.EncryptionKey,
		"FRONTEND_URL":           &c.FrontendURL,
		"CORS_ORIGIN":            &c.CORSOrigin,
		"SMTP_HOST":              &c.SMTP.Host,
		"SMTP_USER":              &c.SMTP.User,
		"SMTP_PASS":              &c.SMTP.Pass,
		"SMTP_FROM":              &c.SMTP.From,
		"SMTP_TLS":               &c.SMTP.TLS,
		"OPENAI_API_KEY":         &c.ProviderKeys.OpenAI,
		"ANTHROPIC_API_KEY":      &c.ProviderKeys.Anthropic,
		"GEMINI_API_KEY":         &c.ProviderKeys.Gemini,
		"OPENAI_UPSTREAM_URL":    &c.Upstreams.OpenAI,
		"ANTHROPIC_UPSTREAM_URL": &c.Upstreams.Anthropic,
		"GEMINI_UPSTREAM_URL":    &c.Upstreams.Gemini,
		"PRICES_FILE":            &c.Pricing.File,
		"METRICS_TOKEN":          &c.Metrics.Token,
		"METRICS_ADDR":           &c.Metrics.Addr,
	}
	for name, dst := range str {
		if v, ok := getenv(name); ok {
			*dst = strings.TrimSpace(v)
		}
	}
	durations := map[string]*Duration{
		"UPSTREAM_TIMEOUT":      &c.UpstreamTimeout,
		"STREAM_IDLE_TIMEOUT":   &c.StreamIdleTimeout,
		"FLUSH_INTERVAL":        &c.FlushInterval,
		"BUDGET_LEASE":          &c.BudgetLease,
		"BUDGET_LEDGER_TIMEOUT": &c.BudgetLedgerTimeout,
	}
	for name, dst := range durations {
		if v, ok := getenv(name); ok {
			if err := dst.UnmarshalText([]byte(strings.TrimSpace(v))); err != nil {
				return fmt.Errorf("%s=%q: want a duration such as 200ms or 2m", name, v)
			}
		}
	}
	for name, dst := range map[string]*Retention{"USAGE_RETENTION": &c.UsageRetention, "ROLLUP_HOURLY_RETENTION": &c.HourlyRetention} {
		if v, ok := getenv(name); ok {
			if err := dst.UnmarshalText([]byte(v)); err != nil {
				return fmt.Errorf("%s=%w", name, err)
			}
		}
	}
	if v, ok := getenv("SMTP_PORT"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("SMTP_PORT=%q: want a port number", v)
		}
		c.SMTP.Port = n
	}
	if v, ok := getenv("MAX_BODY_BYTES"); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("MAX_BODY_BYTES=%q: want a number of bytes", v)
		}
		c.MaxBodyBytes = n
	}
	if v, ok := getenv("USAGE_QUEUE_MAX"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("USAGE_QUEUE_MAX=%q: want a number of rows", v)
		}
		c.UsageQueueMax = n
	}
	c.Tracing = tracingEnabled(getenv)
	for name, dst := range map[string]*bool{"ALLOW_SIGNUP": &c.AllowSignup, "WEBHOOK_ALLOW_PRIVATE": &c.WebhookAllowPrivate} {
		if v, ok := getenv(name); ok {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%s=%q: want true or false", name, v)
			}
			*dst = b
		}
	}
	return nil
}

func (c *Config) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("LISTEN_ADDR %q: want host:port", c.ListenAddr))
	}
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is empty"))
	}
	if err := checkURL(c.FrontendURL); err != nil {
		errs = append(errs, fmt.Errorf("FRONTEND_URL: %w", err))
	}
	if c.CORSOrigin != "" {
		if c.CORSOrigin == "*" {
			errs = append(errs, errors.New("CORS_ORIGIN must name your frontend's origin, not *"))
		} else if err := checkURL(c.CORSOrigin); err != nil {
			errs = append(errs, fmt.Errorf("CORS_ORIGIN: %w", err))
		}
	}
	for name, u := range map[string]string{"OPENAI_UPSTREAM_URL": c.Upstreams.OpenAI, "ANTHROPIC_UPSTREAM_URL": c.Upstreams.Anthropic, "GEMINI_UPSTREAM_URL": c.Upstreams.Gemini} {
		if err := checkURL(u); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("JWT_SECRET must be at least 32 characters (64 random characters recommended)"))
	}
	if c.EncryptionKey != "" {
		if b, err := hex.DecodeString(c.EncryptionKey); err != nil || len(b) != 32 {
			errs = append(errs, errors.New("ENCRYPTION_KEY must be 64 hex characters (32 bytes)"))
		}
	}
	switch c.SMTP.TLS {
	case "starttls", "tls", "none":
	default:
		errs = append(errs, fmt.Errorf("SMTP_TLS %q: want starttls, tls or none", c.SMTP.TLS))
	}
	if c.SMTP.Port < 1 || c.SMTP.Port > 65535 {
		errs = append(errs, fmt.Errorf("SMTP_PORT %d: want 1-65535", c.SMTP.Port))
	}
	if c.SMTP.Host != "" && c.SMTP.From == "" {
		errs = append(errs, errors.New("SMTP_FROM is required when SMTP_HOST is set"))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("MAX_BODY_BYTES %d: want at least 1024", c.MaxBodyBytes))
	}
	if c.UsageQueueMax < 1 || c.UsageQueueMax > maxUsageQueue {
		errs = append(errs, fmt.Errorf("USAGE_QUEUE_MAX %d: want 1-%d", c.UsageQueueMax, maxUsageQueue))
	}
	for name, d := range map[string]Duration{"UPSTREAM_TIMEOUT": c.UpstreamTimeout, "STREAM_IDLE_TIMEOUT": c.StreamIdleTimeout, "FLUSH_INTERVAL": c.FlushInterval} {
		if d.Duration <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", name))
		}
	}
	// A lease shorter than a few round trips would expire reservations of live replicas; one
	// longer than an hour would hold a dead replica's share of budgets for most of a day's use.
	if l := c.BudgetLease.Duration; l < time.Second || l > time.Hour {
		errs = append(errs, fmt.Errorf("BUDGET_LEASE %s: want 1s-1h", l))
	}
	if t := c.BudgetLedgerTimeout.Duration; t < 50*time.Millisecond || t > time.Minute {
		errs = append(errs, fmt.Errorf("BUDGET_LEDGER_TIMEOUT %s: want 50ms-1m", t))
	}
	for name, r := range map[string]Retention{"USAGE_RETENTION": c.UsageRetention, "ROLLUP_HOURLY_RETENTION": c.HourlyRetention} {
		if r.Duration != 0 && (r.Duration < MinRetention || r.Duration > MaxRetention) {
			errs = append(errs, fmt.Errorf("%s %s: want 0 (keep everything) or 1d-36500d", name, r.Duration))
		}
	}
	if c.Metrics.Token != "" && len(c.Metrics.Token) < MinMetricsToken {
		errs = append(errs, fmt.Errorf("METRICS_TOKEN must be at least %d characters", MinMetricsToken))
	}
	if c.Metrics.Addr != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Addr); err != nil {
			errs = append(errs, fmt.Errorf("METRICS_ADDR %q: want host:port", c.Metrics.Addr))
		} else if c.Metrics.Addr == c.ListenAddr && port != "0" {
			errs = append(errs, errors.New("METRICS_ADDR must differ from LISTEN_ADDR: set METRICS_TOKEN to serve /metrics on the public port"))
		}
	}
	if c.Pricing.DefaultMaxOutputTokens <= 0 {
		errs = append(errs, errors.New("pricing.default_max_output_tokens must be positive"))
	}
	prices := map[string]Price{"pricing.default": c.Pricing.Default}
	for model, p := range c.Pricing.Overrides {
		prices["pricing.overrides."+model] = p
	}
	for name, p := range prices {
		if p.Input < 0 || p.CachedInput < 0 || p.CacheWrite < 0 || p.Output < 0 {
			errs = append(errs, fmt.Errorf("%s: prices cannot be negative", name))
		}
	}
	if c.Pricing.Default.Input <= 0 || c.Pricing.Default.Output <= 0 {
		errs = append(errs, errors.New("pricing.default: unknown models must not be free; set input and output above 0"))
	}
	return errors.Join(errs...)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// tracingEnabled reports whether the OTEL_* variables ask for traces: an OTLP endpoint for
// traces or for every signal, not turned off by OTEL_SDK_DISABLED=true or
// OTEL_TRACES_EXPORTER=none.
func tracingEnabled(getenv func(string) (string, bool)) bool {
	val := func(name string) string { v, _ := getenv(name); return strings.TrimSpace(v) }
	if strings.EqualFold(val("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(val("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	return val("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || val("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}
