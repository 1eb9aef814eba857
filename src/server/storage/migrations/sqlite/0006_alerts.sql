-- Alerting (see server/storage/alerts/mod.rs for its contract). Times are
-- Unix milliseconds, as in the queue; what no query filters on is kept as
-- JSON text (`rule`, `body`), so the protocol types can grow without a
-- migration.

-- Rules by id, each the whole checked rule as JSON. `tenant_id` is the
-- rule's own (NULL: every tenant), kept apart so a tenant's listing is a
-- lookup.
CREATE TABLE alert_rules (
    id         TEXT    PRIMARY KEY,
    tenant_id  TEXT,
    rule       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX alert_rules_tenant ON alert_rules (tenant_id);

-- The evaluator's memory: a row per (rule, tenant) pending or firing.
CREATE TABLE alert_states (
    rule_id   TEXT    NOT NULL,
    tenant_id TEXT    NOT NULL,
    state     TEXT    NOT NULL, -- pending|firing
    alert_id  TEXT    NOT NULL,
    since     INTEGER,
    PRIMARY KEY (rule_id, tenant_id)
) WITHOUT ROWID;

-- Alerts: pending ones, and every one that fired (history). The
-- acknowledgement lives in its columns only: a commit of the evaluator
-- never overwrites one that is set.
CREATE TABLE alerts (
    id              TEXT    PRIMARY KEY,
    rule_id         TEXT    NOT NULL,
    tenant_id       TEXT    NOT NULL,
    state           TEXT    NOT NULL, -- pending|firing|resolved
    pending_since   INTEGER NOT NULL,
    fired_at        INTEGER,
    resolved_at     INTEGER,
    incident_id     TEXT,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    body            TEXT    NOT NULL -- the rest of the alert, JSON
);
-- Listings newest first, of everyone or of one tenant.
CREATE INDEX alerts_recent ON alerts (pending_since);
CREATE INDEX alerts_tenant ON alerts (tenant_id, pending_since);
-- An incident's alerts, to acknowledge them together.
CREATE INDEX alerts_incident ON alerts (incident_id) WHERE incident_id IS NOT NULL;
-- A deleted rule's pending alerts.
CREATE INDEX alerts_rule ON alerts (rule_id, state);

CREATE TABLE incidents (
    id              TEXT    PRIMARY KEY,
    tenant_id       TEXT    NOT NULL,
    state           TEXT    NOT NULL, -- firing|resolved
    opened_at       INTEGER NOT NULL,
    resolved_at     INTEGER,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    body            TEXT    NOT NULL -- the rest of the incident, JSON
);
CREATE INDEX incidents_recent ON incidents (opened_at);
CREATE INDEX incidents_tenant ON incidents (tenant_id, opened_at);
-- What the evaluator reads at start: the few incidents still open.
CREATE INDEX incidents_open ON incidents (opened_at) WHERE resolved_at IS NULL;

-- Silences: a rule, a tenant, or a rule of a tenant (NULL: any), from
-- `starts_at` until `ends_at`.
CREATE TABLE silences (
    id         TEXT    PRIMARY KEY,
    rule_id    TEXT,
    tenant_id  TEXT,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    reason     TEXT,
    created_by TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX silences_ends ON silences (ends_at);

-- Named leases with a fencing token, such as the evaluator's: a holder
-- keeps its token while it renews; another takes over only after
-- `expires_at`, with the token plus one.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    token      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
