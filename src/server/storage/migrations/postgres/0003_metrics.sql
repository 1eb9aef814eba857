-- Metric rollups, conversations and campaigns: the SQLite schema of
-- migrations/sqlite/0004_metrics.sql for PostgreSQL (BIGINT, DOUBLE
-- PRECISION, byte-wise collation as 0002). Written in the append's
-- transaction, under its advisory lock: an event is counted exactly when
-- it is stored, by whichever node stores it.

-- Counters per tenant and minute; `key` is a dimension (a campaign id,
-- a latency bucket), '' when none. Kept 48 hours: the 1h and 24h series.
-- Keyed by time first: every append writes at the right edge of one
-- B-tree (no second index to keep), and series and expiry read a range.
CREATE TABLE metric_minutes (
    tenant_id TEXT COLLATE "C" NOT NULL,
    metric    TEXT COLLATE "C" NOT NULL,
    minute    BIGINT  NOT NULL,
    key       TEXT COLLATE "C" NOT NULL,
    n         BIGINT  NOT NULL,
    sum_value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (minute, tenant_id, metric, key)
);

-- The same per hour, kept 400 days: the 7d and 30d series, campaigns'
-- hourly and daily figures.
CREATE TABLE metric_hours (
    tenant_id TEXT COLLATE "C" NOT NULL,
    metric    TEXT COLLATE "C" NOT NULL,
    hour      BIGINT  NOT NULL,
    key       TEXT COLLATE "C" NOT NULL,
    n         BIGINT  NOT NULL,
    sum_value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (hour, tenant_id, metric, key)
);

-- Since the first event: the aggregator's starting point.
CREATE TABLE metric_totals (
    tenant_id TEXT COLLATE "C" NOT NULL,
    metric    TEXT COLLATE "C" NOT NULL,
    key       TEXT COLLATE "C" NOT NULL,
    n         BIGINT  NOT NULL,
    sum_value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, metric, key)
);

-- Sampled figures, the last sample of each minute per node (`node` is
-- '' for a figure every node computes the same). `tenant_id` '*' is
-- every tenant. Kept 31 days.
CREATE TABLE metric_gauges (
    tenant_id TEXT COLLATE "C" NOT NULL,
    metric    TEXT COLLATE "C" NOT NULL,
    minute    BIGINT  NOT NULL,
    node      TEXT COLLATE "C" NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (minute, tenant_id, metric, node)
);

-- A conversation is active while started, not ended since, and not idle
-- past the window.
CREATE TABLE conversations (
    tenant_id        TEXT COLLATE "C" NOT NULL,
    conversation_id  TEXT COLLATE "C" NOT NULL,
    started_at       BIGINT ,
    ended_at         BIGINT ,
    last_activity_at BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
);
CREATE INDEX conversations_by_activity ON conversations (last_activity_at);

CREATE TABLE campaigns (
    tenant_id       TEXT COLLATE "C" NOT NULL,
    campaign_id     TEXT COLLATE "C" NOT NULL,
    name            TEXT COLLATE "C",
    status          TEXT COLLATE "C" NOT NULL,
    status_at       BIGINT ,
    total_contacts  BIGINT ,
    sent            BIGINT  NOT NULL,
    failed          BIGINT  NOT NULL,
    reported_sent   BIGINT ,
    reported_failed BIGINT ,
    position        BIGINT ,
    created_at      BIGINT ,
    started_at      BIGINT ,
    completed_at    BIGINT ,
    first_sent_at   BIGINT ,
    last_sent_at    BIGINT ,
    interval_count  BIGINT  NOT NULL,
    interval_sum    BIGINT  NOT NULL,
    interval_min    BIGINT ,
    interval_max    BIGINT ,
    answered        BIGINT  NOT NULL,
    busy            BIGINT  NOT NULL,
    calls_failed    BIGINT  NOT NULL,
    converted       BIGINT  NOT NULL,
    opt_out         BIGINT  NOT NULL,
    first_event_at  BIGINT  NOT NULL,
    last_event_at   BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id)
);
CREATE INDEX campaigns_recent ON campaigns (tenant_id, first_event_at);

CREATE TABLE campaign_errors (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    campaign_id TEXT COLLATE "C" NOT NULL,
    error       TEXT COLLATE "C" NOT NULL,
    n           BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, error)
);
