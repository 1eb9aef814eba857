-- Metric rollups, conversations and campaigns, written in the append's
-- transaction (see server/metrics/rollup.rs): an event is counted exactly
-- when it is stored. Times are Unix seconds (minute, hour) or
-- milliseconds (`*_at`).

-- Counters per tenant and minute; `key` is a dimension (a campaign id,
-- a latency bucket), '' when none. Kept 48 hours: the 1h and 24h series.
-- Keyed by time first: every append writes at the right edge of one
-- B-tree (no second index to keep), and series and expiry read a range.
CREATE TABLE metric_minutes (
    tenant_id TEXT    NOT NULL,
    metric    TEXT    NOT NULL,
    minute    INTEGER NOT NULL,
    key       TEXT    NOT NULL,
    n         INTEGER NOT NULL,
    sum_value REAL    NOT NULL,
    PRIMARY KEY (minute, tenant_id, metric, key)
) WITHOUT ROWID;

-- The same per hour, kept 400 days: the 7d and 30d series, campaigns'
-- hourly and daily figures.
CREATE TABLE metric_hours (
    tenant_id TEXT    NOT NULL,
    metric    TEXT    NOT NULL,
    hour      INTEGER NOT NULL,
    key       TEXT    NOT NULL,
    n         INTEGER NOT NULL,
    sum_value REAL    NOT NULL,
    PRIMARY KEY (hour, tenant_id, metric, key)
) WITHOUT ROWID;

-- Since the first event: the aggregator's starting point.
CREATE TABLE metric_totals (
    tenant_id TEXT    NOT NULL,
    metric    TEXT    NOT NULL,
    key       TEXT    NOT NULL,
    n         INTEGER NOT NULL,
    sum_value REAL    NOT NULL,
    PRIMARY KEY (tenant_id, metric, key)
) WITHOUT ROWID;

-- Sampled figures, the last sample of each minute per node (`node` is
-- '' for a figure every node computes the same). `tenant_id` '*' is
-- every tenant. Kept 31 days.
CREATE TABLE metric_gauges (
    tenant_id TEXT    NOT NULL,
    metric    TEXT    NOT NULL,
    minute    INTEGER NOT NULL,
    node      TEXT    NOT NULL,
    value     REAL    NOT NULL,
    PRIMARY KEY (minute, tenant_id, metric, node)
) WITHOUT ROWID;

-- A conversation is active while started, not ended since, and not idle
-- past the window.
CREATE TABLE conversations (
    tenant_id        TEXT    NOT NULL,
    conversation_id  TEXT    NOT NULL,
    started_at       INTEGER,
    ended_at         INTEGER,
    last_activity_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
) WITHOUT ROWID;
CREATE INDEX conversations_by_activity ON conversations (last_activity_at);

CREATE TABLE campaigns (
    tenant_id       TEXT    NOT NULL,
    campaign_id     TEXT    NOT NULL,
    name            TEXT,
    status          TEXT    NOT NULL,
    status_at       INTEGER,
    total_contacts  INTEGER,
    sent            INTEGER NOT NULL,
    failed          INTEGER NOT NULL,
    reported_sent   INTEGER,
    reported_failed INTEGER,
    position        INTEGER,
    created_at      INTEGER,
    started_at      INTEGER,
    completed_at    INTEGER,
    first_sent_at   INTEGER,
    last_sent_at    INTEGER,
    interval_count  INTEGER NOT NULL,
    interval_sum    INTEGER NOT NULL,
    interval_min    INTEGER,
    interval_max    INTEGER,
    answered        INTEGER NOT NULL,
    busy            INTEGER NOT NULL,
    calls_failed    INTEGER NOT NULL,
    converted       INTEGER NOT NULL,
    opt_out         INTEGER NOT NULL,
    first_event_at  INTEGER NOT NULL,
    last_event_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id)
) WITHOUT ROWID;
CREATE INDEX campaigns_recent ON campaigns (tenant_id, first_event_at);

CREATE TABLE campaign_errors (
    tenant_id   TEXT    NOT NULL,
    campaign_id TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, error)
) WITHOUT ROWID;
