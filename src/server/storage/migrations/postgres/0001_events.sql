-- The PostgreSQL store: the SQLite schema (migrations/sqlite, 0001 to 0003)
-- in one step, for a database that several nodes share.

-- Events in id order. Ids are assigned under one advisory lock held until
-- commit (see postgres/append.rs), so they grow in commit order.
CREATE TABLE events (
    id                      BIGINT      PRIMARY KEY,
    tenant_id               TEXT        NOT NULL,
    event_type              TEXT        NOT NULL,
    rooms                   TEXT[]      NOT NULL, -- the first is the primary room
    -- `json`, not `jsonb`: json keeps the text as written, and jsonb would
    -- rewrite numbers (1e2 as 100, 1.0E-3 as 0.0010, -0 as 0) where the
    -- SQLite store gives back what was posted.
    data                    JSON        NOT NULL,
    ts                      TIMESTAMPTZ NOT NULL, -- event time, milliseconds
    received_at             TIMESTAMPTZ NOT NULL, -- for `--since 10m` and key expiry
    idempotency_key         TEXT,
    idempotency_fingerprint TEXT
);

CREATE UNIQUE INDEX events_idempotency ON events (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_tenant ON events (tenant_id, id);
CREATE INDEX events_received ON events (received_at);
-- The hourly sweep frees event keys past their time-to-live; this index
-- holds keyed events only, so the sweep never walks the whole history.
CREATE INDEX events_keyed_received ON events (received_at)
    WHERE idempotency_key IS NOT NULL;

-- One row per (event, room), so replay and history read a room without a scan.
CREATE TABLE event_rooms (
    tenant_id TEXT   NOT NULL,
    room      TEXT   NOT NULL,
    event_id  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, room, event_id)
);

CREATE INDEX event_rooms_any_tenant ON event_rooms (room, event_id);

-- Request-level idempotency keys (`Idempotency-Key` header), with what
-- they were first used for, so a reuse for different content is refused.
CREATE TABLE idempotency_keys (
    scope       TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    event_ids   BIGINT[]    NOT NULL, -- in request order
    created_at  TIMESTAMPTZ NOT NULL,
    fingerprint TEXT,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Each tenant's newest event id, kept in the append's transaction: every
-- new event records its tenant's previous id.
CREATE TABLE tenant_heads (
    tenant_id TEXT   PRIMARY KEY,
    last_id   BIGINT NOT NULL
);

-- The last id ever assigned (one row), so an id is never handed out twice
-- even if the newest events were deleted: SQLite's AUTOINCREMENT.
CREATE TABLE event_id_head (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    last_id  BIGINT  NOT NULL
);

INSERT INTO event_id_head (last_id) VALUES (0);
