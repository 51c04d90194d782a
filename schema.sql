-- TokenGuard schema. Applied on start by store.Open: every "-- migration: N" step whose number is
-- above the database's user_version runs in its own transaction, in order. Never edit a step that
-- has shipped; add a new one.
--
-- Conventions: timestamps are INTEGER unix milliseconds (UTC); money is INTEGER nano-dollars
-- (1e-9 USD) so that period counters equal the sum of usage rows exactly; NULL budget = no limit.

-- migration: 1

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name          TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    -- Bumped to revoke every session of the user (password change); JWTs carry the value they
    -- were issued under.
    session_epoch INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE workspaces (
    id                  INTEGER PRIMARY KEY,
    name                TEXT NOT NULL,
    daily_budget_nano   INTEGER CHECK (daily_budget_nano >= 0),
    monthly_budget_nano INTEGER CHECK (monthly_budget_nano >= 0),
    plan                TEXT NOT NULL DEFAULT 'free',
    created_at          INTEGER NOT NULL,
    deleted_at          INTEGER
);

CREATE TABLE memberships (
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    user_id      INTEGER NOT NULL REFERENCES users (id),
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE projects (
    id                  INTEGER PRIMARY KEY,
    workspace_id        INTEGER NOT NULL REFERENCES workspaces (id),
    name                TEXT NOT NULL,
    daily_budget_nano   INTEGER CHECK (daily_budget_nano >= 0),
    monthly_budget_nano INTEGER CHECK (monthly_budget_nano >= 0),
    fallback_model      TEXT NOT NULL DEFAULT '',
    alert_email         TEXT NOT NULL DEFAULT '',
    -- The key itself is never stored: a lookup prefix and a bcrypt hash of the whole key.
    key_prefix          TEXT NOT NULL UNIQUE,
    key_hash            TEXT NOT NULL,
    active              INTEGER NOT NULL DEFAULT 1,
    last_used_at        INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    -- Soft delete: usage rows keep pointing at the project they were spent by.
    deleted_at          INTEGER
);
CREATE INDEX projects_workspace ON projects (workspace_id);

-- Provider keys are AES-256-GCM sealed; the additional data binds each ciphertext to its
-- (project, provider) row, so a ciphertext copied elsewhere fails to open.
CREATE TABLE provider_keys (
    project_id INTEGER NOT NULL REFERENCES projects (id),
    provider   TEXT NOT NULL CHECK (provider IN ('openai', 'anthropic', 'gemini')),
    ciphertext BLOB NOT NULL,
    masked     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, provider)
) WITHOUT ROWID;

CREATE TABLE usage_logs (
    id                INTEGER PRIMARY KEY,
    -- Unique per proxied request, so a retried batch never counts a request twice.
    request_id        TEXT NOT NULL UNIQUE,
    created_at        INTEGER NOT NULL,
    workspace_id      INTEGER NOT NULL,
    project_id        INTEGER NOT NULL,
    provider          TEXT NOT NULL,
    original_model    TEXT NOT NULL,
    final_model       TEXT NOT NULL,
    was_fallback      INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    input_tokens      INTEGER NOT NULL,
    output_tokens     INTEGER NOT NULL,
    -- As the provider reported it (it can include cached and reasoning tokens the two above
    -- do not split out), so not always input_tokens + output_tokens.
    total_tokens      INTEGER NOT NULL,
    cost_nano         INTEGER NOT NULL,
    latency_ms        INTEGER NOT NULL,
    error_code        TEXT NOT NULL DEFAULT '',
    stream            INTEGER NOT NULL,
    usage_estimated   INTEGER NOT NULL,
    priced_by_default INTEGER NOT NULL
);
CREATE INDEX usage_logs_workspace_time ON usage_logs (workspace_id, created_at, id);
CREATE INDEX usage_logs_project_time ON usage_logs (project_id, created_at, id);

-- Spend per budget window, written in the same transaction as the usage rows it sums.
CREATE TABLE spend_counters (
    scope      TEXT NOT NULL CHECK (scope IN ('project', 'workspace')),
    scope_id   INTEGER NOT NULL,
    -- 'YYYY-MM-DD' for a UTC day, 'YYYY-MM' for a UTC month.
    period     TEXT NOT NULL,
    spend_nano INTEGER NOT NULL,
    PRIMARY KEY (scope, scope_id, period)
) WITHOUT ROWID;

CREATE TABLE invites (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    email        TEXT NOT NULL COLLATE NOCASE,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    -- SHA-256 of the token: the token itself only travels in the accept link.
    token_hash   BLOB NOT NULL UNIQUE,
    invited_by   INTEGER NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    accepted_at  INTEGER,
    accepted_by  INTEGER REFERENCES users (id),
    cancelled_at INTEGER
);
CREATE INDEX invites_workspace ON invites (workspace_id);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL,
    actor_user_id INTEGER,
    action        TEXT NOT NULL,
    target_type   TEXT NOT NULL DEFAULT '',
    target_id     TEXT NOT NULL DEFAULT '',
    details       TEXT NOT NULL DEFAULT '{}',
    ip            TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);
CREATE INDEX audit_log_workspace ON audit_log (workspace_id, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

-- One row per outgoing message: its outcome, never its body (invite links carry tokens).
CREATE TABLE mail_log (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    to_addr    TEXT NOT NULL,
    subject    TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- migration: 2

-- One row per budget alert mailed: at most one per budget, period and threshold. The insert
-- (ON CONFLICT DO NOTHING) decides who sends, so neither a second crossing in the same period
-- nor a restart mails again. subject_id is a project or workspace id, by scope; period is
-- "2006-01-02" (daily) or "2006-01" (monthly), UTC.
CREATE TABLE budget_alerts (
    scope      TEXT NOT NULL CHECK (scope IN ('project', 'workspace')),
    subject_id INTEGER NOT NULL,
    budget     TEXT NOT NULL CHECK (budget IN ('daily', 'monthly')),
    period     TEXT NOT NULL,
    threshold  INTEGER NOT NULL CHECK (threshold IN (80, 100)),
    spend_nano INTEGER NOT NULL,
    limit_nano INTEGER NOT NULL,
    recipients INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, subject_id, budget, period, threshold)
) WITHOUT ROWID;

-- migration: 3

-- budgetMode of a project and of a workspace. 'soft': a request that starts under the budget runs
-- to completion, so a burst can overshoot by about one request. 'strict': the proxy lowers a
-- request's output cap to what the remaining budget affords, and refuses only when even a short
-- answer cannot be paid. Existing rows keep today's behaviour.
ALTER TABLE projects ADD COLUMN budget_mode TEXT NOT NULL DEFAULT 'soft'
    CHECK (budget_mode IN ('soft', 'strict'));
ALTER TABLE workspaces ADD COLUMN budget_mode TEXT NOT NULL DEFAULT 'soft'
    CHECK (budget_mode IN ('soft', 'strict'));

-- migration: 4

-- The version of the prices a usage row's cost was computed from (pricing.Table.Version, such as
-- 'genai-prices@0.1.8+ac450c11'); '' for rows written before prices were versioned. A row keeps
-- the cost it was written with when prices change: re-pricing is never retroactive.
ALTER TABLE usage_logs ADD COLUMN prices_version TEXT NOT NULL DEFAULT ''
    CHECK (length(prices_version) <= 64);

-- migration: 5

-- Hourly and daily sums of usage_logs, so that analytics read a few thousand rollup rows instead
-- of millions of usage rows. InsertUsage adds to them in the same transaction as the rows they
-- sum (and only for rows it actually inserted), so they are exact and never lag. period_start is
-- the start of the UTC hour or day in unix ms. errors counts status >= 400 other than
-- BUDGET_EXCEEDED, which blocked counts; last_at is the newest created_at summed in. Both model
-- columns are keys so that the partial model filter (on the original or the final model) is
-- answered exactly.
CREATE TABLE usage_hourly (
    workspace_id   INTEGER NOT NULL,
    period_start   INTEGER NOT NULL,
    project_id     INTEGER NOT NULL,
    provider       TEXT NOT NULL,
    final_model    TEXT NOT NULL,
    original_model TEXT NOT NULL,
    requests       INTEGER NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    total_tokens   INTEGER NOT NULL,
    cost_nano      INTEGER NOT NULL,
    latency_ms     INTEGER NOT NULL,
    errors         INTEGER NOT NULL,
    blocked        INTEGER NOT NULL,
    fallbacks      INTEGER NOT NULL,
    estimated      INTEGER NOT NULL,
    streams        INTEGER NOT NULL,
    last_at        INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, period_start, project_id, provider, final_model, original_model)
) WITHOUT ROWID;

CREATE TABLE usage_daily (
    workspace_id   INTEGER NOT NULL,
    period_start   INTEGER NOT NULL,
    project_id     INTEGER NOT NULL,
    provider       TEXT NOT NULL,
    final_model    TEXT NOT NULL,
    original_model TEXT NOT NULL,
    requests       INTEGER NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    total_tokens   INTEGER NOT NULL,
    cost_nano      INTEGER NOT NULL,
    latency_ms     INTEGER NOT NULL,
    errors         INTEGER NOT NULL,
    blocked        INTEGER NOT NULL,
    fallbacks      INTEGER NOT NULL,
    estimated      INTEGER NOT NULL,
    streams        INTEGER NOT NULL,
    last_at        INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, period_start, project_id, provider, final_model, original_model)
) WITHOUT ROWID;

-- The usage rows written before the rollups existed: store.Open sums ids in (done_id, last_id]
-- into the rollups in bounded batches, recording its progress in the same transaction as each
-- batch, so an interrupted start resumes where it stopped. The row is deleted when done.
CREATE TABLE rollup_backfill (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    done_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL
);
INSERT INTO rollup_backfill (id, done_id, last_id) SELECT 1, 0, id FROM usage_logs ORDER BY id DESC LIMIT 1;

-- migration: 6

-- A project's and a workspace's production controls. rpm_limit and tpm_limit are requests and
-- tokens per minute (0 = no limit; at most 1e9). allowed_models is a JSON array of exact model
-- names and 'prefix*' patterns the project may call ('[]' = every model). fallback_on_error
-- serves the fallback model when the requested one fails upstream. end_user_daily_budget_nano
-- caps the UTC-day spend of each end user of the project (0 = no limit). Existing rows get no
-- limits, every model and no failover: today's behaviour.
ALTER TABLE projects ADD COLUMN rpm_limit INTEGER NOT NULL DEFAULT 0
    CHECK (rpm_limit BETWEEN 0 AND 1000000000);
ALTER TABLE projects ADD COLUMN tpm_limit INTEGER NOT NULL DEFAULT 0
    CHECK (tpm_limit BETWEEN 0 AND 1000000000);
ALTER TABLE projects ADD COLUMN allowed_models TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(allowed_models) AND json_type(allowed_models) = 'array' AND length(allowed_models) <= 65536);
ALTER TABLE projects ADD COLUMN fallback_on_error INTEGER NOT NULL DEFAULT 0
    CHECK (fallback_on_error IN (0, 1));
ALTER TABLE projects ADD COLUMN end_user_daily_budget_nano INTEGER NOT NULL DEFAULT 0
    CHECK (end_user_daily_budget_nano >= 0);
ALTER TABLE workspaces ADD COLUMN rpm_limit INTEGER NOT NULL DEFAULT 0
    CHECK (rpm_limit BETWEEN 0 AND 1000000000);
ALTER TABLE workspaces ADD COLUMN tpm_limit INTEGER NOT NULL DEFAULT 0
    CHECK (tpm_limit BETWEEN 0 AND 1000000000);

-- migration: 7

-- What a request's detail shows and its usage counts: cache reads and writes and reasoning tokens
-- where the provider reports them (0 when it does not), time to first byte of a stream, the
-- provider's own error message (bounded and redacted by the proxy) and the end user the request
-- was for. Zero and '' cost one header byte per row each.
ALTER TABLE usage_logs ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_logs ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_logs ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_logs ADD COLUMN ttfb_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_logs ADD COLUMN error_message TEXT NOT NULL DEFAULT ''
    CHECK (length(error_message) <= 512);
ALTER TABLE usage_logs ADD COLUMN end_user TEXT NOT NULL DEFAULT ''
    CHECK (length(end_user) <= 256);
-- A row names the prices it was computed from by a small id instead of repeating the version
-- text (27 bytes) on every row; rows written before keep their text in prices_version, and new
-- rows leave it ''. 0 names no version.
CREATE TABLE prices_versions (
    id      INTEGER PRIMARY KEY,
    version TEXT NOT NULL UNIQUE CHECK (length(version) <= 64)
);
ALTER TABLE usage_logs ADD COLUMN prices_version_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_hourly ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_hourly ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_hourly ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;

-- migration: 8

-- A workspace's webhook for its budget crossings (issue 13). The URL and the signing secret are
-- AES-256-GCM sealed (secret.Box, additional data naming the workspace and the field), like
-- provider keys: a Slack webhook URL is itself a credential. url_masked is the only form shown.
CREATE TABLE webhooks (
    workspace_id  INTEGER PRIMARY KEY REFERENCES workspaces (id),
    url_sealed    BLOB NOT NULL,
    url_masked    TEXT NOT NULL CHECK (length(url_masked) <= 300),
    secret_sealed BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- The webhook outbox: one row per event to deliver, written before any attempt, so a restart
-- resumes the retries. dedupe_key ('project:12:daily:2026-12-01:80') makes a crossing's event
-- once per budget, period and threshold, like budget_alerts; test events have none. status is
-- pending (next_at is when the next attempt is due), sent or failed; finished rows are pruned
-- after 45 days, longer than any budget period, so the dedupe holds for the whole period.
CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    event        TEXT NOT NULL CHECK (length(event) <= 64),
    dedupe_key   TEXT CHECK (length(dedupe_key) <= 200),
    body         TEXT NOT NULL CHECK (length(body) <= 16384),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    last_status  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '' CHECK (length(last_error) <= 600),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX webhook_deliveries_dedupe ON webhook_deliveries (workspace_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_workspace ON webhook_deliveries (workspace_id, id);

-- migration: 9

-- Signed-out dashboard sessions (app/web): a session cookie whose random id is listed here opens
-- nothing, so signing out ends the session on the server and not only in the browser.
-- expires_at (unix ms) is when every cookie carrying the id has expired anyway; later sign-outs
-- delete rows past it in small batches.
CREATE TABLE revoked_sessions (
    sid        BLOB PRIMARY KEY CHECK (length(sid) = 16),
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- migration: 10

-- usage_daily without the project: a workspace's days by provider and model, for the reads that
-- neither filter nor group by project (most of the dashboard's and the API's). They then read a
-- row per model a day instead of one per project and model, and sort that many fewer (40
-- projects: 40 times fewer). project_id is always 0, so the table has usage_daily's shape and is
-- written and read by the same code; it is built here from usage_daily, which holds every row
-- already summed (a backfill still running adds the rest to both).
CREATE TABLE usage_daily_workspace (
    workspace_id       INTEGER NOT NULL,
    period_start       INTEGER NOT NULL,
    project_id         INTEGER NOT NULL CHECK (project_id = 0),
    provider           TEXT NOT NULL,
    final_model        TEXT NOT NULL,
    original_model     TEXT NOT NULL,
    requests           INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    total_tokens       INTEGER NOT NULL,
    cost_nano          INTEGER NOT NULL,
    latency_ms         INTEGER NOT NULL,
    errors             INTEGER NOT NULL,
    blocked            INTEGER NOT NULL,
    fallbacks          INTEGER NOT NULL,
    estimated          INTEGER NOT NULL,
    streams            INTEGER NOT NULL,
    last_at            INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, period_start, project_id, provider, final_model, original_model)
) WITHOUT ROWID;
INSERT INTO usage_daily_workspace (workspace_id, period_start, project_id, provider, final_model, original_model,
    requests, input_tokens, output_tokens, total_tokens, cost_nano, latency_ms, errors, blocked, fallbacks,
    estimated, streams, last_at, cache_read_tokens, cache_write_tokens, reasoning_tokens)
SELECT workspace_id, period_start, 0, provider, final_model, original_model, sum(requests), sum(input_tokens),
    sum(output_tokens), sum(total_tokens), sum(cost_nano), sum(latency_ms), sum(errors), sum(blocked),
    sum(fallbacks), sum(estimated), sum(streams), max(last_at), sum(cache_read_tokens), sum(cache_write_tokens),
    sum(reasoning_tokens)
FROM usage_daily GROUP BY workspace_id, period_start, provider, final_model, original_model;
