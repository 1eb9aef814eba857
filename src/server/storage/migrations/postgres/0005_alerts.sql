-- Alerting: the SQLite schema of migrations/sqlite/0006_alerts.sql for
-- PostgreSQL (see server/storage/alerts/mod.rs for its contract). Times
-- are Unix milliseconds, as in SQLite and the queue, so both stores
-- compare and round them alike; JSON is text, given back as written.
-- Names are compared byte for byte (COLLATE "C"), as 0002 explains.

CREATE TABLE alert_rules (
    id         TEXT COLLATE "C" PRIMARY KEY,
    tenant_id  TEXT COLLATE "C", -- NULL: every tenant
    rule       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX alert_rules_tenant ON alert_rules (tenant_id);

-- The evaluator's memory: a row per (rule, tenant) pending or firing.
CREATE TABLE alert_states (
    rule_id   TEXT COLLATE "C" NOT NULL,
    tenant_id TEXT COLLATE "C" NOT NULL,
    state     TEXT COLLATE "C" NOT NULL, -- pending|firing
    alert_id  TEXT COLLATE "C" NOT NULL,
    since     BIGINT,
    PRIMARY KEY (rule_id, tenant_id)
);

-- Alerts: pending ones, and every one that fired (history). The
-- acknowledgement lives in its columns only: a commit of the evaluator
-- never overwrites one that is set.
CREATE TABLE alerts (
    id              TEXT COLLATE "C" PRIMARY KEY,
    rule_id         TEXT COLLATE "C" NOT NULL,
    tenant_id       TEXT COLLATE "C" NOT NULL,
    state           TEXT COLLATE "C" NOT NULL, -- pending|firing|resolved
    pending_since   BIGINT NOT NULL,
    fired_at        BIGINT,
    resolved_at     BIGINT,
    incident_id     TEXT COLLATE "C",
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    body            TEXT   NOT NULL -- the rest of the alert, JSON
);
-- Listings newest first, of everyone or of one tenant.
CREATE INDEX alerts_recent ON alerts (pending_since);
CREATE INDEX alerts_tenant ON alerts (tenant_id, pending_since);
-- An incident's alerts, to acknowledge them together.
CREATE INDEX alerts_incident ON alerts (incident_id) WHERE incident_id IS NOT NULL;
-- A deleted rule's pending alerts.
CREATE INDEX alerts_rule ON alerts (rule_id, state);

CREATE TABLE incidents (
    id              TEXT COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL,
    state           TEXT COLLATE "C" NOT NULL, -- firing|resolved
    opened_at       BIGINT NOT NULL,
    resolved_at     BIGINT,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    body            TEXT   NOT NULL -- the rest of the incident, JSON
);
CREATE INDEX incidents_recent ON incidents (opened_at);
CREATE INDEX incidents_tenant ON incidents (tenant_id, opened_at);
-- What the evaluator reads at start: the few incidents still open.
CREATE INDEX incidents_open ON incidents (opened_at) WHERE resolved_at IS NULL;

-- Silences: a rule, a tenant, or a rule of a tenant (NULL: any), from
-- `starts_at` until `ends_at`.
CREATE TABLE silences (
    id         TEXT COLLATE "C" PRIMARY KEY,
    rule_id    TEXT COLLATE "C",
    tenant_id  TEXT COLLATE "C",
    starts_at  BIGINT NOT NULL,
    ends_at    BIGINT NOT NULL,
    reason     TEXT,
    created_by TEXT   NOT NULL
);
CREATE INDEX silences_ends ON silences (ends_at);

-- Named leases with a fencing token, such as the evaluator's: a holder
-- keeps its token while it renews; another takes over only after
-- `expires_at`, with the token plus one. Taken by one upsert, which
-- PostgreSQL serializes on the row, so two nodes never both get it.
CREATE TABLE leases (
    name       TEXT COLLATE "C" PRIMARY KEY,
    holder     TEXT COLLATE "C" NOT NULL,
    token      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
