-- Events in id order. Ids are assigned by the single writer (group commit),
-- so they grow in commit order and a client can resume from the last it saw.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    rooms           TEXT    NOT NULL, -- JSON array; the first is the primary room
    data            TEXT    NOT NULL, -- JSON object
    ts              TEXT    NOT NULL, -- event time, RFC 3339
    received_at     INTEGER NOT NULL, -- unix milliseconds, for `--since 10m`
    idempotency_key TEXT
);

CREATE UNIQUE INDEX events_idempotency ON events (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_tenant ON events (tenant_id, id);
CREATE INDEX events_received ON events (received_at);

-- One row per (event, room), so replay and history read a room without a scan.
CREATE TABLE event_rooms (
    tenant_id TEXT    NOT NULL,
    room      TEXT    NOT NULL,
    event_id  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, room, event_id)
) WITHOUT ROWID;

CREATE INDEX event_rooms_any_tenant ON event_rooms (room, event_id);

-- Request-level idempotency keys (`Idempotency-Key` header).
CREATE TABLE idempotency_keys (
    scope      TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    event_ids  TEXT    NOT NULL, -- JSON array, in request order
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
