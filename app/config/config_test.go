package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tokenguard/app/config"
	"tokenguard/app/usage"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// load runs config.Load over file (none when empty, else written to a temp file) and vars.
func load(t *testing.T, file string, vars map[string]string) (config.Config, error) {
	t.Helper()
	path := ""
	if file != "" {
		path = filepath.Join(t.TempDir(), "c.toml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return config.Load(path, env(vars))
}

// TestLoadDefaults ensures TokenGuard starts with nothing configured.
func TestLoadDefaults(t *testing.T) {
	cfg, err := config.Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.ListenAddr, "127.0.0.1:8080"; got != want {
		t.Errorf("ListenAddr = %q, want %q", got, want)
	}
	if got, want := cfg.FrontendURL, "http://127.0.0.1:8080"; got != want {
		t.Errorf("FrontendURL = %q, want %q", got, want)
	}
	if got, want := cfg.FlushInterval.Duration, 200*time.Millisecond; got != want {
		t.Errorf("FlushInterval = %v, want %v", got, want)
	}
	if got, want := cfg.UsageQueueMax, usage.DefaultMaxQueue; got != want {
		t.Errorf("UsageQueueMax = %d, want the writer's default %d", got, want)
	}
	if !cfg.AllowSignup || cfg.MaxBodyBytes != 32<<20 || cfg.SMTP.Port != 587 || cfg.SMTP.TLS != "starttls" {
		t.Errorf("defaults wrong: %+v", cfg)
	}
}

// TestEnvOverridesFile ensures the precedence defaults < file < environment.
func TestEnvOverridesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokenguard.toml")
	os.WriteFile(path, []byte(`
listen_addr = "127.0.0.1:9000"
flush_interval = "50ms"
usage_queue_max = 100
allow_signup = false
[smtp]
host = "mail.example.com"
from = "tg@example.com"
[pricing.overrides."my-model"]
input = 1.5
output = 3
`), 0o600)
	cfg, err := config.Load(path, env(map[string]string{"LISTEN_ADDR": "127.0.0.1:9100", "SMTP_PORT": "2525", "USAGE_QUEUE_MAX": "250"}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.ListenAddr, "127.0.0.1:9100"; got != want {
		t.Errorf("ListenAddr = %q, want %q", got, want)
	}
	if got, want := cfg.FlushInterval.Duration, 50*time.Millisecond; got != want {
		t.Errorf("FlushInterval = %v, want %v", got, want)
	}
	if cfg.AllowSignup || cfg.SMTP.Host != "mail.example.com" || cfg.SMTP.Port != 2525 {
		t.Errorf("file/env not applied: %+v", cfg)
	}
	if got, want := cfg.UsageQueueMax, 250; got != want {
		t.Errorf("UsageQueueMax = %d, want %d", got, want)
	}
	if got := cfg.Pricing.Overrides["my-model"].Input; got != 1.5 {
		t.Errorf("override input = %v, want 1.5", got)
	}
}

// TestLoadRejectsBadInput ensures every malformed setting is named in a clear error.
func TestLoadRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		file string
		want string
	}{
		{"listen", map[string]string{"LISTEN_ADDR": "8080"}, "", "LISTEN_ADDR"},
		{"duration", map[string]string{"FLUSH_INTERVAL": "soon"}, "", "FLUSH_INTERVAL"},
		{"negative duration", map[string]string{"UPSTREAM_TIMEOUT": "-1s"}, "", "UPSTREAM_TIMEOUT"},
		{"body", map[string]string{"MAX_BODY_BYTES": "lots"}, "", "MAX_BODY_BYTES"},
		{"signup", map[string]string{"ALLOW_SIGNUP": "maybe"}, "", "ALLOW_SIGNUP"},
		{"queue not a number", map[string]string{"USAGE_QUEUE_MAX": "lots"}, "", "USAGE_QUEUE_MAX"},
		{"queue zero", map[string]string{"USAGE_QUEUE_MAX": "0"}, "", "USAGE_QUEUE_MAX"},
		{"queue too big", map[string]string{"USAGE_QUEUE_MAX": "1000001"}, "", "USAGE_QUEUE_MAX"},
		{"queue overflow", map[string]string{"USAGE_QUEUE_MAX": "99999999999999999999"}, "", "USAGE_QUEUE_MAX"},
		{"queue in file", nil, "usage_queue_max = -5\n", "USAGE_QUEUE_MAX"},
		{"encryption key", map[string]string{"ENCRYPTION_KEY": "abc"}, "", "ENCRYPTION_KEY"},
		{"jwt", map[string]string{"JWT_SECRET": "short"}, "", "JWT_SECRET"},
		{"smtp tls", map[string]string{"SMTP_TLS": "ssl"}, "", "SMTP_TLS"},
		{"cors star", map[string]string{"CORS_ORIGIN": "*"}, "", "CORS_ORIGIN"},
		{"upstream", map[string]string{"OPENAI_UPSTREAM_URL": "ftp://x"}, "", "OPENAI_UPSTREAM_URL"},
		{"unknown key", nil, "listen_adr = \"x\"\n", "unknown keys"},
		{"retention not a duration", map[string]string{"USAGE_RETENTION": "a while"}, "", "USAGE_RETENTION"},
		{"retention negative days", map[string]string{"USAGE_RETENTION": "-5d"}, "", "USAGE_RETENTION"},
		{"retention under a day", map[string]string{"USAGE_RETENTION": "2h"}, "", "USAGE_RETENTION"},
		{"retention past a century", map[string]string{"ROLLUP_HOURLY_RETENTION": "99999999999999999d"}, "", "ROLLUP_HOURLY_RETENTION"},
		{"retention in file", nil, "usage_retention = \"12x\"\n", "usage_retention"},
		{"free default", nil, "[pricing.default]\ninput = 0\noutput = 0\n", "must not be free"},
		{"short metrics token", map[string]string{"METRICS_TOKEN": "short"}, "", "METRICS_TOKEN"},
		{"metrics addr", map[string]string{"METRICS_ADDR": "9090"}, "", "METRICS_ADDR"},
		{"metrics on the public port", map[string]string{"METRICS_ADDR": "127.0.0.1:8080"}, "", "METRICS_ADDR must differ"},
		{"lease too short", map[string]string{"BUDGET_LEASE": "100ms"}, "", "BUDGET_LEASE"},
		{"lease too long", map[string]string{"BUDGET_LEASE": "2h"}, "", "BUDGET_LEASE"},
		{"lease not a duration", map[string]string{"BUDGET_LEASE": "long"}, "", "BUDGET_LEASE"},
		{"ledger timeout too short", map[string]string{"BUDGET_LEDGER_TIMEOUT": "1ms"}, "", "BUDGET_LEDGER_TIMEOUT"},
		{"ledger timeout in file", nil, "budget_ledger_timeout = \"5m\"\n", "BUDGET_LEDGER_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.file, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

// TestObservability ensures metrics stay off unless METRICS_TOKEN or METRICS_ADDR is set, and
// tracing unless an OTLP endpoint is, with the SDK's own switches turning it off again.
func TestObservability(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		wantMetrics config.Metrics
		wantTracing bool
	}{
		{"defaults", nil, config.Metrics{}, false},
		{"metrics token", map[string]string{"METRICS_TOKEN": " 0123456789abcdef "}, config.Metrics{Token: "0123456789abcdef"}, false},
		{"metrics listener", map[string]string{"METRICS_ADDR": "127.0.0.1:9464"}, config.Metrics{Addr: "127.0.0.1:9464"}, false},
		{"otlp endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, config.Metrics{}, true},
		{"otlp traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, config.Metrics{}, true},
		{"empty endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, config.Metrics{}, false},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, config.Metrics{}, false},
		{"traces exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, config.Metrics{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := load(t, "", tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Metrics != tt.wantMetrics || cfg.Tracing != tt.wantTracing {
				t.Errorf("metrics %+v tracing %v, want %+v %v", cfg.Metrics, cfg.Tracing, tt.wantMetrics, tt.wantTracing)
			}
		})
	}
}

// TestRetention ensures raw usage rows are kept forever unless USAGE_RETENTION says otherwise,
// hourly rollups 400 days, and that both read days, Go durations and 0 from the file and the
// environment.
func TestRetention(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name                string
		file                string
		env                 map[string]string
		wantRaw, wantHourly time.Duration
	}{
		{"defaults", "", nil, 0, 400 * day},
		{"days in env", "", map[string]string{"USAGE_RETENTION": "90d", "ROLLUP_HOURLY_RETENTION": "0"}, 90 * day, 0},
		{"duration in file", "usage_retention = \"720h\"\nrollup_hourly_retention = \"800d\"\n", nil, 30 * day, 800 * day},
		{"env over file", "usage_retention = \"30d\"\n", map[string]string{"USAGE_RETENTION": " 0 "}, 0, 400 * day},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := load(t, tt.file, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.UsageRetention.Duration; got != tt.wantRaw {
				t.Errorf("UsageRetention = %v, want %v", got, tt.wantRaw)
			}
			if got := cfg.HourlyRetention.Duration; got != tt.wantHourly {
				t.Errorf("HourlyRetention = %v, want %v", got, tt.wantHourly)
			}
		})
	}
}

// TestEnsureSecrets ensures first-run secrets are generated once, kept private, and reused.
func TestEnsureSecrets(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load("", env(map[string]string{"DATABASE_URL": filepath.Join(dir, "tg.db")}))
	if err != nil {
		t.Fatal(err)
	}
	gen, path, err := config.EnsureSecrets(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(gen) != 2 || cfg.JWTSecret == "" || len(cfg.EncryptionKey) != 64 {
		t.Fatalf("generated %v, cfg %q %q", gen, cfg.JWTSecret, cfg.EncryptionKey)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("secrets file mode = %v, want 0600", got)
	}

	again, _ := config.Load("", env(map[string]string{"DATABASE_URL": "file:" + filepath.Join(dir, "tg.db") + "?mode=rwc"}))
	gen2, _, err := config.EnsureSecrets(&again)
	if err != nil {
		t.Fatal(err)
	}
	if len(gen2) != 0 || again.JWTSecret != cfg.JWTSecret || again.EncryptionKey != cfg.EncryptionKey {
		t.Errorf("second start generated %v or changed secrets", gen2)
	}
}

// TestExampleConfigLoads ensures the documented example file is valid and matches the defaults.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := config.Load("../../tokenguard.example.toml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	def, _ := config.Load("", env(nil))
	if cfg.ListenAddr != def.ListenAddr || cfg.MaxBodyBytes != def.MaxBodyBytes || cfg.FlushInterval != def.FlushInterval || cfg.UsageQueueMax != def.UsageQueueMax || cfg.Pricing.Default != def.Pricing.Default {
		t.Errorf("example config differs from the defaults:\n%+v\n%+v", cfg, def)
	}
}

// TestPostgresNeedsSharedSecrets ensures a replica on PostgreSQL never generates its own
// JWT_SECRET or ENCRYPTION_KEY (another replica could not check its sessions or open its
// provider keys): start-up is refused, naming both, and nothing is written.
func TestPostgresNeedsSharedSecrets(t *testing.T) {
	for _, set := range []map[string]string{{}, {"JWT_SECRET": strings.Repeat("j", 64)}} {
		c := config.Config{DatabaseURL: "postgres://tg@127.0.0.1/tg"}
		if v, ok := set["JWT_SECRET"]; ok {
			c.JWTSecret = v
		}
		generated, path, err := config.EnsureSecrets(&c)
		if err == nil || !strings.Contains(err.Error(), "JWT_SECRET and ENCRYPTION_KEY") || len(generated) != 0 || path != "" {
			t.Errorf("with %v set: EnsureSecrets = %v, %q, %v; want a refusal naming both secrets", set, generated, path, err)
		}
	}
}
